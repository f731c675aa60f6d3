//! A small axum app that records every sign-in, sign-out and failed sign-in in an audit
//! table, and shows users their recent activity.
//!
//! ```text
//! cargo run --example axum_app               # then open http://127.0.0.1:3000
//! PORT=8080 cargo run --example axum_app
//! cargo run --example axum_app -- --smoke    # drive it once over HTTP, check, exit
//! ```
//!
//! SQLite database in the temp dir, recreated at every start; sessions live in memory.

use std::collections::HashMap;
use std::error::Error;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use argon2::{Argon2, PasswordHasher, PasswordVerifier, password_hash};
use axum::extract::State;
use axum::http::header::{COOKIE, RETRY_AFTER, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection,
    EntityTrait, QueryFilter, QueryOrder, Schema, Set,
};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use trackable_core::{
    Action, Activity, Attempt, ClientConfig, ClientInfo, Details, HashKey, Lockout, Refusal,
    SessionId, SignInMethod, Trackable, Tracker,
};
use uuid::Uuid;

/// The users of the app. `#[trackable(table = ...)]` generates the audit entity
/// `user::trackables` (one row per event) and its migration.
mod user {
    use sea_orm::entity::prelude::*;
    use trackable_core::Trackable;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Trackable)]
    #[sea_orm(table_name = "users")]
    #[trackable(table = "trackables")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        #[sea_orm(unique)]
        pub email: String,
        pub password_hash: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

use user::trackables as audit;

const DEMO_EMAIL: &str = "demo@example.com";
const DEMO_PASSWORD: &str = "correct-horse-battery";
const SESSION_COOKIE: &str = "sid";
/// Same text for an unknown email and a wrong password, so the form does not tell
/// which emails have accounts.
const BAD_CREDENTIALS: &str = "Wrong email or password.";

type BoxError = Box<dyn Error + Send + Sync>;

#[derive(Clone)]
struct AppState {
    db: DatabaseConnection,
    tracker: Tracker,
    /// 5 failed sign-ins within 15 minutes lock the account (or block the IP) for 15 minutes.
    lockout: Lockout,
    /// How the client IP is found; handed to the `ClientInfo` extractor as an extension.
    client_config: Arc<ClientConfig>,
    /// Session id (the cookie value) -> the user and the tracked session (the login's `seq`).
    sessions: Arc<Mutex<HashMap<Uuid, (i32, SessionId)>>>,
    /// Verified against when the email is unknown, so that such a request takes as long
    /// as a wrong password: response times do not reveal which emails exist either.
    dummy_hash: Arc<str>,
    /// Argon2 verifications run, and those against a real password hash.
    verifications: Arc<AtomicUsize>,
    password_checks: Arc<AtomicUsize>,
}

impl AppState {
    /// Migrates `db`, seeds the demo user and returns the state of the app.
    async fn new(db: DatabaseConnection, client_config: ClientConfig) -> Result<Self, BoxError> {
        let backend = db.get_database_backend();
        let users = Schema::new(backend).create_table_from_entity(user::Entity);
        db.execute(&users).await?;
        // The audit table (with its foreign key and indexes) from the derive.
        user::Model::migration().up(&db).await?;
        user::ActiveModel {
            email: Set(DEMO_EMAIL.to_owned()),
            password_hash: Set(hash_password(DEMO_PASSWORD.to_owned()).await?),
            ..Default::default()
        }
        .insert(&db)
        .await?;
        let dummy_hash = hash_password(Uuid::new_v4().to_string()).await?.into();
        // Hashes the emails of failed sign-ins that match no account. Load it from your
        // secret store: a new key at each start (as here) makes old hashes unmatched.
        let key = [*Uuid::new_v4().as_bytes(), *Uuid::new_v4().as_bytes()].concat();
        Ok(Self {
            db,
            tracker: Tracker::new().with_identifier_key(HashKey::new(key)?),
            lockout: Lockout::default(),
            client_config: Arc::new(client_config),
            sessions: Arc::default(),
            dummy_hash,
            verifications: Arc::default(),
            password_checks: Arc::default(),
        })
    }

    /// Verifies `password` against `hash`, or against the dummy hash (and answers `false`)
    /// when there is no hash to check: every sign-in runs exactly one verification.
    async fn verify_password(
        &self,
        password: String,
        hash: Option<String>,
    ) -> Result<bool, BoxError> {
        self.verifications.fetch_add(1, Ordering::Relaxed);
        match hash {
            Some(hash) => {
                self.password_checks.fetch_add(1, Ordering::Relaxed);
                verify_against(password, hash).await
            }
            None => {
                verify_against(password, self.dummy_hash.to_string()).await?;
                Ok(false)
            }
        }
    }

    fn sessions(&self) -> MutexGuard<'_, HashMap<Uuid, (i32, SessionId)>> {
        // The map stays consistent even if a holder panicked: every update is one call.
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The signed-in user of the request, its cookie's session id and its tracked session.
    async fn current_user(
        &self,
        headers: &HeaderMap,
    ) -> Result<Option<(Uuid, SessionId, user::Model)>, BoxError> {
        let Some(sid) = session_id(headers) else {
            return Ok(None);
        };
        let Some((user_id, session)) = self.sessions().get(&sid).copied() else {
            return Ok(None);
        };
        let user = user::Entity::find_by_id(user_id).one(&self.db).await?;
        Ok(user.map(|user| (sid, session, user)))
    }
}

