//! The floors of the benchmarks: the statement trackable sends for a login, written by hand,
//! sent with `sqlx::query` on the same pool, and the row it returns decoded field by field
//! into the same model. `tests/floor.rs` checks that a floor writes the same row as
//! trackable, so that the two do the same work.
//!
//! On SQLite a writing statement is stepped to completion (`fetch_all`): `fetch_one` leaves
//! it open after its first row, and an open statement holds every WAL checkpoint back (the
//! WAL of `the_sqlite_wal_stays_bounded` reached 231 MB after 10,000 such logins). An
//! application writing these statements by hand has to do the same.

use chrono::{DateTime, Utc};
use sea_orm::sqlx::{self, Row};
use sea_orm::{DatabaseConnection, DbBackend};
use trackable_core::{Action, device_label};

use crate::models::member::member_events;
use crate::models::user;

/// A floor's failure: the database's, or a row that does not decode.
pub type Result<T> = std::result::Result<T, sqlx::Error>;

fn fields_sql(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::Sqlite => {
            r#"UPDATE "users" SET "last_sign_in_ip" = CASE WHEN "current_sign_in_at" IS NOT NULL THEN "current_sign_in_ip" WHEN "last_sign_in_at" IS NOT NULL THEN "last_sign_in_ip" ELSE ?1 END, "last_sign_in_at" = CASE WHEN "current_sign_in_at" IS NOT NULL THEN "current_sign_in_at" WHEN "last_sign_in_at" IS NOT NULL THEN "last_sign_in_at" ELSE ?2 END, "current_sign_in_ip" = ?1, "current_sign_in_at" = ?2, "sign_in_count" = COALESCE("sign_in_count", 0) + 1 WHERE "id" = ?3 RETURNING *"#
        }
        _ => {
            r#"UPDATE "users" SET "last_sign_in_ip" = CASE WHEN "current_sign_in_at" IS NOT NULL THEN "current_sign_in_ip" WHEN "last_sign_in_at" IS NOT NULL THEN "last_sign_in_ip" ELSE $1 END, "last_sign_in_at" = CASE WHEN "current_sign_in_at" IS NOT NULL THEN "current_sign_in_at" WHEN "last_sign_in_at" IS NOT NULL THEN "last_sign_in_at" ELSE $2 END, "current_sign_in_ip" = $1, "current_sign_in_at" = $2, "sign_in_count" = COALESCE("sign_in_count", 0) + 1 WHERE "id" = $3 RETURNING *"#
        }
    }
}

/// Parameters: user id, now, IP, user agent, device. SQLite: one `INSERT ... SELECT` from
/// the latest row (a writing statement holds the write lock from its start); PostgreSQL: the
/// migration's append function (a plain `INSERT ... SELECT` is not safe there: under READ
/// COMMITTED two of them read the same latest row).
fn table_sql(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::Sqlite => {
            r#"INSERT INTO "member_events" ("user_id", "seq", "action", "sign_in_count", "current_sign_in_at", "current_sign_in_ip", "last_sign_in_at", "last_sign_in_ip", "remote_ip", "user_agent", "inserted_at", "device") SELECT u."id", COALESCE(p."seq", 0) + 1, 'login', COALESCE(p."sign_in_count", 0) + 1, ?2, ?3, CASE WHEN p."current_sign_in_at" IS NOT NULL THEN p."current_sign_in_at" WHEN p."last_sign_in_at" IS NOT NULL THEN p."last_sign_in_at" ELSE ?2 END, CASE WHEN p."current_sign_in_at" IS NOT NULL THEN p."current_sign_in_ip" WHEN p."last_sign_in_at" IS NOT NULL THEN p."last_sign_in_ip" ELSE ?3 END, ?3, ?4, ?2, ?5 FROM "members" u LEFT JOIN (SELECT * FROM "member_events" WHERE "user_id" = ?1 ORDER BY "seq" DESC LIMIT 1) p ON 1 = 1 WHERE u."id" = ?1 RETURNING *"#
        }
        _ => {
            r#"SELECT * FROM "member_events_append"($1, 'login', $2, $3, $4, NULL, NULL, NULL, NULL, $5)"#
        }
    }
}

