//! Verifying the hash chain of a user's audit trail, and the heads that leave the database.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, QueryResult, Value};

use super::tables::AuditTables;
use crate::client::HashKey;
use crate::error::Result;
use crate::store::chain::{self, Link};
use crate::store::migration::{anchors_table, archive_table};
use crate::store::rows::{get, readable_time, value_text};
use crate::store::sql::Sql;

/// The newest row of a user's trail: its event number and `mac`. Export it (it is also the
/// `tracing` event `trail head`, target `trackable::chain`, of every chained write) and keep
/// it outside the database, so that deleting the newest rows is seen by
/// [`Tracker::verify_trail`](crate::Tracker::verify_trail).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TrailHead {
    /// The user's key, as text.
    pub user_id: String,
    /// The event number of the newest row.
    pub seq: i64,
    /// Its `mac` (`None` for a row written without a chain key).
    pub mac: Option<String>,
}

/// What a verification found wrong first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BreakKind {
    /// The row's content (or its `mac`) is not what was written.
    Altered,
    /// The row with this event number is missing: deleted, and not by a purge (or, with
    /// a head given, the newest rows were deleted).
    Removed,
    /// A row without a `mac` after chained rows: written without the chain key, for
    /// example through the generated entity.
    InsertedOutOfBand,
    /// The row was written with another event number: rows were moved.
    Reordered {
        /// The event number the row was written with.
        written_as: i64,
    },
}

/// The first row where a trail breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TrailBreak {
    /// The event number where the trail breaks.
    pub seq: i64,
    /// The row there, if there is one (`None` for a removed row).
    pub id: Option<i64>,
    /// What happened.
    pub kind: BreakKind,
}

/// The outcome of [`Tracker::verify_trail`](crate::Tracker::verify_trail).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TrailReport {
    /// The event number verification started from: 1, or the one after the purge's anchor.
    pub from_seq: i64,
    /// The rows verified.
    pub checked: u64,
    /// Of those, the leading rows written before the chain key was set (no `mac`).
    pub unchained: u64,
    /// The first break, if any.
    pub broken: Option<TrailBreak>,
}

impl TrailReport {
    /// Whether the trail verified: no break.
    pub fn is_intact(&self) -> bool {
        self.broken.is_none()
    }
}

/// A row as verification reads it.
#[derive(Clone, Debug)]
struct Row {
    id: i64,
    seq: i64,
    action: String,
    sign_in_count: i64,
    current_sign_in_at: Option<DateTime<Utc>>,
    last_sign_in_at: Option<DateTime<Utc>>,
    inserted_at: Option<DateTime<Utc>>,
    client_digest: Option<String>,
    mac: Option<String>,
    method: Option<String>,
    reason: Option<String>,
    session_seq: Option<i64>,
    session_digest: Option<String>,
    device: Option<String>,
}

impl Row {
    fn read(row: &QueryResult) -> Result<Self> {
        let readable = !matches!(row.try_get::<Option<bool>>("", "readable"), Ok(Some(false)));
        let time = |column| -> Result<Option<DateTime<Utc>>> {
            if readable { get(row, column) } else { Ok(None) }
        };
        Ok(Row {
            id: get(row, "id")?,
            seq: get(row, "seq")?,
            action: get(row, "action")?,
            sign_in_count: get(row, "sign_in_count")?,
            current_sign_in_at: time("current_sign_in_at")?,
            last_sign_in_at: time("last_sign_in_at")?,
            // An unreadable time cannot be what was written (the crate writes readable ones).
            inserted_at: if readable {
                get(row, "inserted_at")?
            } else {
                None
            },
            client_digest: get(row, "client_digest")?,
            mac: get(row, "mac")?,
            method: get(row, "method")?,
            reason: get(row, "reason")?,
            session_seq: get(row, "session_seq")?,
            session_digest: get(row, "session_digest")?,
            device: get(row, "device")?,
        })
    }

    /// The `mac` this row would have at event number `seq` after `previous`.
    fn mac_at(
        &self,
        key: &HashKey,
        subject: &str,
        seq: i64,
        previous: Option<&str>,
    ) -> Option<String> {
        let link = Link {
            subject,
            seq,
            action: &self.action,
            sign_in_count: self.sign_in_count,
            current_sign_in_at: self.current_sign_in_at,
            last_sign_in_at: self.last_sign_in_at,
            inserted_at: self.inserted_at?,
            client_digest: self.client_digest.as_deref(),
            method: self.method.as_deref(),
            reason: self.reason.as_deref(),
            session_seq: self.session_seq,
            session_digest: self.session_digest.as_deref(),
            device: self.device.as_deref(),
        };
        Some(chain::mac(key, &link, previous))
    }
}