fn app(state: AppState) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/sign-in", post(sign_in))
        .route("/sign-out", post(sign_out))
        .route("/security", get(security))
        .route("/sessions/sign-out-others", post(sign_out_others))
        .layer(Extension(Arc::clone(&state.client_config)))
        .with_state(state)
}

async fn home(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, AppError> {
    let Some((_, _, user)) = state.current_user(&headers).await? else {
        return Ok(sign_in_page(StatusCode::OK, "", None));
    };
    // The newest login row holds the state right after that login: its number, and in
    // `last_*` the sign-in before it (or the login itself, the first time).
    let login = audit::Entity::find()
        .filter(audit::Column::UserId.eq(user.id))
        .filter(audit::Column::Action.eq(Action::Login))
        .order_by_desc(audit::Column::Id)
        .one(&state.db)
        .await?;
    let summary = match (&login, login.as_ref().and_then(|row| row.last_sign_in_at)) {
        (Some(row), Some(at)) if row.sign_in_count > 1 => format!(
            "Sign-in #{}. Previous sign-in: {} from {}.",
            row.sign_in_count,
            time(at),
            escape(
                row.last_sign_in_ip
                    .as_deref()
                    .unwrap_or("an unknown address")
            )
        ),
        _ => "This is your first sign-in.".to_owned(),
    };
    let body = format!(
        "<p>Welcome, {}! {summary}</p>\
         <p><a href=\"/security\">Recent activity</a></p>\
         <form method=\"post\" action=\"/sign-out\"><button>Sign out</button></form>",
        escape(&user.email)
    );
    Ok(page(StatusCode::OK, "Welcome", &body))
}

#[derive(Deserialize)]
struct SignInForm {
    email: String,
    password: String,
}

async fn sign_in(
    State(state): State<AppState>,
    client: ClientInfo,
    Form(form): Form<SignInForm>,
) -> Result<Response, AppError> {
    let user = user::Entity::find()
        .filter(user::Column::Email.eq(form.email.trim()))
        .one(&state.db)
        .await?;

    // The lockout reserves the attempt before any password is checked, so guesses sent in
    // parallel get no more checks than the threshold. An unresolved client IP needs no
    // special case: such clients share one network in the lockout.
    let attempt = state
        .lockout
        .begin(
            &state.tracker,
            &state.db,
            user.as_ref(),
            &form.email,
            &client,
        )
        .await?;
    // The hash runs on every path, against the dummy hash when there is nothing to check, so
    // a refusal, an unknown email and a wrong password take the same time.
    let hash = match (&attempt, &user) {
        (Attempt::Permitted(_), Some(user)) => Some(user.password_hash.clone()),
        _ => None,
    };
    let matches = state.verify_password(form.password, hash).await?;
    let permit = match attempt {
        Attempt::Permitted(permit) => permit,
        // Identifiers without an account are refused the same way, so this tells nothing
        // about which emails exist.
        Attempt::Refused(refusal) => return Ok(try_later(&form.email, &refusal, &state.tracker)),
    };
    let Some(user) = user.as_ref().filter(|_| matches) else {
        permit.failed(&state.db).await?;
        let page = sign_in_page(StatusCode::UNAUTHORIZED, &form.email, Some(BAD_CREDENTIALS));
        return Ok(page);
    };

    // The login row and any session row commit together: with sessions in the database,
    // insert yours on `txn` here. The in-memory session is created only after the commit,
    // so a failed commit leaves the user signed out and no login recorded.
    let sid = Uuid::new_v4();
    let details = Details::new()
        .method(SignInMethod::Password)
        .app_session_id(sid.to_string());
    let txn = trackable_core::begin_write(&state.db).await?;
    let (session, _) = permit.succeeded_with(&txn, &details).await?;
    txn.commit().await?;
    state.sessions().insert(sid, (user.id, session));
    // Add `; Secure` when served over HTTPS. SameSite=Lax keeps other sites from
    // posting to /sign-out with the cookie.
    let cookie = format!("{SESSION_COOKIE}={sid}; Path=/; HttpOnly; SameSite=Lax");
    Ok(([(SET_COOKIE, cookie)], Redirect::to("/")).into_response())
}

async fn sign_out(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    if let Some((sid, session, user)) = state.current_user(&headers).await? {
        // End the session first: signing out must work even if recording it fails.
        state.sessions().remove(&sid);
        state
            .tracker
            .end_session(&state.db, &user, &client, session)
            .await?;
    }
    let cookie = format!("{SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax");
    Ok(([(SET_COOKIE, cookie)], Redirect::to("/")).into_response())
}

/// How long a session lasts in this app: sessions older than this are not listed as open.
const SESSION_LIFETIME: chrono::TimeDelta = chrono::TimeDelta::days(30);

#[derive(Deserialize)]
struct Page {
    /// Events before this event number (the cursor of the older page).
    before: Option<i64>,
}

/// The security page: this and the other open sessions (device, place, when), a button that
/// signs out the others, and the history of sign-in events with readable names.
async fn security(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::extract::Query(page_of): axum::extract::Query<Page>,
) -> Result<Response, AppError> {
    let Some((_, this, user)) = state.current_user(&headers).await? else {
        return Ok(page(
            StatusCode::UNAUTHORIZED,
            "Sign-in required",
            "<p><a href=\"/\">Sign in</a> to see your recent activity.</p>",
        ));
    };
    let now = state.tracker.now();
    let mut body = String::new();
    let locked = state
        .lockout
        .locked_until(&state.tracker, &state.db, &user)
        .await?;
    if let Some(until) = locked {
        body.push_str(&format!(
            "<p class=\"error\" id=\"locked\">Sign-ins to this account are locked until {} \
             after too many wrong passwords.</p>",
            time(until)
        ));
    }

    let sessions = state
        .tracker
        .open_sessions(&state.db, &user, SESSION_LIFETIME)
        .await?;
    body.push_str("<h2>Where you are signed in</h2><table id=\"sessions\"><tr><th>Device</th><th>Place</th><th>Signed in</th><th></th></tr>");
    for session in &sessions {
        let marker = if session.id == this {
            "<strong>This session</strong>"
        } else {
            ""
        };
        body.push_str(&format!(
            "<tr data-session=\"{}\"><td>{}</td><td>{}</td><td title=\"{}\">{}</td><td>{marker}</td></tr>",
            session.id,
            escape(session.device.as_deref().unwrap_or("Unknown device")),
            escape(session.ip.as_deref().unwrap_or("Unknown")),
            time(session.signed_in_at),
            ago(now, session.signed_in_at),
        ));
    }
    body.push_str("</table>");
    if sessions.iter().any(|session| session.id != this) {
        body.push_str(
            "<form method=\"post\" action=\"/sessions/sign-out-others\">\
             <button id=\"sign-out-others\">Sign out all other sessions</button></form>",
        );
    }

    // Newest first; `next` is the cursor of the older page.
    let history = state
        .tracker
        .activity(&state.db, &user, page_of.before, 20)
        .await?;
    body.push_str("<h2>Recent activity</h2><table id=\"history\"><tr><th>When</th><th>What</th><th>Device</th><th>Place</th></tr>");
    for event in &history.events {
        body.push_str(&format!(
            "<tr><td title=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            time(event.inserted_at),
            ago(now, event.inserted_at),
            escape(&describe(event)),
            // Sent by the client: anything can be in it.
            escape(
                event
                    .device
                    .as_deref()
                    .or(event.user_agent.as_deref())
                    .unwrap_or("-")
            ),
            escape(event.remote_ip.as_deref().unwrap_or("-")),
        ));
    }
    body.push_str("</table>");
    if let Some(next) = history.next {
        body.push_str(&format!(
            "<p><a id=\"older\" href=\"/security?before={next}\">Older events</a></p>"
        ));
    }
    body.push_str("<p><a href=\"/\">Back</a></p>");
    Ok(page(StatusCode::OK, "Security", &body))
}

/// "Sign out all other sessions": one event in the trail, and the app's own sessions of
/// those logins removed.
async fn sign_out_others(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    if let Some((_, this, user)) = state.current_user(&headers).await? {
        let ended = state
            .tracker
            .sign_out_others(&state.db, &user, &client, this, SESSION_LIFETIME)
            .await?;
        state
            .sessions()
            .retain(|_, (user_id, session)| *user_id != user.id || !ended.contains(session));
    }
    Ok(Redirect::to("/security").into_response())
}

/// An event in words.
fn describe(event: &Activity) -> String {
    let reason = match event.reason.as_deref() {
        Some("wrong_password") => " (wrong password)",
        Some("locked") | Some("too_many_attempts") | Some("network_blocked") => {
            " (too many attempts)"
        }
        _ => "",
    };
    let what = match event.action {
        Action::Login => "Signed in",
        Action::Logout => "Signed out",
        Action::FailedLogin => "Sign-in failed",
        Action::Refused => "Sign-in refused",
        Action::Lock => "Sign-ins locked",
        Action::Unlock => "Sign-ins unlocked",
        Action::PasswordReset => "Password reset",
        Action::PasswordChange => "Password changed",
        Action::EmailChange => "E-mail changed",
        Action::SessionRevoked => "Session ended",
        Action::OthersRevoked => "Signed out of all other sessions",
        Action::SessionRestored => "Session restored",
        Action::Registration => "Account created",
        Action::MfaSuccess => "Second factor verified",
        Action::MfaFailure => "Second factor failed",
        _ => "Other event",
    };
    format!("{what}{reason}")
}

/// `at` relative to `now`: "just now", "5 minutes ago", "3 days ago".
fn ago(now: chrono::DateTime<chrono::Utc>, at: chrono::DateTime<chrono::Utc>) -> String {
    let seconds = (now - at).num_seconds().max(0);
    let (n, unit) = match seconds {
        0..60 => return "just now".to_owned(),
        60..3_600 => (seconds / 60, "minute"),
        3_600..86_400 => (seconds / 3_600, "hour"),
        _ => (seconds / 86_400, "day"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

// Argon2 is slow on purpose: run it off the async workers.
async fn hash_password(password: String) -> Result<String, BoxError> {
    let hash =
        tokio::task::spawn_blocking(move || Argon2::default().hash_password(password.as_bytes()))
            .await??;
    Ok(hash.to_string())
}

/// The SQLite file at `path` in WAL mode with a pool of 8, waiting up to 5 s for the write
/// lock: concurrent sign-ins wait their turn instead of failing with "database is locked".
async fn open_database(path: &std::path::Path) -> Result<DatabaseConnection, sea_orm::DbErr> {
    use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
    let mut options = ConnectOptions::new(format!("sqlite://{}?mode=rwc", path.display()));
    options
        .max_connections(8)
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|o| {
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(std::time::Duration::from_secs(5))
        });
    Database::connect(options).await
}

/// A refused attempt: 429 with `Retry-After`, and when to come back.
fn try_later(email: &str, refusal: &Refusal, tracker: &Tracker) -> Response {
    let seconds = refusal.retry_after_secs(tracker.now());
    let minutes = seconds.div_ceil(60).max(1);
    let message = format!("Too many attempts. Try again in {minutes} minute(s).");
    let mut response = sign_in_page(StatusCode::TOO_MANY_REQUESTS, email, Some(&message));
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(seconds));
    response
}

async fn verify_against(password: String, hash: String) -> Result<bool, BoxError> {
    let outcome = tokio::task::spawn_blocking(move || {
        Argon2::default().verify_password(password.as_bytes(), hash.as_str())
    })
    .await?;
    match outcome {
        Ok(()) => Ok(true),
        Err(password_hash::Error::PasswordInvalid) => Ok(false),
        Err(error) => Err(error.into()), // a corrupt stored hash is a server error
    }
}

fn session_id(headers: &HeaderMap) -> Option<Uuid> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(name, value)| (name == SESSION_COOKIE).then(|| value.parse().ok())?)
}

