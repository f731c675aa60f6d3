//! axum-login with sign-in tracking: the app writes a `PasswordBackend` (find the user,
//! check the password), and `TrackedBackend` puts the lockout between the two and records
//! logins, failed logins (known and unknown e-mails), refusals and logouts, with the
//! request's `ClientInfo`.
//!
//! ```text
//! cargo run --features axum-login --example axum_login_app    # http://127.0.0.1:3001
//! ```
//!
//! SQLite in the temp dir, sessions in memory (tower-sessions' `MemoryStore`).

use std::error::Error;
use std::net::{Ipv4Addr, SocketAddr};

use argon2::{Argon2, PasswordHasher, PasswordVerifier, password_hash};
use axum::http::StatusCode;
use axum::http::header::RETRY_AFTER;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use axum_login::tower_sessions::{MemoryStore, SessionManagerLayer};
use axum_login::{AuthManagerLayerBuilder, AuthSession, AuthUser};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, Database, DatabaseConnection, DbErr,
    EntityTrait, QueryFilter, Schema, Set,
};
use serde::Deserialize;
use tokio::net::TcpListener;
use trackable_core::{
    ClientInfo, Lockout, PasswordBackend, Trackable, TrackedBackend, TrackedCredentials,
    TrackedError, Tracker,
};

/// The accounts, tracked in table mode (`account::account_events`).
mod account {
    use sea_orm::entity::prelude::*;
    use trackable_core::Trackable;

    #[derive(Clone, PartialEq, Eq, DeriveEntityModel, Trackable)]
    #[sea_orm(table_name = "accounts")]
    #[trackable(table = "account_events")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        #[sea_orm(unique)]
        pub email: String,
        pub password_hash: String,
    }

    // Never print the password hash.
    impl std::fmt::Debug for Model {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Account").field("id", &self.id).finish()
        }
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

impl AuthUser for account::Model {
    type Id = i32;

    fn id(&self) -> i32 {
        self.id
    }

    // A new password ends the sessions signed in with the old one.
    fn session_auth_hash(&self) -> &[u8] {
        self.password_hash.as_bytes()
    }
}

const DEMO_EMAIL: &str = "demo@example.com";
const DEMO_PASSWORD: &str = "correct-horse-battery";

type BoxError = Box<dyn Error + Send + Sync>;

#[derive(Clone, Deserialize)]
struct Credentials {
    email: String,
    password: String,
}

/// The app's own part: find an account, check a password.
#[derive(Clone)]
struct Accounts {
    db: DatabaseConnection,
    /// Checked when there is no account (or the attempt was refused), so every sign-in takes
    /// the time of one Argon2 verification.
    dummy_hash: String,
}

#[derive(Debug, thiserror::Error)]
enum AccountsError {
    #[error(transparent)]
    Db(#[from] DbErr),
    #[error("password hashing: {0}")]
    Hash(String),
}

impl PasswordBackend for Accounts {
    type User = account::Model;
    type Credentials = Credentials;
    type Error = AccountsError;

    fn identifier<'a>(&self, credentials: &'a Credentials) -> &'a str {
        credentials.email.trim()
    }

    async fn find_user(&self, email: &str) -> Result<Option<account::Model>, AccountsError> {
        let found = account::Entity::find()
            .filter(account::Column::Email.eq(email))
            .one(&self.db)
            .await?;
        Ok(found)
    }

    async fn verify_password(
        &self,
        user: Option<&account::Model>,
        credentials: &Credentials,
    ) -> Result<bool, AccountsError> {
        let hash = user
            .map_or(&self.dummy_hash, |user| &user.password_hash)
            .clone();
        let password = credentials.password.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            Argon2::default().verify_password(password.as_bytes(), hash.as_str())
        })
        .await
        .map_err(|error| AccountsError::Hash(error.to_string()))?;
        match outcome {
            Ok(()) => Ok(user.is_some()),
            Err(password_hash::Error::PasswordInvalid) => Ok(false),
            Err(error) => Err(AccountsError::Hash(error.to_string())),
        }
    }

    async fn get_user(&self, id: &i32) -> Result<Option<account::Model>, AccountsError> {
        Ok(account::Entity::find_by_id(*id).one(&self.db).await?)
    }
}

type Backend = TrackedBackend<Accounts>;

