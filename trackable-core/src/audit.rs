//! Queries on the audit trail of table mode, and failed logins for unknown identifiers.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use sea_orm::{DbBackend, EntityTrait, QueryResult, Statement, Value};

use crate::engine::{decode, decode_with_id, get};
use crate::migration::unknown_table;
use crate::sql::Sql;
use crate::trackable::table_of;
use crate::{Action, ClientInfo, Connection, Error, Result, Trackable, Tracker};

/// A user model tracked in table mode, whose audit trail can be queried.
///
/// `#[derive(Trackable)]` implements it for table mode only, so the queries of
/// [`Tracker`] ([`history`](Tracker::history), [`last_login`](Tracker::last_login),
/// [`count_failed_logins`](Tracker::count_failed_logins), ...), the
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
pub trait AuditTrail: Trackable {
    /// The audit entity that the derive generated: its `Model` is [`Trackable::Record`].
    type Audit: EntityTrait<Model = Self::Record>;
}

/// One page of a user's audit history, newest first. See [`Tracker::history`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryPage<R> {
    /// The events, newest (highest `id`) first.
    pub events: Vec<R>,
    /// The cursor of the next (older) page: pass it as `before`. `None` on the last page.
    pub next: Option<i64>,
}

/// The largest page [`Tracker::history`] and [`Tracker::failed_logins`] return.
pub const MAX_PAGE_SIZE: u64 = 1000;

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

    /// A login row of the user from stored IP `ip` (before row `before_id`, if given). Index
    /// `(user_id, action, remote_ip)`.
    pub(crate) fn login_from_ip(
        &self,
        backend: DbBackend,
        user_id: Value,
        ip: &str,
        before_id: Option<i64>,
    ) -> Statement {
        let mut sql = self.user_action(backend, "1 AS found", user_id, Action::Login);
        sql.push(" AND ").ident("remote_ip").push(" = ").param(ip);
        if let Some(id) = before_id {
            sql.push(" AND ").ident("id").push(" < ").param(id);
        }
        sql.push(" LIMIT 1");
        if backend == DbBackend::MySql && before_id.is_some() {
            // A locking read sees the latest committed rows even inside a caller's REPEATABLE
            // READ transaction whose snapshot is older than the user-row lock.
            sql.push(" LOCK IN SHARE MODE");
        }
        sql.build()
    }

    /// A user's events, newest first, before row `before`. Index `(user_id, id)`.
    pub(crate) fn history(
        &self,
        backend: DbBackend,
        user_id: Value,
        before: Option<i64>,
        limit: u64,
    ) -> Statement {
        let mut sql = Sql::new(backend);
        sql.push("SELECT * FROM ")
            .table(self.schema.as_deref(), self.table)
            .push(" WHERE ")
            .ident("user_id")
            .push(" = ")
            .param(user_id);
        if let Some(before) = before {
            sql.push(" AND ").ident("id").push(" < ").param(before);
        }
        sql.push(" ORDER BY ")
            .ident("id")
            .push(" DESC LIMIT ")
            .param(limit_value(limit));
        sql.build()
    }

    /// A user's latest login. Index `(user_id, action, inserted_at)`.
    pub(crate) fn last_login(&self, backend: DbBackend, user_id: Value) -> Statement {
        let mut sql = self.user_action(backend, "*", user_id, Action::Login);
        sql.push(" ORDER BY ")
            .ident("inserted_at")
            .push(" DESC, ")
            .ident("id")
            .push(" DESC LIMIT 1");
        sql.build()
    }

    /// A user's failed logins at or after `since` (and strictly after `after`), counted, or
    /// the newest `limit` of them. Index `(user_id, action, inserted_at)`.
    pub(crate) fn user_failures(
        &self,
        backend: DbBackend,
        user_id: Value,
        since: DateTime<Utc>,
        after: Option<DateTime<Utc>>,
        limit: Option<u64>,
    ) -> Statement {
        let select = if limit.is_none() {
            "COUNT(*) AS n"
        } else {
            "*"
        };
        let mut sql = self.user_action(backend, select, user_id, Action::FailedLogin);
        sql.push(" AND ")
            .ident("inserted_at")
            .push(" >= ")
            .param(since);
        if let Some(after) = after {
            sql.push(" AND ")
                .ident("inserted_at")
                .push(" > ")
                .param(after);
        }
        if let Some(limit) = limit {
            sql.push(" ORDER BY ")
                .ident("inserted_at")
                .push(" DESC, ")
                .ident("id")
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
            .param(since)
            .push(" UNION ALL SELECT ")
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
            .param(since)
            .push(") ")
            .ident("f");
        sql.build()
    }

    /// The times of a user's latest `lock`, `unlock` and `login`. Index
    /// `(user_id, action, inserted_at)`, one seek each.
    pub(crate) fn lock_state(&self, backend: DbBackend, user_id: Value) -> Statement {
        let mut sql = Sql::new(backend);
        sql.push("SELECT ");
        for (i, (action, alias)) in [
            (Action::Lock, "locked_at"),
            (Action::Unlock, "unlocked_at"),
            (Action::Login, "login_at"),
        ]
        .into_iter()
        .enumerate()
        {
            if i > 0 {
                sql.push(", ");
            }
            sql.push("(SELECT MAX(")
                .ident("inserted_at")
                .push(") FROM ")
                .table(self.schema.as_deref(), self.table)
                .push(" WHERE ")
                .ident("user_id")
                .push(" = ")
                .param(user_id.clone())
                .push(" AND ")
                .ident("action")
                .push(" = ")
                .param(action.as_str())
                .push(") AS ")
                .ident(alias);
        }
        sql.build()
    }

    /// Inserts a failed login for an unknown identifier.
    fn insert_unknown(
        &self,
        backend: DbBackend,
        identifier_hash: Option<String>,
        event: &crate::engine::Event,
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
            .push(", ")
            .param(event.now)
            .push(")");
        sql.build()
    }
}

