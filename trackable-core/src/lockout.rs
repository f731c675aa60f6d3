//! A lockout decision helper built on the audit-trail queries.

use std::net::IpAddr;
use std::str::FromStr;

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::{ConnectionTrait, EntityTrait, ModelTrait, Value};

use crate::action::Action;
use crate::client::ClientInfo;
use crate::error::Result;
use crate::store::connection::{Connection, atomically};
use crate::store::rows::{get, not_found};
use crate::store::statements::lock_user;
use crate::store::write::ensure_exists;
use crate::tracker::Tracker;
use crate::trail::queries::{count_user_failures, ip_failures};
use crate::trail::tables::{AuditTables, AuditTrail};

/// What to do with a sign-in attempt, as decided by a [`Lockout`] policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LockDecision {
    /// Go on: check the credentials.
    Allow,
    /// The threshold was just reached: the account is now locked until `until`, and a
    /// `lock` event was recorded.
    Lock {
        /// When the cool-off ends.
        until: DateTime<Utc>,
    },
    /// Already locked (or, for an IP, blocked) until `until`: refuse the attempt without
    /// checking the credentials.
    Locked {
        /// When the cool-off ends.
        until: DateTime<Utc>,
    },
}

impl LockDecision {
    /// Whether the attempt may go on.
    pub const fn is_allowed(&self) -> bool {
        matches!(self, LockDecision::Allow)
    }

    /// When the lock ends, if there is one.
    pub const fn until(&self) -> Option<DateTime<Utc>> {
        match self {
            LockDecision::Allow => None,
            LockDecision::Lock { until } | LockDecision::Locked { until } => Some(*until),
        }
    }
}

/// A lockout policy: after `threshold` failed logins within `window`, lock for `cool_off`.
///
/// Built on the audit trail (table mode), it keeps no state of its own:
///
/// - [`check_user`](Lockout::check_user): a user is **locked** while their latest `lock`
///   event is less than `cool_off` old and no `unlock` event came after it. Otherwise, if
///   they have at least `threshold` failed logins within `window` and after their latest
///   login, lock or unlock (in the order of the user's events, their `seq`, whatever the
///   clocks of the app servers that wrote them) (so a lock that ended, a successful login or an unlock by an
///   administrator starts the count again), it records a `lock` event through the tracker
///   and answers [`LockDecision::Lock`].
/// - [`check_ip`](Lockout::check_ip): an IP is **blocked** while it has at least
///   `threshold` failed logins within `window` (of known users and of unknown identifiers,
///   see [`Tracker::failed_login_unknown`]) and its latest failure is less than `cool_off`
///   old. Nothing is recorded for IPs: the answer is [`LockDecision::Locked`] or
///   [`LockDecision::Allow`].
///
/// Times come from the tracker's clock. Unlock early with
/// [`Tracker::unlock`](crate::Tracker::unlock).
///
/// # In a login handler
///
/// ```no_run
/// use trackable_core::{ClientInfo, LockDecision, Lockout, Tracker};
/// # mod member { use sea_orm::entity::prelude::*;
/// # #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, trackable_core::Trackable)]
/// # #[sea_orm(table_name = "members")] #[trackable(table = "member_events")]
/// # pub struct Model { #[sea_orm(primary_key)] pub id: i32, pub email: String }
/// # #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)] pub enum Relation {}
/// # impl ActiveModelBehavior for ActiveModel {} }
/// # fn find_member(_: &str) -> Option<member::Model> { None }
/// # fn password_ok(_: &member::Model, _: &str) -> bool { false }
/// enum SignIn { Ok(member::Model), Refused, TryLater(chrono::DateTime<chrono::Utc>) }
///
/// async fn sign_in(
///     db: &sea_orm::DatabaseConnection,
///     tracker: &Tracker,
///     lockout: &Lockout,
///     client: &ClientInfo,
///     email: &str,
///     password: &str,
/// ) -> trackable_core::Result<SignIn> {
///     // 1. An IP that keeps failing is refused before any lookup.
///     if let Some(ip) = client.ip() {
///         if let Some(until) = lockout.check_ip::<member::Model>(tracker, db, ip).await?.until() {
///             return Ok(SignIn::TryLater(until));
///         }
///     }
///     let Some(user) = find_member(email) else {
///         // 2. Unknown identifier: counted for the IP, the identifier kept only as a keyed hash.
///         tracker.failed_login_unknown::<member::Model>(db, email, client).await?;
///         return Ok(SignIn::Refused);
///     };
///     // 3. A locked account (or one that a concurrent attempt just locked) is refused
///     //    without checking the password.
///     if let Some(until) = lockout.check_user(tracker, db, &user, client).await?.until() {
///         return Ok(SignIn::TryLater(until));
///     }
///     if !password_ok(&user, password) {
///         // 4. Record the failure, then lock if it reached the threshold.
///         tracker.failed_login(db, &user, client).await?;
///         return Ok(match lockout.check_user(tracker, db, &user, client).await? {
///             LockDecision::Allow => SignIn::Refused,
///             decision => SignIn::TryLater(decision.until().unwrap_or_default()),
///         });
///     }
///     tracker.login(db, &user, client).await?;
///     Ok(SignIn::Ok(user))
/// }
/// ```
///
/// Answer the same way for a wrong password and an unknown identifier, so the response does
/// not tell which identifiers exist; a lock message may say when to try again.
///
/// # Concurrency
///
/// On PostgreSQL and MySQL, `check_user` holds the user's row lock (the one every event of
/// the user takes) from the count to the `lock` event, so concurrent failed attempts record
/// one lock. SQLite cannot take that lock before writing without risking a busy error, so
/// two attempts racing past the threshold at the same moment may record two `lock`
/// events a few microseconds apart; the decision is the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lockout {
    threshold: u32,
    window: TimeDelta,
    cool_off: TimeDelta,
}

