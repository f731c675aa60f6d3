//! A minimal Loco 1.x app whose sign-ins are tracked by trackable: register, log in (behind
//! the lockout), log out, and a history page, with the client IP from Loco's remote-IP
//! middleware and the retention tasks registered.
//!
//! ```sh
//! cd trackable-loco
//! cargo run --example loco_app --features db-sqlite -- start        # http://localhost:5150
//! cargo run --example loco_app --features db-sqlite -- task         # lists trackable:purge, ...
//! cargo run --example loco_app --features db-sqlite -- task trackable:purge days:30
//! ```
//!
//! The configuration is in `examples/loco_app/config/` (the `initializers.trackable` block,
//! `server.middlewares.remote_ip`); the entity in `models/_entities/users.rs` is what
//! `cargo loco db entities` generates, with the derive kept (see the crate's README).

mod app;
mod controllers;
mod migration;
mod models;
mod schema;
#[cfg(test)]
mod tests;

#[tokio::main]
async fn main() -> loco_rs::Result<()> {
    loco_rs::cli::main::<app::App, migration::Migrator>().await
}