fn limit_value(limit: u64) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// Column `n` of a `COUNT(*) AS n` row.
fn count(row: &QueryResult) -> Result<u64> {
    Ok(u64::try_from(get::<i64>(row, "n")?).unwrap_or(0))
}

/// The number of failed logins from `ip`, and the time of the latest.
pub(crate) async fn ip_failures<C: Connection>(
    db: &C,
    tables: &AuditTables,
    ip: &str,
    since: DateTime<Utc>,
) -> Result<(u64, Option<DateTime<Utc>>)> {
    let statement = tables.ip_failures(db.get_database_backend(), ip, since);
    match db.query_one_raw(statement).await? {
        Some(row) => Ok((count(&row)?, get(&row, "latest")?)),
        None => Ok((0, None)),
    }
}

/// # Queries on the audit trail (table mode)
///
/// Each query runs one statement that an index of the audit table serves (see
/// [`explain_audit_queries`] and the [crate documentation](crate#security-features)).
/// Times are the stored UTC microseconds; take `since` from [`Tracker::now`].
impl Tracker {
    /// One page of `user`'s events, newest first: the `limit` events (at most
    /// [`MAX_PAGE_SIZE`], at least 1) before the row with id `before`, or the newest ones when
    /// `before` is `None`.
    ///
    /// The order is `id DESC`, the total order of a user's events. Pass the returned
    /// [`next`](HistoryPage::next) as `before` to get the following page: unlike an offset,
    /// the cursor does not skip or repeat rows while new events arrive.
    pub async fn history<C, M>(
        &self,
        db: &C,
        user: &M,
        before: Option<i64>,
        limit: u64,
    ) -> Result<HistoryPage<M::Record>>
    where
        C: Connection,
        M: AuditTrail,
    {
        let limit = limit.clamp(1, MAX_PAGE_SIZE);
        let statement = AuditTables::of::<M>().history(
            db.get_database_backend(),
            user.__user_id(),
            before,
            limit + 1,
        );
        let rows = db.query_all_raw(statement).await?;
        let more = rows.len() as u64 > limit;
        let mut events = Vec::with_capacity(rows.len());
        let mut next = None;
        for row in rows.iter().take(limit as usize) {
            let (event, id) = decode_with_id(row)?;
            events.push(event);
            next = Some(id);
        }
        Ok(HistoryPage {
            events,
            next: if more { next } else { None },
        })
    }

