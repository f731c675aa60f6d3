//! The statements behind every tracked event.
//!
//! Both modes compute the new state in SQL from the row as stored, never from the model the
//! caller holds, so concurrent events cannot lose each other's writes:
//!
//! - fields mode is one `UPDATE ... RETURNING` (an `UPDATE` and a `SELECT` in one transaction
//!   where the backend has no `RETURNING`);
//! - table mode is one `INSERT ... SELECT` from the user's latest audit row. SQLite runs it
//!   alone, since a writing statement holds the database's write lock from its start.
//!   PostgreSQL and MySQL first lock the user's row, so that events of one user are appended
//!   one at a time and each one reads the row appended before it.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbBackend, FromQueryResult, IdenStatic, QueryResult, Value};

use crate::__private::{FieldColumns, TableSpec, Tracking};
use crate::connection::{Connection, atomically};
use crate::sql::Sql;
use crate::trackable::{EntityOf, table_of};
use crate::{Action, Error, Result, Trackable};

/// One event, after the clock was read and the privacy policies applied.
#[derive(Debug)]
pub(crate) struct Event {
    pub(crate) action: Action,
    pub(crate) now: DateTime<Utc>,
    pub(crate) ip: Option<String>,
    pub(crate) user_agent: Option<String>,
}

/// Whether `action` writes anything for models of type `M`: in fields mode, only logins and
/// logouts do.
pub(crate) fn writes<M: Trackable>(action: Action) -> bool {
    match M::MODE {
        crate::Mode::Fields => action.changes_state(),
        crate::Mode::Table { .. } => true,
    }
}

/// Records `event` for `user` and returns the row written: the user row (fields mode) or the
/// audit row (table mode).
pub(crate) async fn write<C, M>(db: &C, user: &M, event: &Event) -> Result<M::Record>
where
    C: Connection,
    M: Trackable,
{
    match M::__tracking() {
        Tracking::Fields(columns) => fields::<C, M>(db, user, &columns, event).await,
        Tracking::Table(spec) => table::<C, M>(db, user, &spec, event).await,
    }
}

fn not_found<M: Trackable>(user: &M, action: Action) -> Error {
    let (_, table) = table_of::<EntityOf<M>>();
    Error::UserNotFound {
        table: table.to_owned(),
        user_id: value_text(&user.__user_id()),
        action,
    }
}

fn decode<R: FromQueryResult>(row: &QueryResult) -> Result<R> {
    R::from_query_result(row, "").map_err(|source| Error::Decode {
        model: std::any::type_name::<R>(),
        source,
    })
}

pub(crate) fn value_text(value: &Value) -> String {
    match value {
        Value::Int(Some(v)) => v.to_string(),
        Value::BigInt(Some(v)) => v.to_string(),
        Value::String(Some(v)) => format!("{v:?}"),
        Value::Uuid(Some(v)) => v.to_string(),
        other => format!("{other:?}"),
    }
}

async fn fields<C, M>(
    db: &C,
    user: &M,
    columns: &FieldColumns<EntityOf<M>>,
    event: &Event,
) -> Result<M::Record>
where
    C: Connection,
    M: Trackable,
{
    let backend = db.get_database_backend();
    let (schema, table) = table_of::<EntityOf<M>>();
    let id = user.__user_id();
    let returning = db.support_returning();
    let update = fields_update(
        backend,
        schema.as_deref(),
        table,
        columns,
        event,
        id.clone(),
        returning,
    );

    let row = if returning {
        db.query_one_raw(update).await?
    } else {
        atomically!(db, |conn| {
            async {
                conn.execute_raw(update).await?;
                let mut select = Sql::new(backend);
                select
                    .push("SELECT * FROM ")
                    .table(schema.as_deref(), table)
                    .push(" WHERE ")
                    .ident(columns.id.as_str())
                    .push(" = ")
                    .param(id);
                Ok::<_, Error>(conn.query_one_raw(select.build()).await?)
            }
            .await
        })?
    };
    match row {
        Some(row) => decode(&row),
        None => Err(not_found(user, event.action)),
    }
}