/// How many rows around a broken one are searched for where it was written.
const REORDER_WINDOW: usize = 16;

/// The rows read per round trip.
const PAGE: i64 = 500;

/// Verifies the trail of the user whose key is `user_id`, from the purge's anchor on, and
/// against `head` if given.
pub(crate) async fn verify<C: ConnectionTrait>(
    db: &C,
    tables: &AuditTables,
    key: &HashKey,
    user_id: Value,
    head: Option<&TrailHead>,
) -> Result<TrailReport> {
    let trail = Trail {
        schema: tables.schema.as_deref(),
        table: tables.table,
        column: "user_id",
        subject: chain::subject(key, &value_text(&user_id)),
        anchor: anchor(db, tables, user_id.clone()).await?,
        value: user_id,
    };
    verify_trail(db, &trail, key, head).await
}

/// Verifies the archived trail of pseudonym `subject` (see
/// [`Tracker::archive_audit_trail`](crate::Tracker::archive_audit_trail)).
pub(crate) async fn verify_archived<C: ConnectionTrait>(
    db: &C,
    tables: &AuditTables,
    key: &HashKey,
    subject: &str,
) -> Result<TrailReport> {
    let archive = archive_table(tables.table);
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("SELECT ")
        .idents(["anchor_seq", "anchor_mac"])
        .push(" FROM ")
        .table(tables.schema.as_deref(), &archive)
        .push(" WHERE ")
        .ident("subject")
        .push(" = ")
        .param(subject)
        .push(" ORDER BY ")
        .ident("seq")
        .push(" LIMIT 1");
    let anchor = match db.query_one_raw(sql.build()).await? {
        Some(row) => (get(&row, "anchor_seq")?, get(&row, "anchor_mac")?),
        None => (0, None),
    };
    let trail = Trail {
        schema: tables.schema.as_deref(),
        table: &archive,
        column: "subject",
        value: subject.into(),
        subject: subject.to_owned(),
        anchor,
    };
    verify_trail(db, &trail, key, None).await
}

/// The rows of one trail: those of `table` whose `column` is `value`, chained under
/// `subject`, from `anchor` on.
struct Trail<'a> {
    schema: Option<&'a str>,
    table: &'a str,
    column: &'a str,
    value: Value,
    subject: String,
    anchor: (i64, Option<String>),
}

