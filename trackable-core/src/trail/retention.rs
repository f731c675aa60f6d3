//! Retention of the audit trail: purge old rows, anonymise old IPs, in bounded batches.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, QueryResult, Statement};

use super::tables::{AuditTables, AuditTrail};
use crate::client::IpPolicy;
use crate::error::Result;
use crate::store::migration::index_name;
use crate::store::rows::get;
use crate::store::sql::Sql;

/// The largest batch that [`purge_audit_trail`] and [`anonymize_audit_ips`] handle in one
/// transaction.
pub const MAX_BATCH_SIZE: u32 = 1000;

/// Where a batch resumes: after the row with this `(inserted_at, id)`.
type Cursor = Option<(DateTime<Utc>, i64)>;

const IP_COLUMNS: [&str; 3] = ["remote_ip", "current_sign_in_ip", "last_sign_in_ip"];

/// Deletes the audit rows of `M` older than `before`, and the failed logins for unknown
/// identifiers older than `before`, in batches of `batch_size` rows (at most
/// [`MAX_BATCH_SIZE`]); returns the number of rows deleted.
///
/// **A user's latest row is never deleted**, however old: it carries their sign-in state
/// (count, current and last sign-in), which the next event reads. A user who has not
/// signed in since the cut-off keeps exactly one row; the others go. A row is deleted only
/// when a newer row of the same user is committed, and since only rows with a newer row
/// are ever deleted, the newest row of every user survives any number of concurrent
/// purges.
///
/// Each batch is a `SELECT` of the next rows in `(inserted_at, id)` order, then a `DELETE`
/// of those rows by primary key: two short statements, each its own transaction, so logins
/// tracked meanwhile wait for at most one batch, on PostgreSQL (READ COMMITTED), MySQL and
/// SQLite alike. Rows written during the purge are newer than the cut-off (unless it is in
/// the future) and are not touched. It takes a [`DatabaseConnection`] (a pool), not a
/// transaction: one long transaction is what batching avoids.
///
/// ```no_run
/// # async fn run(db: &sea_orm::DatabaseConnection) -> trackable_core::Result<()> {
/// # mod member { use sea_orm::entity::prelude::*;
/// # #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, trackable_core::Trackable)]
/// # #[sea_orm(table_name = "members")] #[trackable(table = "member_events")]
/// # pub struct Model { #[sea_orm(primary_key)] pub id: i32 }
/// # #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)] pub enum Relation {}
/// # impl ActiveModelBehavior for ActiveModel {} }
/// // nightly: keep one year of history
/// let cut_off = chrono::Utc::now() - chrono::TimeDelta::days(365);
/// let deleted = trackable_core::purge_audit_trail::<member::Model>(db, cut_off, 1000).await?;
/// # let _ = deleted; Ok(()) }
/// ```
pub async fn purge_audit_trail<M: AuditTrail>(
    db: &DatabaseConnection,
    before: DateTime<Utc>,
    batch_size: u32,
) -> Result<u64> {
    let backend = db.get_database_backend();
    let tables = AuditTables::of::<M>();
    let limit = batch_size.clamp(1, MAX_BATCH_SIZE);
    let mut deleted = 0;

    let mut cursor = None;
    loop {
        let rows = db
            .query_all_raw(audit_batch(backend, &tables, true, before, cursor, limit))
            .await?;
        cursor = last_cursor(&rows)?.or(cursor);
        let mut ids = Vec::with_capacity(rows.len());
        for row in &rows {
            let seq: i64 = get(row, "seq")?;
            // `latest` is None if the user's rows went meanwhile (the user was deleted).
            if get::<Option<i64>>(row, "latest")?.is_some_and(|latest| seq < latest) {
                ids.push(get::<i64>(row, "id")?);
            }
        }
        deleted += delete_ids(db, tables.schema.as_deref(), tables.table, &ids).await?;
        if rows.len() < limit as usize {
            break;
        }
    }

    let mut cursor = None;
    loop {
        let rows = db
            .query_all_raw(unknown_batch(backend, &tables, before, cursor, limit))
            .await?;
        cursor = last_cursor(&rows)?.or(cursor);
        let ids = rows
            .iter()
            .map(|row| get::<i64>(row, "id"))
            .collect::<Result<Vec<_>>>()?;
        deleted += delete_ids(db, tables.schema.as_deref(), &tables.unknown, &ids).await?;
        if rows.len() < limit as usize {
            break;
        }
    }
    Ok(deleted)
}

