use std::fmt;
use std::sync::{Arc, LazyLock};

use chrono::{DateTime, SubsecRound, Utc};

use crate::action::Action;
use crate::client::device_label;
use crate::client::{ClientInfo, HashKey, IdentifierNormalization, IpPolicy, UserAgentPolicy};
use crate::details::{Details, SessionId, SignInMethod};
use crate::error::{Error, Result};
use crate::event::{Event, Stored, log_event};
use crate::store::connection::Connection;
use crate::store::rows::{get, value_text};
use crate::store::write as engine;
use crate::trackable::Trackable;
use crate::trail::hook::{self, NewDeviceHook, NewIpHook};

mod queries;
mod sessions;

pub use queries::TrailsReport;

/// Where a [`Tracker`] reads the time of an event.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

impl<F> Clock for F
where
    F: Fn() -> DateTime<Utc> + Send + Sync,
{
    fn now(&self) -> DateTime<Utc> {
        self()
    }
}

/// Tracks sign-in events with a configuration: the clock, the IP privacy policy and the
/// user-agent capture.
///
/// The free functions ([`track_login`](crate::track_login) and friends) use
/// `Tracker::default()`. A tracker is cheap to clone; build one at start-up and share it.
///
/// ```
/// use trackable_core::{IpPolicy, Tracker};
///
/// let tracker = Tracker::new().with_ip_policy(IpPolicy::None);
/// # let _ = tracker;
/// ```
#[derive(Clone)]
pub struct Tracker {
    clock: Arc<dyn Clock>,
    ip_policy: IpPolicy,
    user_agent: UserAgentPolicy,
    identifier_key: Option<HashKey>,
    identifier_normalization: IdentifierNormalization,
    new_ip_hook: Option<Arc<dyn NewIpHook>>,
    new_device_hook: Option<Arc<dyn NewDeviceHook>>,
    database_clock: bool,
    chain_key: Option<HashKey>,
}

impl fmt::Debug for Tracker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracker")
            .field(
                "clock",
                &format_args!("{}", std::any::type_name_of_val(&*self.clock)),
            )
            .field("ip_policy", &self.ip_policy)
            .field("user_agent", &self.user_agent)
            .field("identifier_key", &self.identifier_key)
            .field("identifier_normalization", &self.identifier_normalization)
            .field("new_ip_hook", &self.new_ip_hook.is_some())
            .field("new_device_hook", &self.new_device_hook.is_some())
            .field("database_clock", &self.database_clock)
            .field("chain_key", &self.chain_key)
            .finish()
    }
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker {
            clock: Arc::new(SystemClock),
            ip_policy: IpPolicy::default(),
            user_agent: UserAgentPolicy::default(),
            identifier_key: None,
            identifier_normalization: IdentifierNormalization::default(),
            new_ip_hook: None,
            new_device_hook: None,
            database_clock: false,
            chain_key: None,
        }
    }
}

pub(crate) static DEFAULT: LazyLock<Tracker> = LazyLock::new(Tracker::default);

