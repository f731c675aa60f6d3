//! axum-login: a backend that puts the lockout between the lookup and the password check, and
//! records every outcome.

use std::future::Future;

use axum_login::{AuthUser, AuthnBackend, UserId};
use sea_orm::DatabaseConnection;

use crate::client::ClientInfo;
use crate::details::{Details, SignInMethod};
use crate::lockout::{Attempt, Lockout, Refusal};
use crate::tracker::Tracker;
use crate::trail::tables::AuditTrail;

/// What an application's backend provides for password sign-ins, so that [`TrackedBackend`]
/// can reserve the attempt before the password is checked (see [`Lockout`]) and record its
/// outcome.
pub trait PasswordBackend: Clone + Send + Sync + 'static {
    /// The user: a table-mode model that axum-login can keep in the session.
    type User: AuthUser + AuditTrail;
    /// What the sign-in form sends.
    type Credentials: Send + Sync;
    /// The backend's own errors.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The identifier (e-mail, user name) in `credentials`.
    fn identifier<'a>(&self, credentials: &'a Self::Credentials) -> &'a str;

    /// The user `identifier` names, if any.
    fn find_user(
        &self,
        identifier: &str,
    ) -> impl Future<Output = Result<Option<Self::User>, Self::Error>> + Send;

    /// Whether the password in `credentials` is `user`'s. Called on every attempt: with
    /// `None` (no user, or the attempt was refused), check against a dummy hash and answer
    /// `false`, so that every path takes the time of one password check.
    fn verify_password(
        &self,
        user: Option<&Self::User>,
        credentials: &Self::Credentials,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send;

    /// The user with this id, for axum-login's session.
    fn get_user(
        &self,
        id: &<Self::User as AuthUser>::Id,
    ) -> impl Future<Output = Result<Option<Self::User>, Self::Error>> + Send;
}

/// The credentials of [`TrackedBackend`]: the form's, and the request's client.
#[derive(Clone, Debug)]
pub struct TrackedCredentials<C> {
    /// What the sign-in form sent.
    pub credentials: C,
    /// Who sent it ([`ClientInfo`], an axum extractor).
    pub client: ClientInfo,
}

/// An error of [`TrackedBackend`].
#[derive(Debug, thiserror::Error)]
pub enum TrackedError<E: std::error::Error + 'static> {
    /// The lockout refused the attempt: answer `429` with `Retry-After`
    /// ([`Refusal::retry_after_secs`]).
    #[error("sign-in refused by the lockout until {}", .0.until)]
    Refused(Refusal),
    /// The application's backend failed.
    #[error(transparent)]
    Backend(E),
    /// Recording the event failed.
    #[error(transparent)]
    Tracking(#[from] crate::Error),
}

/// An axum-login backend over the application's [`PasswordBackend`] that tracks sign-ins:
///
/// - every attempt goes through [`Lockout::begin`] before the password check, so parallel
///   guesses get no more checks than the threshold, and the password is checked (or a dummy
///   hash) on every path;
/// - a right password records a login (method `password`), a wrong one or an unknown
///   identifier a failed login, a refusal a `refused` event, with the request's IP and user
///   agent;
/// - [`TrackedBackend::track_logout`] records a sign-out.
///
/// ```no_run
/// # use trackable_core::{ClientInfo, TrackedBackend, TrackedCredentials, TrackedError};
/// # fn doc<B: trackable_core::PasswordBackend>() {}
/// // In the login handler, with `auth: AuthSession<TrackedBackend<MyBackend>>`:
/// // match auth.authenticate(TrackedCredentials { credentials: form, client }).await {
/// //     Ok(Some(user)) => { auth.login(&user).await?; /* signed in */ }
/// //     Ok(None) => { /* 401: wrong email or password */ }
/// //     Err(axum_login::Error::Backend(TrackedError::Refused(refusal))) => { /* 429 */ }
/// //     Err(error) => { /* 500 */ }
/// // }
/// ```
#[derive(Clone, Debug)]
pub struct TrackedBackend<B> {
    inner: B,
    db: DatabaseConnection,
    tracker: Tracker,
    lockout: Lockout,
}

impl<B: PasswordBackend> TrackedBackend<B> {
    /// Tracks the sign-ins of `inner` in `db` with `tracker`, behind `lockout`.
    pub fn new(inner: B, db: DatabaseConnection, tracker: Tracker, lockout: Lockout) -> Self {
        TrackedBackend {
            inner,
            db,
            tracker,
            lockout,
        }
    }

    /// The application's backend.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// Records that `user` signed out (after `AuthSession::logout`).
    pub async fn track_logout(&self, user: &B::User, client: &ClientInfo) -> crate::Result<()> {
        self.tracker.logout(&self.db, user, client).await.map(drop)
    }
}

impl<B: PasswordBackend> AuthnBackend for TrackedBackend<B> {
    type User = B::User;
    type Credentials = TrackedCredentials<B::Credentials>;
    type Error = TrackedError<B::Error>;

    async fn authenticate(
        &self,
        creds: Self::Credentials,
    ) -> Result<Option<Self::User>, Self::Error> {
        let identifier = self.inner.identifier(&creds.credentials);
        let user = self
            .inner
            .find_user(identifier)
            .await
            .map_err(TrackedError::Backend)?;
        let attempt = self
            .lockout
            .begin(
                &self.tracker,
                &self.db,
                user.as_ref(),
                identifier,
                &creds.client,
            )
            .await?;
        let checked = match (&attempt, &user) {
            (Attempt::Permitted(_), Some(user)) => Some(user),
            _ => None,
        };
        let matches = self
            .inner
            .verify_password(checked, &creds.credentials)
            .await
            .map_err(TrackedError::Backend)?
            && checked.is_some();
        let permit = match attempt {
            Attempt::Permitted(permit) => permit,
            Attempt::Refused(refusal) => return Err(TrackedError::Refused(refusal)),
        };
        if !matches {
            permit.failed(&self.db).await?;
            return Ok(None);
        }
        let details = Details::new().method(SignInMethod::Password);
        permit.succeeded_with(&self.db, &details).await?;
        Ok(user)
    }

    async fn get_user(&self, user_id: &UserId<Self>) -> Result<Option<Self::User>, Self::Error> {
        self.inner
            .get_user(user_id)
            .await
            .map_err(TrackedError::Backend)
    }
}
