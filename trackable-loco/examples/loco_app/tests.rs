//! The example app through its real Loco router, on SQLite and (when
//! `TRACKABLE_POSTGRES_URL` is set, always in CI) PostgreSQL.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use loco_rs::app::{AppContext, Hooks};
use loco_rs::boot::{StartMode, run_task};
use loco_rs::config::Config;
use loco_rs::environment::Environment;
use loco_rs::task::Vars;
use sea_orm::{ColumnTrait, ConnectionTrait, Database, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::json;
use tower::ServiceExt;

use crate::app::App;
use crate::controllers::auth::{History, Session};
use crate::models::_entities::users::user_events;
use crate::models::users;

/// The load balancer in front of the app: the peer of every connection.
const BALANCER: &str = "10.0.0.2:41000";
const UA: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";

/// A database of one test: a SQLite file, or a database on the PostgreSQL server, dropped
/// when the test ends.
struct TestDb {
    url: String,
    server: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn servers_required() -> bool {
    std::env::var("TRACKABLE_REQUIRE_SERVERS").is_ok_and(|v| v == "1")
}

async fn databases() -> Vec<TestDb> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let sqlite = TestDb {
        url: format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("app.sqlite").display()
        ),
        server: None,
        _dir: Some(dir),
    };
    let mut all = vec![sqlite];
    match std::env::var("TRACKABLE_POSTGRES_URL") {
        Ok(admin) => {
            let name = format!(
                "trackable_loco_{}_{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            );
            let db = Database::connect(&admin)
                .await
                .expect("the PostgreSQL server");
            db.execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
                .expect("a database for the test");
            db.close().await.expect("closed");
            let base = admin
                .rsplit_once('/')
                .map_or(admin.as_str(), |(base, _)| base);
            all.push(TestDb {
                url: format!("{base}/{name}"),
                server: Some((admin.clone(), name)),
                _dir: None,
            });
        }
        Err(_) if servers_required() => {
            panic!("TRACKABLE_POSTGRES_URL is not set, and TRACKABLE_REQUIRE_SERVERS=1 requires it")
        }
        Err(_) => {}
    }
    all
}

impl Drop for TestDb {
    /// Drops the server database; `Drop` cannot await, so on a thread and runtime of its own.
    fn drop(&mut self) {
        let Some((admin, name)) = self.server.take() else {
            return;
        };
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let db = Database::connect(&admin)
                    .await
                    .map_err(std::io::Error::other)?;
                db.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .map_err(std::io::Error::other)?;
                db.close().await.map_err(std::io::Error::other)
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop a test database: {dropped:?}");
        }
    }
}

async fn config(db: &TestDb) -> Config {
    let mut config = App::load_config(&Environment::Test)
        .await
        .expect("the test configuration");
    config.database.uri = db.url.clone();
    config
}

async fn boot(config: Config) -> (Router, AppContext) {
    let boot = App::boot(StartMode::ServerOnly, &Environment::Test, config)
        .await
        .expect("the app boots");
    let router = boot.router.expect("a router").layer(MockConnectInfo(
        BALANCER.parse::<SocketAddr>().expect("an address"),
    ));
    (router, boot.app_context)
}

async fn call(
    router: &Router,
    method: &str,
    uri: &str,
    forwarded_for: Option<&str>,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::USER_AGENT, UA)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(forwarded_for) = forwarded_for {
        request = request.header("x-forwarded-for", forwarded_for);
    }
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let body = body.map_or_else(Body::empty, |body| Body::from(body.to_string()));
    let response = router
        .clone()
        .oneshot(request.body(body).expect("a request"))
        .await
        .expect("a response");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("the body")
        .to_bytes();
    (status, headers, bytes.to_vec())
}

async fn register(router: &Router, email: &str, password: &str) {
    let form = json!({ "email": email, "password": password, "name": "Ada" });
    let (status, _, body) =
        call(router, "POST", "/api/auth/register", None, None, Some(form)).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&body)
    );
}

async fn login(
    router: &Router,
    email: &str,
    password: &str,
    forwarded_for: &str,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let form = json!({ "email": email, "password": password });
    call(
        router,
        "POST",
        "/api/auth/login",
        Some(forwarded_for),
        None,
        Some(form),
    )
    .await
}

