//! Integrations with web frameworks, each behind its feature: `http` builds a
//! [`ClientInfo`](crate::ClientInfo) from a request head, `axum` makes it an extractor, and
//! `axum-login` tracks the sign-ins of an axum-login backend, behind the lockout.

#[cfg(feature = "http")]
mod http;

#[cfg(feature = "axum")]
mod axum;

#[cfg(feature = "axum")]
pub use self::axum::StateClientInfo;

#[cfg(feature = "axum-login")]
mod axum_login;

#[cfg(feature = "axum-login")]
pub use self::axum_login::{PasswordBackend, TrackedBackend, TrackedCredentials, TrackedError};
