//! Where an audit trail is stored, and the statements that read it.

use chrono::{DateTime, Utc};
use sea_orm::{DbBackend, EntityTrait, Statement, Value};

use crate::action::Action;
use crate::event::Event;
use crate::store::migration::unknown_table;
use crate::store::rows::{AUDIT_TIMES, push_readable, readable_time};
use crate::store::sql::Sql;
use crate::store::statements::push_now;
use crate::trackable::{Trackable, table_of};

/// A user model tracked in table mode, whose audit trail can be queried.
///
/// `#[derive(Trackable)]` implements it for table mode only, so the queries of
/// [`Tracker`](crate::Tracker) ([`history`](crate::Tracker::history), [`last_login`](crate::Tracker::last_login),
/// [`count_failed_logins`](crate::Tracker::count_failed_logins), ...), the
/// [`Lockout`](crate::Lockout) helper and the retention functions do not compile for a
/// fields-mode model, which keeps no history:
///
/// ```compile_fail
/// use sea_orm::entity::prelude::*;
/// use trackable_core::Trackable;
///
/// #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Trackable)]
/// #[sea_orm(table_name = "users")]
/// pub struct Model {
///     #[sea_orm(primary_key)]
///     pub id: i32,
///     pub sign_in_count: i32,
///     pub current_sign_in_at: Option<DateTimeUtc>,
///     pub current_sign_in_ip: Option<String>,
///     pub last_sign_in_at: Option<DateTimeUtc>,
///     pub last_sign_in_ip: Option<String>,
/// }
/// # #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
/// # pub enum Relation {}
/// # impl ActiveModelBehavior for ActiveModel {}
///
/// async fn run(db: &DatabaseConnection, user: Model) {
///     // error: the trait `AuditTrail` is not implemented for `Model`
///     let _ = trackable_core::Tracker::new().last_login(db, &user).await;
/// }
/// # fn main() {}
/// ```
pub trait AuditTrail: Trackable<Record: AuditRecord> {
    /// The audit entity that the derive generated: its `Model` is [`Trackable::Record`].
    type Audit: EntityTrait<Model = Self::Record>;
}

/// A row of any audit trail: what generic code over several audit tables reads without
/// knowing their generated entities. The derive implements it for every audit entity.
///
/// ```no_run
/// use trackable_core::{AuditRecord, AuditTrail, Tracker};
///
/// async fn last_place<M: AuditTrail>(db: &sea_orm::DatabaseConnection, user: &M)
///     -> trackable_core::Result<Option<String>> {
///     let page = Tracker::new().history(db, user, None, 1).await?;
///     Ok(page.events.first().and_then(|row| row.remote_ip().map(str::to_owned)))
/// }
/// ```
pub trait AuditRecord {
    /// The user's event number.
    fn seq(&self) -> i64;
    /// What happened.
    fn action(&self) -> Action;
    /// The client's IP, after the privacy policy.
    fn remote_ip(&self) -> Option<&str>;
    /// The user agent, after its policy.
    fn user_agent(&self) -> Option<&str>;
    /// When (UTC, microseconds).
    fn inserted_at(&self) -> DateTime<Utc>;
    /// The device label ([`device_label`](crate::device_label)).
    fn device(&self) -> Option<&str>;
}

/// Where an audit trail is stored.
pub(crate) struct AuditTables {
    pub(crate) schema: Option<String>,
    pub(crate) table: &'static str,
    pub(crate) unknown: String,
}

impl AuditTables {
    pub(crate) fn of<M: AuditTrail>() -> Self {
        let (schema, table) = table_of::<M::Audit>();
        AuditTables::new(schema, table)
    }

    pub(crate) fn new(schema: Option<String>, table: &'static str) -> Self {
        AuditTables {
            schema,
            table,
            unknown: unknown_table(table),
        }
    }