/// The fields-mode `UPDATE` of a login or a logout.
///
/// Assignments come in an order that gives the same result whether `SET` reads the old row
/// (SQL standard, PostgreSQL, SQLite) or the values assigned before it (MySQL): every
/// column is assigned after the assignments that read its old value.
fn fields_update<E: sea_orm::EntityTrait>(
    backend: DbBackend,
    schema: Option<&str>,
    table: &str,
    c: &FieldColumns<E>,
    event: &Event,
    id: Value,
    returning: bool,
) -> sea_orm::Statement {
    let (count, cur_at, cur_ip, last_at, last_ip) = (
        c.sign_in_count.as_str(),
        c.current_sign_in_at.as_str(),
        c.current_sign_in_ip.as_str(),
        c.last_sign_in_at.as_str(),
        c.last_sign_in_ip.as_str(),
    );
    let mut sql = Sql::new(backend);
    sql.push("UPDATE ").table(schema, table).push(" SET ");
    if event.action == Action::Login {
        // last = current if current_at is set, else last if last_at is set, else (now, ip)
        sql.ident(last_ip)
            .push(" = CASE WHEN ")
            .ident(cur_at)
            .push(" IS NOT NULL THEN ");
        sql.ident(cur_ip)
            .push(" WHEN ")
            .ident(last_at)
            .push(" IS NOT NULL THEN ");
        sql.ident(last_ip)
            .push(" ELSE ")
            .param(event.ip.clone())
            .push(" END, ");
        sql.ident(last_at)
            .push(" = CASE WHEN ")
            .ident(cur_at)
            .push(" IS NOT NULL THEN ");
        sql.ident(cur_at)
            .push(" WHEN ")
            .ident(last_at)
            .push(" IS NOT NULL THEN ");
        sql.ident(last_at)
            .push(" ELSE ")
            .param(event.now)
            .push(" END, ");
        sql.ident(cur_ip)
            .push(" = ")
            .param(event.ip.clone())
            .push(", ");
        sql.ident(cur_at).push(" = ").param(event.now).push(", ");
        sql.ident(count)
            .push(" = COALESCE(")
            .ident(count)
            .push(", 0) + 1");
    } else {
        // logout: if current_at is set, last = current and current = (none, none)
        sql.ident(last_ip)
            .push(" = CASE WHEN ")
            .ident(cur_at)
            .push(" IS NOT NULL THEN ");
        sql.ident(cur_ip)
            .push(" ELSE ")
            .ident(last_ip)
            .push(" END, ");
        sql.ident(last_at)
            .push(" = CASE WHEN ")
            .ident(cur_at)
            .push(" IS NOT NULL THEN ");
        sql.ident(cur_at)
            .push(" ELSE ")
            .ident(last_at)
            .push(" END, ");
        sql.ident(cur_ip)
            .push(" = CASE WHEN ")
            .ident(cur_at)
            .push(" IS NOT NULL THEN ");
        sql.param(None::<String>)
            .push(" ELSE ")
            .ident(cur_ip)
            .push(" END, ");
        sql.ident(cur_at).push(" = ").param(None::<DateTime<Utc>>);
    }
    sql.push(" WHERE ")
        .ident(c.id.as_str())
        .push(" = ")
        .param(id);
    if returning {
        sql.push(" RETURNING *");
    }
    sql.build()
}

/// The audit table's columns, in insertion order.
pub(crate) const AUDIT_COLUMNS: [&str; 10] = [
    "user_id",
    "action",
    "sign_in_count",
    "current_sign_in_at",
    "current_sign_in_ip",
    "last_sign_in_at",
    "last_sign_in_ip",
    "remote_ip",
    "user_agent",
    "inserted_at",
];

async fn table<C, M>(
    db: &C,
    user: &M,
    spec: &TableSpec<EntityOf<M>>,
    event: &Event,
) -> Result<M::Record>
where
    C: Connection,
    M: Trackable,
{
    let backend = db.get_database_backend();
    let (schema, users) = table_of::<EntityOf<M>>();
    let id = user.__user_id();
    let returning = db.support_returning();
    let insert = table_insert(
        backend,
        schema.as_deref(),
        users,
        spec,
        event,
        id.clone(),
        returning,
    );

    if backend == DbBackend::Sqlite && returning {
        // One statement: it takes SQLite's write lock before it reads the latest row.
        return match db.query_one_raw(insert).await? {
            Some(row) => decode(&row),
            None => Err(not_found(user, event.action)),
        };
    }

    let row = atomically!(db, |conn| {
        async {
            if backend != DbBackend::Sqlite {
                let mut lock = Sql::new(backend);
                lock.push("SELECT 1 FROM ")
                    .table(schema.as_deref(), users)
                    .push(" WHERE ")
                    .ident(spec.id.as_str())
                    .push(" = ")
                    .param(id.clone())
                    .push(match backend {
                        DbBackend::Postgres => " FOR NO KEY UPDATE",
                        _ => " FOR UPDATE",
                    });
                if conn.query_one_raw(lock.build()).await?.is_none() {
                    return Ok(None);
                }
            }
            if returning {
                return Ok::<_, Error>(conn.query_one_raw(insert).await?);
            }
            let done = conn.execute_raw(insert).await?;
            if done.rows_affected() == 0 {
                return Ok(None);
            }
            let mut select = Sql::new(backend);
            select
                .push("SELECT * FROM ")
                .table(schema.as_deref(), spec.table)
                .push(" WHERE ")
                .ident("id")
                .push(" = ")
                .param(done.last_insert_id() as i64);
            Ok(conn.query_one_raw(select.build()).await?)
        }
        .await
    })?;
    match row {
        Some(row) => decode(&row),
        None => Err(not_found(user, event.action)),
    }
}

