//! The hooks called when a user signs in from an IP address or a device new for them.

use chrono::{DateTime, Utc};
use sea_orm::Value;

use super::tables::AuditTables;
use crate::error::Result;
use crate::event::Event;
use crate::state::HasSignInState;
use crate::store::connection::Connection;
use crate::store::rows::value_text;
use crate::store::write::Appended;
use crate::trackable::{EntityOf, Mode, Trackable, table_of};

/// A login from an IP address that the user never signed in from before, as passed to a
/// [`NewIpHook`].
///
/// "Never" means: no earlier `login` row of the user in the audit trail has the same stored
/// IP. The comparison is made on the stored text, after the [`IpPolicy`](crate::IpPolicy):
/// under a truncating policy a new network is what counts, under a keyed hash the same
/// address is recognised without being stored.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct NewIp {
    /// The user's primary key.
    pub user_id: Value,
    /// The IP as stored, after the privacy policy.
    pub ip: String,
    /// The user agent as stored, after its policy.
    pub user_agent: Option<String>,
    /// When the login happened.
    pub at: DateTime<Utc>,
    /// The `id` of the login's audit row.
    pub event_id: i64,
    /// The login's event number among the user's events (`seq`).
    pub seq: i64,
    /// Whether this is the user's first login ever (`sign_in_count` is 1), when every IP is
    /// new. Applications that mail "a new sign-in to your account" usually skip it.
    pub first_login: bool,
}

/// Called after a login from an IP address new for the user: to mail them, ask for a second
/// factor next time, or raise a security event.
///
/// Set it with [`Tracker::on_new_ip`](crate::Tracker::on_new_ip); any
/// `Fn(&NewIp) + Send + Sync` is a hook. It runs in the login's task, after the audit row
/// was written, so it should be quick: hand slow work (mail) to a queue or a spawned task.
///
/// - Table mode only: fields mode keeps no history of IPs, so the hook is never called.
/// - Not called when no IP is stored (unresolved client, or [`IpPolicy::None`](crate::IpPolicy::None)).
/// - Concurrent logins of one user from the same new IP call it once: the login whose audit
///   row comes first (lowest `seq`) is the new one, and a user's rows are appended one at a
///   time (the user row is locked on PostgreSQL and MySQL; SQLite has one writer), so every
///   later login sees it.
/// - Inside the caller's transaction it is called before that transaction commits; if it
///   rolls back, the hook was called for a login that left no row.
/// - If the check fails (a database error), the login still succeeds; the failure is logged
///   as a `tracing` warning (target `trackable`) and the hook is not called.
///
/// ```
/// use trackable_core::{NewIp, Tracker};
///
/// let tracker = Tracker::new().on_new_ip(|sign_in: &NewIp| {
///     if !sign_in.first_login {
///         println!("new sign-in for {:?} from {}", sign_in.user_id, sign_in.ip);
///     }
/// });
/// # let _ = tracker;
/// ```
pub trait NewIpHook: Send + Sync {
    /// Called once per login from an IP address new for the user.
    fn on_new_ip(&self, sign_in: &NewIp);
}

impl<F> NewIpHook for F
where
    F: Fn(&NewIp) + Send + Sync,
{
    fn on_new_ip(&self, sign_in: &NewIp) {
        self(sign_in)
    }
}

/// Calls `hook` if the login just recorded as `appended` is the user's first from
/// its IP.
pub(crate) async fn after_login<C, M>(
    hook: &dyn NewIpHook,
    db: &C,
    user: &M,
    record: &M::Record,
    event: &Event,
    appended: &Appended,
) where
    C: Connection,
    M: Trackable,
{
    let Some(ip) = event.ip.as_deref() else {
        return;
    };
    if first_with(db, user, ("remote_ip", ip), appended, "new-IP").await {
        hook.on_new_ip(&NewIp {
            user_id: user.__user_id(),
            ip: ip.to_owned(),
            user_agent: event.user_agent.clone(),
            at: signed_in_at(record, event),
            event_id: appended.id,
            seq: appended.seq,
            first_login: record.sign_in_state().sign_in_count == 1,
        });
    }
}

