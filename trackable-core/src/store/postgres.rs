//! What table mode needs of PostgreSQL: the `<table>_append` function that appends in one
//! round trip, and whether a database has it.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, PoisonError};

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};

use super::sql::Sql;
use super::statements::{Args, audit_insert};

static KNOWN: LazyLock<Mutex<HashMap<String, bool>>> = LazyLock::new(Default::default);

/// Whether the append function of `table` exists, so that table mode also works on an audit
/// table created without the migration (from the entity, say), in two statements under the
/// user-row lock instead of one.
pub(crate) async fn has_append_function<C: ConnectionTrait>(
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
    let name = pg_append_function_name(table);
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

pub(crate) fn forget_append_function(table: &str) {
    KNOWN
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(table.to_owned(), false);
}

/// SQLSTATE 42883, undefined_function.
pub(crate) fn is_undefined_function(error: &DbErr) -> bool {
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