    /// `SELECT <select> FROM <audit table> WHERE user_id = ? AND action = ?`
    fn user_action(&self, backend: DbBackend, select: &str, user_id: Value, action: Action) -> Sql {
        let mut sql = Sql::new(backend);
        sql.push("SELECT ")
            .push(select)
            .push(" FROM ")
            .table(self.schema.as_deref(), self.table)
            .push(" WHERE ")
            .ident("user_id")
            .push(" = ")
            .param(user_id)
            .push(" AND ")
            .ident("action")
            .push(" = ")
            .param(action.as_str());
        sql
    }

    /// A login row of the user from stored IP `ip` (before the user's event `before_seq`, if
    /// given). Index `(user_id, action, remote_ip, seq)`.
    pub(crate) fn login_from_ip(
        &self,
        backend: DbBackend,
        user_id: Value,
        ip: &str,
        before_seq: Option<i64>,
    ) -> Statement {
        self.login_with(backend, user_id, "remote_ip", ip, before_seq)
    }

    /// A login row of the user with `value` in `column` (`remote_ip`, `device`), before the
    /// user's event `before_seq` if given. Index `(user_id, action, <column>, seq)`.
    pub(crate) fn login_with(
        &self,
        backend: DbBackend,
        user_id: Value,
        column: &str,
        value: &str,
        before_seq: Option<i64>,
    ) -> Statement {
        let mut sql = self.user_action(backend, "1 AS found", user_id, Action::Login);
        sql.push(" AND ").ident(column).push(" = ").param(value);
        if let Some(seq) = before_seq {
            sql.push(" AND ").ident("seq").push(" < ").param(seq);
        }
        sql.push(" LIMIT 1");
        if backend == DbBackend::MySql && before_seq.is_some() {
            // A locking read sees the latest committed rows even inside a caller's REPEATABLE
            // READ transaction whose snapshot is older than the user-row lock.
            sql.push(" LOCK IN SHARE MODE");
        }
        sql.build()
    }

    /// A user's events, newest first, before their event `before`. Index `(user_id, seq)`.
    pub(crate) fn history(
        &self,
        backend: DbBackend,
        user_id: Value,
        before: Option<i64>,
        limit: u64,
    ) -> Statement {
        let mut sql = Sql::new(backend);
        sql.push("SELECT *");
        push_readable(&mut sql, &AUDIT_TIMES);
        sql.push(" FROM ")
            .table(self.schema.as_deref(), self.table)
            .push(" WHERE ")
            .ident("user_id")
            .push(" = ")
            .param(user_id);
        if let Some(before) = before {
            sql.push(" AND ").ident("seq").push(" < ").param(before);
        }
        sql.push(" ORDER BY ")
            .ident("seq")
            .push(" DESC LIMIT ")
            .param(limit_value(limit));
        sql.build()
    }

    /// A user's logins at or after `since` (and before their event `before_seq`), oldest
    /// first. Index `(user_id, action, inserted_at)`.
    pub(crate) fn logins_since(
        &self,
        backend: DbBackend,
        user_id: Value,
        since: DateTime<Utc>,
        before_seq: Option<i64>,
    ) -> Statement {
        let mut sql = self.user_action(backend, &all_columns(backend), user_id, Action::Login);
        sql.push(" AND ")
            .ident("inserted_at")
            .push(" >= ")
            .param(since);
        if let Some(before) = before_seq {
            sql.push(" AND ").ident("seq").push(" < ").param(before);
        }
        sql.push(" ORDER BY ").ident("seq");
        sql.build()
    }

    /// The events of a user after their event `after_seq` (and before `before_seq`) that end
    /// sessions, in order. Index `(user_id, seq)`.
    pub(crate) fn session_ends(
        &self,
        backend: DbBackend,
        user_id: Value,
        after_seq: i64,
        before_seq: Option<i64>,
    ) -> Statement {
        let mut sql = Sql::new(backend);
        sql.push("SELECT ")
            .idents(["seq", "action", "session_seq"])
            .push(" FROM ")
            .table(self.schema.as_deref(), self.table)
            .push(" WHERE ")
            .ident("user_id")
            .push(" = ")
            .param(user_id)
            .push(" AND ")
            .ident("seq")
            .push(" > ")
            .param(after_seq);
        if let Some(before) = before_seq {
            sql.push(" AND ").ident("seq").push(" < ").param(before);
        }
        sql.push(" AND ")
            .ident("action")
            .push(" IN (")
            .params(
                Action::ALL
                    .into_iter()
                    .filter(|action| action.ends_sessions())
                    .map(Action::as_str),
            )
            .push(") ORDER BY ")
            .ident("seq");
        sql.build()
    }