/// Rewrites the IPs stored in the audit rows of `M` older than `before` (`remote_ip`,
/// `current_sign_in_ip`, `last_sign_in_ip`), and in the failed logins for unknown
/// identifiers older than `before`, under `policy`: typically
/// [`IpPolicy::truncate`] or [`IpPolicy::keyed_hash`]. Returns the number of rows changed.
///
/// Stored values that are not IP addresses (already hashed) are left as they are, and a
/// policy applied twice changes nothing the second time, so the job can run every night
/// with a moving cut-off. Use one policy for all runs: the same address must anonymise to
/// the same value in every row, or "is this IP new" and per-IP counts stop matching.
///
/// Only rows older than the cut-off are rewritten, including a user's latest row: the
/// next event copies its (anonymised) `current_*` into `last_*`, so rows written later
/// still chain exactly (`last_*` = the previous row's `current_*`). A row newer than the
/// cut-off keeps what it holds, even where its `last_sign_in_ip` repeats the IP of an older
/// login; it is rewritten once it passes the cut-off. Each batch (at most
/// [`MAX_BATCH_SIZE`] rows) is a `SELECT` and one `UPDATE` by primary key, each its own
/// short transaction; the `UPDATE` maps each old value to its new one (`CASE ip WHEN old
/// THEN new ... ELSE ip END`), so a value changed concurrently is left alone, and an event
/// reading a user's latest row sees it either before or after, never half-rewritten.
pub async fn anonymize_audit_ips<M: AuditTrail>(
    db: &DatabaseConnection,
    before: DateTime<Utc>,
    policy: &IpPolicy,
    batch_size: u32,
) -> Result<u64> {
    let backend = db.get_database_backend();
    let tables = AuditTables::of::<M>();
    let limit = batch_size.clamp(1, MAX_BATCH_SIZE);
    let mut changed = 0;
    for (table, columns) in [
        (tables.table, &IP_COLUMNS[..]),
        (tables.unknown.as_str(), &IP_COLUMNS[..1]),
    ] {
        let mut cursor = None;
        loop {
            let statement = if table == tables.table {
                audit_batch(backend, &tables, false, before, cursor, limit)
            } else {
                unknown_batch(backend, &tables, before, cursor, limit)
            };
            let rows = db.query_all_raw(statement).await?;
            cursor = last_cursor(&rows)?.or(cursor);
            if let Some(update) = anonymize_update(
                backend,
                tables.schema.as_deref(),
                table,
                columns,
                &rows,
                policy,
            )? {
                changed += db.execute_raw(update).await?.rows_affected();
            }
            if rows.len() < limit as usize {
                break;
            }
        }
    }
    Ok(changed)
}

/// The next batch of audit rows older than `before`, after `cursor`, in `(inserted_at, id)`
/// order: for a purge with the event number of the row (`seq`) and of the user's latest row
/// (`latest`), otherwise with the IP columns. Index `(inserted_at, id)`; `latest` is one seek
/// in `(user_id, seq)`.
pub(crate) fn audit_batch(
    backend: DbBackend,
    tables: &AuditTables,
    purge: bool,
    before: DateTime<Utc>,
    cursor: Cursor,
    limit: u32,
) -> Statement {
    let mut sql = Sql::new(backend);
    sql.push("SELECT ").qualified("a", "id").push(", ");
    cursor_time(&mut sql);
    if purge {
        sql.push(", ")
            .qualified("a", "seq")
            .push(", (SELECT MAX(")
            .qualified("b", "seq")
            .push(") FROM ")
            .table(tables.schema.as_deref(), tables.table)
            .push(" ")
            .ident("b");
        force_index(&mut sql, backend, tables.table, "user_id_seq");
        sql.push(" WHERE ")
            .qualified("b", "user_id")
            .push(" = ")
            .qualified("a", "user_id")
            .push(") AS ")
            .ident("latest");
    } else {
        for column in IP_COLUMNS {
            sql.push(", ").qualified("a", column);
        }
    }
    sql.push(" FROM ")
        .table(tables.schema.as_deref(), tables.table)
        .push(" ")
        .ident("a");
    force_index(&mut sql, backend, tables.table, "inserted_at_id");
    batch_tail(&mut sql, before, cursor, limit);
    sql.build()
}

/// The next batch of failed logins for unknown identifiers older than `before`. Index
/// `(inserted_at, id)`.
pub(crate) fn unknown_batch(
    backend: DbBackend,
    tables: &AuditTables,
    before: DateTime<Utc>,
    cursor: Cursor,
    limit: u32,
) -> Statement {
    let mut sql = Sql::new(backend);
    sql.push("SELECT ").qualified("a", "id").push(", ");
    cursor_time(&mut sql);
    sql.push(", ")
        .qualified("a", "remote_ip")
        .push(" FROM ")
        .table(tables.schema.as_deref(), &tables.unknown)
        .push(" ")
        .ident("a");
    force_index(&mut sql, backend, &tables.unknown, "inserted_at_id");
    batch_tail(&mut sql, before, cursor, limit);
    sql.build()
}

