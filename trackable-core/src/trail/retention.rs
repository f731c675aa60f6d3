//! Retention of the audit trail: purge old rows, anonymise old IPs, in bounded batches.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, QueryResult, Statement,
    TransactionTrait,
};

use super::tables::{AuditTables, AuditTrail};
use crate::client::IpPolicy;
use crate::error::Result;
use crate::store::migration::{anchors_table, archive_table, index_name};
use crate::store::postgres::pg_retention_statement;
use crate::store::rows::{get, readable_time};
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
/// transaction: one long transaction is what batching avoids. On SQLite, whose single writer
/// each batch holds, prefer batches of about 100: at 1 million rows they kept the p99 of
/// concurrent logins within 2× (1.64× and 1.81× in two runs; batches of 1000: 6×; see
/// `docs/benchmarks.md`).
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
        // Per user, the id and event number of the newest row deleted: the anchor.
        let mut anchors = BTreeMap::<String, (i64, i64)>::new();
        for row in &rows {
            let seq: i64 = get(row, "seq")?;
            // `latest` is None if the user's rows went meanwhile (the user was deleted).
            if get::<Option<i64>>(row, "latest")?.is_some_and(|latest| seq < latest) {
                let id = get::<i64>(row, "id")?;
                ids.push(id);
                let anchor = anchors.entry(get(row, "user_key")?).or_insert((id, seq));
                if seq > anchor.1 {
                    *anchor = (id, seq);
                }
            }
        }
        if !ids.is_empty() {
            let anchor_ids: Vec<i64> = anchors.values().map(|(id, _)| *id).collect();
            let txn = retention_transaction(db).await?;
            txn.execute_raw(anchor_upsert(backend, &tables, &anchor_ids))
                .await?;
            deleted += delete_ids(&txn, tables.schema.as_deref(), tables.table, &ids).await?;
            txn.commit().await?;
        }
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
        if !ids.is_empty() {
            let txn = retention_transaction(db).await?;
            deleted += delete_ids(&txn, tables.schema.as_deref(), &tables.unknown, &ids).await?;
            txn.commit().await?;
        }
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
/// Every copy of an old IP goes: rows older than the cut-off are rewritten (including a
/// user's latest row), and so are, in newer rows, a `current_sign_in_ip` whose
/// `current_sign_in_at` is older than the cut-off and a `last_sign_in_ip` whose
/// `last_sign_in_at` is (the state copies the IP of a login into every later row until the
/// second login after it). The next event copies the anonymised `current_*` into `last_*`,
/// so rows written later still chain exactly (`last_*` = the previous row's `current_*`),
/// and a hash chain stays valid (it covers the IPs through `client_digest`). Each batch (at most
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
            let update = anonymize_update(
                backend,
                tables.schema.as_deref(),
                table,
                columns,
                &rows,
                policy,
                |_, _| Ok(true),
            )?;
            changed += run_retention(db, update).await?;
            if rows.len() < limit as usize {
                break;
            }
        }
    }
    // Newer rows holding a copy of an older login's IP: `current_sign_in_ip` of the login at
    // `current_sign_in_at`, `last_sign_in_ip` of the one at `last_sign_in_at`.
    let mut cursor = None;
    loop {
        let rows = db
            .query_all_raw(copies_batch(backend, &tables, before, cursor, limit))
            .await?;
        cursor = last_cursor(&rows)?.or(cursor);
        let update = anonymize_update(
            backend,
            tables.schema.as_deref(),
            tables.table,
            &IP_COLUMNS[1..],
            &rows,
            policy,
            |row, column| {
                let at = if column == "current_sign_in_ip" {
                    "current_sign_in_at"
                } else {
                    "last_sign_in_at"
                };
                Ok(get::<Option<DateTime<Utc>>>(row, at)?.is_some_and(|at| at < before))
            },
        )?;
        changed += run_retention(db, update).await?;
        if rows.len() < limit as usize {
            break;
        }
    }
    Ok(changed)
}

