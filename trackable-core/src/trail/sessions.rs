//! The sessions of a user, read from the audit trail: each login begins one, and a logout, a
//! revocation or "sign out everywhere else" ends it.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use sea_orm::Value;

use super::tables::AuditTables;
use crate::action::Action;
use crate::details::SessionId;
use crate::error::Result;
use crate::store::connection::Connection;
use crate::store::rows::get;

/// A session that no event has ended, as listed by
/// [`Tracker::open_sessions`](crate::Tracker::open_sessions).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpenSession {
    /// The session: the event number of its login.
    pub id: SessionId,
    /// When it began.
    pub signed_in_at: DateTime<Utc>,
    /// The IP of its login, as stored (after the privacy policy).
    pub ip: Option<String>,
    /// The user agent of its login, as stored.
    pub user_agent: Option<String>,
    /// The device label of its login ([`device_label`](crate::device_label)).
    pub device: Option<String>,
    /// How the user signed in, as stored ([`SignInMethod`](crate::SignInMethod)).
    pub method: Option<String>,
}

/// The sessions of the user `user_id` begun at or after `since` that no event before their
/// event `before_seq` (or no event at all) ended, newest first.
///
/// A logout ends the session it names; one that names none (a plain
/// [`Tracker::logout`](crate::Tracker::logout)) ends the newest session still open before
/// it, as fields mode's state does. `session_revoked` ends the session it names;
/// `others_revoked` every session begun before it but the one it names.
pub(crate) async fn open_sessions<C: Connection>(
    db: &C,
    tables: &AuditTables,
    user_id: Value,
    since: DateTime<Utc>,
    before_seq: Option<i64>,
) -> Result<Vec<OpenSession>> {
    let backend = db.get_database_backend();
    let rows = db
        .query_all_raw(tables.logins_since(backend, user_id.clone(), since, before_seq))
        .await?;
    let mut logins = Vec::with_capacity(rows.len());
    for row in &rows {
        logins.push(OpenSession {
            id: SessionId(get(row, "seq")?),
            signed_in_at: get(row, "inserted_at")?,
            ip: get(row, "remote_ip")?,
            user_agent: get(row, "user_agent")?,
            device: get(row, "device")?,
            method: get(row, "method")?,
        });
    }
    let Some(first) = logins.first().map(|login| login.id.seq()) else {
        return Ok(Vec::new());
    };
    let ends = db
        .query_all_raw(tables.session_ends(backend, user_id, first, before_seq))
        .await?;
    let mut ended = BTreeSet::new();
    for row in &ends {
        let seq: i64 = get(row, "seq")?;
        let named: Option<i64> = get(row, "session_seq")?;
        let action: String = get(row, "action")?;
        let begun_before = logins
            .iter()
            .map(|login| login.id.seq())
            .filter(|s| *s < seq);
        match action.parse::<Action>() {
            Ok(Action::Logout) => {
                let newest_open = begun_before.filter(|s| !ended.contains(s)).max();
                if let Some(session) = named.or(newest_open) {
                    ended.insert(session);
                }
            }
            Ok(Action::SessionRevoked) => {
                ended.extend(named);
            }
            Ok(Action::OthersRevoked) => {
                let others: Vec<i64> = begun_before.filter(|s| Some(*s) != named).collect();
                ended.extend(others);
            }
            _ => {}
        }
    }
    logins.retain(|login| !ended.contains(&login.id.seq()));
    logins.reverse();
    Ok(logins)
}