fn sign_in_page(status: StatusCode, email: &str, error: Option<&str>) -> Response {
    let error = error.map_or_else(String::new, |e| {
        format!("<p class=\"error\">{}</p>", escape(e))
    });
    let body = format!(
        "{error}<form method=\"post\" action=\"/sign-in\">\
         <label>Email <input name=\"email\" type=\"email\" value=\"{}\" required></label>\
         <label>Password <input name=\"password\" type=\"password\" required></label>\
         <button>Sign in</button></form>",
        escape(email)
    );
    page(status, "Sign in", &body)
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title>\
         <style>body{{font-family:sans-serif;margin:2em}}label{{display:block;margin:.5em 0}}\
         td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left;\
         overflow-wrap:anywhere;vertical-align:top}}\
         table{{border-collapse:collapse;width:100%;max-width:60em;table-layout:fixed}}\
         .error{{color:#b00}}</style></head>\
         <body><h1>{title}</h1>{body}</body></html>"
    );
    (status, Html(html)).into_response()
}

fn time(at: chrono::DateTime<chrono::Utc>) -> impl std::fmt::Display {
    at.format("%Y-%m-%d %H:%M:%S UTC")
}

/// Escapes text for HTML element content and quoted attribute values.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Any handler error: logged, and answered with a bare 500 that leaks nothing.
struct AppError(BoxError);

