//! The plans of the audit-trail queries, to check that they use their indexes.

use chrono::Utc;
use sea_orm::{DbBackend, QueryResult, Statement};

use super::retention::{audit_batch, unknown_batch};
use super::tables::{AuditTables, AuditTrail};
use crate::error::Result;
use crate::store::connection::Connection;
use crate::store::rows::get;

/// The plan that the database chose for one of the crate's audit-trail queries. See
/// [`explain_audit_queries`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueryPlan {
    /// Which query: `history`, `last_login`, `failed_logins_user`, ...
    pub query: &'static str,
    /// The statement explained.
    pub sql: String,
    /// The plan, one line per plan node: `EXPLAIN QUERY PLAN` on SQLite, `EXPLAIN` on
    /// PostgreSQL, `EXPLAIN` rows (table, access type, key, extra) on MySQL / MariaDB.
    pub plan: String,
}

/// Explains every query that the crate runs on the audit trail of `M` (the queries of
/// [`Tracker`](crate::Tracker), the [`Lockout`](crate::Lockout) state, the new-IP check and the retention
/// batches), with `user`'s id and sample values, and returns the plans.
///
/// Use it to check that your database uses the indexes created by the migration (a test
/// of this crate does that on every backend). On a small table PostgreSQL prefers a
/// sequential scan whatever the indexes; run `SET enable_seqscan = off` in the same
/// transaction first to see the index the planner would use at scale.
pub async fn explain_audit_queries<C, M>(db: &C, user: &M) -> Result<Vec<QueryPlan>>
where
    C: Connection,
    M: AuditTrail,
{
    let backend = db.get_database_backend();
    let tables = AuditTables::of::<M>();
    let id = user.__user_id();
    let now = Utc::now();
    let since = now - chrono::TimeDelta::hours(1);
    let ip = "192.0.2.1";
    // A retention batch: rows older than 30 days, resuming after a row of the day before.
    let cut_off = now - chrono::TimeDelta::days(30);
    let cursor = Some((cut_off - chrono::TimeDelta::days(1), 0));
    let statements = [
        ("history", tables.history(backend, id.clone(), None, 51)),
        (
            "history_before",
            tables.history(backend, id.clone(), Some(i64::MAX), 51),
        ),
        ("last_login", tables.last_login(backend, id.clone())),
        (
            "failed_logins_user",
            tables.user_failures(backend, id.clone(), since, None, None, None),
        ),
        (
            "failed_logins_user_rows",
            tables.user_failures(backend, id.clone(), since, None, None, Some(50)),
        ),
        ("failed_logins_ip", tables.ip_failures(backend, ip, since)),
        (
            "is_new_ip",
            tables.login_from_ip(backend, id.clone(), ip, None),
        ),
        (
            "new_ip_hook",
            tables.login_from_ip(backend, id.clone(), ip, Some(i64::MAX)),
        ),
        ("lockout_state", tables.lock_state(backend, id.clone())),
        (
            "purge_batch",
            audit_batch(backend, &tables, true, cut_off, cursor, 1000),
        ),
        (
            "purge_unknown_batch",
            unknown_batch(backend, &tables, cut_off, cursor, 1000),
        ),
        (
            "anonymize_batch",
            audit_batch(backend, &tables, false, cut_off, cursor, 1000),
        ),
    ];
    let mut plans = Vec::with_capacity(statements.len());
    for (query, statement) in statements {
        let sql = statement.sql.clone();
        let explain = Statement {
            sql: match backend {
                DbBackend::Sqlite => format!("EXPLAIN QUERY PLAN {sql}"),
                _ => format!("EXPLAIN {sql}"),
            },
            ..statement
        };
        let rows = db.query_all_raw(explain).await?;
        plans.push(QueryPlan {
            query,
            sql,
            plan: plan_text(backend, &rows)?,
        });
    }
    Ok(plans)
}

fn plan_text(backend: DbBackend, rows: &[QueryResult]) -> Result<String> {
    let mut lines = Vec::with_capacity(rows.len());
    match backend {
        DbBackend::Sqlite => {
            // Rows are (id, parent, notused, detail); indent each node under its parent.
            let mut depth = std::collections::HashMap::<i64, usize>::new();
            for row in rows {
                let id: i64 = get(row, "id")?;
                let parent: i64 = get(row, "parent")?;
                let level = depth.get(&parent).map_or(0, |d| d + 1);
                depth.insert(id, level);
                lines.push(format!(
                    "{}{}",
                    "  ".repeat(level),
                    get::<String>(row, "detail")?
                ));
            }
        }
        DbBackend::Postgres => {
            for row in rows {
                lines.push(get::<String>(row, "QUERY PLAN")?);
            }
        }
        _ => {
            for row in rows {
                let text = |column: &str| -> Result<String> {
                    Ok(get::<Option<String>>(row, column)?.unwrap_or_default())
                };
                lines.push(format!(
                    "{} {}: type={} key={} {}",
                    text("select_type")?,
                    text("table")?,
                    text("type")?,
                    text("key")?,
                    text("Extra")?,
                ));
            }
        }
    }
    Ok(lines.join("\n"))
}
