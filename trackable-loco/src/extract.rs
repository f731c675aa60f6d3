//! Request extractors: the client as Loco's remote-IP middleware resolved it, and the
//! tracking of a request.

use axum::extract::FromRequestParts;
use axum::http::header::RETRY_AFTER;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use loco_rs::app::AppContext;
use loco_rs::controller::middleware::remote_ip::RemoteIP;
use sea_orm::DatabaseConnection;
use trackable_core::{
    Attempt, AuditTrail, ClientConfig, ClientInfo, Details, Lockout, Refusal, Resolution,
    SessionId, SignInMethod, Trackable, Tracker,
};

use crate::context::Trackables;

/// The client of a Loco request.
///
/// The IP is the one Loco's remote-IP middleware resolved (`server.middlewares.remote_ip`
/// in the configuration): the single trusted source configured there, so that the app has
/// one proxy configuration, not two. With the middleware disabled (Loco's default) the
/// client is the connection's peer: right when nothing sits in front of the app, and the
/// reason to enable the middleware when something does. The user agent is read from the
/// request as [`ClientInfo::from_headers`] reads it.
///
/// | Loco's `RemoteIP` | [`IpSource`](trackable_core::IpSource) |
/// |---|---|
/// | `Forwarded(ip)`: the configured header | `Header` |
/// | `Socket(ip)`: the peer (`source: ConnectInfo`, or the header was missing) | `Peer` |
/// | `None`: the middleware is disabled | `Peer` when the connection's address is known, else `Unresolved` |
#[derive(Clone, Debug)]
pub struct Client(pub ClientInfo);

impl Client {
    /// The client of `parts`, reading the user agent under `config`.
    pub async fn of(parts: &mut Parts, config: &ClientConfig) -> ClientInfo {
        let Ok(remote) = RemoteIP::from_request_parts(parts, &()).await;
        let resolution = match remote {
            RemoteIP::Forwarded(ip) => Resolution::header(ip),
            RemoteIP::Socket(ip) => Resolution::peer(ip),
            RemoteIP::None => return ClientInfo::from_connect_info(parts, config),
        };
        ClientInfo::from_resolution(resolution).with_user_agent_from(&parts.headers, config)
    }
}

impl FromRequestParts<AppContext> for Client {
    type Rejection = loco_rs::Error;

    async fn from_request_parts(
        parts: &mut Parts,
        ctx: &AppContext,
    ) -> Result<Self, Self::Rejection> {
        let trackables = Trackables::of(ctx)?;
        Ok(Client(Client::of(parts, trackables.client_config()).await))
    }
}

/// The tracking of a request: the app's tracker and lockout, its database, and the request's
/// [`Client`]. An extractor of Loco handlers; it rejects only when the configuration is bad.
///
/// ```no_run
/// # mod users { use sea_orm::entity::prelude::*;
/// # #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, trackable_core::Trackable)]
/// # #[sea_orm(table_name = "users")] #[trackable(table = "user_events")]
/// # pub struct Model { #[sea_orm(primary_key)] pub id: i32, pub email: String, pub password: String }
/// # #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)] pub enum Relation {}
/// # impl ActiveModelBehavior for ActiveModel {} }
/// # async fn find_by_email(_: &sea_orm::DatabaseConnection, _: &str) -> Option<users::Model> { None }
/// # const DUMMY_HASH: &str = "";
/// use axum::response::{IntoResponse, Response};
/// use axum::{Json, http::StatusCode};
/// use trackable_loco::{SignIn, Tracking};
///
/// #[derive(serde::Deserialize)]
/// struct Login { email: String, password: String }
///
/// async fn login(tracking: Tracking, Json(form): Json<Login>) -> loco_rs::Result<Response> {
///     let user = find_by_email(tracking.db(), &form.email).await;
///     let outcome = tracking
///         .sign_in(user, &form.email, |user| {
///             let hash = user.map_or(DUMMY_HASH, |user| &user.password);
///             loco_rs::hash::verify_password(&form.password, hash) && user.is_some()
///         })
///         .await?;
///     Ok(match outcome {
///         SignIn::SignedIn { user, .. } => Json(user.id).into_response(),
///         SignIn::Failed => StatusCode::UNAUTHORIZED.into_response(),
///         SignIn::Refused(refusal) => tracking.refused(&refusal),
///     })
/// }
/// # fn main() {}
/// ```
#[derive(Clone)]
pub struct Tracking {
    db: DatabaseConnection,
    trackables: Trackables,
    client: ClientInfo,
}