async fn hash(password: &str) -> Result<String, BoxError> {
    let password = password.to_owned();
    let hash =
        tokio::task::spawn_blocking(move || Argon2::default().hash_password(password.as_bytes()))
            .await??;
    Ok(hash.to_string())
}

/// Creates the tables, the demo account, and the backend.
async fn backend(db: DatabaseConnection) -> Result<Backend, BoxError> {
    let accounts = Schema::new(db.get_database_backend()).create_table_from_entity(account::Entity);
    db.execute(&accounts).await?;
    account::Model::migration().up(&db).await?;
    account::ActiveModel {
        email: Set(DEMO_EMAIL.to_owned()),
        password_hash: Set(hash(DEMO_PASSWORD).await?),
        ..Default::default()
    }
    .insert(&db)
    .await?;
    let accounts = Accounts {
        db: db.clone(),
        dummy_hash: hash("a password nobody has").await?,
    };
    Ok(TrackedBackend::new(
        accounts,
        db,
        Tracker::new(),
        Lockout::default(),
    ))
}

fn app(backend: Backend) -> Router {
    let sessions = SessionManagerLayer::new(MemoryStore::default()).with_secure(false);
    let auth = AuthManagerLayerBuilder::new(backend, sessions).build();
    Router::new()
        .route("/", get(home))
        .route("/login", post(login))
        .route("/logout", post(logout))
        .layer(auth)
}

async fn home(auth: AuthSession<Backend>) -> String {
    match auth.user {
        Some(user) => format!("signed in as {}", user.email),
        None => "signed out".to_owned(),
    }
}