/// A fields-mode login of user `id` from `ip` at `now`: the updated user row.
pub async fn fields_login(
    db: &DatabaseConnection,
    id: i32,
    ip: &str,
    now: DateTime<Utc>,
) -> Result<user::Model> {
    let backend = db.get_database_backend();
    let sql = fields_sql(backend);
    match backend {
        DbBackend::Sqlite => {
            let rows = sqlx::query(sql)
                .bind(ip)
                .bind(now)
                .bind(id)
                .fetch_all(db.get_sqlite_connection_pool())
                .await?;
            decode_user(rows.first().ok_or(sqlx::Error::RowNotFound)?)
        }
        _ => {
            let row = sqlx::query(sql)
                .bind(ip)
                .bind(now)
                .bind(id)
                .fetch_one(db.get_postgres_connection_pool())
                .await?;
            decode_user(&row)
        }
    }
}

/// A table-mode login of member `id` from `ip` with `user_agent` at `now`: the audit row.
pub async fn table_login(
    db: &DatabaseConnection,
    id: i32,
    ip: &str,
    user_agent: &str,
    now: DateTime<Utc>,
) -> Result<member_events::Model> {
    let backend = db.get_database_backend();
    let device = device_label(user_agent);
    let sql = table_sql(backend);
    match backend {
        DbBackend::Sqlite => {
            let rows = sqlx::query(sql)
                .bind(id)
                .bind(now)
                .bind(ip)
                .bind(user_agent)
                .bind(device)
                .fetch_all(db.get_sqlite_connection_pool())
                .await?;
            decode_event(rows.first().ok_or(sqlx::Error::RowNotFound)?)
        }
        _ => {
            let row = sqlx::query(sql)
                .bind(id)
                .bind(now)
                .bind(ip)
                .bind(user_agent)
                .bind(device)
                .fetch_one(db.get_postgres_connection_pool())
                .await?;
            decode_event(&row)
        }
    }
}

/// The user row, field by field.
pub fn decode_user<R>(row: &R) -> Result<user::Model>
where
    R: Row,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> i32: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<DateTime<Utc>>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(user::Model {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        sign_in_count: row.try_get("sign_in_count")?,
        current_sign_in_at: row.try_get("current_sign_in_at")?,
        current_sign_in_ip: row.try_get("current_sign_in_ip")?,
        last_sign_in_at: row.try_get("last_sign_in_at")?,
        last_sign_in_ip: row.try_get("last_sign_in_ip")?,
    })
}

/// The audit row, field by field.
pub fn decode_event<R>(row: &R) -> Result<member_events::Model>
where
    R: Row,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> i32: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> DateTime<Utc>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<DateTime<Utc>>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let action: String = row.try_get("action")?;
    let action = action
        .parse::<Action>()
        .map_err(|error| sqlx::Error::Decode(Box::new(error)))?;
    Ok(member_events::Model {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        seq: row.try_get("seq")?,
        action,
        sign_in_count: row.try_get("sign_in_count")?,
        current_sign_in_at: row.try_get("current_sign_in_at")?,
        current_sign_in_ip: row.try_get("current_sign_in_ip")?,
        last_sign_in_at: row.try_get("last_sign_in_at")?,
        last_sign_in_ip: row.try_get("last_sign_in_ip")?,
        remote_ip: row.try_get("remote_ip")?,
        user_agent: row.try_get("user_agent")?,
        inserted_at: row.try_get("inserted_at")?,
        mac: row.try_get("mac")?,
        client_digest: row.try_get("client_digest")?,
        method: row.try_get("method")?,
        reason: row.try_get("reason")?,
        session_seq: row.try_get("session_seq")?,
        session_digest: row.try_get("session_digest")?,
        device: row.try_get("device")?,
    })
}
