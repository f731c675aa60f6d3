//! The statements behind every tracked event.
//!
//! Both modes compute the new state in SQL from the row as stored, never from the model the
//! caller holds, so concurrent events cannot lose each other's writes:
//!
//! - fields mode is one `UPDATE ... RETURNING` (an `UPDATE` and a `SELECT` in one transaction
//!   where the backend has no `RETURNING`);
//! - table mode is one `INSERT ... SELECT` from the user's latest audit row, computed by one
//!   statement text for every action (see [`audit_insert`]).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::ColumnType;
use sea_orm::{ColumnTrait, DbBackend, IdenStatic, Value};

use super::rows::push_readable;
use super::sql::Sql;
use crate::action::Action;
use crate::event::Event;
use crate::trackable::{EntityOf, FieldColumns, Mode, Trackable, Tracking, table_of};

/// The statement that locks `user`'s row until the end of the transaction, so that the
/// events of one user are appended one at a time (table mode on PostgreSQL and MySQL).
/// `None` where no lock is needed: fields mode, and SQLite, whose writing statements hold
/// the database's write lock.
pub(crate) fn lock_user<M: Trackable>(backend: DbBackend, user: &M) -> Option<sea_orm::Statement> {
    if M::MODE == Mode::Fields || backend == DbBackend::Sqlite {
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
pub(crate) fn select_user<M: Trackable>(backend: DbBackend, user: &M) -> Sql {
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

/// The fields-mode `UPDATE` of a login or a logout.
///
/// Assignments come in an order that gives the same result whether `SET` reads the old row
/// (SQL standard, PostgreSQL, SQLite) or the values assigned before it (MySQL): every
/// column is assigned after the assignments that read its old value.
pub(crate) fn fields_update<E: sea_orm::EntityTrait>(
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
    // The value of an IP (false) or a time (true) column.
    let value = |sql: &mut Sql, time: bool| {
        if time {
            push_now(sql, event);
        } else {
            sql.param(event.ip.clone());
        }
    };
    let pairs = [(last_ip, cur_ip, false), (last_at, cur_at, true)];
    for (last, current, time) in pairs {
        sql.ident(last)
            .push(" = CASE WHEN ")
            .ident(cur_at)
            .push(" IS NOT NULL THEN ")
            .ident(current);
        if login {
            sql.push(" WHEN ").ident(last_at).push(" IS NOT NULL THEN ");
            sql.ident(last).push(" ELSE ");
            value(&mut sql, time);
        } else {
            sql.push(" ELSE ").ident(last);
        }
        sql.push(" END, ");
    }
    if login {
        // current = (now, ip), count + 1
        for (current, time) in [(cur_ip, false), (cur_at, true)] {
            sql.ident(current).push(" = ");
            value(&mut sql, time);
            sql.push(", ");
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
    if login {
        // At the column's limit nothing is written, and the caller reports it.
        let max = match c.sign_in_count.def().get_column_type() {
            ColumnType::BigInteger | ColumnType::BigUnsigned => I64_MAX,
            _ => "2147483647",
        };
        sql.push(" AND COALESCE(")
            .ident(count)
            .push(", 0) < ")
            .push(max);
    }
    if returning {
        sql.push(" RETURNING *");
        push_readable(&mut sql, &[cur_at, last_at]);
    }
    sql.build()
}

/// The audit table's columns, in insertion order.
pub(crate) const AUDIT_COLUMNS: [&str; 11] = [
    "user_id",
    "seq",
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

/// The detail columns of an audit row, after [`AUDIT_COLUMNS`], and the arguments that fill
/// them.
pub(crate) const DETAIL_COLUMNS: [(&str, Arg); 5] = [
    ("method", Arg::Method),
    ("reason", Arg::Reason),
    ("session_seq", Arg::SessionSeq),
    ("session_digest", Arg::SessionDigest),
    ("device", Arg::Device),
];

/// The columns of the hash chain, written only under a chain key.
pub(crate) const CHAIN_COLUMNS: [&str; 2] = ["mac", "client_digest"];

/// The inputs of the table-mode statement: bound parameters of one event, or the parameters
/// of the PostgreSQL function that runs it (see [`pg_append_function`]).
pub(crate) enum Args<'a> {
    Bind {
        event: &'a Event,
        user_id: &'a Value,
    },
    Function,
}

#[derive(Clone, Copy)]
pub(crate) enum Arg {
    UserId,
    Action,
    Now,
    Ip,
    UserAgent,
    Method,
    Reason,
    SessionSeq,
    SessionDigest,
    Device,
}

impl Arg {
    /// The arguments of the PostgreSQL append function, in order, with their types.
    pub(crate) const FUNCTION: [(Arg, &'static str); 10] = [
        (Arg::UserId, ""),
        (Arg::Action, "text"),
        (Arg::Now, "timestamptz"),
        (Arg::Ip, "text"),
        (Arg::UserAgent, "text"),
        (Arg::Method, "text"),
        (Arg::Reason, "text"),
        (Arg::SessionSeq, "bigint"),
        (Arg::SessionDigest, "text"),
        (Arg::Device, "text"),
    ];

    /// Its name as a parameter of the PostgreSQL append function.
    pub(crate) const fn parameter(self) -> &'static str {
        match self {
            Arg::UserId => "p_user_id",
            Arg::Action => "p_action",
            Arg::Now => "p_now",
            Arg::Ip => "p_ip",
            Arg::UserAgent => "p_user_agent",
            Arg::Method => "p_method",
            Arg::Reason => "p_reason",
            Arg::SessionSeq => "p_session_seq",
            Arg::SessionDigest => "p_session_digest",
            Arg::Device => "p_device",
        }
    }
}

impl Args<'_> {
    pub(crate) fn put(&self, sql: &mut Sql, arg: Arg) {
        match self {
            Args::Bind { event, user_id } => match arg {
                Arg::UserId => sql.param((*user_id).clone()),
                Arg::Action => sql.param(event.action.as_str()),
                Arg::Now => {
                    push_now(sql, event);
                    sql
                }
                Arg::Ip => sql.param(event.ip.clone()),
                Arg::UserAgent => sql.param(event.user_agent.clone()),
                Arg::Method => sql.param(event.details.method.clone()),
                Arg::Reason => sql.param(event.details.reason.clone()),
                Arg::SessionSeq => sql.param(event.details.session_seq),
                Arg::SessionDigest => sql.param(event.details.session_digest.clone()),
                Arg::Device => sql.param(event.details.device.clone()),
            },
            Args::Function => sql.push(arg.parameter()),
        };
    }
}

/// The time of `event`: a bound parameter from the tracker's clock or, with the database's
/// clock, the time of the statement on the database server.
pub(crate) fn push_now(sql: &mut Sql, event: &Event) {
    match (event.database_clock, sql.backend()) {
        (true, DbBackend::Postgres) => sql.push("statement_timestamp()"),
        (true, DbBackend::MySql) => sql.push("UTC_TIMESTAMP(6)"),
        _ => sql.param(event.now),
    };
}

/// The table-mode `INSERT ... SELECT`: one new row computed from the user's latest row `p`
/// (absent for the first event) by the rule of [`SignInState::apply`](crate::SignInState),
/// and only if the user `u` exists. One statement text serves every action.
pub(crate) fn audit_insert(
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
        .push(", ")
        .idents(DETAIL_COLUMNS.map(|(column, _)| column))
        .push(") SELECT ")
        .qualified("u", user_pk)
        .push(", COALESCE(")
        .qualified("p", "seq")
        .push(", 0) + 1, ");
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
    for (_, arg) in DETAIL_COLUMNS {
        sql.push(", ");
        args.put(sql, arg);
    }
    sql.push(" FROM ").table(schema, users).push(" ").ident("u");
    sql.push(" LEFT JOIN (SELECT * FROM ").table(schema, table);
    sql.push(" WHERE ").ident("user_id").push(" = ");
    args.put(sql, Arg::UserId);
    sql.push(" ORDER BY ")
        .ident("seq")
        .push(" DESC LIMIT 1) ")
        .ident("p")
        .push(" ON 1 = 1");
    sql.push(" WHERE ").qualified("u", user_pk).push(" = ");
    args.put(sql, Arg::UserId);
    // At the integer limit nothing is written (the caller reports it), rather than an
    // overflow error or, on SQLite, a value that no longer fits.
    sql.push(" AND COALESCE(")
        .qualified("p", "seq")
        .push(", 0) < ")
        .push(I64_MAX)
        .push(" AND (");
    args.put(sql, Arg::Action);
    sql.push(" <> 'login' OR COALESCE(")
        .qualified("p", "sign_in_count")
        .push(", 0) < ")
        .push(I64_MAX)
        .push(")");
}

const I64_MAX: &str = "9223372036854775807";