/// Removes the user agents of the audit rows of `M` older than `before`, and of the failed
/// logins for unknown identifiers older than `before`, in batches of `batch_size` rows (at
/// most [`MAX_BATCH_SIZE`]); returns the number of rows changed. A hash chain stays valid:
/// it covers the user agent through `client_digest`.
pub async fn forget_audit_user_agents<M: AuditTrail>(
    db: &DatabaseConnection,
    before: DateTime<Utc>,
    batch_size: u32,
) -> Result<u64> {
    let backend = db.get_database_backend();
    let tables = AuditTables::of::<M>();
    let limit = batch_size.clamp(1, MAX_BATCH_SIZE);
    let mut changed = 0;
    for table in [tables.table, tables.unknown.as_str()] {
        let mut cursor = None;
        loop {
            let mut sql = Sql::new(backend);
            sql.push("SELECT ").qualified("a", "id").push(", ");
            cursor_time(&mut sql);
            sql.push(", ")
                .qualified("a", "user_agent")
                .push(" FROM ")
                .table(tables.schema.as_deref(), table)
                .push(" ")
                .ident("a");
            force_index(&mut sql, backend, table, "inserted_at_id");
            batch_tail(&mut sql, before, cursor, limit);
            let rows = db.query_all_raw(sql.build()).await?;
            cursor = last_cursor(&rows)?.or(cursor);
            let mut ids = Vec::new();
            for row in &rows {
                if get::<Option<String>>(row, "user_agent")?.is_some() {
                    ids.push(get::<i64>(row, "id")?);
                }
            }
            if !ids.is_empty() {
                let mut update = Sql::new(backend);
                update
                    .push("UPDATE ")
                    .table(tables.schema.as_deref(), table)
                    .push(" SET ")
                    .ident("user_agent")
                    .push(" = NULL WHERE ")
                    .ident("id")
                    .push(" IN (")
                    .params(ids)
                    .push(")");
                changed += run_retention(db, Some(update.build())).await?;
            }
            if rows.len() < limit as usize {
                break;
            }
        }
    }
    Ok(changed)
}

/// Deletes every audit row of `user`, and their purge anchor: the erasure of a user's
/// trail, for example before deleting the user under the GDPR's right to erasure. Run it in
/// the transaction that deletes the user; on an audit table with the append-only trigger
/// ([`Migration::with_append_only_trigger`](crate::Migration::with_append_only_trigger)),
/// deleting the user without it is refused. Returns the number of rows deleted.
pub async fn erase_audit_trail<C, M>(db: &C, user: &M) -> Result<u64>
where
    C: crate::store::connection::Connection,
    M: AuditTrail,
{
    let tables = AuditTables::of::<M>();
    let backend = db.get_database_backend();
    crate::store::connection::atomically!(db, |conn| {
        async {
            if backend == DbBackend::Postgres {
                conn.execute_raw(pg_retention_statement()).await?;
            }
            let mut deleted = 0;
            for table in [tables.table.to_owned(), anchors_table(tables.table)] {
                let mut sql = Sql::new(backend);
                sql.push("DELETE FROM ")
                    .table(tables.schema.as_deref(), &table)
                    .push(" WHERE ")
                    .ident("user_id")
                    .push(" = ")
                    .param(user.__user_id());
                let done = conn.execute_raw(sql.build()).await?.rows_affected();
                if table == tables.table {
                    deleted = done;
                }
            }
            Ok::<_, crate::error::Error>(deleted)
        }
        .await
    })
}

/// Moves `user`'s trail into the archive under the pseudonym `subject` (the chain's keyed
/// digest of the user's key), without IPs and user agents, then erases it from the audit
/// table. Returns the rows archived. See [`Tracker::archive_audit_trail`](crate::Tracker::archive_audit_trail).
pub(crate) async fn archive<C, M>(
    db: &C,
    user: &M,
    subject: &str,
    now: DateTime<Utc>,
) -> Result<u64>
where
    C: crate::store::connection::Connection,
    M: AuditTrail,
{
    let tables = AuditTables::of::<M>();
    let backend = db.get_database_backend();
    let (anchor_seq, anchor_mac) = super::verify::anchor(db, &tables, user.__user_id()).await?;
    const KEPT: [&str; 13] = crate::store::chain::LINK_COLUMNS;
    let mut copy = Sql::new(backend);
    copy.push("INSERT INTO ")
        .table(tables.schema.as_deref(), &archive_table(tables.table))
        .push(" (")
        .ident("subject")
        .push(", ")
        .idents(KEPT)
        .push(", ")
        .idents(["anchor_seq", "anchor_mac", "archived_at"])
        .push(") SELECT ")
        .param(subject)
        .push(", ")
        .idents(KEPT)
        .push(", ")
        .param(anchor_seq)
        .push(", ")
        .param(anchor_mac)
        .push(", ")
        .param(now)
        .push(" FROM ")
        .table(tables.schema.as_deref(), tables.table)
        .push(" WHERE ")
        .ident("user_id")
        .push(" = ")
        .param(user.__user_id());
    let copy = copy.build();
    crate::store::connection::atomically!(db, |conn| {
        async {
            let archived = conn.execute_raw(copy).await?.rows_affected();
            erase_audit_trail(conn, user).await?;
            Ok::<_, crate::error::Error>(archived)
        }
        .await
    })
}