impl<E: Into<BoxError>> From<E> for AppError {
    fn from(error: E) -> Self {
        Self(error.into())
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        eprintln!("request failed: {}", self.0);
        (StatusCode::INTERNAL_SERVER_ERROR, "Internal server error").into_response()
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let smoke = std::env::args().any(|arg| arg == "--smoke")
        || std::env::var("AXUM_APP_SMOKE").is_ok_and(|v| v == "1");
    let port = match std::env::var("PORT") {
        _ if smoke => 0, // any free port
        Ok(port) => port.parse().map_err(|e| format!("PORT={port:?}: {e}"))?,
        Err(_) => 3000,
    };
    let name = if smoke {
        "trackable-axum-app-smoke.db"
    } else {
        "trackable-axum-app.db"
    };
    let path = std::env::temp_dir().join(name);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let db = open_database(&path).await?;

    // The client IP is the TCP peer. Behind a reverse proxy, trust the proxy's address and
    // the client is read from X-Forwarded-For (right to left, skipping trusted proxies):
    //     let client_config = ClientConfig::new().trust_proxy("10.0.0.0/8")?;
    // Never trust a header the app can receive straight from clients.
    let client_config = ClientConfig::new();
    let state = AppState::new(db, client_config).await?;
    println!("SQLite database: {}", path.display());
    println!("Demo user: {DEMO_EMAIL} / password: {DEMO_PASSWORD}");

    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
    let addr = listener.local_addr()?;
    println!("Listening on http://{addr}");
    // `ConnectInfo<SocketAddr>` is where the `ClientInfo` extractor finds the peer.
    let server = axum::serve(
        listener,
        app(state.clone()).into_make_service_with_connect_info::<SocketAddr>(),
    );
    if !smoke {
        server.await?;
        return Ok(());
    }
    let server = tokio::spawn(async move { server.await });
    let outcome = smoke_test(addr, &state).await;
    server.abort();
    outcome
}

const SMOKE_USER_AGENT: &str = "axum-app-smoke/1.0 <probe>";

/// Wrong password, sign in, security page, sign out, over real HTTP; then checks the audit rows.
async fn smoke_test(addr: SocketAddr, state: &AppState) -> Result<(), BoxError> {
    let wrong = credentials("guess");
    let (status, _, body) = request(addr, "POST", "/sign-in", "", &wrong).await?;
    assert_eq!(status, 401, "wrong password");
    assert!(body.contains(BAD_CREDENTIALS));

    let right = credentials(DEMO_PASSWORD);
    let (status, head, _) = request(addr, "POST", "/sign-in", "", &right).await?;
    assert_eq!(status, 303, "sign in");
    let cookie = head
        .lines()
        .filter_map(|line| line.split_once(": "))
        .find(|(name, _)| name.eq_ignore_ascii_case("set-cookie"))
        .and_then(|(_, value)| value.split(';').next())
        .ok_or("no session cookie")?
        .to_owned();

    let (status, _, body) = request(addr, "GET", "/security", &cookie, "").await?;
    assert_eq!(status, 200, "security page");
    assert!(
        body.contains("<td>Sign-in failed (wrong password)</td>") && body.contains("&lt;probe&gt;")
    );

    let (status, _, _) = request(addr, "POST", "/sign-out", &cookie, "").await?;
    assert_eq!(status, 303, "sign out");
    let (status, _, _) = request(addr, "GET", "/security", &cookie, "").await?;
    assert_eq!(status, 401, "security page after sign-out");

    let rows = audit::Entity::find()
        .order_by_asc(audit::Column::Id)
        .all(&state.db)
        .await?;
    println!("\nAudit rows:");
    for row in &rows {
        println!(
            "  #{} {:<12} count={} ip={} ua={:?} at={}",
            row.id,
            row.action.as_str(),
            row.sign_in_count,
            row.remote_ip.as_deref().unwrap_or("-"),
            row.user_agent.as_deref().unwrap_or("-"),
            row.inserted_at.format("%H:%M:%S%.6f")
        );
    }
    let actions: Vec<Action> = rows.iter().map(|row| row.action).collect();
    assert_eq!(
        actions,
        [Action::FailedLogin, Action::Login, Action::Logout]
    );
    assert!(rows.iter().all(|row| {
        row.remote_ip.as_deref() == Some("127.0.0.1")
            && row.user_agent.as_deref() == Some(SMOKE_USER_AGENT)
    }));
    println!("\nsmoke test passed");
    Ok(())
}

/// One HTTP/1.1 request on a fresh connection: (status, head, body).
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    cookie: &str,
    form: &str,
) -> Result<(u16, String, String), BoxError> {
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: {SMOKE_USER_AGENT}\r\n\
         Cookie: {cookie}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{form}",
        form.len()
    );
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?; // the server closes: `Connection: close`
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or("truncated response")?;
    let status = head.split(' ').nth(1).ok_or("no status line")?.parse()?;
    Ok((status, head.to_owned(), body.to_owned()))
}

