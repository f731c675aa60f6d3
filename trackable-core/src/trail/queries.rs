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

/// One event of a user's audit trail, with every column the table holds: what
/// [`Tracker::activity`](crate::Tracker::activity) returns, the same type for every model.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Activity {
    /// The row's primary key.
    pub id: i64,
    /// The user's event number.
    pub seq: i64,
    /// What happened.
    pub action: crate::action::Action,
    /// When, as stored.
    pub inserted_at: DateTime<Utc>,
    /// The client's IP, after the privacy policy.
    pub remote_ip: Option<String>,
    /// The user agent, after its policy.
    pub user_agent: Option<String>,
    /// The device label ([`device_label`](crate::device_label)).
    pub device: Option<String>,
    /// How the user signed in ([`SignInMethod`](crate::SignInMethod), as stored).
    pub method: Option<String>,
    /// Why a sign-in failed or was refused ([`FailureReason`](crate::FailureReason), as
    /// stored).
    pub reason: Option<String>,
    /// The session the event belongs to (a login's is its own `seq`).
    pub session: Option<crate::details::SessionId>,
    /// The sign-in count after the event.
    pub sign_in_count: i64,
}

impl Activity {
    pub(crate) fn read(row: &QueryResult) -> Result<Self> {
        crate::store::rows::check_readable(row)?;
        let action: String = get(row, "action")?;
        let action = action
            .parse()
            .map_err(|_| crate::error::Error::InvalidData {
                model: "Activity",
                what: format!("the action `{action}`"),
            })?;
        let seq = get(row, "seq")?;
        let session = match action {
            crate::action::Action::Login => Some(seq),
            _ => get::<Option<i64>>(row, "session_seq")?,
        };
        Ok(Activity {
            id: get(row, "id")?,
            seq,
            action,
            inserted_at: get(row, "inserted_at")?,
            remote_ip: get(row, "remote_ip")?,
            user_agent: get(row, "user_agent")?,
            device: get(row, "device")?,
            method: get(row, "method")?,
            reason: get(row, "reason")?,
            session: session.map(crate::details::SessionId),
            sign_in_count: get(row, "sign_in_count")?,
        })
    }
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
