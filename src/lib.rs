//! Test support shared by the integration tests, the examples and the benchmarks: the model
//! types they track, throwaway databases on every backend, and the clients, clocks and rows
//! the tests start from.
//!
//! Server backends are found through environment variables:
//!
//! - `TRACKABLE_POSTGRES_URL`, e.g. `postgres://trackable:trackable@127.0.0.1:55432/trackable`
//! - `TRACKABLE_MYSQL_URL`, e.g. `mysql://trackable:trackable@127.0.0.1:53306/trackable`
//!
//! When a variable is unset, that backend is left out, unless `TRACKABLE_REQUIRE_SERVERS=1`
//! (set by CI), which makes a missing or unreachable server an error.

pub mod floor;
pub mod models;
pub mod naive;
mod support;

pub use support::{
    ManualClock, USER_AGENT, bare_client, client, create_members, create_tracked, create_users,
    events_of, insert_members, ip, member_and_user, members, new_member, new_user, stepping_clock,
    users,
};

// The README's code blocks compile as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, EntityTrait,
    Schema,
};

/// A database the test owns: a temporary SQLite file or a fresh database on a server, both
/// deleted when the `TestDb` is dropped.
#[derive(Debug)]
pub struct TestDb {
    /// The pool.
    pub db: DatabaseConnection,
    /// Which backend it is.
    pub backend: DbBackend,
    // Keeps the SQLite file alive.
    _dir: Option<tempfile::TempDir>,
    // The server database to drop, and the admin URL to drop it through.
    server: Option<ServerDb>,
}

#[derive(Debug)]
struct ServerDb {
    admin_url: String,
    name: String,
}

impl Drop for TestDb {
    /// Drops the server database before returning, so that a test, bench or load run that ends
    /// leaves nothing behind. `Drop` cannot await and may run on a runtime's only thread, so
    /// the drop runs on its own thread and runtime, which this one waits for.
    fn drop(&mut self) {
        let Some(server) = self.server.take() else {
            return;
        };
        // Closing marks the pool closed at once (the returned future only waits for the
        // connections to go), so it neither hands out nor reopens a connection meanwhile.
        let sql = match self.backend {
            DbBackend::Postgres => {
                drop(self.db.get_postgres_connection_pool().close());
                // FORCE ends the sessions still open, this pool's idle ones included.
                format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", server.name)
            }
            DbBackend::MySql => {
                drop(self.db.get_mysql_connection_pool().close());
                format!("DROP DATABASE IF EXISTS {}", server.name)
            }
            _ => return,
        };
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async {
                let admin = Database::connect(quiet(&server.admin_url, 1)).await?;
                let mut dropped = admin.execute_unprepared(&sql).await.map(drop);
                // FORCE may not end an autovacuum worker (busy after a bulk insert) for a role
                // that is not a superuser; a plain DROP makes PostgreSQL cancel it, once this
                // pool's sessions have gone.
                if let Some(plain) = sql.strip_suffix(" WITH (FORCE)") {
                    for _ in 0..10 {
                        if dropped.is_ok() {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        dropped = admin.execute_unprepared(plain).await.map(drop);
                    }
                }
                dropped?;
                admin.close().await
            })
            .map_err(|e| format!("{sql}: {e}"))
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            // A panic here while the test is already panicking would abort the whole run.
            Ok(Err(e)) => eprintln!("cannot drop the test database: {e}"),
            Err(_) => eprintln!("cannot drop the test database {}: panicked", server.name),
        }
    }
}

impl std::ops::Deref for TestDb {
    type Target = DatabaseConnection;
    fn deref(&self) -> &DatabaseConnection {
        &self.db
    }
}

/// A file-backed SQLite database in WAL mode, with a pool of `connections`.
pub async fn sqlite_file(connections: u32) -> Result<TestDb, DbErr> {
    let dir = tempfile::tempdir().map_err(|e| DbErr::Custom(e.to_string()))?;
    let path = dir.path().join("trackable.db");
    let db = sqlite_at(&path, connections).await?;
    Ok(TestDb {
        db,
        backend: DbBackend::Sqlite,
        _dir: Some(dir),
        server: None,
    })
}

/// Opens (creating it if needed) the SQLite database at `path` in WAL mode.
pub async fn sqlite_at(
    path: &std::path::Path,
    connections: u32,
) -> Result<DatabaseConnection, DbErr> {
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let mut options = ConnectOptions::new(url);
    options
        .max_connections(connections)
        .min_connections(1)
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|o| {
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(60))
        });
    Database::connect(options).await
}

/// An in-memory SQLite database with one connection.
pub async fn sqlite_memory() -> Result<TestDb, DbErr> {
    let db = Database::connect("sqlite::memory:").await?;
    Ok(TestDb {
        db,
        backend: DbBackend::Sqlite,
        _dir: None,
        server: None,
    })
}

