//! Sign-in tracking and a login audit trail for [SeaORM](sea_orm) user models.
//!
//! Derive [`Trackable`] on a user model and report sign-in events from your login handler:
//!
//! - **fields mode** (the default) keeps five columns on the user row: `sign_in_count`,
//!   `current_sign_in_at`, `current_sign_in_ip`, `last_sign_in_at`, `last_sign_in_ip`;
//! - **table mode** (`#[trackable(table = "...")]`) appends one row per event to an audit
//!   table that the derive generates, entity and migration included.
//!
//! Every event is computed in the database from the stored row, in one statement where the
//! backend allows it, so concurrent logins never lose an increment and a stale model never
//! overwrites a newer login. In table mode each row carries the user's event number `seq`,
//! unique per user, which orders their events at every isolation level and across app
//! servers whose clocks differ; where a caller's transaction meets a concurrent event, the
//! error says to retry it ([`Error::is_retryable`]). On SQLite, begin such transactions with
//! [`begin_write`].
//!
//! ```no_run
//! use sea_orm::entity::prelude::*;
//! use trackable_core::{ClientInfo, Trackable};
//!
//! #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Trackable)]
//! #[sea_orm(table_name = "users")]
//! pub struct Model {
//!     #[sea_orm(primary_key)]
//!     pub id: i32,
//!     pub email: String,
//!     pub sign_in_count: i32,
//!     pub current_sign_in_at: Option<DateTimeUtc>,
//!     pub current_sign_in_ip: Option<String>,
//!     pub last_sign_in_at: Option<DateTimeUtc>,
//!     pub last_sign_in_ip: Option<String>,
//! }
//!
//! #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
//! pub enum Relation {}
//!
//! impl ActiveModelBehavior for ActiveModel {}
//!
//! # async fn run(db: &sea_orm::DatabaseConnection, user: Model) -> Result<(), trackable_core::Error> {
//! let client = ClientInfo::from_ip("203.0.113.7".parse().unwrap()).with_user_agent("curl/8");
//! let user = trackable_core::track_login(db, &user, &client).await?;
//! assert!(user.sign_in_count >= 1);
//! trackable_core::track_logout(db, &user, &client).await?;
//! # Ok(()) }
//! # fn main() {}
//! ```
//!
//! # Events
//!
//! | function | fields mode | table mode |
//! |---|---|---|
//! | [`track_login`] | count + 1, current → last, (now, ip) → current | appends a `login` row |
//! | [`track_logout`] | current → last, current cleared | appends a `logout` row |
//! | [`track_failed_login`], [`track_lock`], [`track_unlock`], [`track_unlock_token`], [`track_password_reset`] | writes nothing, returns `Ok(())` | appends a row with the state unchanged and returns it |
//! | [`track`] | any [`Action`] | any [`Action`] |
//!
//! [`SignInState::apply`] is the exact rule. Each function takes a
//! [`DatabaseConnection`](sea_orm::DatabaseConnection) or the caller's open
//! [`DatabaseTransaction`](sea_orm::DatabaseTransaction), so tracking commits or rolls back
//! with the login itself. A [`Tracker`] offers the same operations with a configuration:
//! clock, IP privacy policy and user-agent capture.
//!
//! # Which application events to report
//!
//! A password login, and the automatic login after registration, are logins. A session
//! restored from a remember-me cookie is not: it is neither counted nor recorded unless the
//! application reports it explicitly.
//!
//! # The derive
//!
//! `#[derive(Trackable)]` checks the model at compile time and generates what each mode
//! needs. Its attributes:
//!
//! | attribute | where | meaning |
//! |---|---|---|
//! | `#[trackable(fields)]` | struct | fields mode (the default; may be omitted) |
//! | `#[trackable(table = "trackables")]` | struct | table mode, with this audit table |
//! | `#[trackable(module = "audit")]` | struct | table mode: the module of the generated entity (default: the table name) |
//! | `#[trackable(crate = "path")]` | struct | where `trackable_core` is, when renamed |
//! | `#[trackable(sign_in_count)]`, `#[trackable(current_sign_in_at)]`, `#[trackable(current_sign_in_ip)]`, `#[trackable(last_sign_in_at)]`, `#[trackable(last_sign_in_ip)]` | field | fields mode: this field plays that role under another name |
//!
//! Field types: the count is `i32` or `i64`, optional or not (NULL counts as 0); times are
//! `Option<DateTimeUtc>`; IPs are `Option<String>`.
//!
//! ```compile_fail
//! use sea_orm::entity::prelude::*;
//!
//! #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, trackable_core::Trackable)]
//! #[sea_orm(table_name = "users")]
//! #[trackable(fields, table = "trackables")] // error: both modes requested
//! pub struct Model {
//!     #[sea_orm(primary_key)]
//!     pub id: i32,
//! }
//! # #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
//! # pub enum Relation {}
//! # impl ActiveModelBehavior for ActiveModel {}
//! # fn main() {}
//! ```
//!
//! Table mode, and the attribute macro that writes the five fields of fields mode for you:
//!
//! ```
//! mod member {
//!     use sea_orm::entity::prelude::*;
//!
//!     #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, trackable_core::Trackable)]
//!     #[sea_orm(table_name = "members")]
//!     #[trackable(table = "member_events", module = "audit")]
//!     pub struct Model {
//!         #[sea_orm(primary_key)]
//!         pub id: i64,
//!         pub email: String,
//!     }
//!
//!     #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
//!     pub enum Relation {}
//!
//!     impl ActiveModelBehavior for ActiveModel {}
//! }
//!
//! mod customer {
//!     use sea_orm::entity::prelude::*;
//!
//!     #[trackable_core::sign_in_fields]
//!     #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, trackable_core::Trackable)]
//!     #[sea_orm(table_name = "customers")]
//!     pub struct Model {
//!         #[sea_orm(primary_key)]
//!         pub id: i32,
//!     }
//!
//!     #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
//!     pub enum Relation {}
//!
//!     impl ActiveModelBehavior for ActiveModel {}
//! }
//!
//! use trackable_core::{Mode, Trackable};
//!
//! // The generated audit entity lives in `member::audit`.
//! let _: Option<member::audit::Model> = None;
//! assert_eq!(member::Model::MODE, Mode::Table { table: "member_events" });
//! assert_eq!(customer::Model::MODE, Mode::Fields);
//! ```
//!
//! A missing field is an error at the struct that names the field and what to write:
//!
//! ```compile_fail
//! use sea_orm::entity::prelude::*;
//!
//! #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, trackable_core::Trackable)]
//! #[sea_orm(table_name = "users")]
//! pub struct Model { // error: missing field `sign_in_count`: add `pub sign_in_count: i32,` ...
//!     #[sea_orm(primary_key)]
//!     pub id: i32,
//! }
//! # #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
//! # pub enum Relation {}
//! # impl ActiveModelBehavior for ActiveModel {}
//! # fn main() {}
//! ```
//!
//! # Security features
//!
//! Table mode keeps every event, so the audit trail answers security questions. The queries
//! are methods of [`Tracker`], bounded by [`AuditTrail`]: the derive implements it in table
//! mode only, so they do not compile for a fields-mode model.
//!
//! | query | answers | index |
//! |---|---|---|
//! | [`Tracker::history`] | a user's events, newest first, by pages (cursor = the last `seq` seen) | `UNIQUE (user_id, seq)` |
//! | [`Tracker::last_login`] | a user's latest login row | `(user_id, action, seq)` |
//! | [`Tracker::count_failed_logins`], [`Tracker::failed_logins`] | a user's failed logins since a time | `(user_id, action, inserted_at)` |
//! | [`Tracker::count_failed_logins_from`] | an IP's failed logins since a time, unknown identifiers included | `(remote_ip, action, inserted_at)` and `<table>_unknown (remote_ip, inserted_at)` |
//! | [`Tracker::is_new_ip`] | whether a user never signed in from an IP | `(user_id, action, remote_ip, seq)` |
//!
//! IPs passed to a query go through the tracker's [`IpPolicy`] first, so they match what was
//! stored. Every query is one statement served by an index that the
//! [migration](Trackable::migration) creates; [`explain_audit_queries`] shows the plans on your
//! database, and a test checks them on every backend. For example (10,000 users):
//!
//! ```text
//! -- history, SQLite (EXPLAIN QUERY PLAN)
//! SEARCH member_events USING INDEX idx_member_events_user_id_seq (user_id=?)
//! -- history, PostgreSQL (EXPLAIN)
//! Limit  (cost=0.29..190.60 rows=51 width=94)
//!   ->  Index Scan Backward using idx_member_events_user_id_seq on member_events
//!         Index Cond: (user_id = 4)
//!
//! -- failed logins of an IP, SQLite
//! CO-ROUTINE f
//!   COMPOUND QUERY
//!     LEFT-MOST SUBQUERY
//!       SEARCH member_events USING COVERING INDEX idx_member_events_remote_ip_action_inserted_at (remote_ip=? AND action=? AND inserted_at>?)
//!     UNION ALL
//!       SEARCH member_events_unknown USING COVERING INDEX idx_member_events_unknown_remote_ip_inserted_at (remote_ip=? AND inserted_at>?)
//! SCAN f
//! -- failed logins of an IP, PostgreSQL
//! Aggregate
//!   ->  Append
//!         ->  Index Only Scan using idx_member_events_remote_ip_action_inserted_at on member_events
//!               Index Cond: ((remote_ip = '192.0.2.1'::text) AND (action = 'failed_login'::text) AND (inserted_at >= '...'))
//!         ->  Index Only Scan using idx_member_events_unknown_remote_ip_inserted_at on member_events_unknown
//!               Index Cond: ((remote_ip = '192.0.2.1'::text) AND (inserted_at >= '...'))
//!
//! -- is the IP new, SQLite / PostgreSQL
//! SEARCH member_events USING COVERING INDEX idx_member_events_user_id_action_remote_ip_seq (user_id=? AND action=? AND remote_ip=?)
//! Limit
//!   ->  Index Only Scan using idx_member_events_user_id_action_remote_ip_seq on member_events
//!         Index Cond: ((user_id = 4) AND (action = 'login'::text) AND (remote_ip = '192.0.2.1'::text))
//!
//! -- a purge batch, PostgreSQL
//! Limit
//!   ->  Index Scan using idx_member_events_inserted_at_id on member_events a
//!         Index Cond: ((inserted_at < '...') AND (inserted_at >= '...'))
//!         Filter: ((inserted_at > '...') OR (id > '0'::bigint))
//!         SubPlan 1
//!           ->  Limit
//!                 ->  Index Only Scan Backward using idx_member_events_user_id_seq on member_events b
//!                       Index Cond: (user_id = a.user_id)
//! ```
//!
//! **Failed logins for unknown identifiers.** [`Tracker::failed_login_unknown`] records a
//! failed login whose identifier matched no user, in table `<table>_unknown` (created by the
//! same migration), with the identifier only as a keyed hash (HMAC-SHA256 under
//! [`Tracker::with_identifier_key`]), so per-IP counts see username guessing.
//!
//! **Lockout.** [`Lockout`] (threshold, window, cool-off) reserves each sign-in attempt
//! before the credentials are checked ([`Lockout::begin`] answers [`Attempt::Permitted`] or
//! [`Attempt::Refused`]), then records its outcome ([`Permit::succeeded`],
//! [`Permit::failed`]), so parallel guesses get no more password checks than the threshold.
//! It locks accounts and identifiers that match no user, and blocks client networks. Its
//! documentation shows the login handler that uses it.
//!
//! **Retention.** [`purge_audit_trail`] deletes rows older than a cut-off, and
//! [`anonymize_audit_ips`] rewrites their IPs under an [`IpPolicy`], both in bounded batches of
//! short transactions, safe while logins are tracked. The purge never deletes a user's latest
//! row: it carries the sign-in state that the next event continues from.
//!
//! **A tamper-evident trail.** Under [`Tracker::with_chain_key`], each audit row stores a MAC
//! over the row before it and its own content; [`Tracker::verify_trail`] reports the first
//! row altered, removed, inserted out of band or moved ([`BreakKind`]), across purges (which
//! leave an anchor) and anonymisation. The newest [`TrailHead`] leaves the database as a
//! `tracing` event, so deleting the newest rows is seen against a copy kept elsewhere. On
//! PostgreSQL, [`Migration::with_append_only_trigger`] refuses other changes to the table.
//! A deleted user's trail is erased ([`erase_audit_trail`]) or archived under a pseudonym
//! ([`Tracker::archive_audit_trail`]).
//!
//! **Events.** Every tracked event, including a failed login for an unknown identifier, is a
//! `tracing` event with target `trackable` and the fields `action`, `user_id`, `ip` (after the
//! [`IpPolicy`]; empty when none is stored) and `outcome` (`recorded`, `skipped` for the
//! events that fields mode does not store, `failed` with `error`):
//!
//! ```text
//!  INFO trackable: sign-in event action="login" user_id="1" ip="203.0.113.0" outcome="recorded"
//!  INFO trackable: sign-in event action="failed_login" user_id="" ip="203.0.113.0" outcome="recorded" unknown_identifier=true
//! ```
//!
//! [`Tracker::on_new_ip`] sets a [`NewIpHook`], called once per login from an IP address new for
//! the user (table mode), even under concurrent logins.
//!
//! **What is never recorded.** The API takes no password, token or session id, so none can
//! reach the database or the logs: only the user's key, the action, the client IP (after its
//! policy), the user agent (after its policy, stored but not logged) and the time. The
//! identifier of an unknown-user failure is stored only as a keyed hash and never logged.
//!
//! # How the crate is built
//!
//! Layers, each calling only the ones below it:
//!
//! | layer | modules | owns |
//! |---|---|---|
//! | entry points | `tracker/`, `lockout` | [`Tracker`] and the `track_*` functions, its audit-trail queries; the [`Lockout`] policy on top of them |
//! | audit trail | `trail/` | where an audit trail is stored and the statements that read it, the shared queries, retention, the new-IP hook, query plans |
//! | SQL | `store/` | statement text, connections and transactions, the migration, PostgreSQL's append function, decoding rows |
//! | vocabulary | `action`, `details`, `state`, `error`, `event`, `trackable`, `client/` | the types every layer speaks: actions and their details (method, reason, session), sign-in state, errors, one event and its `tracing` record, the [`Trackable`] contract, client IPs, devices and their policies |
//!
//! Integrations with web frameworks (`integration/`: `http`, `axum`, `axum-login`) sit on top,
//! each behind its feature: `http` and `axum` use only `client/`, `axum-login` the tracker and
//! the lockout. `__private` is what the derive's generated code calls. `tests/layout.rs` checks
//! that no module imports one above it.
//!
//! # Features
//!
//! - `derive` (default): re-exports [`Trackable`](macro@Trackable) and [`sign_in_fields`].
//! - `sqlite`, `postgres`, `mysql`: forward the backend to sea-orm (`sqlite` also turns on
//!   `RETURNING` for SQLite 3.35 and later).
//! - `axum-login`: [`TrackedBackend`], an axum-login 0.18 backend that tracks sign-ins behind
//!   the [`Lockout`] (implies `axum`).
//! - `http`: [`ClientInfo::from_parts`] and [`ClientInfo::from_headers`] build the client from
//!   an `http` request and the peer address, resolving the client IP behind trusted proxies.
//! - `axum`: [`ClientInfo`] is an axum extractor (implies `http`).
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]