/// A transaction of the retention functions: on PostgreSQL, allowed past the append-only
/// trigger.
async fn retention_transaction(db: &DatabaseConnection) -> Result<DatabaseTransaction> {
    let txn = db.begin().await?;
    if db.get_database_backend() == DbBackend::Postgres {
        txn.execute_raw(pg_retention_statement()).await?;
    }
    Ok(txn)
}

/// Runs `statement`, if any, in a retention transaction; returns the rows it changed.
async fn run_retention(db: &DatabaseConnection, statement: Option<Statement>) -> Result<u64> {
    let Some(statement) = statement else {
        return Ok(0);
    };
    let txn = retention_transaction(db).await?;
    let changed = txn.execute_raw(statement).await?.rows_affected();
    txn.commit().await?;
    Ok(changed)
}

/// `a.user_id` as text that tells users apart, `user_key`.
fn user_key(sql: &mut Sql) {
    match sql.backend() {
        DbBackend::Postgres => {
            sql.push("CAST(")
                .qualified("a", "user_id")
                .push(" AS TEXT)");
        }
        _ => {
            sql.push("HEX(").qualified("a", "user_id").push(")");
        }
    }
    sql.push(" AS ").ident("user_key");
}

/// Records, for the users of the rows `ids` (the newest row of each user in a purge batch),
/// the event number and `mac` of that row as the user's anchor, unless the anchor is newer.
fn anchor_upsert(backend: DbBackend, tables: &AuditTables, ids: &[i64]) -> Statement {
    let anchors = anchors_table(tables.table);
    let mut sql = Sql::new(backend);
    sql.push("INSERT INTO ")
        .table(tables.schema.as_deref(), &anchors)
        .push(" (")
        .idents(["user_id", "seq", "mac"])
        .push(") SELECT ")
        .idents(["user_id", "seq", "mac"])
        .push(" FROM ")
        .table(tables.schema.as_deref(), tables.table)
        .push(" WHERE ")
        .ident("id")
        .push(" IN (")
        .params(ids.iter().copied())
        .push(")");
    if backend == DbBackend::MySql {
        // Qualified: the columns of the SELECT have the same names.
        sql.push(" ON DUPLICATE KEY UPDATE ")
            .qualified(&anchors, "mac")
            .push(" = IF(VALUES(")
            .ident("seq")
            .push(") > ")
            .qualified(&anchors, "seq")
            .push(", VALUES(")
            .ident("mac")
            .push("), ")
            .qualified(&anchors, "mac")
            .push("), ")
            .qualified(&anchors, "seq")
            .push(" = GREATEST(")
            .qualified(&anchors, "seq")
            .push(", VALUES(")
            .ident("seq")
            .push("))");
    } else {
        sql.push(" ON CONFLICT (")
            .ident("user_id")
            .push(") DO UPDATE SET ")
            .ident("seq")
            .push(" = excluded.")
            .ident("seq")
            .push(", ")
            .ident("mac")
            .push(" = excluded.")
            .ident("mac")
            .push(" WHERE excluded.")
            .ident("seq")
            .push(" > ")
            .qualified(&anchors, "seq");
    }
    sql.build()
}

