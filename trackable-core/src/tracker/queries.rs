//! The audit-trail queries of [`Tracker`], and failed logins for unknown identifiers.

use std::net::IpAddr;

use chrono::{DateTime, Utc};

use super::Tracker;
use crate::action::Action;
use crate::client::ClientInfo;
use crate::error::{Error, Result};
use crate::event::log_event;
use crate::store::connection::Connection;
use crate::store::rows::{decode, get};
use crate::trail::queries::{HistoryPage, MAX_PAGE_SIZE, count_user_failures, ip_failures};
use crate::trail::tables::{AuditTables, AuditTrail};

/// # Queries on the audit trail (table mode)
///
/// Each query runs one statement that an index of the audit table serves (see
/// [`explain_audit_queries`](crate::explain_audit_queries) and the [crate documentation](crate#security-features)).
/// Times are the stored UTC microseconds; take `since` from [`Tracker::now`].
impl Tracker {
    /// One page of `user`'s events, newest first: the `limit` events (at most
    /// [`MAX_PAGE_SIZE`], at least 1) before the user's event number `before` (`seq`), or the
    /// newest ones when `before` is `None`.
    ///
    /// The order is `seq DESC`, the user's event numbers: the total order of their events,
    /// whatever the clocks of the app servers that recorded them. Pass the returned
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
            let (event, seq) = (decode(row)?, get::<i64>(row, "seq")?);
            events.push(event);
            next = Some(seq);
        }
        Ok(HistoryPage {
            events,
            next: if more { next } else { None },
        })
    }

    /// `user`'s latest login: the `login` row with the highest event number (`seq`), whatever
    /// the clocks of the app servers that recorded the logins, or `None` if they never signed in (or
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
        count_user_failures(db, &AuditTables::of::<M>(), user, since, None, None).await
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
    /// [`count_failed_logins_from`](Tracker::count_failed_logins_from) sees username
    /// guessing. [`Permit::failed`](crate::Permit::failed) calls it for such identifiers.
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
        log_event(&event, "", result, error, true);
        outcome
    }
}
