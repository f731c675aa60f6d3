//! How the cost of the audit-trail calls grows with the table: login, a history page, the
//! failed-login count, the new-IP check and the lockout decision, with the audit table at 10
//! thousand and 1 million rows (10 million with `TRACKABLE_GROWTH_10M=1`), on a WAL SQLite
//! file and, when `TRACKABLE_POSTGRES_URL` is set, PostgreSQL; and the purge's throughput.
//!
//! ```text
//! TRACKABLE_POSTGRES_URL=$(scripts/postgres.sh start) cargo bench --bench growth
//! ```
//!
//! The rows belong to users of 100 events each, plus one user with a tenth of the rows, all
//! written by multi-row `INSERT`s of 500 rows. Each call is timed 200 times, alternating the
//! sizes' databases round by round so that load from other processes hits all of them alike;
//! the figure is the median. `TRACKABLE_GROWTH_PURGE_BATCH` sets the purge's batch size
//! (1000); `TRACKABLE_GROWTH_SQLITE=0` leaves SQLite out.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};
use trackable::models::member;
use trackable::{TestDb, create_members, sqlite_file};
use trackable_core::{ClientInfo, Lockout, Tracker, purge_audit_trail};

const EVENTS_PER_USER: i64 = 100;
const CALLS: usize = 200;
const INSERT_BATCH: i64 = 500;

/// One database with `rows` audit rows.
struct Fixture {
    size: i64,
    db: TestDb,
    users: Vec<member::Model>,
    heavy: member::Model,
}

async fn fixture(db: TestDb, size: i64) -> Fixture {
    create_members(&db.db).await.expect("tables");
    let heavy_rows = size / 10;
    let user_count = (size - heavy_rows) / EVENTS_PER_USER + 1;
    let backend = db.backend;
    // Users: ids 1..=user_count, the heavy one last.
    for start in (1..=user_count + 1).step_by(INSERT_BATCH as usize) {
        let end = (start + INSERT_BATCH - 1).min(user_count + 1);
        let mut sql = String::from("INSERT INTO members (id, email) VALUES ");
        let mut values = Vec::new();
        for id in start..=end {
            if id > start {
                sql.push_str(", ");
            }
            sql.push_str(&placeholders(backend, values.len(), 2));
            values.push(Value::from(id as i32));
            values.push(Value::from(format!("u{id}@example.com")));
        }
        exec(&db, sql, values).await;
    }
    let heavy_id = user_count + 1;
    // Events: for user u, seq 1..=100 (the heavy user 1..=heavy_rows), one in three a failed
    // login, IPs from a few hundred, times one second apart ending a day ago.
    let base = Utc::now() - TimeDelta::days(1);
    let mut n = 0i64;
    let total = (user_count * EVENTS_PER_USER).min(size - heavy_rows) + heavy_rows;
    let mut rows = Vec::with_capacity(total as usize);
    for user in 1..=user_count {
        for seq in 1..=EVENTS_PER_USER {
            if n >= size - heavy_rows {
                break;
            }
            rows.push((user, seq));
            n += 1;
        }
    }
    for seq in 1..=heavy_rows {
        rows.push((heavy_id, seq));
    }
    for batch in rows.chunks(INSERT_BATCH as usize) {
        let mut sql = String::from(
            "INSERT INTO member_events (user_id, seq, action, sign_in_count, remote_ip, inserted_at) VALUES ",
        );
        let mut values = Vec::with_capacity(batch.len() * 6);
        for (i, (user, seq)) in batch.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&placeholders(backend, values.len(), 6));
            let failed = seq % 3 == 0;
            values.push(Value::from(*user as i32));
            values.push(Value::from(*seq));
            values.push(Value::from(if failed { "failed_login" } else { "login" }));
            values.push(Value::from(seq - seq / 3));
            values.push(Value::from(format!("10.{}.{}.1", seq % 250, user % 250)));
            values.push(Value::from(base - TimeDelta::seconds(total - seq)));
        }
        exec(&db, sql, values).await;
    }
    if backend == DbBackend::Postgres {
        exec(&db, "ANALYZE member_events".to_owned(), Vec::new()).await;
    } else {
        exec(&db, "ANALYZE".to_owned(), Vec::new()).await;
    }
    let users = (1..=user_count.min(100))
        .map(|id| member::Model {
            id: id as i32,
            email: format!("u{id}@example.com"),
        })
        .collect();
    let heavy = member::Model {
        id: heavy_id as i32,
        email: format!("u{heavy_id}@example.com"),
    };
    Fixture {
        size,
        db,
        users,
        heavy,
    }
}

fn placeholders(backend: DbBackend, start: usize, n: usize) -> String {
    let marks: Vec<String> = (1..=n)
        .map(|i| match backend {
            DbBackend::Postgres => format!("${}", start + i),
            _ => "?".to_owned(),
        })
        .collect();
    format!("({})", marks.join(", "))
}