/// The next batch of audit rows newer than `before` that hold a copy of an older login's
/// IP (`current_sign_in_at` or `last_sign_in_at` before `before`), after `cursor`, in
/// `(inserted_at, id)` order. Index `(inserted_at, id)`, from `before` on.
fn copies_batch(
    backend: DbBackend,
    tables: &AuditTables,
    before: DateTime<Utc>,
    cursor: Cursor,
    limit: u32,
) -> Statement {
    let mut sql = Sql::new(backend);
    sql.push("SELECT ").qualified("a", "id").push(", ");
    cursor_time(&mut sql);
    for column in IP_COLUMNS {
        sql.push(", ").qualified("a", column);
    }
    for column in ["current_sign_in_at", "last_sign_in_at"] {
        sql.push(", ");
        if backend == DbBackend::Postgres {
            // A time that cannot be read is not one to compare.
            sql.push("CASE WHEN ");
            readable_time(&mut sql, Some("a"), column);
            sql.push(" THEN ")
                .qualified("a", column)
                .push(" END AS ")
                .ident(column);
        } else {
            sql.qualified("a", column);
        }
    }
    sql.push(" FROM ")
        .table(tables.schema.as_deref(), tables.table)
        .push(" ")
        .ident("a");
    force_index(&mut sql, backend, tables.table, "inserted_at_id");
    sql.push(" WHERE ")
        .qualified("a", "inserted_at")
        .push(" >= ")
        .param(before)
        .push(" AND (")
        .qualified("a", "current_sign_in_at")
        .push(" < ")
        .param(before)
        .push(" OR ")
        .qualified("a", "last_sign_in_at")
        .push(" < ")
        .param(before)
        .push(")");
    if let Some((at, id)) = cursor {
        sql.push(" AND (")
            .qualified("a", "inserted_at")
            .push(" > ")
            .param(at)
            .push(" OR (")
            .qualified("a", "inserted_at")
            .push(" = ")
            .param(at)
            .push(" AND ")
            .qualified("a", "id")
            .push(" > ")
            .param(id)
            .push("))");
    }
    sql.push(" ORDER BY ")
        .qualified("a", "inserted_at")
        .push(", ")
        .qualified("a", "id")
        .push(" LIMIT ")
        .param(i64::from(limit));
    sql.build()
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
        sql.push(", ");
        user_key(&mut sql);
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

async fn delete_ids<C: ConnectionTrait>(
    db: &C,
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
/// `eligible(row, column)`: whether the IP in `column` of `row` is to be anonymised.
fn anonymize_update(
    backend: DbBackend,
    schema: Option<&str>,
    table: &str,
    columns: &[&str],
    rows: &[QueryResult],
    policy: &IpPolicy,
    eligible: impl Fn(&QueryResult, &str) -> Result<bool>,
) -> Result<Option<Statement>> {
    // Per column: old stored value -> new one, for the values that change, and the rows
    // whose value changes.
    let mut maps = vec![BTreeMap::<String, Option<String>>::new(); columns.len()];
    let mut column_ids = vec![BTreeSet::new(); columns.len()];
    let mut ids = BTreeSet::new();
    for row in rows {
        for ((column, map), column_ids) in columns.iter().zip(&mut maps).zip(&mut column_ids) {
            let Some(old) = get::<Option<String>>(row, column)? else {
                continue;
            };
            let Ok(ip) = old.parse::<IpAddr>() else {
                continue; // not an address: hashed, or written by someone else
            };
            if !eligible(row, column)? {
                continue;
            }
            let new = policy.apply(ip);
            if new.as_deref() != Some(old.as_str()) {
                let id = get::<i64>(row, "id")?;
                ids.insert(id);
                column_ids.insert(id);
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
    for ((column, map), column_ids) in columns.iter().zip(&maps).zip(&column_ids) {
        if map.is_empty() {
            continue;
        }
        if !first {
            sql.push(", ");
        }
        first = false;
        // Only the rows chosen for this column: the same address may sit in another row's
        // column that stays as it is.
        sql.ident(column)
            .push(" = CASE WHEN ")
            .ident("id")
            .push(" IN (")
            .params(column_ids.iter().copied())
            .push(") THEN CASE ")
            .ident(column);
        for (old, new) in map {
            sql.push(" WHEN ")
                .param(old.as_str())
                .push(" THEN ")
                .param(new.clone());
        }
        sql.push(" ELSE ")
            .ident(column)
            .push(" END ELSE ")
            .ident(column)
            .push(" END");
    }
    sql.push(" WHERE ")
        .ident("id")
        .push(" IN (")
        .params(ids)
        .push(")");
    Ok(Some(sql.build()))
}

/// Fields mode: rewrites the IPs of the user rows of `M` whose sign-in is older than
/// `before`, `current_sign_in_ip` where `current_sign_in_at` is older, `last_sign_in_ip`
/// where `last_sign_in_at` is: under `policy`, or cleared (`NULL`) when `policy` is `None`.
/// `batch_size` rows at a time (at most [`MAX_BATCH_SIZE`]), in primary-key order; returns
/// the number of rows changed. Each row is one `UPDATE` that changes an IP only if it still
/// holds the value read and its time is still older, so a sign-in meanwhile is kept.
///
/// A table-mode model keeps these IPs in its audit trail: this returns
/// [`Error::FieldsModeOnly`](crate::Error::FieldsModeOnly) there; use
/// [`anonymize_audit_ips`].
pub async fn anonymize_sign_in_ips<M>(
    db: &DatabaseConnection,
    before: DateTime<Utc>,
    policy: Option<&IpPolicy>,
    batch_size: u32,
) -> Result<u64>
where
    M: crate::trackable::Trackable,
    <M as sea_orm::ModelTrait>::Entity: sea_orm::EntityTrait<Model = M>,
{
    use sea_orm::{
        ColumnTrait, EntityTrait, IdenStatic, ModelTrait, QueryFilter, QueryOrder, QuerySelect,
    };

    let crate::trackable::Tracking::Fields(c) = M::__tracking() else {
        return Err(crate::error::Error::FieldsModeOnly);
    };
    let backend = db.get_database_backend();
    let (schema, table) = crate::trackable::table_of::<<M as ModelTrait>::Entity>();
    let limit = u64::from(batch_size.clamp(1, MAX_BATCH_SIZE));
    let pairs = [
        (c.current_sign_in_ip, c.current_sign_in_at),
        (c.last_sign_in_ip, c.last_sign_in_at),
    ];
    let mut changed = 0;
    let mut after: Option<sea_orm::Value> = None;
    loop {
        let mut select = <M as ModelTrait>::Entity::find()
            .filter(
                sea_orm::Condition::any()
                    .add(c.current_sign_in_at.lt(before))
                    .add(c.last_sign_in_at.lt(before)),
            )
            .order_by_asc(c.id)
            .limit(limit);
        if let Some(after) = after.clone() {
            select = select.filter(c.id.gt(after));
        }
        let users = select.all(db).await?;
        for user in &users {
            let mut update = Sql::new(backend);
            update
                .push("UPDATE ")
                .table(schema.as_deref(), table)
                .push(" SET ");
            let mut any = false;
            for (ip_column, at_column) in pairs {
                let old = match user.get(ip_column) {
                    sea_orm::Value::String(Some(old)) => old,
                    _ => continue,
                };
                let older = match user.get(at_column) {
                    sea_orm::Value::ChronoDateTimeUtc(Some(at)) => at < before,
                    sea_orm::Value::ChronoDateTimeWithTimeZone(Some(at)) => at < before,
                    _ => false,
                };
                let new = match policy {
                    Some(policy) => match old.parse::<IpAddr>() {
                        Ok(ip) => policy.apply(ip),
                        Err(_) => continue, // already anonymised
                    },
                    None => None,
                };
                if !older || new.as_deref() == Some(old.as_str()) {
                    continue;
                }
                if any {
                    update.push(", ");
                }
                any = true;
                update
                    .ident(ip_column.as_str())
                    .push(" = CASE WHEN ")
                    .ident(ip_column.as_str())
                    .push(" = ")
                    .param(old.as_str())
                    .push(" AND ")
                    .ident(at_column.as_str())
                    .push(" < ")
                    .param(before)
                    .push(" THEN ")
                    .param(new)
                    .push(" ELSE ")
                    .ident(ip_column.as_str())
                    .push(" END");
            }
            if any {
                update
                    .push(" WHERE ")
                    .ident(c.id.as_str())
                    .push(" = ")
                    .param(user.__user_id());
                changed += db.execute_raw(update.build()).await?.rows_affected();
            }
        }
        match users.last() {
            Some(last) if users.len() as u64 == limit => after = Some(last.get(c.id)),
            _ => return Ok(changed),
        }
    }
}
