//! The sessions of [`Tracker`]: logins that the app keeps in its session store, ended one by
//! one or all but one.

use chrono::TimeDelta;

use super::Tracker;
use crate::action::Action;
use crate::client::ClientInfo;
use crate::details::{Details, SessionId};
use crate::error::{Error, Result};
use crate::store::connection::Connection;
use crate::trail::sessions::{OpenSession, open_sessions};
use crate::trail::tables::{AuditTables, AuditTrail};

/// The events that name one session.
macro_rules! session_events {
    ($($(#[$doc:meta])* $name:ident => $action:ident;)*) => {$(
        $(#[$doc])*
        pub async fn $name<C, M>(
            &self,
            db: &C,
            user: &M,
            client: &ClientInfo,
            session: SessionId,
        ) -> Result<M::Record>
        where
            C: Connection,
            M: AuditTrail,
        {
            let details = Details::new().session(session);
            let action = Action::$action;
            let (record, _) = self.write_with(db, user, action, client, &details).await?;
            Ok(record)
        }
    )*};
}

/// # Sessions (table mode)
///
/// A login's audit row is the session's start, and its event number (`seq`) the session's
/// [`SessionId`]: keep it in the app's session. Several sessions of one user (laptop and
/// phone) are tracked apart; the fields-mode state of the user (`current_*`, `last_*`) is
/// the same as without sessions.
impl Tracker {
    /// Records a login and returns its session, with the audit row.
    ///
    /// ```no_run
    /// # mod member { use sea_orm::entity::prelude::*;
    /// # #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, trackable_core::Trackable)]
    /// # #[sea_orm(table_name = "members")] #[trackable(table = "member_events")]
    /// # pub struct Model { #[sea_orm(primary_key)] pub id: i32 }
    /// # #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)] pub enum Relation {}
    /// # impl ActiveModelBehavior for ActiveModel {} }
    /// # async fn run(db: &sea_orm::DatabaseConnection, user: &member::Model,
    /// #     client: &trackable_core::ClientInfo) -> trackable_core::Result<()> {
    /// use trackable_core::{Details, SignInMethod, Tracker};
    ///
    /// let tracker = Tracker::new();
    /// let details = Details::new().method(SignInMethod::Password);
    /// let (session, _row) = tracker.start_session(db, user, client, &details).await?;
    /// // keep `session` (`session.to_string()`) in the app's session; at sign-out:
    /// tracker.end_session(db, user, client, session).await?;
    /// # Ok(()) }
    /// # fn main() {}
    /// ```
    pub async fn start_session<C, M>(
        &self,
        db: &C,
        user: &M,
        client: &ClientInfo,
        details: &Details,
    ) -> Result<(SessionId, M::Record)>
    where
        C: Connection,
        M: AuditTrail,
    {
        let (record, appended) = self
            .write_with(db, user, Action::Login, client, details)
            .await?;
        let seq = appended
            .map(|appended| appended.seq)
            .ok_or_else(|| Error::InvalidData {
                model: std::any::type_name::<M>(),
                what: "no audit row for a table-mode login".to_owned(),
            })?;
        Ok((SessionId(seq), record))
    }

    session_events! {
        /// Records a sign-out that ends `session` (and no other session of the user).
        end_session => Logout;
        /// Records that `session` was ended other than by its own sign-out: by an
        /// administrator, or by the user from another session. Revoke it in the app's session
        /// store too.
        revoke_session => SessionRevoked;
        /// Records that a session was restored from a remember-me cookie: an event of its
        /// own, not a login (not counted, and `current_*` stays).
        restore_session => SessionRestored;
    }

    /// "Sign out everywhere else": one event (`others_revoked`) that ends every session of
    /// the user begun before it but `keep`. Returns the sessions it ended (begun within
    /// `max_age`), so that the app revokes them in its session store.
    pub async fn sign_out_others<C, M>(
        &self,
        db: &C,
        user: &M,
        client: &ClientInfo,
        keep: SessionId,
        max_age: TimeDelta,
    ) -> Result<Vec<SessionId>>
    where
        C: Connection,
        M: AuditTrail,
    {
        let details = Details::new().session(keep);
        let (_, appended) = self
            .write_with(db, user, Action::OthersRevoked, client, &details)
            .await?;
        let before = appended.map(|appended| appended.seq);
        let since = self.session_cut_off(db, max_age).await?;
        let open =
            open_sessions(db, &AuditTables::of::<M>(), user.__user_id(), since, before).await?;
        Ok(open
            .into_iter()
            .map(|session| session.id)
            .filter(|id| *id != keep)
            .collect())
    }

    /// The user's sessions begun within `max_age` (the app's session lifetime) that no
    /// event has ended, newest first.
    pub async fn open_sessions<C, M>(
        &self,
        db: &C,
        user: &M,
        max_age: TimeDelta,
    ) -> Result<Vec<OpenSession>>
    where
        C: Connection,
        M: AuditTrail,
    {
        let since = self.session_cut_off(db, max_age).await?;
        open_sessions(db, &AuditTables::of::<M>(), user.__user_id(), since, None).await
    }

    async fn session_cut_off<C: Connection>(
        &self,
        db: &C,
        max_age: TimeDelta,
    ) -> Result<chrono::DateTime<chrono::Utc>> {
        let now = self.now_in(db).await?;
        Ok(now
            .checked_sub_signed(max_age.max(TimeDelta::zero()))
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC))
    }
}