    /// `user`'s latest login: the `login` row with the latest `inserted_at` (the highest
    /// `id` among logins of the same microsecond), or `None` if they never signed in (or
    /// retention purged every login but the latest event).
    pub async fn last_login<C, M>(&self, db: &C, user: &M) -> Result<Option<M::Record>>
    where
        C: Connection,
        M: AuditTrail,
    {
        let statement =
            AuditTables::of::<M>().last_login(db.get_database_backend(), user.__user_id());
        match db.query_one_raw(statement).await? {
            Some(row) => decode(&row).map(Some),
            None => Ok(None),
        }
    }

    /// The number of `user`'s failed logins at or after `since`.
    pub async fn count_failed_logins<C, M>(
        &self,
        db: &C,
        user: &M,
        since: DateTime<Utc>,
    ) -> Result<u64>
    where
        C: Connection,
        M: AuditTrail,
    {
        count_user_failures(db, &AuditTables::of::<M>(), user, since, None).await
    }

    /// `user`'s failed logins at or after `since`, newest first, at most `limit` (capped at
    /// [`MAX_PAGE_SIZE`]).
    pub async fn failed_logins<C, M>(
        &self,
        db: &C,
        user: &M,
        since: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<M::Record>>
    where
        C: Connection,
        M: AuditTrail,
    {
        let statement = AuditTables::of::<M>().user_failures(
            db.get_database_backend(),
            user.__user_id(),
            since,
            None,
            Some(limit.min(MAX_PAGE_SIZE)),
        );
        let rows = db.query_all_raw(statement).await?;
        rows.iter().map(decode).collect()
    }

    /// The number of failed logins from `ip` at or after `since`: those of known users
    /// (audit table of `M`) and those for identifiers that matched no user
    /// ([`failed_login_unknown`](Tracker::failed_login_unknown)), so that username guessing
    /// counts.
    ///
    /// `ip` is the raw client address: it goes through this tracker's
    /// [`IpPolicy`](crate::IpPolicy) first, to match what was stored. Under
    /// [`IpPolicy::None`](crate::IpPolicy::None) no IP is stored and the count is always 0.
    ///
    /// ```no_run
    /// # async fn run(db: &sea_orm::DatabaseConnection, tracker: &trackable_core::Tracker) -> trackable_core::Result<()> {
    /// # mod member { use sea_orm::entity::prelude::*;
    /// # #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, trackable_core::Trackable)]
    /// # #[sea_orm(table_name = "members")] #[trackable(table = "member_events")]
    /// # pub struct Model { #[sea_orm(primary_key)] pub id: i32 }
    /// # #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)] pub enum Relation {}
    /// # impl ActiveModelBehavior for ActiveModel {} }
    /// let since = tracker.now() - chrono::TimeDelta::minutes(15);
    /// let ip = "203.0.113.7".parse().unwrap();
    /// let failures = tracker.count_failed_logins_from::<member::Model>(db, ip, since).await?;
    /// # let _ = failures; Ok(()) }
    /// ```
    pub async fn count_failed_logins_from<M>(
        &self,
        db: &impl Connection,
        ip: IpAddr,
        since: DateTime<Utc>,
    ) -> Result<u64>
    where
        M: AuditTrail,
    {
        let Some(ip) = self.ip_policy().apply(ip) else {
            return Ok(0);
        };
        Ok(ip_failures(db, &AuditTables::of::<M>(), &ip, since)
            .await?
            .0)
    }

    /// Whether `user` never signed in from `ip`: no `login` row of theirs has the stored
    /// value of `ip` under this tracker's [`IpPolicy`](crate::IpPolicy) (so under a
    /// truncating policy, a new network). Call it before [`login`](Tracker::login) to ask
    /// for a second factor; [`Tracker::on_new_ip`] reports the same after the login.
    ///
    /// Under [`IpPolicy::None`](crate::IpPolicy::None) nothing is stored and every IP is new.
    pub async fn is_new_ip<C, M>(&self, db: &C, user: &M, ip: IpAddr) -> Result<bool>
    where
        C: Connection,
        M: AuditTrail,
    {
        let Some(ip) = self.ip_policy().apply(ip) else {
            return Ok(true);
        };
        let statement = AuditTables::of::<M>().login_from_ip(
            db.get_database_backend(),
            user.__user_id(),
            &ip,
            None,
        );
        Ok(db.query_one_raw(statement).await?.is_none())
    }

    /// Records a failed login for an identifier (an email, a user name) that matched no
    /// user, in table `<audit table>_unknown`, so that
    /// [`count_failed_logins_from`](Tracker::count_failed_logins_from) and
    /// [`Lockout::check_ip`](crate::Lockout::check_ip) see username guessing.
    ///
    /// The identifier is stored only as a keyed hash (HMAC-SHA256 under the
    /// [`with_identifier_key`](Tracker::with_identifier_key), 128 bits as `hmac:` and 32 hex digits):
    /// the same identifier gives the same hash, so repeated guesses of one name can be
    /// grouped, but the table does not reveal which names were tried, and typos of real
    /// passwords typed into the name field are not kept. Without an identifier key, no
    /// trace of the identifier is stored. The identifier is hashed exactly as given:
    /// normalise it as your user lookup does (e.g. lowercase emails).
    ///
    /// The IP and user agent go through the tracker's policies, as for every event, and a
    /// `tracing` event (action `failed_login`, `user_id` empty, `unknown_identifier` true) is
    /// emitted.
    pub async fn failed_login_unknown<M>(
        &self,
        db: &impl Connection,
        identifier: &str,
        client: &ClientInfo,
    ) -> Result<()>
    where
        M: AuditTrail,
    {
        let event = self.event(Action::FailedLogin, client);
        let statement = AuditTables::of::<M>().insert_unknown(
            db.get_database_backend(),
            self.identifier_hash(identifier),
            &event,
        );
        let outcome = db
            .execute_raw(statement)
            .await
            .map(drop)
            .map_err(Error::from);
        let (result, error) = match &outcome {
            Ok(()) => ("recorded", None),
            Err(error) => ("failed", Some(error)),
        };
        crate::tracker::log_event(&event, "", result, error, true);
        outcome
    }
}

pub(crate) async fn count_user_failures<C, M>(
    db: &C,
    tables: &AuditTables,
    user: &M,
    since: DateTime<Utc>,
    after: Option<DateTime<Utc>>,
) -> Result<u64>
where
    C: Connection,
    M: AuditTrail,
{
    let statement = tables.user_failures(
        db.get_database_backend(),
        user.__user_id(),
        since,
        after,
        None,
    );
    match db.query_one_raw(statement).await? {
        Some(row) => count(&row),
        None => Ok(0),
    }
}

/// The plan that the database chose for one of the crate's audit-trail queries. See
/// [`explain_audit_queries`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueryPlan {
    /// Which query: `history`, `last_login`, `failed_logins_user`, ...
    pub query: &'static str,
    /// The statement explained.
    pub sql: String,
    /// The plan, one line per plan node: `EXPLAIN QUERY PLAN` on SQLite, `EXPLAIN` on
    /// PostgreSQL, `EXPLAIN` rows (table, access type, key, extra) on MySQL / MariaDB.
    pub plan: String,
}

