//! Queries on the audit trail that more than one caller runs: counts of failed logins, by
//! user and by IP.

use chrono::{DateTime, Utc};
use sea_orm::QueryResult;

use super::tables::{AuditTables, AuditTrail};
use crate::error::Result;
use crate::store::connection::Connection;
use crate::store::rows::get;

/// One page of a user's audit history, newest first. See [`Tracker::history`](crate::Tracker::history).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryPage<R> {
    /// The events, newest (highest `seq`) first.
    pub events: Vec<R>,
    /// The cursor of the next (older) page: pass it as `before`. `None` on the last page.
    pub next: Option<i64>,
}

/// The largest page [`Tracker::history`](crate::Tracker::history) and [`Tracker::failed_logins`](crate::Tracker::failed_logins) return.
pub const MAX_PAGE_SIZE: u64 = 1000;

/// Column `n` of a `COUNT(*) AS n` row.
pub(crate) fn count(row: &QueryResult) -> Result<u64> {
    Ok(u64::try_from(get::<i64>(row, "n")?).unwrap_or(0))
}

/// The number of failed logins from `ip`, and the time of the latest.
pub(crate) async fn ip_failures<C: Connection>(
    db: &C,
    tables: &AuditTables,
    ip: &str,
    since: DateTime<Utc>,
) -> Result<(u64, Option<DateTime<Utc>>)> {
    let statement = tables.ip_failures(db.get_database_backend(), ip, since);
    match db.query_one_raw(statement).await? {
        Some(row) => Ok((count(&row)?, get(&row, "latest")?)),
        None => Ok((0, None)),
    }
}

pub(crate) async fn count_user_failures<C, M>(
    db: &C,
    tables: &AuditTables,
    user: &M,
    since: DateTime<Utc>,
    after_seq: Option<i64>,
    from_ip: Option<&str>,
) -> Result<u64>
where
    C: Connection,
    M: AuditTrail,
{
    let statement = tables.user_failures(
        db.get_database_backend(),
        user.__user_id(),
        since,
        after_seq,
        from_ip,
        None,
    );
    match db.query_one_raw(statement).await? {
        Some(row) => count(&row),
        None => Ok(0),
    }
}