fn require_servers() -> bool {
    std::env::var("TRACKABLE_REQUIRE_SERVERS").is_ok_and(|v| v == "1")
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A fresh, empty database on the server at `url` (a new database per call), or `None` when
/// `var` is unset and servers are not required.
/// `configure`, given the new database's name, is run by the admin connection after the
/// database is created.
async fn server(
    var: &str,
    backend: DbBackend,
    connections: u32,
    configure: Option<&dyn Fn(&str) -> String>,
) -> Result<Option<TestDb>, DbErr> {
    let url = match std::env::var(var) {
        Ok(url) => url,
        Err(_) if require_servers() => {
            return Err(DbErr::Custom(format!(
                "{var} is not set, and TRACKABLE_REQUIRE_SERVERS=1 requires it"
            )));
        }
        Err(_) => return Ok(None),
    };
    let name = format!(
        "trackable_t{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        uuid::Uuid::new_v4()
            .simple()
            .to_string()
            .get(..8)
            .unwrap_or("0")
    );
    let admin = Database::connect(quiet(&url, 1)).await?;
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await?;
    // From here on, a failure drops the new database with `test_db`.
    let mut test_db = TestDb {
        db: admin,
        backend,
        _dir: None,
        server: Some(ServerDb {
            admin_url: url.clone(),
            name: name.clone(),
        }),
    };
    if let Some(configure) = configure {
        test_db.db.execute_unprepared(&configure(&name)).await?;
    }
    test_db.db.close_by_ref().await?;
    // Same server and options, another database: `scheme://who@where/<name>?options`.
    let (path, options) = match url.split_once('?') {
        Some((path, options)) => (path, Some(options)),
        None => (url.as_str(), None),
    };
    let (base, _) = path.rsplit_once('/').unwrap_or((path, ""));
    let url = match options {
        Some(options) => format!("{base}/{name}?{options}"),
        None => format!("{base}/{name}"),
    };
    test_db.db = Database::connect(quiet(&url, connections)).await?;
    Ok(Some(test_db))
}

fn quiet(url: &str, connections: u32) -> ConnectOptions {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(connections)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(60))
        .sqlx_logging(false);
    options
}

/// A fresh PostgreSQL database, if configured.
pub async fn postgres(connections: u32) -> Result<Option<TestDb>, DbErr> {
    server(
        "TRACKABLE_POSTGRES_URL",
        DbBackend::Postgres,
        connections,
        None,
    )
    .await
}

/// A fresh PostgreSQL database, if configured, whose sessions begin their transactions at
/// `level` (`default_transaction_isolation`), as a database configured so would.
pub async fn postgres_with_default_isolation(
    connections: u32,
    level: sea_orm::IsolationLevel,
) -> Result<Option<TestDb>, DbErr> {
    let level = level.to_string().to_lowercase();
    let configure =
        |name: &str| format!("ALTER DATABASE {name} SET default_transaction_isolation = '{level}'");
    server(
        "TRACKABLE_POSTGRES_URL",
        DbBackend::Postgres,
        connections,
        Some(&configure),
    )
    .await
}

/// A fresh MySQL / MariaDB database, if configured.
pub async fn mysql(connections: u32) -> Result<Option<TestDb>, DbErr> {
    server("TRACKABLE_MYSQL_URL", DbBackend::MySql, connections, None).await
}

/// One fresh database per available backend: file-backed SQLite in WAL mode always, the
/// servers when configured.
pub async fn all_backends(connections: u32) -> Result<Vec<TestDb>, DbErr> {
    let mut out = vec![sqlite_file(connections).await?];
    out.extend(postgres(connections).await?);
    out.extend(mysql(connections).await?);
    Ok(out)
}

/// Creates the table of `entity` from its definition.
pub async fn create_table<C, E>(db: &C, entity: E) -> Result<(), DbErr>
where
    C: ConnectionTrait,
    E: EntityTrait,
{
    let backend = db.get_database_backend();
    let statement = backend.build(&Schema::new(backend).create_table_from_entity(entity));
    let sql = if backend == DbBackend::MySql {
        // sea-orm maps `DateTimeUtc` to MySQL's `timestamp`, which keeps whole seconds;
        // trackable's migrations use `DATETIME(6)`, and so do these test tables.
        statement
            .sql
            .replace(" timestamp ", " DATETIME(6) ")
            .replace(" timestamp,", " DATETIME(6),")
            .replace(" timestamp)", " DATETIME(6))")
    } else {
        statement.sql
    };
    db.execute_unprepared(&sql).await?;
    Ok(())
}
