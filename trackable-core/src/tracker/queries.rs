//! The audit-trail queries of [`Tracker`], and failed logins for unknown identifiers.

use std::net::IpAddr;

use chrono::{DateTime, Utc};

use super::Tracker;
use crate::action::Action;
use crate::client::ClientInfo;
use crate::error::{Error, Result};
use crate::event::log_event;
use crate::store::connection::Connection;
use sea_orm::{EntityTrait, Iterable, ModelTrait, PaginatorTrait, PrimaryKeyToColumn, QueryOrder};

use crate::store::rows::{decode, get, value_text};
use crate::trail::queries::{
    Activity, HistoryPage, MAX_PAGE_SIZE, count_user_failures, ip_failures,
};
use crate::trail::tables::{AuditTables, AuditTrail};
use crate::trail::verify::{self, TrailHead, TrailReport};

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
        self.history_as(db, user, before, limit, decode).await
    }

    /// One page of `user`'s events like [`Tracker::history`], as [`Activity`]: every column
    /// the audit table holds, the details included (device, method, reason, session), in one
    /// type for every model.
    pub async fn activity<C, M>(
        &self,
        db: &C,
        user: &M,
        before: Option<i64>,
        limit: u64,
    ) -> Result<HistoryPage<Activity>>
    where
        C: Connection,
        M: AuditTrail,
    {
        self.history_as(db, user, before, limit, Activity::read)
            .await
    }

    async fn history_as<C, M, R>(
        &self,
        db: &C,
        user: &M,
        before: Option<i64>,
        limit: u64,
        decode: impl Fn(&sea_orm::QueryResult) -> Result<R>,
    ) -> Result<HistoryPage<R>>
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

/// Every user's trail, verified by [`Tracker::verify_trails`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrailsReport {
    /// Users whose trail was verified.
    pub users: u64,
    /// Rows verified.
    pub rows: u64,
    /// The users whose trail broke (their key as text), with the report.
    pub broken: Vec<(String, TrailReport)>,
}

/// # The hash chain (table mode, under [`Tracker::with_chain_key`])
impl Tracker {
    /// Verifies `user`'s trail: each row's `mac` against its content and the row before,
    /// from the first row, or from the purge's anchor after a purge. With `head` (a
    /// [`TrailHead`] kept outside the database), also that no newer rows were removed and the
    /// head's row is the one exported. Returns the first break, if any, with its kind.
    ///
    /// Anonymised IPs and removed user agents do not break the chain (it covers them through
    /// `client_digest`, taken when the row was written); neither would other values written
    /// into those columns. Rows written before the key was set are counted as `unchained`.
    pub async fn verify_trail<C, M>(
        &self,
        db: &C,
        user: &M,
        head: Option<&TrailHead>,
    ) -> Result<TrailReport>
    where
        C: Connection,
        M: AuditTrail,
    {
        let key = self.chain_key().ok_or(Error::NoChainKey)?;
        verify::verify(db, &AuditTables::of::<M>(), key, user.__user_id(), head).await
    }

    /// Keeps `user`'s trail when the user is deleted, under a pseudonym: moves its rows to
    /// `<table>_archive` with the user's key replaced by a keyed digest of it (returned, the
    /// same the chain uses), and without IPs and user agents; then erases the trail and the
    /// user's anchor (see [`erase_audit_trail`](crate::erase_audit_trail)). Run it in the
    /// transaction that deletes the user. The archived trail still verifies
    /// ([`Tracker::verify_archived_trail`]). Needs the chain key.
    ///
    /// Which to choose when a user is deleted: under the GDPR's right to erasure, erase (or
    /// let the foreign key cascade): a pseudonymised trail is still personal data for
    /// whoever holds the key. Where security logs must be kept (OWASP ASVS 16.4, a legal
    /// hold), archive: the trail keeps what happened and when, and stays verifiable, without
    /// the user's key, IPs or user agents.
    pub async fn archive_audit_trail<C, M>(&self, db: &C, user: &M) -> Result<(String, u64)>
    where
        C: Connection,
        M: AuditTrail,
    {
        let key = self.chain_key().ok_or(Error::NoChainKey)?;
        let subject = crate::store::chain::subject(key, &value_text(&user.__user_id()));
        let now = self.now_in(db).await?;
        let rows = crate::trail::retention::archive(db, user, &subject, now).await?;
        Ok((subject, rows))
    }

    /// Verifies the archived trail of pseudonym `subject` (from
    /// [`Tracker::archive_audit_trail`]).
    pub async fn verify_archived_trail<C, M>(&self, db: &C, subject: &str) -> Result<TrailReport>
    where
        C: Connection,
        M: AuditTrail,
    {
        let key = self.chain_key().ok_or(Error::NoChainKey)?;
        verify::verify_archived(db, &AuditTables::of::<M>(), key, subject).await
    }

    /// The newest row of `user`'s trail, to keep outside the database.
    pub async fn trail_head<C, M>(&self, db: &C, user: &M) -> Result<Option<TrailHead>>
    where
        C: Connection,
        M: AuditTrail,
    {
        verify::head(db, &AuditTables::of::<M>(), user.__user_id()).await
    }

    /// Verifies the trail of every user of `M`, `batch` users at a time (in primary-key
    /// order), and returns the broken ones.
    pub async fn verify_trails<C, M>(&self, db: &C, batch: u64) -> Result<TrailsReport>
    where
        C: Connection,
        M: AuditTrail,
        <M as ModelTrait>::Entity: EntityTrait<Model = M>,
    {
        let mut report = TrailsReport::default();
        let mut page = 0;
        loop {
            let users = users_page::<C, M>(db, page, batch).await?;
            for user in &users {
                let trail = self.verify_trail(db, user, None).await?;
                report.users += 1;
                report.rows += trail.checked;
                if !trail.is_intact() {
                    report.broken.push((value_text(&user.__user_id()), trail));
                }
            }
            if (users.len() as u64) < batch.max(1) {
                return Ok(report);
            }
            page += 1;
        }
    }

    /// The heads of the trails of page `page` of `M`'s users (`page_size` users, in
    /// primary-key order), to export: see [`TrailHead`].
    pub async fn trail_heads<C, M>(
        &self,
        db: &C,
        page: u64,
        page_size: u64,
    ) -> Result<Vec<TrailHead>>
    where
        C: Connection,
        M: AuditTrail,
        <M as ModelTrait>::Entity: EntityTrait<Model = M>,
    {
        let mut heads = Vec::new();
        for user in users_page::<C, M>(db, page, page_size).await? {
            heads.extend(self.trail_head(db, &user).await?);
        }
        Ok(heads)
    }
}

async fn users_page<C, M>(db: &C, page: u64, page_size: u64) -> Result<Vec<M>>
where
    C: Connection,
    M: AuditTrail,
    <M as ModelTrait>::Entity: EntityTrait<Model = M>,
{
    let mut select = <M as ModelTrait>::Entity::find();
    for key in <<M as ModelTrait>::Entity as EntityTrait>::PrimaryKey::iter() {
        select = select.order_by_asc(key.into_column());
    }
    Ok(select
        .paginate(db, page_size.max(1))
        .fetch_page(page)
        .await?)
}
