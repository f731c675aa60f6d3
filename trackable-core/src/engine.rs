//! The statements behind every tracked event.
//!
//! Both modes compute the new state in SQL from the row as stored, never from the model the
//! caller holds, so concurrent events cannot lose each other's writes:
//!
//! - fields mode is one `UPDATE ... RETURNING` (an `UPDATE` and a `SELECT` in one transaction
//!   where the backend has no `RETURNING`);
//! - table mode is one `INSERT ... SELECT` from the user's latest audit row, computed by one
//!   statement text for every action. SQLite runs it alone, since a writing statement holds
//!   the database's write lock from its start. PostgreSQL calls the `<table>_append` function
//!   of the migration, which locks the user's row and then inserts, in one round trip (two
//!   statements in a transaction when the function is missing). MySQL locks the user's row and
//!   inserts in a READ COMMITTED transaction. Either way, the events of one user are appended
//!   one at a time and each one reads the row appended before it.

use chrono::{DateTime, Utc};
use sea_orm::{
    ConnectionTrait, DbBackend, FromQueryResult, IdenStatic, QueryResult, Statement, Value,
};

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
/// audit row (table mode), with the audit row's `id` in table mode.
pub(crate) async fn write<C, M>(db: &C, user: &M, event: &Event) -> Result<(M::Record, Option<i64>)>
where
    C: Connection,
    M: Trackable,
{
    match M::__tracking() {
        Tracking::Fields(columns) => fields::<C, M>(db, user, &columns, event)
            .await
            .map(|record| (record, None)),
        Tracking::Table(spec) => table::<C, M>(db, user, &spec, event)
            .await
            .map(|(record, id)| (record, Some(id))),
    }
}

/// The statement that locks `user`'s row until the end of the transaction, so that the
/// events of one user are appended one at a time (table mode on PostgreSQL and MySQL).
/// `None` where no lock is needed: fields mode, and SQLite, whose writing statements hold
/// the database's write lock.
pub(crate) fn lock_user<M: Trackable>(backend: DbBackend, user: &M) -> Option<sea_orm::Statement> {
    if M::MODE == crate::Mode::Fields || backend == DbBackend::Sqlite {
        return None;
    }
    let mut lock = select_user(backend, user);
    lock.push(match backend {
        DbBackend::Postgres => " FOR NO KEY UPDATE",
        _ => " FOR UPDATE",
    });
    Some(lock.build())
}

/// `SELECT 1 FROM <users> WHERE <primary key> = <user's key>`.
fn select_user<M: Trackable>(backend: DbBackend, user: &M) -> Sql {
    let (schema, users) = table_of::<EntityOf<M>>();
    let id = match M::__tracking() {
        Tracking::Fields(columns) => columns.id,
        Tracking::Table(spec) => spec.id,
    };
    let mut sql = Sql::new(backend);
    sql.push("SELECT 1 FROM ")
        .table(schema.as_deref(), users)
        .push(" WHERE ")
        .ident(id.as_str())
        .push(" = ")
        .param(user.__user_id());
    sql
}

/// `Err(UserNotFound)` unless `user`'s row exists: for the events that write nothing.
pub(crate) async fn ensure_exists<C, M>(db: &C, user: &M, action: Action) -> Result<()>
where
    C: Connection,
    M: Trackable,
{
    let select = select_user(db.get_database_backend(), user).build();
    match db.query_one_raw(select).await? {
        Some(_) => Ok(()),
        None => Err(not_found(user, action)),
    }
}

pub(crate) fn not_found<M: Trackable>(user: &M, action: Action) -> Error {
    let (_, table) = table_of::<EntityOf<M>>();
    Error::UserNotFound {
        table: table.to_owned(),
        user_id: value_text(&user.__user_id()),
        action,
    }
}

pub(crate) fn decode<R: FromQueryResult>(row: &QueryResult) -> Result<R> {
    R::from_query_result(row, "").map_err(|source| Error::Decode {
        model: std::any::type_name::<R>(),
        source,
    })
}

/// An audit row and its `id`.
pub(crate) fn decode_with_id<R: FromQueryResult>(row: &QueryResult) -> Result<(R, i64)> {
    Ok((decode(row)?, get(row, "id")?))
}

