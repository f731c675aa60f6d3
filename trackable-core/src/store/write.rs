//! Running the statements of one event: fields mode's `UPDATE`, table mode's append.
//!
//! Table mode: SQLite runs the `INSERT ... SELECT` alone, since a writing statement holds
//! the database's write lock from its start. PostgreSQL calls the `<table>_append` function
//! of the migration, which locks the user's row and then inserts, in one round trip (two
//! statements in a transaction when the function is missing). MySQL locks the user's row and
//! inserts in a READ COMMITTED transaction. Either way, the events of one user are appended
//! one at a time and each one reads the row appended before it.

use std::future::Future;
use std::time::Duration;

use sea_orm::{ConnectionTrait, DbBackend, IdenStatic, QueryResult, Statement};

use super::chain;
use super::connection::{Connection, atomically};
use super::postgres::pg_append_function_name;
use super::rows::{AUDIT_TIMES, check_readable, decode, get, not_found, push_readable, value_text};
use super::sql::Sql;
use super::statements::{
    AUDIT_COLUMNS, Arg, Args, CHAIN_COLUMNS, DETAIL_COLUMNS, audit_insert, fields_update,
    lock_user, select_user,
};
use crate::action::Action;
use crate::error::{Error, Result, is_conflict, is_undefined_function};
use crate::event::Event;
use crate::state::SignInState;
use crate::trackable::{EntityOf, FieldColumns, Mode, TableSpec, Trackable, Tracking, table_of};

/// Where an appended audit row is: its `id` and the user's event number `seq`.
#[derive(Clone, Debug)]
pub(crate) struct Appended {
    pub(crate) id: i64,
    pub(crate) seq: i64,
    /// Its `mac`, under a chain key.
    pub(crate) mac: Option<String>,
}

/// Whether `action` writes anything for models of type `M`: in fields mode, only logins and
/// logouts do.
pub(crate) fn writes<M: Trackable>(action: Action) -> bool {
    match M::MODE {
        Mode::Fields => action.changes_state(),
        Mode::Table { .. } => true,
    }
}

/// Records `event` for `user` and returns the row written: the user row (fields mode) or the
/// audit row (table mode), with where the audit row is in table mode.
pub(crate) async fn write<C, M>(
    db: &C,
    user: &M,
    event: &Event,
) -> Result<(M::Record, Option<Appended>)>
where
    C: Connection,
    M: Trackable,
{
    let row = match M::__tracking() {
        Tracking::Fields(columns) => {
            retrying(db, |attempt| {
                fields::<C, M>(db, user, &columns, event, attempt)
            })
            .await?
        }
        Tracking::Table(spec) => {
            retrying(db, |attempt| table::<C, M>(db, user, &spec, event, attempt)).await?
        }
    };
    let Some(row) = row else {
        return Err(nothing_written(db, user, event.action).await);
    };
    let record = decode(&row)?;
    let appended = match M::MODE {
        Mode::Fields => None,
        Mode::Table { .. } => Some(Appended {
            id: get(&row, "id")?,
            seq: get(&row, "seq")?,
            mac: match event.chain {
                Some(_) => get(&row, "mac")?,
                None => None,
            },
        }),
    };
    Ok((record, appended))
}

/// How many times an event whose statement or transaction this crate owns is attempted.
const ATTEMPTS: u32 = 12;

/// Runs `attempt(0)`, `attempt(1)`, ... until one does not meet a conflict (a concurrent
/// event of the same user, a deadlock, a serialization failure), waiting a little longer,
/// with jitter, before each new attempt. Inside the caller's transaction, which the database
/// has aborted, a conflict is returned as [`Error::Conflict`] at once.
/// An attempt may itself run events inside its own transaction: their conflicts come back
/// as [`Error::Conflict`], and are retried the same way.
pub(crate) async fn retrying<C, T, F, Fut>(db: &C, mut attempt: F) -> Result<T>
where
    C: Connection,
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut n = 0;
    loop {
        match attempt(n).await {
            Err(Error::Db(source) | Error::Conflict { source }) if is_conflict(&source) => {
                n += 1;
                if db.__in_transaction() || n >= ATTEMPTS {
                    return Err(Error::Conflict { source });
                }
                tokio::time::sleep(backoff(n)).await;
            }
            outcome => return outcome,
        }
    }
}