/// `a.inserted_at`, where a batch resumes. On PostgreSQL, clamped into the years that can be
/// read, so that rows written by someone else at `infinity` or `-infinity` are purged like
/// any other (past the first batch, rows at `-infinity` wait for the next purge, as the
/// cursor cannot name a time before the earliest one it can read).
fn cursor_time(sql: &mut Sql) {
    if sql.backend() == DbBackend::Postgres {
        sql.push("LEAST(GREATEST(")
            .qualified("a", "inserted_at")
            .push(", '4713-11-24 00:00:00+00 BC'), '262000-01-01 00:00:00+00') AS ")
            .ident("inserted_at");
    } else {
        sql.qualified("a", "inserted_at");
    }
}

/// Pins the batch queries to their index on MySQL / MariaDB, whose optimizer otherwise
/// switches to a full index scan while a purge deletes rows and the statistics drift, turning
/// each batch into a scan of the whole table (seen on MariaDB 10.11 under concurrent
/// logins: batches from 10 ms to 6 s). SQLite and PostgreSQL keep the range plan.
fn force_index(sql: &mut Sql, backend: DbBackend, table: &str, suffix: &str) {
    if backend == DbBackend::MySql {
        sql.push(" FORCE INDEX (")
            .ident(&index_name(table, suffix))
            .push(")");
    }
}

/// `WHERE inserted_at < before AND (inserted_at, id) > cursor ORDER BY inserted_at, id
/// LIMIT limit`, written so that every backend seeks the `(inserted_at, id)` index (the
/// row-value comparison is not indexable everywhere).
fn batch_tail(sql: &mut Sql, before: DateTime<Utc>, cursor: Cursor, limit: u32) {
    sql.push(" WHERE ")
        .qualified("a", "inserted_at")
        .push(" < ")
        .param(before);
    if let Some((at, id)) = cursor {
        sql.push(" AND ")
            .qualified("a", "inserted_at")
            .push(" >= ")
            .param(at)
            .push(" AND (")
            .qualified("a", "inserted_at")
            .push(" > ")
            .param(at)
            .push(" OR ")
            .qualified("a", "id")
            .push(" > ")
            .param(id)
            .push(")");
    }
    sql.push(" ORDER BY ")
        .qualified("a", "inserted_at")
        .push(", ")
        .qualified("a", "id")
        .push(" LIMIT ")
        .param(i64::from(limit));
}

fn last_cursor(rows: &[QueryResult]) -> Result<Cursor> {
    rows.last()
        .map(|row| Ok((get(row, "inserted_at")?, get(row, "id")?)))
        .transpose()
}

async fn delete_ids(
    db: &DatabaseConnection,
    schema: Option<&str>,
    table: &str,
    ids: &[i64],
) -> Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let mut sql = Sql::new(db.get_database_backend());
    sql.push("DELETE FROM ")
        .table(schema, table)
        .push(" WHERE ")
        .ident("id")
        .push(" IN (")
        .params(ids.iter().copied())
        .push(")");
    Ok(db.execute_raw(sql.build()).await?.rows_affected())
}

/// The `UPDATE` that anonymises the IPs of `rows`, or `None` when nothing changes.
fn anonymize_update(
    backend: DbBackend,
    schema: Option<&str>,
    table: &str,
    columns: &[&str],
    rows: &[QueryResult],
    policy: &IpPolicy,
) -> Result<Option<Statement>> {
    // Per column: old stored value -> new one, for the values that change.
    let mut maps = vec![BTreeMap::<String, Option<String>>::new(); columns.len()];
    let mut ids = BTreeSet::new();
    for row in rows {
        for (column, map) in columns.iter().zip(&mut maps) {
            let Some(old) = get::<Option<String>>(row, column)? else {
                continue;
            };
            let Ok(ip) = old.parse::<IpAddr>() else {
                continue; // not an address: hashed, or written by someone else
            };
            let new = policy.apply(ip);
            if new.as_deref() != Some(old.as_str()) {
                ids.insert(get::<i64>(row, "id")?);
                map.insert(old, new);
            }
        }
    }
    if ids.is_empty() {
        return Ok(None);
    }
    let mut sql = Sql::new(backend);
    sql.push("UPDATE ").table(schema, table).push(" SET ");
    let mut first = true;
    for (column, map) in columns.iter().zip(&maps) {
        if map.is_empty() {
            continue;
        }
        if !first {
            sql.push(", ");
        }
        first = false;
        sql.ident(column).push(" = CASE ").ident(column);
        for (old, new) in map {
            sql.push(" WHEN ")
                .param(old.as_str())
                .push(" THEN ")
                .param(new.clone());
        }
        sql.push(" ELSE ").ident(column).push(" END");
    }
    sql.push(" WHERE ")
        .ident("id")
        .push(" IN (")
        .params(ids)
        .push(")");
    Ok(Some(sql.build()))
}