/// Column `column` of `row`.
pub(crate) fn get<T: sea_orm::TryGetable>(row: &QueryResult, column: &str) -> Result<T> {
    row.try_get("", column).map_err(|source| Error::Decode {
        model: std::any::type_name::<T>(),
        source,
    })
}

pub(crate) fn value_text(value: &Value) -> String {
    match value {
        Value::Int(Some(v)) => v.to_string(),
        Value::BigInt(Some(v)) => v.to_string(),
        Value::String(Some(v)) => v.clone(),
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
        atomically!(db, default_isolation, |conn| {
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
    let login = event.action == Action::Login;
    // last = current if current_at is set; on a login, else last if last_at is set, else
    // (now, ip); on a logout, else last. IPs first: their CASE reads the old times.
    let pairs: [(&str, &str, Value); 2] = [
        (last_ip, cur_ip, event.ip.clone().into()),
        (last_at, cur_at, event.now.into()),
    ];
    for (last, current, value) in &pairs {
        sql.ident(last)
            .push(" = CASE WHEN ")
            .ident(cur_at)
            .push(" IS NOT NULL THEN ")
            .ident(current);
        if login {
            sql.push(" WHEN ").ident(last_at).push(" IS NOT NULL THEN ");
            sql.ident(last).push(" ELSE ").param(value.clone());
        } else {
            sql.push(" ELSE ").ident(last);
        }
        sql.push(" END, ");
    }
    if login {
        // current = (now, ip), count + 1
        for (current, value) in [(cur_ip, &pairs[0].2), (cur_at, &pairs[1].2)] {
            sql.ident(current)
                .push(" = ")
                .param(value.clone())
                .push(", ");
        }
        sql.ident(count)
            .push(" = COALESCE(")
            .ident(count)
            .push(", 0) + 1");
    } else {
        // logout of a signed-in user: current = (none, none); otherwise unchanged
        sql.ident(cur_ip)
            .push(" = CASE WHEN ")
            .ident(cur_at)
            .push(" IS NOT NULL THEN ")
            .param(None::<String>)
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
) -> Result<(M::Record, i64)>
where
    C: Connection,
    M: Trackable,
{
    let backend = db.get_database_backend();
    let (schema, users) = table_of::<EntityOf<M>>();
    let id = user.__user_id();
    let returning = db.support_returning();
    let args = Args::Bind {
        event,
        user_id: &id,
    };

    if backend == DbBackend::Postgres
        && pg_functions::usable(db, schema.as_deref(), spec.table).await?
    {
        // One statement: the function created by the table-mode migration.
        let mut call = Sql::new(backend);
        call.push("SELECT * FROM ")
            .table(schema.as_deref(), &pg_append_function_name(spec.table))
            .push("(");
        for (i, arg) in [Arg::UserId, Arg::Action, Arg::Now, Arg::Ip, Arg::UserAgent]
            .into_iter()
            .enumerate()
        {
            if i > 0 {
                call.push(", ");
            }
            args.put(&mut call, arg);
        }
        call.push(")");
        match db.query_one_raw(call.build()).await {
            Ok(Some(row)) => return decode_with_id(&row),
            Ok(None) => return Err(not_found(user, event.action)),
            // Dropped since we looked: remember, and append without it where we still can
            // (in the caller's transaction the error has already aborted it).
            Err(error) if pg_functions::is_missing(&error) => {
                pg_functions::forget(spec.table);
                if db.__in_transaction() {
                    return Err(error.into());
                }
            }
            Err(error) => return Err(error.into()),
        }
    }

    let mut insert = Sql::new(backend);
    audit_insert(
        &mut insert,
        schema.as_deref(),
        users,
        spec.id.as_str(),
        spec.table,
        &args,
    );
    if returning {
        insert.push(" RETURNING *");
    }
    let insert = insert.build();

    if backend == DbBackend::Sqlite && returning {
        // One statement: it takes SQLite's write lock before it reads the latest row.
        return match db.query_one_raw(insert).await? {
            Some(row) => decode_with_id(&row),
            None => Err(not_found(user, event.action)),
        };
    }

    let row = atomically!(db, |conn| {
        async {
            if let Some(lock) = lock_user(backend, user)
                && conn.query_one_raw(lock).await?.is_none()
            {
                return Ok(None);
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
        Some(row) => decode_with_id(&row),
        None => Err(not_found(user, event.action)),
    }
}

/// The inputs of the table-mode statement: bound parameters of one event, or the parameters
/// of the PostgreSQL function that runs it (see [`pg_append_function`]).
enum Args<'a> {
    Bind {
        event: &'a Event,
        user_id: &'a Value,
    },
    Function,
}

#[derive(Clone, Copy)]
enum Arg {
    UserId,
    Action,
    Now,
    Ip,
    UserAgent,
}

impl Args<'_> {
    fn put(&self, sql: &mut Sql, arg: Arg) {
        match self {
            Args::Bind { event, user_id } => match arg {
                Arg::UserId => sql.param((*user_id).clone()),
                Arg::Action => sql.param(event.action.as_str()),
                Arg::Now => sql.param(event.now),
                Arg::Ip => sql.param(event.ip.clone()),
                Arg::UserAgent => sql.param(event.user_agent.clone()),
            },
            Args::Function => sql.push(match arg {
                Arg::UserId => "p_user_id",
                Arg::Action => "p_action",
                Arg::Now => "p_now",
                Arg::Ip => "p_ip",
                Arg::UserAgent => "p_user_agent",
            }),
        };
    }
}

/// The table-mode `INSERT ... SELECT`: one new row computed from the user's latest row `p`
/// (absent for the first event) by the rule of [`SignInState::apply`](crate::SignInState),
/// and only if the user `u` exists. One statement text serves every action.
fn audit_insert(
    sql: &mut Sql,
    schema: Option<&str>,
    users: &str,
    user_pk: &str,
    table: &str,
    args: &Args<'_>,
) {
    let p = |sql: &mut Sql, column: &str| {
        sql.qualified("p", column);
    };
    let is = |sql: &mut Sql, action: Action| {
        args.put(sql, Arg::Action);
        sql.push(" = '").push(action.as_str()).push("'");
    };
    // login, or logout of a signed-in user: last = current
    let moves_current = |sql: &mut Sql| {
        sql.push("(");
        is(sql, Action::Login);
        sql.push(" OR ");
        is(sql, Action::Logout);
        sql.push(") AND ");
        p(sql, "current_sign_in_at");
        sql.push(" IS NOT NULL");
    };
    // the first login ever: last = (now, ip)
    let first_login = |sql: &mut Sql| {
        is(sql, Action::Login);
        sql.push(" AND ");
        p(sql, "current_sign_in_at");
        sql.push(" IS NULL AND ");
        p(sql, "last_sign_in_at");
        sql.push(" IS NULL");
    };

    sql.push("INSERT INTO ")
        .table(schema, table)
        .push(" (")
        .idents(AUDIT_COLUMNS)
        .push(") SELECT ")
        .qualified("u", user_pk)
        .push(", ");
    args.put(sql, Arg::Action);
    // sign_in_count
    sql.push(", COALESCE(")
        .qualified("p", "sign_in_count")
        .push(", 0) + CASE WHEN ");
    is(sql, Action::Login);
    sql.push(" THEN 1 ELSE 0 END, ");
    // current_sign_in_at, current_sign_in_ip
    for (value, column) in [
        (Arg::Now, "current_sign_in_at"),
        (Arg::Ip, "current_sign_in_ip"),
    ] {
        sql.push("CASE WHEN ");
        is(sql, Action::Login);
        sql.push(" THEN ");
        args.put(sql, value);
        sql.push(" WHEN ");
        is(sql, Action::Logout);
        sql.push(" AND ");
        p(sql, "current_sign_in_at");
        sql.push(" IS NOT NULL THEN NULL ELSE ");
        p(sql, column);
        sql.push(" END, ");
    }
    // last_sign_in_at, last_sign_in_ip
    for (current, value, last) in [
        ("current_sign_in_at", Arg::Now, "last_sign_in_at"),
        ("current_sign_in_ip", Arg::Ip, "last_sign_in_ip"),
    ] {
        sql.push("CASE WHEN ");
        moves_current(sql);
        sql.push(" THEN ");
        p(sql, current);
        sql.push(" WHEN ");
        first_login(sql);
        sql.push(" THEN ");
        args.put(sql, value);
        sql.push(" ELSE ");
        p(sql, last);
        sql.push(" END, ");
    }
    args.put(sql, Arg::Ip);
    sql.push(", ");
    args.put(sql, Arg::UserAgent);
    sql.push(", ");
    args.put(sql, Arg::Now);
    sql.push(" FROM ").table(schema, users).push(" ").ident("u");
    sql.push(" LEFT JOIN (SELECT * FROM ").table(schema, table);
    sql.push(" WHERE ").ident("user_id").push(" = ");
    args.put(sql, Arg::UserId);
    sql.push(" ORDER BY ")
        .ident("id")
        .push(" DESC LIMIT 1) ")
        .ident("p")
        .push(" ON 1 = 1");
    sql.push(" WHERE ").qualified("u", user_pk).push(" = ");
    args.put(sql, Arg::UserId);
}

/// Whether the append function of each audit table exists, so that table mode also works on
/// an audit table created without the migration (from the entity, say), in two statements
/// under the user-row lock instead of one.
mod pg_functions {
    use std::collections::HashMap;
    use std::sync::{LazyLock, Mutex, PoisonError};

    use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};

    static KNOWN: LazyLock<Mutex<HashMap<String, bool>>> = LazyLock::new(Default::default);

    pub(super) async fn usable<C: ConnectionTrait>(
        db: &C,
        schema: Option<&str>,
        table: &str,
    ) -> Result<bool, DbErr> {
        let known = KNOWN
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(table)
            .copied();
        if let Some(known) = known {
            return Ok(known);
        }
        let name = super::pg_append_function_name(table);
        let check = Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
             WHERE p.proname = $1 AND n.nspname = COALESCE($2, current_schema())",
            [name.into(), schema.map(str::to_owned).into()],
        );
        let exists = db.query_one_raw(check).await?.is_some();
        KNOWN
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(table.to_owned(), exists);
        Ok(exists)
    }

    pub(super) fn forget(table: &str) {
        KNOWN
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(table.to_owned(), false);
    }

    /// SQLSTATE 42883, undefined_function.
    pub(super) fn is_missing(error: &DbErr) -> bool {
        #[cfg(feature = "postgres")]
        if let DbErr::Query(sea_orm::RuntimeErr::SqlxError(error))
        | DbErr::Exec(sea_orm::RuntimeErr::SqlxError(error)) = error
        {
            return error
                .as_database_error()
                .and_then(|error| error.code())
                .is_some_and(|code| code == "42883");
        }
        let _ = error;
        false
    }
}

/// The name of the PostgreSQL function that appends to `table`.
pub(crate) fn pg_append_function_name(table: &str) -> String {
    format!("{table}_append")
}

/// `CREATE OR REPLACE FUNCTION <table>_append(...)`: table mode on PostgreSQL in one round
/// trip. It locks the user's row, so that the events of one user are appended one at a time,
/// then appends. Under READ COMMITTED each statement of a volatile function reads the rows
/// committed before it started, so the `INSERT` sees the row appended by the event that held
/// the lock before; a single `INSERT ... SELECT` would read an older snapshot and could
/// repeat a count.
pub(crate) fn pg_append_function(
    schema: Option<&str>,
    users: &str,
    user_pk: &str,
    table: &str,
) -> Statement {
    let mut sql = Sql::new(DbBackend::Postgres);
    sql.push("CREATE OR REPLACE FUNCTION ")
        .table(schema, &pg_append_function_name(table))
        .push("(p_user_id ")
        .table(schema, table)
        .push(".")
        .ident("user_id")
        .push("%TYPE, p_action text, p_now timestamptz, p_ip text, p_user_agent text) RETURNS SETOF ")
        .table(schema, table)
        .push(" LANGUAGE plpgsql VOLATILE AS $trackable$\nBEGIN\n  PERFORM 1 FROM ")
        .table(schema, users)
        .push(" WHERE ")
        .ident(user_pk)
        .push(" = p_user_id FOR NO KEY UPDATE;\n  IF NOT FOUND THEN\n    RETURN;\n  END IF;\n  RETURN QUERY ");
    audit_insert(&mut sql, schema, users, user_pk, table, &Args::Function);
    sql.push(" RETURNING *;\nEND\n$trackable$");
    sql.build()
}

/// `DROP FUNCTION IF EXISTS <table>_append`.
pub(crate) fn pg_drop_append_function(schema: Option<&str>, table: &str) -> Statement {
    let mut sql = Sql::new(DbBackend::Postgres);
    sql.push("DROP FUNCTION IF EXISTS ")
        .table(schema, &pg_append_function_name(table));
    sql.build()
}