/// Up to 1 ms times the attempt, uniformly: enough for the transaction in the way to commit.
fn backoff(attempt: u32) -> Duration {
    use std::hash::{BuildHasher, RandomState};
    let random = RandomState::new().hash_one(std::time::Instant::now());
    Duration::from_micros(random % (1_000 * u64::from(attempt)))
}

/// The error of an event that wrote nothing: the user does not exist, or their count is at
/// the largest value its column holds (the statements write nothing then).
async fn nothing_written<C, M>(db: &C, user: &M, action: Action) -> Error
where
    C: Connection,
    M: Trackable,
{
    match ensure_exists(db, user, action).await {
        Ok(()) => {
            let (_, table) = table_of::<EntityOf<M>>();
            Error::CountOverflow {
                table: table.to_owned(),
                user_id: super::rows::value_text(&user.__user_id()),
                action,
            }
        }
        Err(error) => error,
    }
}

/// The first row of a writing statement (which returns one at most). On SQLite the
/// statement is stepped to completion (through `query_all`), which is what lets the WAL be
/// checkpointed: a statement left after its first row holds the checkpoint back forever
/// (`query_one`, sqlx's `fetch_one`, does that: `the_sqlite_wal_stays_bounded` saw the WAL
/// reach 231 MB after 10,000 logins). Elsewhere the server runs the statement to its end
/// whatever the client reads, and `query_one` collects less.
async fn first_row<C: ConnectionTrait>(
    db: &C,
    statement: Statement,
) -> Result<Option<QueryResult>> {
    if db.get_database_backend() == DbBackend::Sqlite {
        return Ok(db.query_all_raw(statement).await?.into_iter().next());
    }
    Ok(db.query_one_raw(statement).await?)
}

/// `SELECT * FROM <table> WHERE <column> = <value>`.
fn select_where(
    backend: DbBackend,
    schema: Option<&str>,
    table: &str,
    column: &str,
    value: impl Into<sea_orm::Value>,
) -> Sql {
    let mut select = Sql::new(backend);
    select
        .push("SELECT * FROM ")
        .table(schema, table)
        .push(" WHERE ")
        .ident(column)
        .push(" = ")
        .param(value);
    select
}

/// Locks `user`'s row until the end of `conn`'s transaction, where a lock is needed (see
/// `lock_user`); `false` when the user does not exist.
async fn lock<C: ConnectionTrait, M: Trackable>(conn: &C, user: &M) -> Result<bool> {
    match lock_user(conn.get_database_backend(), user) {
        Some(lock) => Ok(conn.query_one_raw(lock).await?.is_some()),
        None => Ok(true),
    }
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

async fn fields<C, M>(
    db: &C,
    user: &M,
    columns: &FieldColumns<EntityOf<M>>,
    event: &Event,
    attempt: u32,
) -> Result<Option<QueryResult>>
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
    if returning {
        if attempt > 0 && backend == DbBackend::Postgres {
            // After a conflict on a database whose default isolation is stricter: at READ
            // COMMITTED the UPDATE waits for the row and reads what the other event wrote.
            return atomically!(db, |conn| first_row(conn, update).await);
        }
        return first_row(db, update).await;
    }
    atomically!(db, default_isolation, |conn| {
        async {
            let done = conn.execute_raw(update).await?;
            if event.action == Action::Login && done.rows_affected() == 0 {
                return Ok(None);
            }
            let select = select_where(backend, schema.as_deref(), table, columns.id.as_str(), id);
            Ok::<_, Error>(conn.query_one_raw(select.build()).await?)
        }
        .await
    })
}

async fn table<C, M>(
    db: &C,
    user: &M,
    spec: &TableSpec<EntityOf<M>>,
    event: &Event,
    attempt: u32,
) -> Result<Option<QueryResult>>
where
    C: Connection,
    M: Trackable,
{
    let backend = db.get_database_backend();
    let schema = table_of::<EntityOf<M>>().0;
    let id = user.__user_id();
    let args = Args::Bind {
        event,
        user_id: &id,
    };

    if event.chain.is_some() {
        return append_read_then_insert(db, user, spec, event).await;
    }
    if backend == DbBackend::Postgres && attempt == 0 && !db.__in_transaction() {
        // One statement: the function created by the table-mode migration.
        let mut call = Sql::new(backend);
        call.push("SELECT *");
        push_readable(&mut call, &AUDIT_TIMES);
        call.push(" FROM ")
            .table(schema.as_deref(), &pg_append_function_name(spec.table))
            .push("(");
        for (i, (arg, _)) in Arg::FUNCTION.into_iter().enumerate() {
            if i > 0 {
                call.push(", ");
            }
            if let Arg::Now = arg
                && event.database_clock
            {
                call.param(None::<chrono::DateTime<chrono::Utc>>);
                continue;
            }
            args.put(&mut call, arg);
        }
        call.push(")");
        match first_row(db, call.build()).await {
            // Missing (an audit table created without the migration): append below.
            Err(Error::Db(error)) if is_undefined_function(&error) => {}
            outcome => return outcome,
        }
    }

    if db.support_returning() {
        return append_returning(db, user, spec, &args).await;
    }
    append_read_then_insert(db, user, spec, event).await
}

