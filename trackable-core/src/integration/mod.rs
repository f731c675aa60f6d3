//! Integrations with web frameworks, each behind its feature: `http` builds a
//! [`ClientInfo`](crate::ClientInfo) from a request head, `axum` makes it an extractor.
//! They sit on top of the `client` module and read nothing from the database.

#[cfg(feature = "http")]
mod http;

#[cfg(feature = "axum")]
mod axum;

#[cfg(feature = "axum")]
pub use self::axum::StateClientInfo;