async fn exec(db: &TestDb, sql: String, values: Vec<Value>) {
    db.db
        .execute_raw(Statement::from_sql_and_values(db.backend, sql, values))
        .await
        .expect("fixture statement");
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Call {
    Login,
    HeavyHistory,
    FailedCount,
    HeavyFailedCount,
    NewIp,
    Lockout,
}

const CALLS_MEASURED: [Call; 6] = [
    Call::Login,
    Call::HeavyHistory,
    Call::FailedCount,
    Call::HeavyFailedCount,
    Call::NewIp,
    Call::Lockout,
];

impl Call {
    fn label(self) -> &'static str {
        match self {
            Call::Login => "login (table mode)",
            Call::HeavyHistory => "history page of 20, user with 10% of the rows",
            Call::FailedCount => "failed logins in 15 min",
            Call::HeavyFailedCount => "failed logins in 15 min, the 10% user",
            Call::NewIp => "is this IP new for the user",
            Call::Lockout => "lockout decision (locked_until)",
        }
    }
}

async fn run(fixture: &Fixture, call: Call, i: usize, tracker: &Tracker, lockout: &Lockout) {
    let db = &fixture.db.db;
    let user = &fixture.users[i % fixture.users.len()];
    let ip: IpAddr = format!("10.{}.7.1", i % 250).parse().expect("an IP");
    let since = Utc::now() - TimeDelta::minutes(15);
    match call {
        Call::Login => {
            let client = ClientInfo::from_ip(ip);
            tracker.login(db, user, &client).await.expect("login");
        }
        Call::HeavyHistory => {
            tracker
                .history(db, &fixture.heavy, None, 20)
                .await
                .expect("history");
        }
        Call::FailedCount => {
            tracker
                .count_failed_logins(db, user, since)
                .await
                .expect("count");
        }
        Call::HeavyFailedCount => {
            tracker
                .count_failed_logins(db, &fixture.heavy, since)
                .await
                .expect("count");
        }
        Call::NewIp => {
            tracker.is_new_ip(db, user, ip).await.expect("new ip");
        }
        Call::Lockout => {
            lockout
                .locked_until(tracker, db, user)
                .await
                .expect("lockout");
        }
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// On PostgreSQL, the plans of the failed-login count for the first user, as the driver's
/// prepared statement runs it: a custom plan for the first executions, then, by default, the
/// generic plan once it costs no more. `EXPLAIN (ANALYZE, BUFFERS)` of both.
async fn explain_failed_count(fixture: &Fixture) {
    use sea_orm::TransactionTrait;
    let txn = fixture.db.db.begin().await.expect("begin");
    let id = fixture.users[0].id;
    let run = |sql: String| {
        let txn = &txn;
        async move {
            let rows = txn
                .query_all_raw(Statement::from_string(DbBackend::Postgres, sql))
                .await
                .expect("explain");
            rows.iter()
                .map(|row| row.try_get_by_index::<String>(0).expect("plan line"))
                .collect::<Vec<_>>()
        }
    };
    // The crate's own statement: user id, action, since.
    let plans = trackable_core::explain_audit_queries(&txn, &fixture.users[0])
        .await
        .expect("plans");
    let count = plans
        .into_iter()
        .find(|plan| plan.query == "failed_logins_user")
        .expect("the failed-login count");
    run(format!("PREPARE failed_count AS {}", count.sql)).await;
    for mode in ["force_custom_plan", "force_generic_plan"] {
        run(format!("SET LOCAL plan_cache_mode = {mode}")).await;
        let plan = run(format!(
            "EXPLAIN (ANALYZE, BUFFERS) EXECUTE failed_count({id}, 'failed_login', now() - interval '15 minutes')"
        ))
        .await;
        println!("\n{} rows, {mode}:\n{}", fixture.size, plan.join("\n"));
    }
    txn.rollback().await.expect("rollback");
}

async fn measure(fixtures: &[Fixture], name: &str) {
    if name == "PostgreSQL" {
        for fixture in fixtures {
            explain_failed_count(fixture).await;
        }
    }
    let tracker = Tracker::new();
    let lockout = Lockout::default();
    println!("\n{name}: median µs per call over {CALLS} calls, sizes interleaved\n");
    print!("| call |");
    for fixture in fixtures {
        print!(" {} rows |", fixture.size);
    }
    println!(" largest / smallest |");
    println!("|---|{}---|", "---|".repeat(fixtures.len()));
    for call in CALLS_MEASURED {
        let mut samples = vec![Vec::with_capacity(CALLS); fixtures.len()];
        for i in 0..CALLS {
            for (fixture, samples) in fixtures.iter().zip(&mut samples) {
                let start = Instant::now();
                run(fixture, call, i, &tracker, &lockout).await;
                samples.push(start.elapsed());
            }
        }
        let medians: Vec<Duration> = samples.into_iter().map(median).collect();
        print!("| {} |", call.label());
        for m in &medians {
            print!(" {:.0} |", m.as_secs_f64() * 1e6);
        }
        let ratio = medians[medians.len() - 1].as_secs_f64() / medians[0].as_secs_f64();
        println!(" {ratio:.2}× |");
    }
    // The purge: everything older than an hour, but each user's latest row; on the largest
    // table while 16 tasks sign in, against the same logins without it.
    println!(
        "\n| {name} purge | rows deleted | rows/s | login p99 without / during the purge |\n|---|---|---|---|"
    );
    // Purging 10 million rows takes about 20 minutes on SQLite: the purge runs on the tables
    // of up to 1 million rows, the p99 on the largest of them.
    let purged: Vec<_> = fixtures.iter().filter(|f| f.size <= PURGE_MAX).collect();
    let last = purged.len() - 1;
    for (n, fixture) in purged.into_iter().enumerate() {
        let cut_off = Utc::now() - TimeDelta::hours(1);
        let db = sea_orm::DatabaseConnection::clone(&fixture.db.db);
        let quiet = if n == last {
            Some(login_latencies(fixture, 16, 40).await)
        } else {
            None
        };
        let start = Instant::now();
        let purge = tokio::spawn(async move {
            purge_audit_trail::<member::Model>(&db, cut_off, purge_batch())
                .await
                .expect("purge")
        });
        let during = match quiet {
            Some(_) => Some(login_latencies(fixture, 16, 40).await),
            None => None,
        };
        let still_running = !purge.is_finished();
        let deleted = purge.await.expect("purge task");
        let rate = deleted as f64 / start.elapsed().as_secs_f64();
        let p99 = match (quiet, during) {
            (Some(quiet), Some(during)) => format!(
                "{:.1} ms / {:.1} ms ({:.2}×{})",
                quiet.as_secs_f64() * 1e3,
                during.as_secs_f64() * 1e3,
                during.as_secs_f64() / quiet.as_secs_f64(),
                if still_running {
                    ""
                } else {
                    "; the purge ended before the logins"
                }
            ),
            _ => "-".to_owned(),
        };
        println!("| {} rows | {deleted} | {rate:.0} | {p99} |", fixture.size);
    }
}

/// The largest table the purge runs on.
const PURGE_MAX: i64 = 1_000_000;

/// The purge's batch size: 1000, or `TRACKABLE_GROWTH_PURGE_BATCH`.
fn purge_batch() -> u32 {
    std::env::var("TRACKABLE_GROWTH_PURGE_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

/// The p99 latency of `tasks` tasks each signing in `each` times (users of the fixture).
async fn login_latencies(fixture: &Fixture, tasks: usize, each: usize) -> Duration {
    let tracker = Tracker::new();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let (db, tracker) = (fixture.db.db.clone(), tracker.clone());
            let users = fixture.users.clone();
            tokio::spawn(async move {
                let mut samples = Vec::with_capacity(each);
                for i in 0..each {
                    let user = &users[(t * each + i) % users.len()];
                    let client = ClientInfo::from_ip(IpAddr::from([10, 9, (t % 250) as u8, 1]));
                    let start = Instant::now();
                    tracker.login(&db, user, &client).await.expect("login");
                    samples.push(start.elapsed());
                }
                samples
            })
        })
        .collect();
    let mut all = Vec::with_capacity(tasks * each);
    for handle in handles {
        all.extend(handle.await.expect("login task"));
    }
    all.sort();
    all[all.len() * 99 / 100]
}

fn main() {
    // `cargo test --benches` runs a quick pass; `cargo bench` the sizes of the issue.
    let full = std::env::args().any(|a| a == "--bench");
    let mut sizes = if full {
        vec![10_000, 1_000_000]
    } else {
        vec![1_000, 5_000]
    };
    if full && std::env::var("TRACKABLE_GROWTH_10M").is_ok_and(|v| v == "1") {
        sizes.push(10_000_000);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // `TRACKABLE_GROWTH_SQLITE=0` leaves SQLite out (a PostgreSQL-only run).
    let sqlite = !std::env::var("TRACKABLE_GROWTH_SQLITE").is_ok_and(|v| v == "0");
    rt.block_on(async {
        let mut fixtures = Vec::new();
        for &size in sizes.iter().filter(|_| sqlite) {
            let start = Instant::now();
            let db = sqlite_file(4).await.expect("sqlite");
            fixtures.push(fixture(db, size).await);
            println!(
                "SQLite fixture of {size} rows in {:.1} s",
                start.elapsed().as_secs_f64()
            );
        }
        if sqlite {
            measure(&fixtures, "SQLite (WAL file)").await;
        }
        drop(fixtures);
        let mut fixtures = Vec::new();
        for &size in &sizes {
            let start = Instant::now();
            let Some(db) = trackable::postgres(4).await.expect("postgres") else {
                return;
            };
            fixtures.push(fixture(db, size).await);
            println!(
                "PostgreSQL fixture of {size} rows in {:.1} s",
                start.elapsed().as_secs_f64()
            );
        }
        measure(&fixtures, "PostgreSQL").await;
    });
}