/// The sign-in form of the demo user, URL-encoded.
fn credentials(password: &str) -> String {
    format!(
        "email={}&password={password}",
        DEMO_EMAIL.replace('@', "%40")
    )
}

#[cfg(test)]
mod tests {
    use axum::body::{Body, to_bytes};
    use axum::extract::connect_info::MockConnectInfo;
    use axum::http::Request;
    use axum::http::header::LOCATION;
    use tower::ServiceExt;

    use super::*;

    const UA: &str = "Mozilla/5.0 <script>alert(1)</script>";

    /// The app on a fresh SQLite file; the directory lives as long as the state is used.
    async fn state(config: ClientConfig) -> (AppState, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let db = open_database(&dir.path().join("app.db")).await.unwrap();
        (AppState::new(db, config).await.unwrap(), dir)
    }

    /// Sends one request from `peer`, as `into_make_service_with_connect_info` would.
    async fn send(
        state: &AppState,
        peer: &str,
        request: axum::http::request::Builder,
        form: Option<String>,
    ) -> (StatusCode, HeaderMap, String) {
        let mut request = request.header("user-agent", UA);
        if form.is_some() {
            request = request.header("content-type", "application/x-www-form-urlencoded");
        }
        let request = request.body(Body::from(form.unwrap_or_default())).unwrap();
        let peer: SocketAddr = peer.parse().unwrap();
        let response = app(state.clone())
            .layer(MockConnectInfo(peer))
            .oneshot(request)
            .await
            .unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, headers, String::from_utf8(body.to_vec()).unwrap())
    }

    fn get(path: &str, cookie: &str) -> axum::http::request::Builder {
        Request::get(path).header("cookie", cookie)
    }

    fn post(path: &str, cookie: &str) -> axum::http::request::Builder {
        Request::post(path).header("cookie", cookie)
    }

    async fn audit_rows(state: &AppState) -> Vec<audit::Model> {
        let query = audit::Entity::find().order_by_asc(audit::Column::Id);
        query.all(&state.db).await.unwrap()
    }

    #[tokio::test]
    async fn wrong_password_is_refused_and_recorded() {
        let (state, _dir) = state(ClientConfig::new()).await;
        let (status, headers, body) = send(
            &state,
            "203.0.113.7:40000",
            post("/sign-in", ""),
            Some(credentials("guess")),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body.contains(BAD_CREDENTIALS));
        assert!(headers.get(SET_COOKIE).is_none());

        let rows = audit_rows(&state).await;
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].action, Action::FailedLogin);
        assert_eq!(rows[0].sign_in_count, 0);
        assert_eq!(rows[0].remote_ip.as_deref(), Some("203.0.113.7"));
        assert_eq!(rows[0].user_agent.as_deref(), Some(UA));
    }

    #[tokio::test]
    async fn every_path_runs_one_verification_and_a_lock_stops_password_checks() {
        let (state, _dir) = state(ClientConfig::new()).await;
        let peer = "203.0.113.7:40000";
        let counts = |state: &AppState| {
            let verifications = state.verifications.load(Ordering::Relaxed);
            (verifications, state.password_checks.load(Ordering::Relaxed))
        };
        for n in 1..=5 {
            let (status, _, _) =
                send(&state, peer, post("/sign-in", ""), Some(credentials("x"))).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            assert_eq!(counts(&state), (n, n), "a wrong password is checked");
        }
        // Locked: the right password is refused, with the hash run against the dummy.
        let (status, headers, body) = send(
            &state,
            "198.51.100.1:1000",
            post("/sign-in", ""),
            Some(credentials(DEMO_PASSWORD)),
        )
        .await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        let retry_after: u64 = headers[RETRY_AFTER].to_str().unwrap().parse().unwrap();
        assert!((1..=15 * 60).contains(&retry_after), "{retry_after}");
        assert!(body.contains("Try again in 15 minute(s)."), "{body}");
        assert_eq!(
            counts(&state),
            (6, 5),
            "one verification, no password check"
        );
        // An unknown email: one verification, against the dummy.
        let unknown = Some("email=nobody%40example.com&password=x".to_owned());
        send(&state, "198.51.100.2:1000", post("/sign-in", ""), unknown).await;
        assert_eq!(counts(&state), (7, 5));

        let actions: Vec<Action> = audit_rows(&state).await.iter().map(|r| r.action).collect();
        let failed = [Action::FailedLogin; 5];
        assert_eq!(actions[..5], failed);
        assert_eq!(actions[5..], [Action::Lock, Action::Refused]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn forty_parallel_guesses_get_five_password_checks() {
        let (state, _dir) = state(ClientConfig::new()).await;
        let guesses: Vec<_> = (0..40)
            .map(|i| {
                let state = state.clone();
                tokio::spawn(async move {
                    let peer = format!("192.0.2.{}:1000", i + 1);
                    let form = Some(credentials(&format!("guess{i}")));
                    send(&state, &peer, post("/sign-in", ""), form).await.0
                })
            })
            .collect();
        let mut statuses = Vec::new();
        for guess in guesses {
            statuses.push(guess.await.unwrap());
        }
        let checks = state.password_checks.load(Ordering::Relaxed);
        println!("40 parallel wrong passwords: {checks} password checks");
        assert_eq!(checks, 5);
        assert_eq!(state.verifications.load(Ordering::Relaxed), 40);
        let unauthorized = statuses.iter().filter(|s| **s == StatusCode::UNAUTHORIZED);
        assert_eq!(unauthorized.count(), 5);
    }

    #[tokio::test]
    async fn unknown_email_gets_the_same_answer_and_records_nothing() {
        let (state, _dir) = state(ClientConfig::new()).await;
        let peer = "203.0.113.7:40000";
        let (_, _, wrong) = send(&state, peer, post("/sign-in", ""), Some(credentials("x"))).await;
        let unknown = Some("email=nobody%40example.com&password=x".to_owned());
        let (status, _, body) = send(&state, peer, post("/sign-in", ""), unknown).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        // Identical but for the email echoed back into the form.
        assert_eq!(body.replace("nobody@example.com", DEMO_EMAIL), wrong);
        let actions: Vec<Action> = audit_rows(&state).await.iter().map(|r| r.action).collect();
        assert_eq!(actions, [Action::FailedLogin]); // the wrong password's row only
    }

    #[tokio::test]
    async fn sign_in_security_page_sign_out() {
        let (state, _dir) = state(ClientConfig::new()).await;
        let peer = "[2001:db8::5]:50000";
        let (status, _, _) = send(&state, peer, get("/security", ""), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        send(
            &state,
            peer,
            post("/sign-in", ""),
            Some(credentials("guess")),
        )
        .await;

        let form = Some(credentials(DEMO_PASSWORD));
        let (status, headers, _) = send(&state, peer, post("/sign-in", ""), form).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(headers[LOCATION], "/");
        let set_cookie = headers[SET_COOKIE].to_str().unwrap();
        assert!(set_cookie.starts_with("sid=") && set_cookie.contains("HttpOnly"));
        let cookie = set_cookie.split(';').next().unwrap();

        let (status, _, body) = send(&state, peer, get("/", cookie), None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("Welcome, demo@example.com! This is your first sign-in."));

        let (status, _, body) = send(&state, peer, get("/security", cookie), None).await;
        assert_eq!(status, StatusCode::OK);
        let login = body.find("<td>Signed in</td>").unwrap();
        let failed = body
            .find("<td>Sign-in failed (wrong password)</td>")
            .unwrap();
        assert!(login < failed, "newest first");
        assert!(body.contains("<strong>This session</strong>"), "{body}");
        assert!(!body.contains("sign-out-others"), "no other session");
        assert!(body.contains("<td>2001:db8::5</td>"));
        assert!(body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!body.contains("<script>"));

        let (status, headers, _) = send(&state, peer, post("/sign-out", cookie), None).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert!(headers[SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));
        let (status, _, _) = send(&state, peer, get("/security", cookie), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);

        let rows = audit_rows(&state).await;
        let actions: Vec<Action> = rows.iter().map(|row| row.action).collect();
        assert_eq!(
            actions,
            [Action::FailedLogin, Action::Login, Action::Logout]
        );
        for row in &rows {
            assert_eq!(row.remote_ip.as_deref(), Some("2001:db8::5"));
            assert_eq!(row.user_agent.as_deref(), Some(UA));
        }
        assert_eq!(rows[2].sign_in_count, 1);
        assert_eq!(rows[2].last_sign_in_ip.as_deref(), Some("2001:db8::5"));
    }

    #[tokio::test]
    async fn behind_a_trusted_proxy_the_forwarded_client_is_recorded() {
        let config = ClientConfig::new().trust_proxy("10.0.0.0/8").unwrap();
        let (state, _dir) = state(config).await;
        let request = post("/sign-in", "").header("x-forwarded-for", "198.51.100.23, 10.0.0.2");
        let form = Some(credentials(DEMO_PASSWORD));
        let (status, _, _) = send(&state, "10.0.0.1:443", request, form).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let rows = audit_rows(&state).await;
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].action, Action::Login);
        assert_eq!(rows[0].remote_ip.as_deref(), Some("198.51.100.23"));
        assert_eq!(rows[0].current_sign_in_ip.as_deref(), Some("198.51.100.23"));

        // A second sign-in, straight from a client: the proxy's header is ignored, and the
        // welcome page shows the sign-in before.
        let request = post("/sign-in", "").header("x-forwarded-for", "192.0.2.1");
        let form = Some(credentials(DEMO_PASSWORD));
        let (_, headers, _) = send(&state, "203.0.113.9:5000", request, form).await;
        let cookie = headers[SET_COOKIE]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap();
        let (_, _, body) = send(&state, "203.0.113.9:5000", get("/", cookie), None).await;
        assert!(body.contains("Sign-in #2. Previous sign-in: "));
        assert!(body.contains(" from 198.51.100.23."));
        let rows = audit_rows(&state).await;
        assert_eq!(rows[1].remote_ip.as_deref(), Some("203.0.113.9"));
    }

    #[tokio::test]
    async fn the_security_page_pages_its_history_and_shows_a_lock() {
        let (state, _dir) = state(ClientConfig::new()).await;
        let peer = "192.0.2.8:1000";
        let cookie = sign_in_as(&state, peer, DESKTOP).await;
        let user = user::Entity::find().one(&state.db).await.unwrap().unwrap();
        let client = ClientInfo::from_ip("192.0.2.8".parse().unwrap());
        for _ in 0..25 {
            state
                .tracker
                .track(&state.db, &user, Action::PasswordChange, &client)
                .await
                .unwrap();
        }
        state.tracker.lock(&state.db, &user, &client).await.unwrap();
        let (_, _, body) = send(&state, peer, get("/security", &cookie), None).await;
        assert!(body.contains("id=\"locked\""), "locked until: {body}");
        assert_eq!(body.matches("<td>Password changed</td>").count(), 19);
        let older = body
            .split("href=\"/security?before=")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("a link to older events");
        let (_, _, body) = send(
            &state,
            peer,
            get(&format!("/security?before={older}"), &cookie),
            None,
        )
        .await;
        assert_eq!(body.matches("<td>Password changed</td>").count(), 6);
        assert!(
            body.contains("<td>Signed in</td>"),
            "the oldest event: {body}"
        );
        assert!(!body.contains("Older events"), "the last page");
    }

    /// The user agents of the two devices of the browser test.
    const DESKTOP: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
    const PHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1";

    /// A chromedriver on a free port, stopped when dropped.
    struct Driver {
        child: std::process::Child,
        url: String,
    }

    impl Drop for Driver {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// Starts Debian's `chromedriver`, or `None` when it is not installed (the test then
    /// fails under `TRACKABLE_REQUIRE_SERVERS=1`, as CI runs it).
    async fn chromedriver() -> Option<Driver> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let child = std::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        for _ in 0..100 {
            if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Some(driver);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        None
    }

    /// The text of the element that `css` selects.
    async fn text(browser: &fantoccini::Client, css: &str) -> String {
        // An element of a page the browser is leaving goes stale: read it again.
        for _ in 0..50 {
            let element = browser.find(fantoccini::Locator::Css(css)).await;
            if let Ok(text) = async { element?.text().await }.await {
                return text;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("no readable `{css}`");
    }

    /// How many elements `css` selects.
    async fn count(browser: &fantoccini::Client, css: &str) -> usize {
        let found = browser.find_all(fantoccini::Locator::Css(css)).await;
        found.unwrap().len()
    }

    /// Clicks the element `locator` finds.
    async fn click(browser: &fantoccini::Client, locator: fantoccini::Locator<'_>) {
        let element = browser.find(locator).await.unwrap();
        element.click().await.unwrap();
    }

    /// Signs in as the demo user from `peer` with `user_agent`; returns the session cookie.
    async fn sign_in_as(state: &AppState, peer: &str, user_agent: &str) -> String {
        let request = Request::post("/sign-in")
            .header("user-agent", user_agent)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(credentials(DEMO_PASSWORD)))
            .unwrap();
        let peer: SocketAddr = peer.parse().unwrap();
        let response = app(state.clone())
            .layer(MockConnectInfo(peer))
            .oneshot(request)
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let cookie = response.headers()[SET_COOKIE].to_str().unwrap();
        cookie.split(';').next().unwrap().to_owned()
    }

    /// The security page in headless Chromium (Debian's `chromium` and `chromium-driver`):
    /// sign in through the form, see this session and the phone's, sign the phone out, and
    /// check what the page shows. Saves a screenshot as `target/security-page.png`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_security_page_in_a_real_browser() {
        use fantoccini::{ClientBuilder, Locator};

        let Some(driver) = chromedriver().await else {
            let required = std::env::var("TRACKABLE_REQUIRE_SERVERS").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "chromedriver is required (apt-get install chromium chromium-driver)"
            );
            eprintln!("chromedriver not installed: the browser test did not run");
            return;
        };
        let (state, _dir) = state(ClientConfig::new()).await;
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let service = app(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, service).await });
        let base = format!("http://{addr}");

        // The phone signs in first, from elsewhere.
        let phone = sign_in_as(&state, "198.51.100.7:4000", PHONE).await;

        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            serde_json::json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-dev-shm-usage", "--window-size=1100,900",
                    format!("--user-agent={DESKTOP}"),
                ],
            }),
        );
        let browser = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&driver.url)
            .await
            .expect("a Chromium session");

        browser.goto(&format!("{base}/")).await.unwrap();
        let form = |name: &str| {
            Locator::Css(if name == "email" {
                "input[name=email]"
            } else {
                "input[name=password]"
            })
        };
        browser
            .find(form("email"))
            .await
            .unwrap()
            .send_keys(DEMO_EMAIL)
            .await
            .unwrap();
        browser
            .find(form("password"))
            .await
            .unwrap()
            .send_keys(DEMO_PASSWORD)
            .await
            .unwrap();
        click(&browser, Locator::Css("form button")).await;
        // The form posts and the browser follows the redirect: wait for the new page.
        let home = Locator::Css("a[href=\"/security\"]");
        browser.wait().for_element(home).await.unwrap();
        let welcome = text(&browser, "body").await;
        assert!(welcome.contains("Welcome, demo@example.com!"), "{welcome}");

        browser.goto(&format!("{base}/security")).await.unwrap();
        let rows = count(&browser, "#sessions tr[data-session]").await;
        assert_eq!(rows, 2, "this session and the phone's");
        let sessions = text(&browser, "#sessions").await;
        assert!(
            sessions.contains("Chrome on Linux") && sessions.contains("This session"),
            "{sessions}"
        );
        assert!(
            sessions.contains("Safari on iOS") && sessions.contains("198.51.100.7"),
            "{sessions}"
        );
        assert!(sessions.contains("just now"), "relative times: {sessions}");

        click(&browser, Locator::Id("sign-out-others")).await;
        // The page comes back without the button once the other session has ended.
        let gone = std::time::Instant::now();
        while count(&browser, "#sign-out-others").await > 0 {
            assert!(gone.elapsed().as_secs() < 10, "the page did not come back");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let rows = count(&browser, "#sessions tr[data-session]").await;
        assert_eq!(rows, 1, "only this session is left");
        let page_text = text(&browser, "body").await;
        assert!(
            !page_text.contains("Sign out all other sessions"),
            "{page_text}"
        );
        let history = text(&browser, "#history").await;
        assert!(
            history.contains("Signed out of all other sessions"),
            "{history}"
        );
        assert!(history.contains("Signed in"), "{history}");

        let screenshot = browser.screenshot().await.unwrap();
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/security-page.png");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &screenshot).unwrap();
        assert!(screenshot.starts_with(b"\x89PNG"), "a PNG screenshot");
        browser.close().await.unwrap();

        // The phone's session is gone from the app's store too.
        let (_, _, body) = send(&state, "198.51.100.7:4000", get("/", &phone), None).await;
        assert!(
            body.contains("<form method=\"post\" action=\"/sign-in\">"),
            "signed out: {body}"
        );
    }
}