    /// A user's latest login. Index `(user_id, action, seq)`.
    pub(crate) fn last_login(&self, backend: DbBackend, user_id: Value) -> Statement {
        let mut sql = self.user_action(backend, &all_columns(backend), user_id, Action::Login);
        sql.push(" ORDER BY ").ident("seq").push(" DESC LIMIT 1");
        sql.build()
    }

    /// A user's failed logins at or after `since` (and after their event `after_seq`, and
    /// from stored IP `from_ip`), counted, or the newest `limit` of them. Index `(user_id, action, inserted_at)`.
    pub(crate) fn user_failures(
        &self,
        backend: DbBackend,
        user_id: Value,
        since: DateTime<Utc>,
        after_seq: Option<i64>,
        from_ip: Option<&str>,
        limit: Option<u64>,
    ) -> Statement {
        let select = if limit.is_none() {
            "COUNT(*) AS n".to_owned()
        } else {
            all_columns(backend)
        };
        let mut sql = self.user_action(backend, &select, user_id, Action::FailedLogin);
        sql.push(" AND ")
            .ident("inserted_at")
            .push(" >= ")
            .param(since);
        if let Some(after) = after_seq {
            sql.push(" AND ").ident("seq").push(" > ").param(after);
        }
        if let Some(ip) = from_ip {
            sql.push(" AND ").ident("remote_ip").push(" = ").param(ip);
        }
        if let Some(limit) = limit {
            sql.push(" ORDER BY ")
                .ident("inserted_at")
                .push(" DESC, ")
                .ident("seq")
                .push(" DESC LIMIT ")
                .param(limit_value(limit));
        }
        sql.build()
    }

    /// The failed logins from stored IP `ip` at or after `since`, known users and unknown
    /// identifiers together: their number `n` and the time of the latest, `latest`. Indexes
    /// `(remote_ip, action, inserted_at)` and, on the unknown table, `(remote_ip, inserted_at)`.
    pub(crate) fn ip_failures(
        &self,
        backend: DbBackend,
        ip: &str,
        since: DateTime<Utc>,
    ) -> Statement {
        let mut sql = Sql::new(backend);
        sql.push("SELECT COUNT(*) AS ")
            .ident("n")
            .push(", MAX(")
            .qualified("f", "inserted_at")
            .push(") AS ")
            .ident("latest")
            .push(" FROM (SELECT ")
            .ident("inserted_at")
            .push(" FROM ")
            .table(self.schema.as_deref(), self.table)
            .push(" WHERE ")
            .ident("remote_ip")
            .push(" = ")
            .param(ip)
            .push(" AND ")
            .ident("action")
            .push(" = ")
            .param(Action::FailedLogin.as_str())
            .push(" AND ")
            .ident("inserted_at")
            .push(" >= ")
            .param(since);
        if backend == DbBackend::Postgres {
            sql.push(" AND ");
            readable_time(&mut sql, None, "inserted_at");
        }
        sql.push(" UNION ALL SELECT ")
            .ident("inserted_at")
            .push(" FROM ")
            .table(self.schema.as_deref(), &self.unknown)
            .push(" WHERE ")
            .ident("remote_ip")
            .push(" = ")
            .param(ip)
            .push(" AND ")
            .ident("inserted_at")
            .push(" >= ")
            .param(since);
        if backend == DbBackend::Postgres {
            // A time that cannot be read is left out rather than made the latest.
            sql.push(" AND ");
            readable_time(&mut sql, None, "inserted_at");
        }
        sql.push(") ").ident("f");
        sql.build()
    }

