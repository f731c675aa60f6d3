//! A lockout built on the audit trail: attempts are reserved before the credentials are
//! checked, so parallel guesses cannot outrun it.

mod gates;

use std::net::IpAddr;
use std::str::FromStr;

use chrono::{DateTime, TimeDelta, Utc};
use ipnet::IpNet;
use sea_orm::{EntityTrait, ModelTrait, Value};

use crate::action::Action;
use crate::client::ClientInfo;
use crate::details::{Details, FailureReason};
use crate::error::{Error, Result};
use crate::store::connection::{Connection, atomically};
use crate::store::rows::{get, value_text};
use crate::store::write::{ensure_exists, retrying};
use crate::tracker::Tracker;
use crate::trail::queries::{count, count_user_failures};
use crate::trail::tables::{AuditTables, AuditTrail};
use gates::{Gate, Gates};

/// What a failed attempt led to, as reported by [`Permit::failed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LockDecision {
    /// The failure was recorded; the account is not locked.
    Allow,
    /// The failure reached the threshold: the account is now locked until `until`, and a
    /// `lock` event was recorded.
    Lock {
        /// When the cool-off ends.
        until: DateTime<Utc>,
    },
    /// The failure was recorded and the client's network is now blocked until `until`;
    /// the account is not locked.
    Locked {
        /// When the block ends.
        until: DateTime<Utc>,
    },
}

impl LockDecision {
    /// Whether the next attempt may go on.
    pub const fn is_allowed(&self) -> bool {
        matches!(self, LockDecision::Allow)
    }

    /// When the lock or block ends, if there is one.
    pub const fn until(&self) -> Option<DateTime<Utc>> {
        match self {
            LockDecision::Allow => None,
            LockDecision::Lock { until } | LockDecision::Locked { until } => Some(*until),
        }
    }
}

/// Why [`Lockout::begin`] refused an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RefusalReason {
    /// The account is locked.
    AccountLocked,
    /// The client's network (its IPv4 address, or its IPv6 /64 by default) has failed too
    /// often.
    NetworkBlocked,
    /// As many attempts as the threshold are already in flight for the account or the
    /// network: one more could be the guess that the lock should have stopped.
    TooManyAttempts,
}

impl RefusalReason {
    /// A short lowercase name, for logs and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            RefusalReason::AccountLocked => "account_locked",
            RefusalReason::NetworkBlocked => "network_blocked",
            RefusalReason::TooManyAttempts => "too_many_attempts",
        }
    }
}

/// An attempt that [`Lockout::begin`] refused: do not check the credentials (but do spend
/// the same time, see [`Lockout`]), and answer that the client may try again at `until`
/// (`Retry-After`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Refusal {
    /// Why.
    pub reason: RefusalReason,
    /// When an attempt may succeed again.
    pub until: DateTime<Utc>,
}

impl Refusal {
    /// The seconds from `now` to [`until`](Self::until), rounded up: the value of a
    /// `Retry-After` header.
    pub fn retry_after_secs(&self, now: DateTime<Utc>) -> u64 {
        let millis = (self.until - now).num_milliseconds().max(0);
        u64::try_from(millis).unwrap_or(0).div_ceil(1000)
    }
}

/// The answer of [`Lockout::begin`].
#[derive(Debug)]
#[must_use = "check the credentials only with a permit, and report its outcome"]
pub enum Attempt<'a, M> {
    /// Check the credentials, then report the outcome with [`Permit::succeeded`] or
    /// [`Permit::failed`].
    Permitted(Permit<'a, M>),
    /// Do not check the credentials. The refusal was recorded in the user's trail (action
    /// `refused`) when the identifier matched a user.
    Refused(Refusal),
}

/// A reserved sign-in attempt: the credentials may be checked once. Report the outcome with
/// [`succeeded`](Self::succeeded) or [`failed`](Self::failed). A permit that is dropped
/// without an outcome (the handler failed) keeps its place until the lockout's
/// [`attempt_timeout`](Lockout::attempt_timeout) has passed, and is then forgotten.
#[derive(Debug)]
#[must_use = "report the outcome with `succeeded` or `failed`"]
pub struct Permit<'a, M> {
    lockout: &'a Lockout,
    tracker: &'a Tracker,
    user: Option<&'a M>,
    identifier: &'a str,
    client: &'a ClientInfo,
    keys: Keys,
}