impl Default for Lockout {
    /// 5 failures within 15 minutes lock for 15 minutes.
    fn default() -> Self {
        Lockout::new(5, TimeDelta::minutes(15), TimeDelta::minutes(15))
    }
}

impl Lockout {
    /// Locks after `threshold` failed logins within `window`, for `cool_off`. A threshold
    /// of 0 counts as 1; negative durations count as zero, and durations beyond 100 years as
    /// 100 years (so that no date arithmetic can overflow).
    pub fn new(threshold: u32, window: TimeDelta, cool_off: TimeDelta) -> Self {
        let longest = TimeDelta::days(36_525);
        Lockout {
            threshold: threshold.max(1),
            window: window.clamp(TimeDelta::zero(), longest),
            cool_off: cool_off.clamp(TimeDelta::zero(), longest),
        }
    }

    /// The number of failures that locks.
    pub const fn threshold(&self) -> u32 {
        self.threshold
    }

    /// How far back failures count.
    pub const fn window(&self) -> TimeDelta {
        self.window
    }

    /// How long a lock lasts.
    pub const fn cool_off(&self) -> TimeDelta {
        self.cool_off
    }

    /// Decides whether `user` is locked, and locks them if their failures reached the
    /// threshold (recording a `lock` event from `client`). See [`Lockout`].
    pub async fn check_user<C, M>(
        &self,
        tracker: &Tracker,
        db: &C,
        user: &M,
        client: &ClientInfo,
    ) -> Result<LockDecision>
    where
        C: Connection,
        M: AuditTrail,
    {
        let backend = db.get_database_backend();
        let Some(lock) = lock_user(backend, user) else {
            // SQLite: see "Concurrency" above. An unknown user is an error on every backend.
            ensure_exists(db, user, Action::Lock).await?;
            return self.decide(tracker, db, user, client).await;
        };
        atomically!(db, |conn| {
            async {
                if conn.query_one_raw(lock).await?.is_none() {
                    return Err(not_found(user, Action::Lock));
                }
                self.decide(tracker, conn, user, client).await
            }
            .await
        })
    }

    async fn decide<C, M>(
        &self,
        tracker: &Tracker,
        db: &C,
        user: &M,
        client: &ClientInfo,
    ) -> Result<LockDecision>
    where
        C: Connection,
        M: AuditTrail,
    {
        let tables = AuditTables::of::<M>();
        let now = tracker.now_in(db).await?;
        let statement = tables.lock_state(db.get_database_backend(), user.__user_id());
        let state = db.query_one_raw(statement).await?;
        let seq = |column| -> Result<Option<i64>> {
            state.as_ref().map_or(Ok(None), |row| get(row, column))
        };
        let (lock_seq, unlock_seq, login_seq) =
            (seq("lock_seq")?, seq("unlock_seq")?, seq("login_seq")?);
        if let Some(row) = &state
            && let Ok(Some(false)) = row.try_get::<Option<bool>>("", "locked_readable")
        {
            return Err(crate::error::Error::InvalidData {
                model: std::any::type_name::<M::Record>(),
                what: "a `lock` event at a time outside the years -262143 to 262142".to_owned(),
            });
        }
        let locked_at = match &state {
            Some(row) => get::<Option<DateTime<Utc>>>(row, "locked_at")?,
            None => None,
        };
        // The order of events is the user's event number, not their times: app servers
        // whose clocks differ still agree on which came last.
        if let (Some(lock), Some(locked_at)) = (lock_seq, locked_at)
            && unlock_seq.is_none_or(|unlock| unlock < lock)
            && now < later(locked_at, self.cool_off)
        {
            return Ok(LockDecision::Locked {
                until: later(locked_at, self.cool_off),
            });
        }
        let reset = [lock_seq, unlock_seq, login_seq]
            .into_iter()
            .flatten()
            .max();
        let failures =
            count_user_failures(db, &tables, user, earlier(now, self.window), reset).await?;
        if failures < u64::from(self.threshold) {
            return Ok(LockDecision::Allow);
        }
        let record = tracker.lock(db, user, client).await?;
        let locked_at = record
            .as_ref()
            .and_then(inserted_at::<M::Audit>)
            .unwrap_or(now);
        Ok(LockDecision::Lock {
            until: later(locked_at, self.cool_off),
        })
    }

    /// Decides whether `ip` is blocked: at least `threshold` failed logins from it within
    /// `window`, the latest less than `cool_off` ago. The IP goes through the tracker's
    /// [`IpPolicy`](crate::IpPolicy) first; under [`IpPolicy::None`](crate::IpPolicy::None)
    /// no IP is stored and every IP is allowed. See [`Lockout`].
    pub async fn check_ip<M>(
        &self,
        tracker: &Tracker,
        db: &impl Connection,
        ip: IpAddr,
    ) -> Result<LockDecision>
    where
        M: AuditTrail,
    {
        let Some(ip) = tracker.ip_policy().apply(ip) else {
            return Ok(LockDecision::Allow);
        };
        let now = tracker.now_in(db).await?;
        let (failures, latest) =
            ip_failures(db, &AuditTables::of::<M>(), &ip, earlier(now, self.window)).await?;
        match latest {
            Some(latest)
                if failures >= u64::from(self.threshold) && now < later(latest, self.cool_off) =>
            {
                Ok(LockDecision::Locked {
                    until: later(latest, self.cool_off),
                })
            }
            _ => Ok(LockDecision::Allow),
        }
    }
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