/// When the login of `record` happened.
fn signed_in_at<R: HasSignInState>(record: &R, event: &Event) -> DateTime<Utc> {
    record
        .sign_in_state()
        .current_sign_in_at
        .unwrap_or(event.now)
}

/// Whether the login recorded as `appended` is the user's first with `value` in `column`
/// (table mode). A failed check is logged as a warning (`what` names it) and answers no.
async fn first_with<C, M>(
    db: &C,
    user: &M,
    column_value: (&str, &str),
    appended: &Appended,
    what: &str,
) -> bool
where
    C: Connection,
    M: Trackable,
{
    let Mode::Table { table } = M::MODE else {
        return false;
    };
    // The audit table lives in the user table's schema.
    let (schema, _) = table_of::<EntityOf<M>>();
    let tables = AuditTables::new(schema, table);
    let user_id = user.__user_id();
    match seen_before(db, &tables, user_id.clone(), column_value, appended.seq).await {
        Ok(seen) => !seen,
        Err(error) => {
            let user_id = value_text(&user_id);
            tracing::warn!(target: "trackable", user_id, %error, "{what} check failed");
            false
        }
    }
}

/// Whether the user has a login row with `value` in `column` (`remote_ip`, `device`) before
/// their event `before_seq`.
async fn seen_before<C: Connection>(
    db: &C,
    tables: &AuditTables,
    user_id: Value,
    (column, value): (&str, &str),
    before_seq: i64,
) -> Result<bool> {
    let backend = db.get_database_backend();
    let statement = tables.login_with(backend, user_id, column, value, Some(before_seq));
    Ok(db.query_one_raw(statement).await?.is_some())
}

/// A login from a device that the user never signed in from before (by its
/// [`device_label`](crate::device_label)), as passed to a [`NewDeviceHook`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct NewDevice {
    /// The user's primary key.
    pub user_id: Value,
    /// The device label, such as `Firefox on Linux`.
    pub device: String,
    /// The IP as stored, after the privacy policy.
    pub ip: Option<String>,
    /// When the login happened.
    pub at: DateTime<Utc>,
    /// The login's event number among the user's events (`seq`): its session.
    pub seq: i64,
    /// Whether this is the user's first login ever.
    pub first_login: bool,
}

/// Called after a login from a device new for the user, beside [`NewIpHook`]: an update of
/// the browser or the system is the same device, so it does not fire for one. Set it with
/// [`Tracker::on_new_device`](crate::Tracker::on_new_device); it runs like the new-IP hook
/// (table mode, once under concurrent logins, failures logged and the login kept).
///
/// ```
/// use trackable_core::{NewDevice, Tracker};
///
/// let tracker = Tracker::new().on_new_device(|sign_in: &NewDevice| {
///     if !sign_in.first_login {
///         println!("new device for {:?}: {}", sign_in.user_id, sign_in.device);
///     }
/// });
/// # let _ = tracker;
/// ```
pub trait NewDeviceHook: Send + Sync {
    /// Called once per login from a device new for the user.
    fn on_new_device(&self, sign_in: &NewDevice);
}

impl<F> NewDeviceHook for F
where
    F: Fn(&NewDevice) + Send + Sync,
{
    fn on_new_device(&self, sign_in: &NewDevice) {
        self(sign_in)
    }
}

/// Calls `hook` if the login just recorded as `appended` is the user's first from its device.
pub(crate) async fn after_login_device<C, M>(
    hook: &dyn NewDeviceHook,
    db: &C,
    user: &M,
    record: &M::Record,
    event: &Event,
    appended: &Appended,
) where
    C: Connection,
    M: Trackable,
{
    let Some(device) = event.details.device.as_deref() else {
        return;
    };
    if first_with(db, user, ("device", device), appended, "new-device").await {
        hook.on_new_device(&NewDevice {
            user_id: user.__user_id(),
            device: device.to_owned(),
            ip: event.ip.clone(),
            at: signed_in_at(record, event),
            seq: appended.seq,
            first_login: record.sign_in_state().sign_in_count == 1,
        });
    }
}