/// The gates an attempt goes through.
#[derive(Clone, Debug)]
struct Keys {
    /// The account's gate (or the gate of the account from a known IP, see
    /// [`Lockout::exempt_known_ips`]), and that IP.
    account: Option<(String, Option<String>)>,
    /// The client network's gate.
    network: Option<String>,
}

/// How locks grow longer, see [`Lockout::with_progressive_cool_off`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Progressive {
    cap: TimeDelta,
    period: TimeDelta,
}

/// A lockout policy: after `threshold` failed sign-ins within `window`, an account (or a
/// client network) is refused for `cool_off`.
///
/// # The safe order
///
/// [`begin`](Lockout::begin) reserves an attempt **before** the credentials are checked and
/// answers with a [`Permit`] or a [`Refusal`]; the handler checks the credentials only with
/// a permit, and reports the outcome ([`Permit::succeeded`], [`Permit::failed`]). Attempts in
/// flight count against the threshold, so however many guesses arrive at once, at most
/// `threshold` password checks run before the lock, on every backend and across app servers:
/// each attempt first locks its gates, rows of the table `<audit table>_throttle` that the
/// migration creates, one per account and per client network.
///
/// - **Accounts** (an identifier that matched a user): locked while their latest `lock` event
///   is younger than the cool-off and no `unlock` came after it. The failures that count are
///   those within `window` after the latest login, lock or unlock, in the order of the user's
///   events (`seq`), so a lock that ended, a successful sign-in or an administrator's
///   [`Tracker::unlock`] starts the count again. Reaching the threshold records a `lock`.
/// - **Identifiers that matched no user** are locked the same way, counted under a digest of
///   the identifier, so that a lock does not tell which identifiers exist.
/// - **Networks**: the client's IPv4 address, or its IPv6 /64 (see
///   [`with_network_prefixes`](Lockout::with_network_prefixes)), after the tracker's
///   [`IpPolicy`](crate::IpPolicy). A network is blocked for the cool-off once it reaches the
///   threshold within a window. **Clients whose IP is unresolved share one network**, so a
///   forged forwarding header, which resolves to no IP, is throttled rather than let through.
/// - **Refused attempts are recorded** in the user's trail as `refused`, with their IP and user
///   agent, so the owner can see them; they are not failures and do not extend a lock.
///
/// # In a login handler
///
/// ```no_run
/// use trackable_core::{Attempt, ClientInfo, Lockout, Tracker};
/// # mod member { use sea_orm::entity::prelude::*;
/// # #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, trackable_core::Trackable)]
/// # #[sea_orm(table_name = "members")] #[trackable(table = "member_events")]
/// # pub struct Model { #[sea_orm(primary_key)] pub id: i32, pub email: String, pub password_hash: String }
/// # #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)] pub enum Relation {}
/// # impl ActiveModelBehavior for ActiveModel {} }
/// # async fn find_member(_: &str) -> Option<member::Model> { None }
/// # fn verify_password(_: &str, _: &str) -> bool { false }
/// # const DUMMY_HASH: &str = "";
/// enum SignIn { Ok(member::Model), Refused, TryLater(chrono::DateTime<chrono::Utc>) }
///
/// async fn sign_in(
///     db: &sea_orm::DatabaseConnection,
///     tracker: &Tracker,
///     lockout: &Lockout,
///     client: &ClientInfo, // an unresolved IP needs no special case: see above
///     email: &str,
///     password: &str,
/// ) -> trackable_core::Result<SignIn> {
///     let user = find_member(email).await;
///     let attempt = lockout.begin(tracker, db, user.as_ref(), email, client).await?;
///     // The hash runs on every path, against a dummy hash when there is nothing to check,
///     // so that a refusal or an unknown email takes as long as a wrong password.
///     let hash = match (&attempt, &user) {
///         (Attempt::Permitted(_), Some(user)) => user.password_hash.as_str(),
///         _ => DUMMY_HASH,
///     };
///     let matches = verify_password(password, hash);
///     let permit = match attempt {
///         Attempt::Permitted(permit) => permit,
///         Attempt::Refused(refusal) => return Ok(SignIn::TryLater(refusal.until)),
///     };
///     match &user {
///         Some(user) if matches => {
///             permit.succeeded(db).await?;
///             Ok(SignIn::Ok(user.clone()))
///         }
///         _ => {
///             permit.failed(db).await?;
///             Ok(SignIn::Refused)
///         }
///     }
/// }
/// ```
///
/// Answer a wrong password and an unknown identifier the same way. A refusal may say when to
/// try again (`Retry-After`, [`Refusal::retry_after_secs`]): identifiers that match no user
/// are refused the same way, so this tells nothing either.
///
/// # Options and their trade-offs
///
/// - [`with_progressive_cool_off`](Lockout::with_progressive_cool_off): each lock within a
///   period lasts twice as long as the one before, up to a cap. It slows a patient attacker to
///   a few guesses a day, and locks the owner out longer when the attacker keeps at it.
/// - [`exempt_known_ips`](Lockout::exempt_known_ips): an attempt from an IP the user signed in
///   from before is not refused by a lock that an attempt from elsewhere caused, and counts
///   only its own failures. An attacker elsewhere cannot lock the owner out; an attacker who
///   shares the owner's IP (the same office or carrier NAT) is not stopped by the account lock,
///   only by the network's.
///
/// Times come from the tracker's clock ([`Tracker::now_in`]); use
/// [`Tracker::with_database_clock`] with several app servers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lockout {
    threshold: u32,
    window: TimeDelta,
    cool_off: TimeDelta,
    attempt_timeout: TimeDelta,
    progressive: Option<Progressive>,
    exempt_known_ips: bool,
    ipv4_prefix: u8,
    ipv6_prefix: u8,
}