macro_rules! event_methods {
    ($($(#[$doc:meta])* $name:ident => $action:ident;)*) => {$(
        $(#[$doc])*
        pub async fn $name<C, M>(&self, db: &C, user: &M, client: &ClientInfo) -> Result<M::Noted>
        where
            C: Connection,
            M: Trackable,
        {
            let record = self.track(db, user, Action::$action, client).await?;
            noted::<M>(record)
        }
    )*};
}

impl Tracker {
    /// A tracker with the default configuration: system clock, full IPs, user agents
    /// captured up to 256 bytes.
    #[must_use]
    pub fn new() -> Self {
        Tracker::default()
    }

    /// Reads the time of events from `clock` (tests use a fixed or stepping clock).
    #[must_use]
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Sets what is stored and logged of client IPs.
    #[must_use]
    pub fn with_ip_policy(mut self, policy: IpPolicy) -> Self {
        self.ip_policy = policy;
        self
    }

    /// Sets what is stored of user agents.
    #[must_use]
    pub fn with_user_agent_policy(mut self, policy: UserAgentPolicy) -> Self {
        self.user_agent = policy;
        self
    }

    /// Sets the key that hashes the identifier of a failed login that matches no user
    /// ([`Tracker::failed_login_unknown`]). Without one, no trace of the identifier is kept.
    ///
    /// The identifier is normalised before it is hashed, by default trimmed and case-folded
    /// ([`IdentifierNormalization::CaseFold`]), so that `"  Alice@Example.com "` and
    /// `"alice@example.com"` have one hash; see [`Tracker::with_identifier_normalization`].
    #[must_use]
    pub fn with_identifier_key(mut self, key: HashKey) -> Self {
        self.identifier_key = Some(key);
        self
    }

    /// Sets how identifiers are normalised before the key of
    /// [`with_identifier_key`](Self::with_identifier_key) hashes them (default
    /// [`IdentifierNormalization::CaseFold`]).
    #[must_use]
    pub fn with_identifier_normalization(mut self, normalization: IdentifierNormalization) -> Self {
        self.identifier_normalization = normalization;
        self
    }

    /// Calls `hook` after each login from an IP address that the user never signed in from
    /// (table mode only). See [`NewIpHook`].
    #[must_use]
    pub fn on_new_ip(mut self, hook: impl NewIpHook + 'static) -> Self {
        self.new_ip_hook = Some(Arc::new(hook));
        self
    }

    /// Keeps a keyed hash chain over each user's audit trail (table mode): every row written
    /// stores `mac`, an HMAC-SHA256 under `key` of the previous row's `mac` and the row's
    /// content, so that [`Tracker::verify_trail`] finds any row altered, removed, inserted
    /// out of band or moved. Load the key from the application's secret store, and keep it
    /// away from the database: whoever holds it can rewrite a trail undetected.
    ///
    /// Each row is then computed here and inserted under the user-row lock (the read and the
    /// insert are two statements, in a transaction), instead of one `INSERT ... SELECT` or
    /// the PostgreSQL append function. The order, counts and conflicts are as without it.
    /// Without a key nothing is chained and `mac` stays `NULL`.
    #[must_use]
    pub fn with_chain_key(mut self, key: HashKey) -> Self {
        self.chain_key = Some(key);
        self
    }

    pub(crate) fn chain_key(&self) -> Option<&HashKey> {
        self.chain_key.as_ref()
    }

    /// Calls `hook` after each login from a device new for the user (table mode): a browser
    /// family and system ([`device_label`]) that no earlier login of theirs had. An update
    /// of the browser or the system is the same device. See [`NewDeviceHook`].
    #[must_use]
    pub fn on_new_device(mut self, hook: impl NewDeviceHook + 'static) -> Self {
        self.new_device_hook = Some(Arc::new(hook));
        self
    }

    /// The IP privacy policy.
    pub fn ip_policy(&self) -> &IpPolicy {
        &self.ip_policy
    }

    /// Takes the time of events from the database server's clock, read in the statement that
    /// records the event (`statement_timestamp()` on PostgreSQL, `UTC_TIMESTAMP(6)` on MySQL),
    /// instead of this process's clock. The lockout reads its "now" from the same clock
    /// ([`Tracker::now_in`]).
    ///
    /// Which to choose: with one app server either is right. With several app servers on one
    /// database, the database's clock gives every event one time line, so time windows (the
    /// failures of the last 15 minutes, the cool-off) mean the same on every server, however
    /// their clocks drift; the order of a user's events is their event number either way.
    /// Keep the app's clock when the time must be the moment the request was handled, or for
    /// tests with a clock of their own ([`Tracker::with_clock`] is then not used for events).
    /// On SQLite, which runs in the app's process, the database's clock is the app's clock.
    #[must_use]
    pub fn with_database_clock(mut self) -> Self {
        self.database_clock = true;
        self
    }

    /// The current time from the tracker's clock, in microseconds: the time the next event
    /// would be recorded at, unless the tracker reads the database's clock (then see
    /// [`Tracker::now_in`]). Use it to compute query windows.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now().trunc_subsecs(6)
    }

    /// The current time of the clock that events are recorded with: the database server's
    /// (one round trip) under [`Tracker::with_database_clock`] on PostgreSQL and MySQL,
    /// otherwise [`Tracker::now`].
    pub async fn now_in<C: Connection>(&self, db: &C) -> Result<DateTime<Utc>> {
        let backend = db.get_database_backend();
        let sql = match backend {
            _ if !self.database_clock => return Ok(self.now()),
            sea_orm::DbBackend::Postgres => "SELECT clock_timestamp() AS now",
            sea_orm::DbBackend::MySql => "SELECT UTC_TIMESTAMP(6) AS now",
            _ => return Ok(self.now()),
        };
        let row = db
            .query_one_raw(sea_orm::Statement::from_string(backend, sql))
            .await?;
        match row {
            Some(row) => get(&row, "now"),
            None => Ok(self.now()),
        }
    }

    /// `identifier` under the tracker's [`IdentifierNormalization`].
    pub(crate) fn normalize_identifier<'a>(
        &self,
        identifier: &'a str,
    ) -> std::borrow::Cow<'a, str> {
        self.identifier_normalization.apply(identifier)
    }

    pub(crate) fn identifier_hash(&self, identifier: &str) -> Option<String> {
        self.identifier_key
            .as_ref()
            .map(|key| key.hash_identifier(identifier, self.identifier_normalization))
    }

    /// Records a successful sign-in and returns the user row (fields mode) or the audit row
    /// (table mode) after it.
    pub async fn login<C, M>(&self, db: &C, user: &M, client: &ClientInfo) -> Result<M::Record>
    where
        C: Connection,
        M: Trackable,
    {
        self.write(db, user, Action::Login, client).await
    }

    /// Records a sign-out and returns the user row (fields mode) or the audit row
    /// (table mode) after it.
    pub async fn logout<C, M>(&self, db: &C, user: &M, client: &ClientInfo) -> Result<M::Record>
    where
        C: Connection,
        M: Trackable,
    {
        self.write(db, user, Action::Logout, client).await
    }

    event_methods! {
        /// Records a sign-in attempt with wrong credentials. Table mode appends a row and
        /// returns it; fields mode writes nothing and returns `()`.
        failed_login => FailedLogin;
        /// Records that the account was locked. Table mode appends a row and returns it;
        /// fields mode writes nothing and returns `()`.
        lock => Lock;
        /// Records that the account was unlocked. Table mode appends a row and returns it;
        /// fields mode writes nothing and returns `()`.
        unlock => Unlock;
        /// Records an unlock token. Table mode appends a row and returns it; fields mode
        /// writes nothing and returns `()`.
        unlock_token => UnlockToken;
        /// Records a password reset. Table mode appends a row and returns it; fields mode
        /// writes nothing and returns `()`.
        password_reset => PasswordReset;
    }

    /// Records `action` for `user`.
    ///
    /// Returns the row written, or `None` when the event writes nothing: in fields mode, only
    /// logins and logouts write.
    pub async fn track<C, M>(
        &self,
        db: &C,
        user: &M,
        action: Action,
        client: &ClientInfo,
    ) -> Result<Option<M::Record>>
    where
        C: Connection,
        M: Trackable,
    {
        self.track_with(db, user, action, client, &Details::new())
            .await
    }

    /// Records `action` for `user` with `details`: how they signed in, why it failed, which
    /// session it ends (table mode; fields mode keeps only its five columns). See
    /// [`Tracker::track`].
    pub async fn track_with<C, M>(
        &self,
        db: &C,
        user: &M,
        action: Action,
        client: &ClientInfo,
        details: &Details,
    ) -> Result<Option<M::Record>>
    where
        C: Connection,
        M: Trackable,
    {
        if !engine::writes::<M>(action) {
            let event = self.event(action, client);
            // Nothing to write, but an unknown user is still an error.
            if let Err(error) = engine::ensure_exists(db, user, action).await {
                log(&event, user, "failed", Some(&error));
                return Err(error);
            }
            log(&event, user, "skipped", None);
            return Ok(None);
        }
        let (record, _) = self.write_with(db, user, action, client, details).await?;
        Ok(Some(record))
    }

    async fn write<C, M>(
        &self,
        db: &C,
        user: &M,
        action: Action,
        client: &ClientInfo,
    ) -> Result<M::Record>
    where
        C: Connection,
        M: Trackable,
    {
        let (record, _) = self
            .write_with(db, user, action, client, &Details::new())
            .await?;
        Ok(record)
    }

    /// Writes one event; returns the row written and, in table mode, where the audit row is.
    pub(crate) async fn write_with<C, M>(
        &self,
        db: &C,
        user: &M,
        action: Action,
        client: &ClientInfo,
        details: &Details,
    ) -> Result<(M::Record, Option<engine::Appended>)>
    where
        C: Connection,
        M: Trackable,
    {
        // Only an audit row stores the details: fields mode is spared the user-agent parse.
        let event = match M::MODE {
            crate::trackable::Mode::Fields => self.event(action, client),
            crate::trackable::Mode::Table { .. } => self.event_with(action, client, details),
        };
        let outcome = engine::write(db, user, &event).await;
        match &outcome {
            Ok(_) => log(&event, user, "recorded", None),
            Err(error) => log(&event, user, "failed", Some(error)),
        }
        let (record, appended) = outcome?;
        if let Some(engine::Appended {
            seq,
            mac: Some(mac),
            ..
        }) = &appended
        {
            // The trail's head leaves the database: deleting the newest rows can then be
            // told from a copy of the logs (see `Tracker::verify_trail`).
            tracing::info!(
                target: "trackable::chain",
                user_id = %value_text(&user.__user_id()),
                seq,
                mac = %mac,
                "trail head"
            );
        }
        if let (Some(appended), Action::Login) = (&appended, action) {
            if let Some(hook) = &self.new_ip_hook {
                hook::after_login(&**hook, db, user, &record, &event, appended).await;
            }
            if let Some(hook) = &self.new_device_hook {
                hook::after_login_device(&**hook, db, user, &record, &event, appended).await;
            }
        }
        Ok((record, appended))
    }

    /// The event of `action` from `client`, without details (nothing stores them).
    pub(crate) fn event(&self, action: Action, client: &ClientInfo) -> Event {
        Event {
            action,
            // Microseconds: what every backend stores, so a value reads back equal.
            now: self.now(),
            database_clock: self.database_clock,
            ip: client.ip().and_then(|ip| self.ip_policy.apply(ip)),
            user_agent: client.user_agent().and_then(|ua| self.user_agent.apply(ua)),
            chain: self.chain_key.clone(),
            details: Stored::default(),
        }
    }

    /// The event of `action` from `client` with the details an audit row stores.
    pub(crate) fn event_with(
        &self,
        action: Action,
        client: &ClientInfo,
        details: &Details,
    ) -> Event {
        let event = self.event(action, client);
        Event {
            details: Stored {
                method: details.method.as_ref().map(SignInMethod::as_stored),
                reason: details.reason.map(|reason| reason.as_str().to_owned()),
                session_seq: details.session.map(SessionId::seq),
                session_digest: details
                    .app_session_id
                    .as_deref()
                    .zip(self.identifier_key.as_ref())
                    .map(|(id, key)| key.hash_session(id)),
                // From the raw user agent, where its policy keeps one.
                device: event
                    .user_agent
                    .as_ref()
                    .and(client.user_agent())
                    .and_then(device_label),
            },
            ..event
        }
    }
}