/// Appends with one `INSERT ... SELECT ... RETURNING` (SQLite, and PostgreSQL after a conflict
/// or without the append function), after locking the user's row on PostgreSQL.
async fn append_returning<C, M>(
    db: &C,
    user: &M,
    spec: &TableSpec<EntityOf<M>>,
    args: &Args<'_>,
) -> Result<Option<QueryResult>>
where
    C: Connection,
    M: Trackable,
{
    let backend = db.get_database_backend();
    let (schema, users) = table_of::<EntityOf<M>>();
    let mut insert = Sql::new(backend);
    audit_insert(
        &mut insert,
        schema.as_deref(),
        users,
        spec.id.as_str(),
        spec.table,
        args,
    );
    insert.push(" RETURNING *");
    push_readable(&mut insert, &AUDIT_TIMES);
    let insert = insert.build();

    if backend == DbBackend::Sqlite {
        // One statement: it takes SQLite's write lock before it reads the latest row.
        return first_row(db, insert).await;
    }
    atomically!(db, |conn| {
        async {
            if !lock(conn, user).await? {
                return Ok(None);
            }
            first_row(conn, insert).await
        }
        .await
    })
}

/// Appends by reading the user's latest row under the user-row lock, computing the next
/// one here and inserting it with `VALUES`: on MySQL, which has no `RETURNING`, and on every
/// backend when the tracker keeps a hash chain (the row's MAC is computed here, under the
/// chain key).
async fn append_read_then_insert<C, M>(
    db: &C,
    user: &M,
    spec: &TableSpec<EntityOf<M>>,
    event: &Event,
) -> Result<Option<QueryResult>>
where
    C: Connection,
    M: Trackable,
{
    let backend = db.get_database_backend();
    let schema = table_of::<EntityOf<M>>().0;
    let id = user.__user_id();
    atomically!(db, |conn| {
        async {
            // SQLite: the transaction began with `BEGIN IMMEDIATE`, so it holds the write
            // lock already, unless it is the caller's (see `begin_write`).
            if !lock(conn, user).await? {
                return Ok(None);
            }
            // MySQL: an `INSERT ... SELECT`, or a locking read of the latest row, takes gap
            // locks in REPEATABLE READ that deadlock the events of users whose rows are
            // neighbours in the index. A plain read sees every event committed before the
            // lock, unless the caller's transaction read (and so fixed its snapshot) before
            // it: then the next number is taken, the unique key refuses the row, and the
            // caller gets a retryable `Error::Conflict`, never a duplicate.
            let mut latest = Sql::new(backend);
            latest.push("SELECT *");
            push_readable(&mut latest, &AUDIT_TIMES);
            latest
                .push(" FROM ")
                .table(schema.as_deref(), spec.table)
                .push(" WHERE ")
                .ident("user_id")
                .push(" = ")
                .param(id.clone())
                .push(" ORDER BY ")
                .ident("seq")
                .push(" DESC LIMIT 1");
            let previous = match conn.query_one_raw(latest.build()).await? {
                Some(row) => {
                    check_readable(&row)?;
                    let mac = match &event.chain {
                        Some(_) => get::<Option<String>>(&row, "mac")?,
                        None => None,
                    };
                    let state = SignInState {
                        sign_in_count: get(&row, "sign_in_count")?,
                        current_sign_in_at: get(&row, "current_sign_in_at")?,
                        current_sign_in_ip: get(&row, "current_sign_in_ip")?,
                        last_sign_in_at: get(&row, "last_sign_in_at")?,
                        last_sign_in_ip: get(&row, "last_sign_in_ip")?,
                    };
                    Some((get::<i64>(&row, "seq")?, state, mac))
                }
                None => None,
            };
            let (seq, state, previous_mac) = previous.unwrap_or_default();
            if seq == i64::MAX || (event.action == Action::Login && state.sign_in_count == i64::MAX)
            {
                return Ok(None);
            }
            let now = database_now(conn, event).await?;
            let next = state.apply(event.action, now, event.ip.as_deref());
            let (mac, client_digest) = match &event.chain {
                Some(key) => {
                    let client_digest = chain::client_digest(
                        key,
                        event.ip.as_deref(),
                        next.current_sign_in_ip.as_deref(),
                        next.last_sign_in_ip.as_deref(),
                        event.user_agent.as_deref(),
                    );
                    let subject = chain::subject(key, &value_text(&id));
                    let link = chain::Link {
                        subject: &subject,
                        seq: seq + 1,
                        action: event.action.as_str(),
                        sign_in_count: next.sign_in_count,
                        current_sign_in_at: next.current_sign_in_at,
                        last_sign_in_at: next.last_sign_in_at,
                        inserted_at: now,
                        client_digest: Some(&client_digest),
                        method: event.details.method.as_deref(),
                        reason: event.details.reason.as_deref(),
                        session_seq: event.details.session_seq,
                        session_digest: event.details.session_digest.as_deref(),
                        device: event.details.device.as_deref(),
                    };
                    let mac = chain::mac(key, &link, previous_mac.as_deref());
                    (Some(mac), Some(client_digest))
                }
                None => (None, None),
            };
            let mut values = Sql::new(backend);
            values
                .push("INSERT INTO ")
                .table(schema.as_deref(), spec.table)
                .push(" (")
                .idents(AUDIT_COLUMNS)
                .push(", ")
                .idents(DETAIL_COLUMNS.map(|(column, _)| column));
            if mac.is_some() {
                values.push(", ").idents(CHAIN_COLUMNS);
            }
            values
                .push(") VALUES (")
                .param(id.clone())
                .push(", ")
                .param(seq + 1)
                .push(", ")
                .param(event.action.as_str())
                .push(", ")
                .param(next.sign_in_count)
                .push(", ")
                .param(next.current_sign_in_at)
                .push(", ")
                .param(next.current_sign_in_ip)
                .push(", ")
                .param(next.last_sign_in_at)
                .push(", ")
                .param(next.last_sign_in_ip)
                .push(", ")
                .param(event.ip.clone())
                .push(", ")
                .param(event.user_agent.clone())
                .push(", ")
                .param(now);
            let details = &event.details;
            values
                .push(", ")
                .param(details.method.clone())
                .push(", ")
                .param(details.reason.clone())
                .push(", ")
                .param(details.session_seq)
                .push(", ")
                .param(details.session_digest.clone())
                .push(", ")
                .param(details.device.clone());
            if let (Some(mac), Some(client_digest)) = (mac, client_digest) {
                values.push(", ").param(mac).push(", ").param(client_digest);
            }
            values.push(")");
            if conn.support_returning() {
                values.push(" RETURNING *");
                push_readable(&mut values, &AUDIT_TIMES);
                return first_row(conn, values.build()).await;
            }
            let done = conn.execute_raw(values.build()).await?;
            let id = done.last_insert_id() as i64;
            let select = select_where(backend, schema.as_deref(), spec.table, "id", id);
            Ok::<_, Error>(conn.query_one_raw(select.build()).await?)
        }
        .await
    })
}

/// The time of an event written by [`append_read_then_insert`]: the database's clock under
/// [`Tracker::with_database_clock`](crate::Tracker::with_database_clock), read after the
/// user-row lock, otherwise the tracker's.
async fn database_now<C: ConnectionTrait>(
    conn: &C,
    event: &Event,
) -> Result<chrono::DateTime<chrono::Utc>> {
    let backend = conn.get_database_backend();
    let sql = match backend {
        _ if !event.database_clock => return Ok(event.now),
        DbBackend::MySql => "SELECT UTC_TIMESTAMP(6) AS now",
        DbBackend::Postgres => "SELECT clock_timestamp() AS now",
        _ => return Ok(event.now),
    };
    match conn
        .query_one_raw(Statement::from_string(backend, sql))
        .await?
    {
        Some(row) => get(&row, "now"),
        None => Ok(event.now),
    }
}