/// The outcome of [`Tracking::sign_in`].
#[derive(Debug)]
pub enum SignIn<M: Trackable> {
    /// The password matched: the login is recorded.
    SignedIn {
        /// The user.
        user: M,
        /// The session the login opened ([`Tracker::end_session`] when it ends).
        session: SessionId,
        /// The audit row of the login.
        record: M::Record,
    },
    /// Wrong password, or no such user: the failed login is recorded.
    Failed,
    /// The lockout refused the attempt before the password was checked: answer with
    /// [`Tracking::refused`] (429 and `Retry-After`).
    Refused(Refusal),
}

impl FromRequestParts<AppContext> for Tracking {
    type Rejection = loco_rs::Error;

    async fn from_request_parts(
        parts: &mut Parts,
        ctx: &AppContext,
    ) -> Result<Self, Self::Rejection> {
        let trackables = Trackables::of(ctx)?;
        let client = Client::of(parts, trackables.client_config()).await;
        Ok(Tracking {
            db: ctx.db.clone(),
            trackables,
            client,
        })
    }
}

impl Tracking {
    /// The app's database.
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The request's client.
    pub fn client(&self) -> &ClientInfo {
        &self.client
    }

    /// The app's tracker, for the events this type has no method for.
    pub fn tracker(&self) -> &Tracker {
        self.trackables.tracker()
    }

    /// The app's lockout.
    pub fn lockout(&self) -> &Lockout {
        self.trackables.lockout()
    }

    /// A password sign-in behind the lockout: reserves the attempt of `user` (the user that
    /// `identifier` matched, or `None`), then calls `verify` with the user, or with `None`
    /// when there is none or the attempt was refused, and records the outcome with the
    /// request's client. `verify` answers whether the password is the user's; with `None`,
    /// check it against a dummy hash and answer `false`, so that every path costs one
    /// password check and timing tells nothing.
    ///
    /// # Errors
    ///
    /// `loco_rs::Error::Any` wrapping [`trackable_core::Error`] when recording fails.
    pub async fn sign_in<M: AuditTrail>(
        &self,
        user: Option<M>,
        identifier: &str,
        verify: impl FnOnce(Option<&M>) -> bool,
    ) -> loco_rs::Result<SignIn<M>> {
        let attempt = self
            .lockout()
            .begin(
                self.tracker(),
                &self.db,
                user.as_ref(),
                identifier,
                &self.client,
            )
            .await
            .map_err(loco_rs::Error::wrap)?;
        let checked = match &attempt {
            Attempt::Permitted(permit) => permit.user(),
            Attempt::Refused(_) => None,
        };
        let matches = verify(checked) && checked.is_some();
        let permit = match attempt {
            Attempt::Permitted(permit) => permit,
            Attempt::Refused(refusal) => return Ok(SignIn::Refused(refusal)),
        };
        if !matches {
            permit
                .failed(&self.db)
                .await
                .map_err(loco_rs::Error::wrap)?;
            return Ok(SignIn::Failed);
        }
        let details = Details::new().method(SignInMethod::Password);
        let (session, record) = permit
            .succeeded_with(&self.db, &details)
            .await
            .map_err(loco_rs::Error::wrap)?;
        match user {
            Some(user) => Ok(SignIn::SignedIn {
                user,
                session,
                record,
            }),
            // `matches` implies a user; the login above would have failed without one.
            None => Err(loco_rs::Error::wrap(trackable_core::Error::NoUserToSignIn)),
        }
    }

    /// Records a login of `user` that something else authenticated (a magic link, OAuth):
    /// the user row in fields mode, the audit row in table mode.
    ///
    /// # Errors
    ///
    /// `loco_rs::Error::Any` wrapping [`trackable_core::Error`].
    pub async fn login<M: Trackable>(&self, user: &M) -> loco_rs::Result<M::Record> {
        self.tracker()
            .login(&self.db, user, &self.client)
            .await
            .map_err(loco_rs::Error::wrap)
    }

    /// Records that `user` signed out.
    ///
    /// # Errors
    ///
    /// `loco_rs::Error::Any` wrapping [`trackable_core::Error`].
    pub async fn logout<M: Trackable>(&self, user: &M) -> loco_rs::Result<M::Record> {
        self.tracker()
            .logout(&self.db, user, &self.client)
            .await
            .map_err(loco_rs::Error::wrap)
    }

    /// `429 Too Many Requests` with `Retry-After`, the seconds until the refusal ends.
    pub fn refused(&self, refusal: &Refusal) -> Response {
        let seconds = refusal.retry_after_secs(self.tracker().now());
        let mut response =
            (StatusCode::TOO_MANY_REQUESTS, "too many sign-in attempts").into_response();
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(seconds));
        response
    }
}