async fn user_of(ctx: &AppContext, email: &str) -> users::Model {
    users::Model::find_by_email(&ctx.db, email)
        .await
        .expect("a query")
        .expect("the user")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sign_ins_are_tracked_with_the_ip_that_loco_resolved() {
    for db in databases().await {
        let (router, ctx) = boot(config(&db).await).await;
        register(&router, "ada@example.com", "correct horse").await;

        // The balancer appended the client; an earlier entry is whatever the client sent.
        let (status, _, body) = login(
            &router,
            "ada@example.com",
            "wrong",
            "192.0.2.66, 198.51.100.7",
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{}", db.url);
        let (status, _, body2) = login(
            &router,
            "ada@example.com",
            "correct horse",
            "192.0.2.66, 203.0.113.9",
        )
        .await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{}: {}",
            String::from_utf8_lossy(&body),
            String::from_utf8_lossy(&body2)
        );
        let session: Session = serde_json::from_slice(&body2).expect("a session");
        assert_eq!(session.sign_in_count, 1);

        let (status, _, body) = call(
            &router,
            "GET",
            "/api/auth/history",
            Some("203.0.113.9"),
            Some(&session.token),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let history: History = serde_json::from_slice(&body).expect("a history");
        let seen: Vec<(&str, Option<&str>)> = history
            .events
            .iter()
            .map(|e| (e.action.as_str(), e.remote_ip.as_deref()))
            .collect();
        assert_eq!(
            seen,
            [
                ("login", Some("203.0.113.9")),
                ("failed_login", Some("198.51.100.7"))
            ],
            "{}",
            db.url
        );
        assert_eq!(history.events[0].seq, session.session);
        assert_eq!(history.events[0].user_agent.as_deref(), Some(UA));

        let (status, _, _) = call(
            &router,
            "POST",
            "/api/auth/logout",
            Some("203.0.113.10"),
            Some(&session.token),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let user = user_of(&ctx, "ada@example.com").await;
        let rows = user_events::Entity::find()
            .filter(user_events::Column::UserId.eq(user.id))
            .all(&ctx.db)
            .await
            .expect("the trail");
        let logout = rows.iter().max_by_key(|row| row.seq).expect("rows");
        assert_eq!(logout.action.to_string(), "logout");
        assert_eq!(logout.remote_ip.as_deref(), Some("203.0.113.10"));
        assert_eq!(
            logout.session_seq,
            Some(session.session),
            "the logout ends the login's session"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_the_middleware_the_peer_is_the_client_and_headers_are_ignored() {
    for db in databases().await {
        let mut config = config(&db).await;
        config.server.middlewares.remote_ip = None;
        let (router, ctx) = boot(config).await;
        register(&router, "bob@example.com", "s3cret pass").await;
        let (status, _, _) = login(&router, "bob@example.com", "s3cret pass", "203.0.113.9").await;
        assert_eq!(status, StatusCode::OK);
        let user = user_of(&ctx, "bob@example.com").await;
        let row = user_events::Entity::find()
            .filter(user_events::Column::UserId.eq(user.id))
            .one(&ctx.db)
            .await
            .expect("a query")
            .expect("the login");
        assert_eq!(row.remote_ip.as_deref(), Some("10.0.0.2"), "{}", db.url);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_guesses_get_no_more_checks_than_the_threshold() {
    for db in databases().await {
        let (router, ctx) = boot(config(&db).await).await;
        register(&router, "eve@example.com", "the real one").await;
        let guesses: Vec<_> = (0..10)
            .map(|i| {
                let router = router.clone();
                tokio::spawn(async move {
                    let ip = format!("198.51.100.{}", 10 + i);
                    login(&router, "eve@example.com", &format!("guess {i}"), &ip).await
                })
            })
            .collect();
        let mut unauthorized = 0;
        let mut refused = 0;
        for guess in guesses {
            let (status, headers, _) = guess.await.expect("a guess");
            match status {
                StatusCode::UNAUTHORIZED => unauthorized += 1,
                StatusCode::TOO_MANY_REQUESTS => {
                    refused += 1;
                    let retry: u64 = headers[header::RETRY_AFTER]
                        .to_str()
                        .expect("text")
                        .parse()
                        .expect("seconds");
                    assert!((1..=900).contains(&retry), "Retry-After {retry}");
                }
                other => panic!("{other} for a guess on {}", db.url),
            }
        }
        // threshold 3 in config/test.yaml
        assert_eq!(unauthorized, 3, "{}", db.url);
        assert_eq!(refused, 7, "{}", db.url);
        let user = user_of(&ctx, "eve@example.com").await;
        let failed = user_events::Entity::find()
            .filter(user_events::Column::UserId.eq(user.id))
            .filter(user_events::Column::Action.eq(trackable_core::Action::FailedLogin))
            .count(&ctx.db)
            .await
            .expect("a count");
        assert_eq!(failed, 3, "{}", db.url);
        // Locked: the right password is refused too.
        let (status, _, _) =
            login(&router, "eve@example.com", "the real one", "203.0.113.50").await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_tasks_purge_and_anonymise_the_trail() {
    for db in databases().await {
        let (router, ctx) = boot(config(&db).await).await;
        register(&router, "cy@example.com", "pass word 1").await;
        for ip in ["203.0.113.1", "203.0.113.2", "203.0.113.3"] {
            let (status, _, _) = login(&router, "cy@example.com", "pass word 1", ip).await;
            assert_eq!(status, StatusCode::OK);
        }
        let user = user_of(&ctx, "cy@example.com").await;
        let trail = |ctx: AppContext| async move {
            user_events::Entity::find()
                .filter(user_events::Column::UserId.eq(user.id))
                .all(&ctx.db)
                .await
                .expect("the trail")
        };
        assert_eq!(trail(ctx.clone()).await.len(), 3);

        // Nothing is 7 days old: the configured cut-offs leave the trail alone.
        run(&ctx, "trackable:anonymize_ips", &[]).await;
        run(&ctx, "trackable:purge", &[]).await;
        let rows = trail(ctx.clone()).await;
        assert_eq!(rows.len(), 3, "{}", db.url);
        assert!(
            rows.iter()
                .all(|r| r.remote_ip.as_deref().is_some_and(|ip| !ip.ends_with(".0")))
        );

        // `days:0`: everything before now.
        run(&ctx, "trackable:anonymize_ips", &[("days", "0")]).await;
        let rows = trail(ctx.clone()).await;
        assert!(
            rows.iter()
                .all(|r| r.remote_ip.as_deref() == Some("203.0.113.0")),
            "{}: {:?}",
            db.url,
            rows.iter().map(|r| r.remote_ip.clone()).collect::<Vec<_>>()
        );
        run(&ctx, "trackable:purge", &[("days", "0")]).await;
        let rows = trail(ctx.clone()).await;
        assert_eq!(rows.len(), 1, "the latest row stays: {}", db.url);
        assert_eq!(rows[0].sign_in_count, 3);

        let bad = run_task::<App>(
            &ctx,
            Some(&"trackable:purge".to_owned()),
            &Vars::from_cli_args(vec![("days".to_owned(), "a year".to_owned())]),
        )
        .await
        .expect_err("`days:a year` is refused");
        assert!(bad.to_string().contains("days is a whole number"), "{bad}");
    }
}

async fn run(ctx: &AppContext, task: &str, vars: &[(&str, &str)]) {
    let vars = Vars::from_cli_args(
        vars.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    );
    run_task::<App>(ctx, Some(&task.to_owned()), &vars)
        .await
        .unwrap_or_else(|error| panic!("{task}: {error}"));
}

#[tokio::test]
async fn a_bad_setting_stops_the_boot_and_names_the_field() {
    let db = databases().await.remove(0);
    let cases = [
        (
            json!({ "ip_policy": "hash" }),
            "initializers.trackable.ip_policy",
        ),
        (
            json!({ "ip_policy": "hash", "ip_key": "short" }),
            "initializers.trackable.ip_key",
        ),
        (
            json!({ "lockot": { "threshold": 3 } }),
            "unknown field `lockot`",
        ),
        (
            json!({ "lockout": { "threshold": 0 } }),
            "initializers.trackable.lockout.threshold",
        ),
        (
            json!({ "retention": { "anonymize_to": "full" } }),
            "initializers.trackable.retention.anonymize_to",
        ),
    ];
    for (settings, expected) in cases {
        let mut config = config(&db).await;
        config
            .initializers
            .get_or_insert_with(Default::default)
            .insert("trackable".to_owned(), settings.clone());
        let error = App::boot(StartMode::ServerOnly, &Environment::Test, config)
            .await
            .err()
            .unwrap_or_else(|| panic!("{settings} booted"));
        assert!(error.to_string().contains(expected), "{settings}: {error}");
    }
}