impl Default for Lockout {
    /// 5 failures within 15 minutes lock for 15 minutes.
    fn default() -> Self {
        Lockout::new(5, TimeDelta::minutes(15), TimeDelta::minutes(15))
    }
}

/// The longest duration a lockout takes, so that no date arithmetic can overflow.
const LONGEST: TimeDelta = TimeDelta::days(36_525);

fn clamp(duration: TimeDelta) -> TimeDelta {
    duration.clamp(TimeDelta::zero(), LONGEST)
}

impl Lockout {
    /// Locks after `threshold` failed logins within `window`, for `cool_off`. A threshold
    /// of 0 counts as 1; negative durations count as zero, and durations beyond 100 years as
    /// 100 years (so that no date arithmetic can overflow). Attempts time out after a minute
    /// ([`with_attempt_timeout`](Lockout::with_attempt_timeout)); networks are IPv4
    /// addresses and IPv6 /64s.
    pub fn new(threshold: u32, window: TimeDelta, cool_off: TimeDelta) -> Self {
        Lockout {
            threshold: threshold.max(1),
            window: clamp(window),
            cool_off: clamp(cool_off),
            attempt_timeout: TimeDelta::minutes(1),
            progressive: None,
            exempt_known_ips: false,
            ipv4_prefix: 32,
            ipv6_prefix: 64,
        }
    }

    /// How long a permit without an outcome keeps its place among the attempts in flight:
    /// longer than any credential check takes.
    #[must_use]
    pub fn with_attempt_timeout(mut self, timeout: TimeDelta) -> Self {
        self.attempt_timeout = clamp(timeout);
        self
    }

    /// Each lock lasts `cool_off` × 2^n, where n is the number of the user's locks within
    /// `period` before it, and at most `cap`. See [`Lockout`] for the trade-off.
    #[must_use]
    pub fn with_progressive_cool_off(mut self, cap: TimeDelta, period: TimeDelta) -> Self {
        self.progressive = Some(Progressive {
            cap: clamp(cap).max(self.cool_off),
            period: clamp(period),
        });
        self
    }

    /// Attempts from an IP the user signed in from before are exempt from locks that
    /// attempts from other IPs caused. See [`Lockout`] for the trade-off.
    #[must_use]
    pub fn exempt_known_ips(mut self) -> Self {
        self.exempt_known_ips = true;
        self
    }

