//! The `users` table, apart from the migrations so that `tests/regenerate.rs` can generate
//! its entity the way `cargo loco db entities` does.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{
    pk_auto, string, string_uniq, timestamp_with_time_zone, uuid_uniq,
};

#[derive(DeriveIden)]
pub enum Users {
    Table,
    Id,
    Pid,
    Email,
    Password,
    Name,
    CreatedAt,
    UpdatedAt,
}

/// The `users` table, as a Loco starter creates it (trimmed to what the app uses).
pub fn users_table() -> TableCreateStatement {
    Table::create()
        .table(Users::Table)
        .if_not_exists()
        .col(timestamp_with_time_zone(Users::CreatedAt).default(Expr::current_timestamp()))
        .col(timestamp_with_time_zone(Users::UpdatedAt).default(Expr::current_timestamp()))
        .col(pk_auto(Users::Id))
        .col(uuid_uniq(Users::Pid))
        .col(string_uniq(Users::Email))
        .col(string(Users::Password))
        .col(string(Users::Name))
        .to_owned()
}