/// The table-mode `INSERT ... SELECT`: one new row computed from the user's latest row `p`
/// (absent for the first event), and only if the user `u` exists.
fn table_insert<E: sea_orm::EntityTrait>(
    backend: DbBackend,
    schema: Option<&str>,
    users: &str,
    spec: &TableSpec<E>,
    event: &Event,
    id: Value,
    returning: bool,
) -> sea_orm::Statement {
    let p = |sql: &mut Sql, column: &str| {
        sql.qualified("p", column);
    };
    let mut sql = Sql::new(backend);
    sql.push("INSERT INTO ")
        .table(schema, spec.table)
        .push(" (");
    for (i, column) in AUDIT_COLUMNS.iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.ident(column);
    }
    sql.push(") SELECT ")
        .qualified("u", spec.id.as_str())
        .push(", ");
    sql.param(event.action.as_str()).push(", ");
    match event.action {
        Action::Login => {
            sql.push("COALESCE(")
                .qualified("p", "sign_in_count")
                .push(", 0) + 1, ");
            sql.param(event.now)
                .push(", ")
                .param(event.ip.clone())
                .push(", ");
            sql.push("CASE WHEN ")
                .qualified("p", "current_sign_in_at")
                .push(" IS NOT NULL THEN ");
            p(&mut sql, "current_sign_in_at");
            sql.push(" WHEN ")
                .qualified("p", "last_sign_in_at")
                .push(" IS NOT NULL THEN ");
            p(&mut sql, "last_sign_in_at");
            sql.push(" ELSE ").param(event.now).push(" END, ");
            sql.push("CASE WHEN ")
                .qualified("p", "current_sign_in_at")
                .push(" IS NOT NULL THEN ");
            p(&mut sql, "current_sign_in_ip");
            sql.push(" WHEN ")
                .qualified("p", "last_sign_in_at")
                .push(" IS NOT NULL THEN ");
            p(&mut sql, "last_sign_in_ip");
            sql.push(" ELSE ").param(event.ip.clone()).push(" END, ");
        }
        Action::Logout => {
            sql.push("COALESCE(")
                .qualified("p", "sign_in_count")
                .push(", 0), ");
            // Typed NULLs: PostgreSQL types a bare NULL in a select list as text.
            sql.param(None::<DateTime<Utc>>).push(", ");
            sql.push("CASE WHEN ")
                .qualified("p", "current_sign_in_at")
                .push(" IS NOT NULL THEN ");
            sql.param(None::<String>).push(" ELSE ");
            p(&mut sql, "current_sign_in_ip");
            sql.push(" END, ");
            for (from_current, from_last) in [
                ("current_sign_in_at", "last_sign_in_at"),
                ("current_sign_in_ip", "last_sign_in_ip"),
            ] {
                sql.push("CASE WHEN ")
                    .qualified("p", "current_sign_in_at")
                    .push(" IS NOT NULL THEN ");
                p(&mut sql, from_current);
                sql.push(" ELSE ");
                p(&mut sql, from_last);
                sql.push(" END, ");
            }
        }
        _ => {
            sql.push("COALESCE(")
                .qualified("p", "sign_in_count")
                .push(", 0), ");
            for column in [
                "current_sign_in_at",
                "current_sign_in_ip",
                "last_sign_in_at",
                "last_sign_in_ip",
            ] {
                p(&mut sql, column);
                sql.push(", ");
            }
        }
    }
    sql.param(event.ip.clone()).push(", ");
    sql.param(event.user_agent.clone()).push(", ");
    sql.param(event.now);
    sql.push(" FROM ").table(schema, users).push(" ").ident("u");
    sql.push(" LEFT JOIN (SELECT * FROM ")
        .table(schema, spec.table);
    sql.push(" WHERE ")
        .ident("user_id")
        .push(" = ")
        .param(id.clone());
    sql.push(" ORDER BY ")
        .ident("id")
        .push(" DESC LIMIT 1) ")
        .ident("p")
        .push(" ON 1 = 1");
    sql.push(" WHERE ")
        .qualified("u", spec.id.as_str())
        .push(" = ")
        .param(id);
    if returning {
        sql.push(" RETURNING *");
    }
    sql.build()
}
