//! The layer that talks SQL: statement text, connections and transactions, the migration,
//! and what differs between backends. It knows the tracking columns and the audit table's
//! shape, but nothing of queries, policies or hooks.

pub(crate) mod chain;
pub(crate) mod connection;
pub(crate) mod migration;
pub(crate) mod postgres;
pub(crate) mod rows;
pub(crate) mod sql;
pub(crate) mod statements;
pub(crate) mod write;