/// Explains every query that the crate runs on the audit trail of `M` (the queries of
/// [`Tracker`], the [`Lockout`](crate::Lockout) state, the new-IP check and the retention
/// batches), with `user`'s id and sample values, and returns the plans.
///
/// Use it to check that your database uses the indexes created by the migration (a test
/// of this crate does that on every backend). On a small table PostgreSQL prefers a
/// sequential scan whatever the indexes; run `SET enable_seqscan = off` in the same
/// transaction first to see the index the planner would use at scale.
pub async fn explain_audit_queries<C, M>(db: &C, user: &M) -> Result<Vec<QueryPlan>>
where
    C: Connection,
    M: AuditTrail,
{
    let backend = db.get_database_backend();
    let tables = AuditTables::of::<M>();
    let id = user.__user_id();
    let now = Utc::now();
    let since = now - chrono::TimeDelta::hours(1);
    let ip = "192.0.2.1";
    // A retention batch: rows older than 30 days, resuming after a row of the day before.
    let cut_off = now - chrono::TimeDelta::days(30);
    let cursor = Some((cut_off - chrono::TimeDelta::days(1), 0));
    let statements = [
        ("history", tables.history(backend, id.clone(), None, 51)),
        (
            "history_before",
            tables.history(backend, id.clone(), Some(i64::MAX), 51),
        ),
        ("last_login", tables.last_login(backend, id.clone())),
        (
            "failed_logins_user",
            tables.user_failures(backend, id.clone(), since, None, None),
        ),
        (
            "failed_logins_user_rows",
            tables.user_failures(backend, id.clone(), since, None, Some(50)),
        ),
        ("failed_logins_ip", tables.ip_failures(backend, ip, since)),
        (
            "is_new_ip",
            tables.login_from_ip(backend, id.clone(), ip, None),
        ),
        (
            "new_ip_hook",
            tables.login_from_ip(backend, id.clone(), ip, Some(i64::MAX)),
        ),
        ("lockout_state", tables.lock_state(backend, id.clone())),
        (
            "purge_batch",
            crate::retention::audit_batch(backend, &tables, true, cut_off, cursor, 1000),
        ),
        (
            "purge_unknown_batch",
            crate::retention::unknown_batch(backend, &tables, cut_off, cursor, 1000),
        ),
        (
            "anonymize_batch",
            crate::retention::audit_batch(backend, &tables, false, cut_off, cursor, 1000),
        ),
    ];
    let mut plans = Vec::with_capacity(statements.len());
    for (query, statement) in statements {
        let sql = statement.sql.clone();
        let explain = Statement {
            sql: match backend {
                DbBackend::Sqlite => format!("EXPLAIN QUERY PLAN {sql}"),
                _ => format!("EXPLAIN {sql}"),
            },
            ..statement
        };
        let rows = db.query_all_raw(explain).await?;
        plans.push(QueryPlan {
            query,
            sql,
            plan: plan_text(backend, &rows)?,
        });
    }
    Ok(plans)
}

fn plan_text(backend: DbBackend, rows: &[QueryResult]) -> Result<String> {
    let mut lines = Vec::with_capacity(rows.len());
    match backend {
        DbBackend::Sqlite => {
            // Rows are (id, parent, notused, detail); indent each node under its parent.
            let mut depth = std::collections::HashMap::<i64, usize>::new();
            for row in rows {
                let id: i64 = get(row, "id")?;
                let parent: i64 = get(row, "parent")?;
                let level = depth.get(&parent).map_or(0, |d| d + 1);
                depth.insert(id, level);
                lines.push(format!(
                    "{}{}",
                    "  ".repeat(level),
                    get::<String>(row, "detail")?
                ));
            }
        }
        DbBackend::Postgres => {
            for row in rows {
                lines.push(get::<String>(row, "QUERY PLAN")?);
            }
        }
        _ => {
            for row in rows {
                let text = |column: &str| -> Result<String> {
                    Ok(get::<Option<String>>(row, column)?.unwrap_or_default())
                };
                lines.push(format!(
                    "{} {}: type={} key={} {}",
                    text("select_type")?,
                    text("table")?,
                    text("type")?,
                    text("key")?,
                    text("Extra")?,
                ));
            }
        }
    }
    Ok(lines.join("\n"))
}
