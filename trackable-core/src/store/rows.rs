//! Reading rows that the database returned: typed columns, decoded models, and the error of
//! an unknown user.

use sea_orm::{FromQueryResult, QueryResult, Value};

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
