//! What table mode needs of PostgreSQL: the `<table>_append` function that appends in one
//! round trip.
//!
//! Whether a database has the function is not remembered: the call on a pool is tried, and
//! if the function is missing (an audit table created from the entity, without the
//! migration) the same append runs as two statements. Inside a caller's transaction, where a
//! failed call would abort it, the two statements are always used.

use sea_orm::{DbBackend, Statement};

use super::sql::Sql;
use super::statements::{Arg, Args, audit_insert};

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
        .push("(");
    for (i, (arg, kind)) in Arg::FUNCTION.into_iter().enumerate() {
        if i > 0 {
            sql.push(", ");
        }
        sql.push(arg.parameter()).push(" ");
        if kind.is_empty() {
            sql.table(schema, table)
                .push(".")
                .ident("user_id")
                .push("%TYPE");
        } else {
            sql.push(kind);
        }
    }
    sql.push(") RETURNS SETOF ")
        .table(schema, table)
        .push(" LANGUAGE plpgsql VOLATILE AS ")
        .push(TAG)
        .push("\nBEGIN\n  PERFORM 1 FROM ")
        .table(schema, users)
        .push(" WHERE ")
        .ident(user_pk)
        .push(" = p_user_id FOR NO KEY UPDATE;\n  IF NOT FOUND THEN\n    RETURN;\n  END IF;\n  -- NULL: the database's clock, read once the lock is held\n  p_now := COALESCE(p_now, clock_timestamp());\n  RETURN QUERY ");
    audit_insert(&mut sql, schema, users, user_pk, table, &Args::Function);
    sql.push(" RETURNING *;\nEND\n").push(TAG);
    dollar_quoted(sql.build())
}

/// `DROP FUNCTION IF EXISTS <table>_append`.
pub(crate) fn pg_drop_append_function(schema: Option<&str>, table: &str) -> Statement {
    let mut sql = Sql::new(DbBackend::Postgres);
    sql.push("DROP FUNCTION IF EXISTS ")
        .table(schema, &pg_append_function_name(table));
    sql.build()
}

/// The trigger function that keeps audit table `table` append-only.
fn append_only_function_name(table: &str) -> String {
    format!("{table}_append_only")
}

/// The statements that install the append-only trigger on audit table `table`: `UPDATE`,
/// `DELETE` and `TRUNCATE` fail with SQLSTATE 42501 unless `trackable.retention` is `on`
/// for the transaction, as the crate's retention functions set it.
pub(crate) fn pg_append_only_trigger(schema: Option<&str>, table: &str) -> Vec<Statement> {
    let function = append_only_function_name(table);
    let mut create = Sql::new(DbBackend::Postgres);
    create
        .push("CREATE OR REPLACE FUNCTION ")
        .table(schema, &function)
        .push("() RETURNS trigger LANGUAGE plpgsql AS ")
        .push(TAG)
        .push(
            " BEGIN \
             IF current_setting('trackable.retention', true) = 'on' THEN \
               IF TG_LEVEL = 'STATEMENT' THEN RETURN NULL; END IF; \
               IF TG_OP = 'DELETE' THEN RETURN OLD; END IF; \
               RETURN NEW; \
             END IF; \
             RAISE EXCEPTION 'the audit table % is append-only: its rows change only through \
             the retention functions of trackable', TG_TABLE_NAME USING ERRCODE = '42501'; \
             END ",
        )
        .push(TAG);
    let mut statements = vec![dollar_quoted(create.build())];
    for (suffix, when, each) in [
        ("", "UPDATE OR DELETE", "ROW"),
        ("_truncate", "TRUNCATE", "STATEMENT"),
    ] {
        let trigger = format!("{function}{suffix}");
        let mut drop = Sql::new(DbBackend::Postgres);
        drop.push("DROP TRIGGER IF EXISTS ")
            .ident(&trigger)
            .push(" ON ")
            .table(schema, table);
        let mut create = Sql::new(DbBackend::Postgres);
        create
            .push("CREATE TRIGGER ")
            .ident(&trigger)
            .push(" BEFORE ")
            .push(when)
            .push(" ON ")
            .table(schema, table)
            .push(" FOR EACH ")
            .push(each)
            .push(" EXECUTE FUNCTION ")
            .table(schema, &function)
            .push("()");
        statements.extend([drop.build(), create.build()]);
    }
    statements
}

/// Drops the append-only trigger of audit table `table` and its function, if there.
pub(crate) fn pg_drop_append_only_trigger(schema: Option<&str>, table: &str) -> Statement {
    let mut sql = Sql::new(DbBackend::Postgres);
    sql.push("DROP FUNCTION IF EXISTS ")
        .table(schema, &append_only_function_name(table))
        .push("() CASCADE");
    sql.build()
}

/// `SET LOCAL trackable.retention = 'on'`: lets the crate's retention functions change rows
/// of an append-only audit table (see [`pg_append_only_trigger`]) in their transaction.
pub(crate) fn pg_retention_statement() -> Statement {
    Statement::from_string(DbBackend::Postgres, "SET LOCAL trackable.retention = 'on'")
}

/// The placeholder of the function body's dollar-quote tag, replaced by [`dollar_quoted`].
const TAG: &str = "\u{0}tag\u{0}";

/// `statement` with its [`TAG`]s replaced by a dollar-quote tag that does not occur in the
/// body, whatever the schema and table names hold.
fn dollar_quoted(mut statement: Statement) -> Statement {
    let mut tag = "$trackable$".to_owned();
    while statement.sql.contains(&tag) {
        tag.insert(tag.len() - 1, '_');
    }
    statement.sql = statement.sql.replace(TAG, &tag);
    statement
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dollar_quote_tag_never_occurs_in_the_body() {
        let body = pg_append_function(Some("a$trackable$b"), "users", "id", "events").sql;
        let start = body.find(" AS $").unwrap() + 4;
        let tag = &body[start..start + body[start + 1..].find('$').unwrap() + 2];
        assert_eq!(tag, "$trackable_$");
        assert_eq!(body.matches(tag).count(), 2, "{body}");
        assert!(body.ends_with(tag));
    }
}