/// One `tracing` event per tracked event, with the IP after the privacy policy. Nothing
/// secret reaches it: the runtime never sees passwords, tokens or session ids.
fn log<M: Trackable>(event: &Event, user: &M, outcome: &'static str, error: Option<&Error>) {
    // The user's key is formatted only for a subscriber that wants the event: it is on the
    // path of every login.
    let wanted = match error {
        None => tracing::enabled!(target: "trackable", tracing::Level::INFO),
        Some(_) => tracing::enabled!(target: "trackable", tracing::Level::WARN),
    };
    if wanted {
        let user_id = value_text(&user.__user_id());
        log_event(event, &user_id, outcome, error, false);
    }
}

/// What a table-mode-only event returns: see [`Trackable::Noted`].
fn noted<M: Trackable>(record: Option<M::Record>) -> Result<M::Noted> {
    M::__noted(record).ok_or_else(|| Error::InvalidData {
        model: std::any::type_name::<M>(),
        what: "no audit row for a table-mode event".to_owned(),
    })
}

macro_rules! free_functions {
    ($($(#[$doc:meta])* $name:ident => $method:ident;)*) => {$(
        $(#[$doc])*
        pub async fn $name<C, M>(db: &C, user: &M, client: &ClientInfo) -> Result<M::Noted>
        where
            C: Connection,
            M: Trackable,
        {
            DEFAULT.$method(db, user, client).await
        }
    )*};
}

/// Records a successful sign-in with the default [`Tracker`]. See [`Tracker::login`].
pub async fn track_login<C, M>(db: &C, user: &M, client: &ClientInfo) -> Result<M::Record>
where
    C: Connection,
    M: Trackable,
{
    DEFAULT.login(db, user, client).await
}

/// Records a sign-out with the default [`Tracker`]. See [`Tracker::logout`].
pub async fn track_logout<C, M>(db: &C, user: &M, client: &ClientInfo) -> Result<M::Record>
where
    C: Connection,
    M: Trackable,
{
    DEFAULT.logout(db, user, client).await
}

/// Records `action` with the default [`Tracker`]. See [`Tracker::track`].
pub async fn track<C, M>(
    db: &C,
    user: &M,
    action: Action,
    client: &ClientInfo,
) -> Result<Option<M::Record>>
where
    C: Connection,
    M: Trackable,
{
    DEFAULT.track(db, user, action, client).await
}

free_functions! {
    /// Records a failed sign-in with the default [`Tracker`]. See [`Tracker::failed_login`].
    track_failed_login => failed_login;
    /// Records a lock with the default [`Tracker`]. See [`Tracker::lock`].
    track_lock => lock;
    /// Records an unlock with the default [`Tracker`]. See [`Tracker::unlock`].
    track_unlock => unlock;
    /// Records an unlock token with the default [`Tracker`]. See [`Tracker::unlock_token`].
    track_unlock_token => unlock_token;
    /// Records a password reset with the default [`Tracker`]. See [`Tracker::password_reset`].
    track_password_reset => password_reset;
}