    /// The number `n` of a user's locks at or after `since` and before their event
    /// `before_seq`. Index `(user_id, action, inserted_at)`.
    pub(crate) fn earlier_locks(
        &self,
        backend: DbBackend,
        user_id: Value,
        since: DateTime<Utc>,
        before_seq: Option<i64>,
    ) -> Statement {
        let mut sql = self.user_action(backend, "COUNT(*) AS n", user_id, Action::Lock);
        sql.push(" AND ")
            .ident("inserted_at")
            .push(" >= ")
            .param(since);
        if let Some(before) = before_seq {
            sql.push(" AND ").ident("seq").push(" < ").param(before);
        }
        sql.build()
    }

    /// The event numbers of a user's latest `lock`, `unlock` and `login`, and the time and IP
    /// of the latest `lock` (on PostgreSQL with `locked_readable`, whether that time can be read).
    /// Index `(user_id, action, seq)`, one seek each.
    pub(crate) fn lock_state(&self, backend: DbBackend, user_id: Value) -> Statement {
        let mut sql = Sql::new(backend);
        sql.push("SELECT ");
        let postgres = backend == DbBackend::Postgres;
        let columns: &[(&str, Action, &str)] = &[
            ("MAX(seq)", Action::Lock, "lock_seq"),
            ("MAX(seq)", Action::Unlock, "unlock_seq"),
            ("MAX(seq)", Action::Login, "login_seq"),
            ("inserted_at", Action::Lock, "locked_at"),
            ("remote_ip", Action::Lock, "locked_ip"),
            ("readable", Action::Lock, "locked_readable"),
        ];
        for (i, (select, action, alias)) in columns.iter().enumerate() {
            if *alias == "locked_readable" && !postgres {
                continue;
            }
            if i > 0 {
                sql.push(", ");
            }
            sql.push("(SELECT ");
            match *select {
                "MAX(seq)" => {
                    sql.push("MAX(").ident("seq").push(")");
                }
                "readable" => readable_time(&mut sql, None, "inserted_at"),
                "remote_ip" => {
                    sql.ident("remote_ip");
                }
                _ if postgres => {
                    sql.push("CASE WHEN ");
                    readable_time(&mut sql, None, "inserted_at");
                    sql.push(" THEN ").ident("inserted_at").push(" END");
                }
                _ => {
                    sql.ident("inserted_at");
                }
            }
            sql.push(" FROM ")
                .table(self.schema.as_deref(), self.table)
                .push(" WHERE ")
                .ident("user_id")
                .push(" = ")
                .param(user_id.clone())
                .push(" AND ")
                .ident("action")
                .push(" = ")
                .param(action.as_str());
            if !select.starts_with("MAX") {
                sql.push(" ORDER BY ").ident("seq").push(" DESC LIMIT 1");
            }
            sql.push(") AS ").ident(alias);
        }
        sql.build()
    }

    /// Inserts a failed login for an unknown identifier.
    pub(crate) fn insert_unknown(
        &self,
        backend: DbBackend,
        identifier_hash: Option<String>,
        event: &Event,
    ) -> Statement {
        let mut sql = Sql::new(backend);
        sql.push("INSERT INTO ")
            .table(self.schema.as_deref(), &self.unknown)
            .push(" (")
            .idents(["identifier_hash", "remote_ip", "user_agent", "inserted_at"])
            .push(") VALUES (")
            .param(identifier_hash)
            .push(", ")
            .param(event.ip.clone())
            .push(", ")
            .param(event.user_agent.clone())
            .push(", ");
        push_now(&mut sql, event);
        sql.push(")");
        sql.build()
    }
}

pub(crate) fn limit_value(limit: u64) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// `*`, and on PostgreSQL whether the row's times can be read (see [`push_readable`]).
fn all_columns(backend: DbBackend) -> String {
    let mut sql = Sql::new(backend);
    sql.push("*");
    push_readable(&mut sql, &AUDIT_TIMES);
    sql.build().sql
}
