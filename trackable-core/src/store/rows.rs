//! Reading rows that the database returned: typed columns, decoded models, and the error of
//! an unknown user.

use sea_orm::{FromQueryResult, QueryResult, Value};

use super::sql::Sql;
use crate::action::Action;
use crate::error::{Error, Result};
use crate::trackable::{EntityOf, Trackable, table_of};

pub(crate) fn not_found<M: Trackable>(user: &M, action: Action) -> Error {
    let (_, table) = table_of::<EntityOf<M>>();
    Error::UserNotFound {
        table: table.to_owned(),
        user_id: value_text(&user.__user_id()),
        action,
    }
}

/// The column that says whether a row returned by PostgreSQL can be read (see
/// [`push_readable`]).
const READABLE: &str = "__trackable_readable";

/// The time columns of an audit row.
pub(crate) const AUDIT_TIMES: [&str; 3] = ["current_sign_in_at", "last_sign_in_at", "inserted_at"];

/// On PostgreSQL, `, (...) AS __trackable_readable`: whether every time column of the row
/// is one that chrono holds. PostgreSQL stores `infinity`, `-infinity` and years up to
/// 294276, which the driver cannot decode (it panics), so [`decode`] checks this column
/// first and answers [`Error::InvalidData`] instead.
pub(crate) fn push_readable(sql: &mut Sql, columns: &[&str]) {
    if sql.backend() != sea_orm::DbBackend::Postgres {
        return;
    }
    sql.push(", (");
    for (i, column) in columns.iter().enumerate() {
        if i > 0 {
            sql.push(" AND ");
        }
        readable_time(sql, None, column);
    }
    sql.push(") AS ").ident(READABLE);
}

/// `(c IS NULL OR (c > '-infinity' AND c < '262000-01-01'))`: a time that chrono holds.
pub(crate) fn readable_time(sql: &mut Sql, alias: Option<&str>, column: &str) {
    let c = |sql: &mut Sql| {
        match alias {
            Some(alias) => sql.qualified(alias, column),
            None => sql.ident(column),
        };
    };
    sql.push("(");
    c(sql);
    sql.push(" IS NULL OR (");
    c(sql);
    sql.push(" > '-infinity' AND ");
    c(sql);
    sql.push(" < '262000-01-01 00:00:00+00'))");
}

/// `Err(InvalidData)` if PostgreSQL said that `row` holds a time that cannot be read.
pub(crate) fn check_readable(row: &QueryResult) -> Result<()> {
    match row.try_get::<Option<bool>>("", READABLE) {
        Ok(Some(false)) => Err(Error::InvalidData {
            model: "audit row",
            what: "a time outside the years -262143 to 262142 (such as infinity)".to_owned(),
        }),
        _ => Ok(()),
    }
}

/// `row` as an `R`, unless PostgreSQL said that it holds a time that cannot be read.
pub(crate) fn decode<R: FromQueryResult>(row: &QueryResult) -> Result<R> {
    if let Ok(Some(false)) = row.try_get::<Option<bool>>("", READABLE) {
        return Err(Error::InvalidData {
            model: std::any::type_name::<R>(),
            what: "a time outside the years -262143 to 262142 (such as infinity)".to_owned(),
        });
    }
    R::from_query_result(row, "").map_err(|source| Error::Decode {
        model: std::any::type_name::<R>(),
        source,
    })
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
