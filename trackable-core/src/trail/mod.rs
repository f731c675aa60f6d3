//! The layer that reads and keeps the audit trail of table mode: where it is stored and the
//! statements that read it, the queries, retention, the new-IP hook and the query plans.
//! It runs its statements through the store layer and knows nothing of the tracker.

pub(crate) mod explain;
pub(crate) mod hook;
pub(crate) mod queries;
pub(crate) mod retention;
pub(crate) mod sessions;
pub(crate) mod tables;
pub(crate) mod verify;
