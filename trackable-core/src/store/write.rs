//! Running the statements of one event: fields mode's `UPDATE`, table mode's append.
//!
//! Table mode: SQLite runs the `INSERT ... SELECT` alone, since a writing statement holds
//! the database's write lock from its start. PostgreSQL calls the `<table>_append` function
//! of the migration, which locks the user's row and then inserts, in one round trip (two
//! statements in a transaction when the function is missing). MySQL locks the user's row and
//! inserts in a READ COMMITTED transaction. Either way, the events of one user are appended
//! one at a time and each one reads the row appended before it.

use sea_orm::{ConnectionTrait, DbBackend, IdenStatic};

use super::connection::{Connection, atomically};
use super::postgres::{
    forget_append_function, has_append_function, is_undefined_function, pg_append_function_name,
};
use super::rows::{decode, decode_with_id, not_found};
use super::sql::Sql;
use super::statements::{Arg, Args, audit_insert, fields_update, lock_user, select_user};
use crate::action::Action;
use crate::error::{Error, Result};
use crate::event::Event;
use crate::trackable::{EntityOf, FieldColumns, Mode, TableSpec, Trackable, Tracking, table_of};

/// Whether `action` writes anything for models of type `M`: in fields mode, only logins and
/// logouts do.
pub(crate) fn writes<M: Trackable>(action: Action) -> bool {
    match M::MODE {
        Mode::Fields => action.changes_state(),
        Mode::Table { .. } => true,
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
        && has_append_function(db, schema.as_deref(), spec.table).await?
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
            Err(error) if is_undefined_function(&error) => {
                forget_append_function(spec.table);
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