    /// The prefix lengths that make a client network: `ipv4` bits of an IPv4 address (32 by
    /// default: the address) and `ipv6` bits of an IPv6 address (64 by default: one
    /// customer's subnet, inside which an attacker can rotate addresses freely). Lengths
    /// beyond the address are taken as the whole address.
    #[must_use]
    pub fn with_network_prefixes(mut self, ipv4: u8, ipv6: u8) -> Self {
        self.ipv4_prefix = ipv4.min(32);
        self.ipv6_prefix = ipv6.min(128);
        self
    }

    /// The number of failures that locks.
    pub const fn threshold(&self) -> u32 {
        self.threshold
    }

    /// How far back failures count.
    pub const fn window(&self) -> TimeDelta {
        self.window
    }

    /// How long a lock lasts (the first one, with a progressive cool-off).
    pub const fn cool_off(&self) -> TimeDelta {
        self.cool_off
    }

    /// How long a permit without an outcome counts as in flight.
    pub const fn attempt_timeout(&self) -> TimeDelta {
        self.attempt_timeout
    }

    /// The prefix lengths of a client network, IPv4 and IPv6.
    pub const fn network_prefixes(&self) -> (u8, u8) {
        (self.ipv4_prefix, self.ipv6_prefix)
    }

    /// Reserves a sign-in attempt of `user` (the user that `identifier` matched, or `None`)
    /// from `client`, before the credentials are checked. See [`Lockout`].
    ///
    /// Runs in `db`'s transaction when it is one (on SQLite, begin it with
    /// [`begin_write`](crate::begin_write)); on a pool, in a short transaction of its own,
    /// retried on conflicts.
    pub async fn begin<'a, C, M>(
        &'a self,
        tracker: &'a Tracker,
        db: &C,
        user: Option<&'a M>,
        identifier: &'a str,
        client: &'a ClientInfo,
    ) -> Result<Attempt<'a, M>>
    where
        C: Connection,
        M: AuditTrail,
    {
        // Read before the transaction: on SQLite, a transaction that reads first cannot wait
        // for the write lock.
        let keys = self.keys(tracker, db, user, identifier, client).await?;
        let refusal = retrying(db, |_| self.reserve(tracker, db, user, client, &keys)).await?;
        Ok(match refusal {
            Some(refusal) => Attempt::Refused(refusal),
            None => Attempt::Permitted(Permit {
                lockout: self,
                tracker,
                user,
                identifier,
                client,
                keys,
            }),
        })
    }

    /// Until when `user` is locked, if they are: for an administrator's page. Attempts are
    /// decided by [`begin`](Lockout::begin).
    pub async fn locked_until<C, M>(
        &self,
        tracker: &Tracker,
        db: &C,
        user: &M,
    ) -> Result<Option<DateTime<Utc>>>
    where
        C: Connection,
        M: AuditTrail,
    {
        ensure_exists(db, user, Action::Lock).await?;
        let now = tracker.now_in(db).await?;
        Ok(self.account(db, user, None, now).await?.locked_until)
    }

    /// Deletes the gates that have been idle longer than anything they hold can last (the
    /// window, the cool-off and its cap, the attempt timeout), and returns how many. Run it
    /// with the retention tasks.
    pub async fn forget_idle_gates<M: AuditTrail>(
        &self,
        tracker: &Tracker,
        db: &impl Connection,
    ) -> Result<u64> {
        let now = tracker.now_in(db).await?;
        let cap = self.progressive.map_or(self.cool_off, |p| p.cap);
        let idle = self.window.max(cap).max(self.attempt_timeout);
        Gates::of::<M>().forget_idle(db, earlier(now, idle)).await
    }

    async fn keys<C, M>(
        &self,
        tracker: &Tracker,
        db: &C,
        user: Option<&M>,
        identifier: &str,
        client: &ClientInfo,
    ) -> Result<Keys>
    where
        C: Connection,
        M: AuditTrail,
    {
        let account = match user {
            Some(user) => {
                let id = value_text(&user.__user_id());
                let ip = client.ip().and_then(|ip| tracker.ip_policy().apply(ip));
                let exempt = match ip {
                    Some(ip) if self.exempt_known_ips => {
                        let statement = AuditTables::of::<M>().login_from_ip(
                            db.get_database_backend(),
                            user.__user_id(),
                            &ip,
                            None,
                        );
                        db.query_one_raw(statement).await?.map(|_| ip)
                    }
                    _ => None,
                };
                let key = match &exempt {
                    Some(ip) => gate_key("user", &format!("{id}@{ip}")),
                    None => gate_key("user", &id),
                };
                (key, exempt)
            }
            None => (
                gate_key("identifier", &identifier_digest(tracker, identifier)),
                None,
            ),
        };
        Ok(Keys {
            account: Some(account),
            network: self.network_key(tracker, client),
        })
    }

    /// The gate of `client`'s network, if the tracker's IP policy leaves something to key it
    /// by (under [`IpPolicy::None`](crate::IpPolicy::None), only with an identifier key).
    fn network_key(&self, tracker: &Tracker, client: &ClientInfo) -> Option<String> {
        let Some(ip) = client.ip() else {
            return Some("network:unresolved".to_owned());
        };
        let ip = ip.to_canonical();
        let len = match ip {
            IpAddr::V4(_) => self.ipv4_prefix,
            IpAddr::V6(_) => self.ipv6_prefix,
        };
        let network = IpNet::new(ip, len).ok()?.trunc();
        let stored = tracker
            .ip_policy()
            .apply(network.network())
            .or_else(|| tracker.identifier_hash(&network.to_string()))?;
        Some(gate_key("network", &format!("{stored}/{len}")))
    }

    async fn reserve<C, M>(
        &self,
        tracker: &Tracker,
        db: &C,
        user: Option<&M>,
        client: &ClientInfo,
        keys: &Keys,
    ) -> Result<Option<Refusal>>
    where
        C: Connection,
        M: AuditTrail,
    {
        let gates = Gates::of::<M>();
        atomically!(db, |conn| {
            async {
                let now = tracker.now_in(conn).await?;
                let (mut account, mut network) = lock_gates(&gates, conn, keys, now).await?;
                let refusal = self
                    .refusal(
                        tracker,
                        conn,
                        user,
                        client,
                        keys,
                        &mut account,
                        &mut network,
                        now,
                    )
                    .await?;
                if refusal.is_none() {
                    let until = later(now, self.attempt_timeout);
                    for gate in [account.as_mut(), network.as_mut()].into_iter().flatten() {
                        gate.reserve(now, until);
                    }
                }
                for gate in [&account, &network].into_iter().flatten() {
                    gates.save(conn, gate, now).await?;
                }
                if let (Some(refusal), Some(user)) = (refusal, user) {
                    let reason = match refusal.reason {
                        RefusalReason::AccountLocked => FailureReason::Locked,
                        RefusalReason::NetworkBlocked => FailureReason::NetworkBlocked,
                        RefusalReason::TooManyAttempts => FailureReason::TooManyAttempts,
                    };
                    let details = Details::new().reason(reason);
                    tracker
                        .track_with(conn, user, Action::Refused, client, &details)
                        .await?;
                }
                Ok::<_, Error>(refusal)
            }
            .await
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn refusal<C, M>(
        &self,
        tracker: &Tracker,
        conn: &C,
        user: Option<&M>,
        client: &ClientInfo,
        keys: &Keys,
        account: &mut Option<Gate>,
        network: &mut Option<Gate>,
        now: DateTime<Utc>,
    ) -> Result<Option<Refusal>>
    where
        C: Connection,
        M: AuditTrail,
    {
        let threshold = u64::from(self.threshold);
        let refuse = |reason, until| Ok(Some(Refusal { reason, until }));
        let in_flight = |gate: &Gate| {
            gate.pending_until()
                .unwrap_or_else(|| later(now, self.attempt_timeout))
        };
        if let Some(gate) = account.as_mut() {
            let failures = match user {
                Some(user) => {
                    let exempt = keys.account.as_ref().and_then(|(_, ip)| ip.as_deref());
                    let state = self.account(conn, user, exempt, now).await?;
                    if let Some(until) = state.locked_until {
                        return refuse(RefusalReason::AccountLocked, until);
                    }
                    if state.failures >= threshold {
                        // Failures recorded without a permit reached the threshold.
                        let until = self.record_lock(tracker, conn, user, client, now).await?;
                        return refuse(RefusalReason::AccountLocked, until);
                    }
                    state.failures
                }
                None => {
                    if let Some(until) = gate.blocked_until(now) {
                        return refuse(RefusalReason::AccountLocked, until);
                    }
                    gate.failures(now, self.window)
                }
            };
            if failures + gate.pending(now) >= threshold {
                return refuse(RefusalReason::TooManyAttempts, in_flight(gate));
            }
        }
        if let Some(gate) = network.as_mut() {
            if let Some(until) = gate.blocked_until(now) {
                return refuse(RefusalReason::NetworkBlocked, until);
            }
            if gate.failures(now, self.window) + gate.pending(now) >= threshold {
                return refuse(RefusalReason::TooManyAttempts, in_flight(gate));
            }
        }
        Ok(None)
    }

    /// Whether `user` is locked, and their failures that count. `exempt_ip`: the attempt
    /// comes from this IP, which the user signed in from before.
    async fn account<C, M>(
        &self,
        conn: &C,
        user: &M,
        exempt_ip: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Account>
    where
        C: Connection,
        M: AuditTrail,
    {
        let tables = AuditTables::of::<M>();
        let statement = tables.lock_state(conn.get_database_backend(), user.__user_id());
        let state = conn.query_one_raw(statement).await?;
        let column =
            |name| -> Result<Option<i64>> { state.as_ref().map_or(Ok(None), |row| get(row, name)) };
        let (lock_seq, unlock_seq, login_seq) = (
            column("lock_seq")?,
            column("unlock_seq")?,
            column("login_seq")?,
        );
        if let Some(row) = &state
            && let Ok(Some(false)) = row.try_get::<Option<bool>>("", "locked_readable")
        {
            return Err(Error::InvalidData {
                model: std::any::type_name::<M::Record>(),
                what: "a `lock` event at a time outside the years -262143 to 262142".to_owned(),
            });
        }
        let (locked_at, locked_ip) = match &state {
            Some(row) => (
                get::<Option<DateTime<Utc>>>(row, "locked_at")?,
                get::<Option<String>>(row, "locked_ip")?,
            ),
            None => (None, None),
        };
        let mut locked_until = None;
        // The order of events is the user's event number, not their times: app servers
        // whose clocks differ still agree on which came last.
        if let (Some(lock), Some(locked_at)) = (lock_seq, locked_at)
            && unlock_seq.is_none_or(|unlock| unlock < lock)
            && exempt_ip.is_none_or(|ip| locked_ip.as_deref() == Some(ip))
        {
            let until = later(
                locked_at,
                self.lock_duration(conn, &tables, user, locked_at, Some(lock))
                    .await?,
            );
            if now < until {
                locked_until = Some(until);
            }
        }
        let reset = [lock_seq, unlock_seq, login_seq]
            .into_iter()
            .flatten()
            .max();
        let since = earlier(now, self.window);
        let failures = count_user_failures(conn, &tables, user, since, reset, exempt_ip).await?;
        Ok(Account {
            locked_until,
            failures,
        })
    }

    /// How long a lock of `user` at `locked_at` (their event `lock_seq`, or the next one)
    /// lasts.
    async fn lock_duration<C, M>(
        &self,
        conn: &C,
        tables: &AuditTables,
        user: &M,
        locked_at: DateTime<Utc>,
        lock_seq: Option<i64>,
    ) -> Result<TimeDelta>
    where
        C: Connection,
        M: AuditTrail,
    {
        let Some(progressive) = self.progressive else {
            return Ok(self.cool_off);
        };
        let statement = tables.earlier_locks(
            conn.get_database_backend(),
            user.__user_id(),
            earlier(locked_at, progressive.period),
            lock_seq,
        );
        let earlier_locks = match conn.query_one_raw(statement).await? {
            Some(row) => count(&row)?,
            None => 0,
        };
        let mut duration = self.cool_off;
        for _ in 0..earlier_locks {
            if duration >= progressive.cap {
                break;
            }
            duration = duration.checked_mul(2).unwrap_or(progressive.cap);
        }
        Ok(duration.min(progressive.cap))
    }

    /// Records a lock of `user` and returns when it ends.
    async fn record_lock<C, M>(
        &self,
        tracker: &Tracker,
        conn: &C,
        user: &M,
        client: &ClientInfo,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>>
    where
        C: Connection,
        M: AuditTrail,
    {
        let tables = AuditTables::of::<M>();
        let duration = self.lock_duration(conn, &tables, user, now, None).await?;
        let record = tracker.track(conn, user, Action::Lock, client).await?;
        let locked_at = record
            .as_ref()
            .and_then(inserted_at::<M::Audit>)
            .unwrap_or(now);
        Ok(later(locked_at, duration))
    }
}

/// What [`Lockout::account`] found.
struct Account {
    locked_until: Option<DateTime<Utc>>,
    failures: u64,
}

/// Locks the gates of `keys`, account first, and reads them.
async fn lock_gates<C: Connection>(
    gates: &Gates,
    conn: &C,
    keys: &Keys,
    now: DateTime<Utc>,
) -> Result<(Option<Gate>, Option<Gate>)> {
    let account = match &keys.account {
        Some((key, _)) => Some(gates.lock(conn, key, now).await?),
        None => None,
    };
    let network = match &keys.network {
        Some(key) => Some(gates.lock(conn, key, now).await?),
        None => None,
    };
    Ok((account, network))
}

impl<M: AuditTrail> Permit<'_, M> {
    /// The user the attempt is for, if the identifier matched one.
    pub fn user(&self) -> Option<&M> {
        self.user
    }

    /// The credentials were right: records the login (which starts the account's count of
    /// failures again) and returns its audit row. On the permit of an identifier that matched
    /// no user, ends the attempt and returns [`Error::NoUserToSignIn`].
    pub async fn succeeded<C: Connection>(self, db: &C) -> Result<M::Record> {
        let details = Details::new().method(crate::details::SignInMethod::Password);
        Ok(self.succeeded_with(db, &details).await?.1)
    }

    /// [`succeeded`](Self::succeeded), recording `details` (the sign-in method, the app's
    /// session id) with the login; returns its session too.
    pub async fn succeeded_with<C: Connection>(
        self,
        db: &C,
        details: &Details,
    ) -> Result<(crate::details::SessionId, M::Record)> {
        let outcome = retrying(db, |_| self.end(db, Some(details))).await?;
        outcome.ok_or(Error::NoUserToSignIn)
    }

    /// The credentials were wrong: records the failed login (for an identifier that matched
    /// no user, see [`Tracker::failed_login_unknown`]), locks the account or blocks the
    /// network if it reached the threshold, and says which.
    pub async fn failed<C: Connection>(self, db: &C) -> Result<LockDecision> {
        retrying(db, |_| self.fail(db)).await
    }

    /// Ends the attempt in its gates, and records the login with `succeeded`'s details.
    async fn end<C: Connection>(
        &self,
        db: &C,
        succeeded: Option<&Details>,
    ) -> Result<Option<(crate::details::SessionId, M::Record)>> {
        let gates = Gates::of::<M>();
        atomically!(db, |conn| {
            async {
                let now = self.tracker.now_in(conn).await?;
                let (account, network) = lock_gates(&gates, conn, &self.keys, now).await?;
                for mut gate in [account, network].into_iter().flatten() {
                    gate.release(now);
                    gates.save(conn, &gate, now).await?;
                }
                match (self.user, succeeded) {
                    (Some(user), Some(details)) => {
                        let tracker = self.tracker;
                        let session = tracker.start_session(conn, user, self.client, details);
                        Ok(Some(session.await?))
                    }
                    _ => Ok::<_, Error>(None),
                }
            }
            .await
        })
    }

    async fn fail<C: Connection>(&self, db: &C) -> Result<LockDecision> {
        let (lockout, tracker, client) = (self.lockout, self.tracker, self.client);
        let gates = Gates::of::<M>();
        atomically!(db, |conn| {
            async {
                let now = tracker.now_in(conn).await?;
                let (mut account, mut network) = lock_gates(&gates, conn, &self.keys, now).await?;
                for gate in [account.as_mut(), network.as_mut()].into_iter().flatten() {
                    gate.release(now);
                }
                let blocked_until = later(now, lockout.cool_off);
                let mut decision = LockDecision::Allow;
                if let Some(gate) = network.as_mut()
                    && let Some(until) =
                        gate.fail(now, lockout.window, lockout.threshold, blocked_until)
                {
                    decision = LockDecision::Locked { until };
                }
                match self.user {
                    Some(user) => {
                        let details = Details::new().reason(FailureReason::WrongPassword);
                        tracker
                            .track_with(conn, user, Action::FailedLogin, client, &details)
                            .await?;
                        let exempt = self.keys.account.as_ref().and_then(|(_, ip)| ip.as_deref());
                        let state = lockout.account(conn, user, exempt, now).await?;
                        if state.locked_until.is_none()
                            && state.failures >= u64::from(lockout.threshold)
                        {
                            let until = lockout
                                .record_lock(tracker, conn, user, client, now)
                                .await?;
                            decision = LockDecision::Lock { until };
                        }
                    }
                    None => {
                        tracker
                            .failed_login_unknown::<M>(conn, self.identifier, client)
                            .await?;
                        if let Some(gate) = account.as_mut()
                            && let Some(until) =
                                gate.fail(now, lockout.window, lockout.threshold, blocked_until)
                        {
                            decision = LockDecision::Lock { until };
                        }
                    }
                }
                for gate in [&account, &network].into_iter().flatten() {
                    gates.save(conn, gate, now).await?;
                }
                Ok::<_, Error>(decision)
            }
            .await
        })
    }
}

/// `kind:text`, or for a long text `kind#<SHA-256 of text>`, so that it fits the gate column.
fn gate_key(kind: &str, text: &str) -> String {
    if text.len() <= 120 {
        format!("{kind}:{text}")
    } else {
        format!("{kind}#{}", sha256_hex(text))
    }
}

/// What an identifier that matched no user is counted under: its keyed hash when the tracker
/// has an identifier key, otherwise its SHA-256 (kept only as long as its gate).
fn identifier_digest(tracker: &Tracker, identifier: &str) -> String {
    tracker
        .identifier_hash(identifier)
        .unwrap_or_else(|| sha256_hex(&tracker.normalize_identifier(identifier)))
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    use std::fmt::Write;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .fold(String::with_capacity(64), |mut hex, byte| {
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

/// The `inserted_at` of an audit row of entity `E`.
fn inserted_at<E: EntityTrait>(record: &E::Model) -> Option<DateTime<Utc>> {
    let column = E::Column::from_str("inserted_at").ok()?;
    match record.get(column) {
        Value::ChronoDateTimeUtc(Some(at)) => Some(at),
        _ => None,
    }
}

/// `at + by`, or the latest time there is. Clocks are injectable, so times can be anything.
fn later(at: DateTime<Utc>, by: TimeDelta) -> DateTime<Utc> {
    at.checked_add_signed(by)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `at - by`, or the earliest time there is.
fn earlier(at: DateTime<Utc>, by: TimeDelta) -> DateTime<Utc> {
    at.checked_sub_signed(by)
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_arithmetic_saturates_at_the_ends_of_time() {
        let day = TimeDelta::days(1);
        assert_eq!(
            later(DateTime::<Utc>::MAX_UTC, day),
            DateTime::<Utc>::MAX_UTC
        );
        assert_eq!(
            earlier(DateTime::<Utc>::MIN_UTC, day),
            DateTime::<Utc>::MIN_UTC
        );
        let now = Utc::now();
        assert_eq!(later(now, day) - now, day);
    }

    #[test]
    fn durations_are_clamped_so_date_arithmetic_cannot_overflow() {
        let lockout = Lockout::new(0, TimeDelta::MAX, TimeDelta::MIN);
        assert_eq!(lockout.threshold(), 1);
        assert_eq!(lockout.window(), TimeDelta::days(36_525));
        assert_eq!(lockout.cool_off(), TimeDelta::zero());
        let now = chrono::Utc::now();
        assert!(now.checked_sub_signed(lockout.window()).is_some());
    }
}