mod action;
mod client;
mod details;
mod error;
mod event;
mod integration;
mod lockout;
mod state;
mod store;
mod trackable;
mod tracker;
mod trail;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use action::{Action, ParseActionError};
pub use client::{
    ClientConfig, ClientInfo, ConfigError, ForwardedHeader, HashKey, IdentifierNormalization,
    IpPolicy, IpSource, Resolution, UserAgentPolicy, device_label,
};
pub use details::{Details, FailureReason, ParseDetailError, SessionId, SignInMethod};
pub use error::{Error, Result};
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub use integration::StateClientInfo;
#[cfg(feature = "axum-login")]
pub use integration::{PasswordBackend, TrackedBackend, TrackedCredentials, TrackedError};
pub use lockout::{Attempt, LockDecision, Lockout, Permit, Refusal, RefusalReason};
pub use state::{HasSignInState, SignInState};
pub use store::connection::{Connection, begin_write};
pub use trackable::{Migration, Mode, Trackable};
pub use tracker::{
    Clock, SystemClock, Tracker, TrailsReport, track, track_failed_login, track_lock, track_login,
    track_logout, track_password_reset, track_unlock, track_unlock_token,
};
pub use trail::explain::{QueryPlan, explain_audit_queries};
pub use trail::hook::{NewDevice, NewDeviceHook, NewIp, NewIpHook};
pub use trail::queries::{Activity, HistoryPage, MAX_PAGE_SIZE};
pub use trail::retention::{
    MAX_BATCH_SIZE, anonymize_audit_ips, anonymize_sign_in_ips, erase_audit_trail,
    forget_audit_user_agents, purge_audit_trail,
};
pub use trail::sessions::OpenSession;
pub use trail::tables::{AuditRecord, AuditTrail};
pub use trail::verify::{BreakKind, TrailBreak, TrailHead, TrailReport};

/// Derives [`Trackable`](trait@Trackable) for a SeaORM user model. See the
/// [crate documentation](crate#the-derive) for its attributes.
#[cfg(feature = "derive")]
#[cfg_attr(docsrs, doc(cfg(feature = "derive")))]
pub use trackable_derive::Trackable;

/// Inserts the five sign-in field declarations into a model struct, for users who would
/// rather not write them by hand. Place it above `#[derive(...)]`.
#[cfg(feature = "derive")]
#[cfg_attr(docsrs, doc(cfg(feature = "derive")))]
pub use trackable_derive::sign_in_fields;

/// Re-exported: times and durations of the API ([`Lockout::new`], [`Tracker::now`]) are
/// `chrono` types.
pub use chrono;
/// Re-exported: [`ClientConfig::trust_network`] takes an `ipnet::IpNet`.
pub use ipnet;
/// Re-exported for generated code and for applications that want the same version.
pub use sea_orm;