async fn verify_trail<C: ConnectionTrait>(
    db: &C,
    trail: &Trail<'_>,
    key: &HashKey,
    head: Option<&TrailHead>,
) -> Result<TrailReport> {
    let backend = db.get_database_backend();
    let subject = &trail.subject;
    let (anchor_seq, anchor_mac) = trail.anchor.clone();
    let mut report = TrailReport {
        from_seq: anchor_seq + 1,
        checked: 0,
        unchained: 0,
        broken: None,
    };
    let mut previous = anchor_mac;
    let mut chained = previous.is_some();
    let mut expected = anchor_seq + 1;
    let mut head_mac: Option<Option<String>> = None;
    loop {
        let mut sql = Sql::new(backend);
        sql.push("SELECT ")
            .ident("id")
            .push(", ")
            .idents(chain::LINK_COLUMNS);
        if backend == sea_orm::DbBackend::Postgres {
            sql.push(", (");
            for (i, column) in ["current_sign_in_at", "last_sign_in_at", "inserted_at"]
                .into_iter()
                .enumerate()
            {
                if i > 0 {
                    sql.push(" AND ");
                }
                readable_time(&mut sql, None, column);
            }
            sql.push(") AS ").ident("readable");
        }
        sql.push(" FROM ")
            .table(trail.schema, trail.table)
            .push(" WHERE ")
            .ident(trail.column)
            .push(" = ")
            .param(trail.value.clone())
            .push(" AND ")
            .ident("seq")
            .push(" >= ")
            .param(expected)
            .push(" ORDER BY ")
            .ident("seq")
            .push(" LIMIT ")
            .param(PAGE);
        let rows = db
            .query_all_raw(sql.build())
            .await?
            .iter()
            .map(Row::read)
            .collect::<Result<Vec<_>>>()?;
        for (i, row) in rows.iter().enumerate() {
            if row.seq != expected {
                report.broken = Some(TrailBreak {
                    seq: expected,
                    id: None,
                    kind: BreakKind::Removed,
                });
                return Ok(report);
            }
            report.checked += 1;
            if head.is_some_and(|head| head.seq == row.seq) {
                head_mac = Some(row.mac.clone());
            }
            match &row.mac {
                None if !chained => {
                    report.unchained += 1;
                }
                None => {
                    report.broken = Some(TrailBreak {
                        seq: row.seq,
                        id: Some(row.id),
                        kind: BreakKind::InsertedOutOfBand,
                    });
                    return Ok(report);
                }
                Some(mac) => {
                    let computed = row.mac_at(key, subject, row.seq, previous.as_deref());
                    if computed.as_deref() != Some(mac.as_str()) {
                        let kind = match written_as(key, subject, &rows, i, previous.as_deref()) {
                            Some(written_as) => BreakKind::Reordered { written_as },
                            None => BreakKind::Altered,
                        };
                        report.broken = Some(TrailBreak {
                            seq: row.seq,
                            id: Some(row.id),
                            kind,
                        });
                        return Ok(report);
                    }
                    chained = true;
                }
            }
            previous = row.mac.clone();
            expected += 1;
        }
        if rows.len() < PAGE as usize {
            break;
        }
    }
    if let Some(head) = head {
        let last = expected - 1;
        if head.seq > last {
            report.broken = Some(TrailBreak {
                seq: last + 1,
                id: None,
                kind: BreakKind::Removed,
            });
        } else if head.seq >= report.from_seq
            && head_mac.as_ref().is_some_and(|mac| *mac != head.mac)
        {
            report.broken = Some(TrailBreak {
                seq: head.seq,
                id: None,
                kind: BreakKind::Altered,
            });
        }
    }
    Ok(report)
}

/// If `rows[i]` verifies at another event number, after one of the rows near it (or after
/// `previous`): the number it was written with.
fn written_as(
    key: &HashKey,
    subject: &str,
    rows: &[Row],
    i: usize,
    previous: Option<&str>,
) -> Option<i64> {
    let row = &rows[i];
    let near = &rows[i.saturating_sub(REORDER_WINDOW)..(i + REORDER_WINDOW + 1).min(rows.len())];
    let mut before: Vec<Option<&str>> = near.iter().map(|r| r.mac.as_deref()).collect();
    before.push(previous);
    before.push(None);
    for seq in near.iter().map(|r| r.seq).filter(|seq| *seq != row.seq) {
        for prev in &before {
            if row.mac_at(key, subject, seq, *prev).as_deref() == row.mac.as_deref() {
                return Some(seq);
            }
        }
    }
    None
}

/// The purge's anchor of a user: the event number and `mac` of their latest purged row.
pub(crate) async fn anchor<C: ConnectionTrait>(
    db: &C,
    tables: &AuditTables,
    user_id: Value,
) -> Result<(i64, Option<String>)> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("SELECT ")
        .idents(["seq", "mac"])
        .push(" FROM ")
        .table(tables.schema.as_deref(), &anchors_table(tables.table))
        .push(" WHERE ")
        .ident("user_id")
        .push(" = ")
        .param(user_id);
    match db.query_one_raw(sql.build()).await? {
        Some(row) => Ok((get(&row, "seq")?, get(&row, "mac")?)),
        None => Ok((0, None)),
    }
}

/// The newest row of the user whose key is `user_id`.
pub(crate) async fn head<C: ConnectionTrait>(
    db: &C,
    tables: &AuditTables,
    user_id: Value,
) -> Result<Option<TrailHead>> {
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("SELECT ")
        .idents(["seq", "mac"])
        .push(" FROM ")
        .table(tables.schema.as_deref(), tables.table)
        .push(" WHERE ")
        .ident("user_id")
        .push(" = ")
        .param(user_id.clone())
        .push(" ORDER BY ")
        .ident("seq")
        .push(" DESC LIMIT 1");
    match db.query_one_raw(sql.build()).await? {
        Some(row) => Ok(Some(TrailHead {
            user_id: value_text(&user_id),
            seq: get(&row, "seq")?,
            mac: get(&row, "mac")?,
        })),
        None => Ok(None),
    }
}