async fn login(
    mut auth: AuthSession<Backend>,
    client: ClientInfo,
    Form(credentials): Form<Credentials>,
) -> Response {
    let tracked = TrackedCredentials {
        credentials,
        client,
    };
    match auth.authenticate(tracked).await {
        Ok(Some(user)) => match auth.login(&user).await {
            Ok(()) => Redirect::to("/").into_response(),
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        },
        // The same answer for a wrong password and an unknown e-mail.
        Ok(None) => (StatusCode::UNAUTHORIZED, "Wrong email or password.").into_response(),
        Err(axum_login::Error::Backend(TrackedError::Refused(refusal))) => {
            let seconds = refusal.retry_after_secs(chrono::Utc::now());
            let message = format!("Too many attempts. Try again in {seconds} s.");
            let headers = [(RETRY_AFTER, seconds.to_string())];
            (StatusCode::TOO_MANY_REQUESTS, headers, message).into_response()
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn logout(mut auth: AuthSession<Backend>, client: ClientInfo) -> Response {
    let backend = auth.backend.clone();
    match auth.logout().await {
        Ok(Some(user)) => match backend.track_logout(&user, &client).await {
            Ok(()) => Redirect::to("/").into_response(),
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        },
        Ok(None) => Redirect::to("/").into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let path = std::env::temp_dir().join("trackable-axum-login-app.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let db = Database::connect(format!("sqlite://{}?mode=rwc", path.display())).await?;
    let backend = backend(db).await?;
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 3001)).await?;
    println!("Listening on http://{}", listener.local_addr()?);
    println!("Demo account: {DEMO_EMAIL} / {DEMO_PASSWORD}");
    let service = app(backend).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, service).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use axum::body::{Body, to_bytes};
    use axum::extract::connect_info::MockConnectInfo;
    use axum::http::Request;
    use axum::http::header::{CONTENT_TYPE, COOKIE, SET_COOKIE, USER_AGENT};
    use sea_orm::QueryOrder;
    use tower::ServiceExt;
    use trackable_core::Action;

    use super::*;

    async fn router() -> (Router, Backend, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("app.db").display());
        let db = Database::connect(url).await.unwrap();
        let backend = backend(db).await.unwrap();
        (app(backend.clone()), backend, dir)
    }

    /// One request from `peer` through the real router; returns the status, the session
    /// cookie set (if any), the `Retry-After` header (if any) and the body.
    async fn send(
        router: &Router,
        peer: &str,
        request: axum::http::request::Builder,
        form: Option<&str>,
    ) -> (StatusCode, Option<String>, Option<String>, String) {
        let request = request
            .header(
                USER_AGENT,
                "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
            )
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(form.unwrap_or_default().to_owned()))
            .unwrap();
        let peer: SocketAddr = peer.parse().unwrap();
        let response = router
            .clone()
            .layer(MockConnectInfo(peer))
            .oneshot(request)
            .await
            .unwrap();
        let status = response.status();
        let header = |name| {
            response
                .headers()
                .get(name)
                .map(|value: &axum::http::HeaderValue| value.to_str().unwrap().to_owned())
        };
        let cookie = header(SET_COOKIE).map(|c| c.split(';').next().unwrap().to_owned());
        let retry = header(RETRY_AFTER);
        let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (
            status,
            cookie,
            retry,
            String::from_utf8(body.to_vec()).unwrap(),
        )
    }

    fn form(email: &str, password: &str) -> String {
        format!("email={}&password={password}", email.replace('@', "%40"))
    }

    async fn actions(backend: &Backend) -> Vec<(Action, Option<String>)> {
        account::account_events::Entity::find()
            .order_by_asc(account::account_events::Column::Seq)
            .all(&backend.inner().db)
            .await
            .unwrap()
            .into_iter()
            .map(|row| (row.action, row.remote_ip))
            .collect()
    }

    #[tokio::test]
    async fn logins_failures_and_logouts_are_tracked_through_the_router() {
        let (router, backend, _dir) = router().await;
        let peer = "203.0.113.7:5000";
        let wrong = form(DEMO_EMAIL, "guess");
        let (status, _, _, body) = send(&router, peer, Request::post("/login"), Some(&wrong)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let unknown = form("nobody@example.com", "guess");
        let (status, _, _, same) =
            send(&router, peer, Request::post("/login"), Some(&unknown)).await;
        assert_eq!(
            (status, same),
            (StatusCode::UNAUTHORIZED, body),
            "the same answer"
        );

        let right = form(DEMO_EMAIL, DEMO_PASSWORD);
        let (status, cookie, _, _) =
            send(&router, peer, Request::post("/login"), Some(&right)).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let cookie = cookie.expect("a session cookie");
        let (_, _, _, body) = send(
            &router,
            peer,
            Request::get("/").header(COOKIE, &cookie),
            None,
        )
        .await;
        assert_eq!(body, "signed in as demo@example.com");
        send(
            &router,
            peer,
            Request::post("/logout").header(COOKIE, &cookie),
            None,
        )
        .await;
        let (_, _, _, body) = send(
            &router,
            peer,
            Request::get("/").header(COOKIE, &cookie),
            None,
        )
        .await;
        assert_eq!(body, "signed out");

        let ip = Some("203.0.113.7".to_owned());
        assert_eq!(
            actions(&backend).await,
            [
                (Action::FailedLogin, ip.clone()),
                (Action::Login, ip.clone()),
                (Action::Logout, ip.clone())
            ]
        );
        // The unknown e-mail went to the unknown-identifier table, as a keyed hash or nothing.
        let unknown = backend
            .inner()
            .db
            .query_all_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Sqlite,
                "SELECT remote_ip FROM account_events_unknown",
            ))
            .await
            .unwrap();
        assert_eq!(unknown.len(), 1);
    }

    #[tokio::test]
    async fn the_lockout_refuses_with_retry_after_and_records_the_refusal() {
        let (router, backend, _dir) = router().await;
        let wrong = form(DEMO_EMAIL, "guess");
        for i in 1..=5 {
            let peer = format!("198.51.100.{i}:5000");
            let (status, _, _, _) =
                send(&router, &peer, Request::post("/login"), Some(&wrong)).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
        let right = form(DEMO_EMAIL, DEMO_PASSWORD);
        let (status, cookie, retry, _) = send(
            &router,
            "198.51.100.9:5000",
            Request::post("/login"),
            Some(&right),
        )
        .await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert!(cookie.is_none());
        let retry: u64 = retry.expect("Retry-After").parse().unwrap();
        assert!((1..=15 * 60).contains(&retry), "{retry}");
        let recorded: Vec<Action> = actions(&backend)
            .await
            .into_iter()
            .map(|(a, _)| a)
            .collect();
        assert_eq!(recorded[..5], [Action::FailedLogin; 5]);
        assert_eq!(recorded[5..], [Action::Lock, Action::Refused]);
    }
}
