//! A load run: 10,000 logins over 200 users from 32 concurrent tasks, in both modes, on every
//! backend available. After the run it counts, from the database, the increments lost (logins
//! acknowledged to a task that the stored state does not hold) and the logins that failed, and
//! prints them with the throughput; it exits non-zero when either is not zero.
//!
//! ```text
//! export TRACKABLE_POSTGRES_URL=$(scripts/postgres.sh start)   # optional
//! export TRACKABLE_MYSQL_URL=$(scripts/mariadb.sh start)       # optional
//! cargo run --release --example load
//! ```
//!
//! SQLite is a file in WAL mode with a pool of 8 connections; the servers get 16.

use std::net::{IpAddr, Ipv4Addr};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sea_orm::{ActiveModelTrait, DatabaseConnection, EntityTrait, QueryOrder, Set};
use trackable::models::member::{self, member_events};
use trackable::models::user;
use trackable::{TestDb, create_table};
use trackable_core::{Action, ClientInfo, Trackable};

const LOGINS: usize = 10_000;
const USERS: usize = 200;
const TASKS: usize = 32;
const SQLITE_POOL: u32 = 8;
const SERVER_POOL: u32 = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Fields,
    Table,
}

/// What one run measured.
struct Report {
    backend: &'static str,
    mode: Mode,
    pool: u32,
    elapsed: Duration,
    latencies: Vec<Duration>,
    /// Logins acknowledged to a task that the database does not hold.
    lost: i64,
    /// Logins that returned an error.
    errors: usize,
}

/// Which user each login is for: a fixed pseudo-random sequence (xorshift), so users receive
/// uneven numbers of logins and runs are comparable.
fn plan() -> Vec<usize> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..LOGINS)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % USERS as u64) as usize
        })
        .collect()
}

fn client(i: usize) -> ClientInfo {
    let ip = IpAddr::V4(Ipv4Addr::new(
        198,
        51,
        (i / 250 % 250) as u8,
        (i % 250) as u8,
    ));
    ClientInfo::from_ip(ip).with_user_agent("load/1.0")
}

/// What the tasks saw: the wall time, the latency of every acknowledged login, how many logins
/// each user had acknowledged, and the errors.
struct Outcome {
    elapsed: Duration,
    latencies: Vec<Duration>,
    acknowledged: Vec<i64>,
    errors: Vec<String>,
}

/// Runs the logins of `plan` from `TASKS` tasks; `login(db, user index, login number)` tracks
/// one. A failed login is recorded and the run goes on, so that the database can be checked
/// against what was acknowledged.
async fn drive<F, Fut>(db: &DatabaseConnection, plan: &Arc<Vec<usize>>, login: F) -> Outcome
where
    F: Fn(DatabaseConnection, usize, usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let (db, plan, next, login) = (db.clone(), plan.clone(), next.clone(), login.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut acknowledged = vec![0i64; USERS];
            let mut errors = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&user) = plan.get(i) else { break };
                let t = Instant::now();
                match login(db.clone(), user, i).await {
                    Ok(()) => {
                        latencies.push(t.elapsed());
                        acknowledged[user] += 1;
                    }
                    Err(e) => errors.push(format!("login {i}: {e}")),
                }
            }
            (latencies, acknowledged, errors)
        }));
    }
    let mut outcome = Outcome {
        elapsed: Duration::ZERO,
        latencies: Vec::with_capacity(LOGINS),
        acknowledged: vec![0; USERS],
        errors: Vec::new(),
    };
    for task in tasks {
        match task.await {
            Ok((l, a, e)) => {
                outcome.latencies.extend(l);
                for (sum, n) in outcome.acknowledged.iter_mut().zip(a) {
                    *sum += n;
                }
                outcome.errors.extend(e);
            }
            Err(e) => outcome.errors.push(format!("task failed: {e}")),
        }
    }
    outcome.elapsed = start.elapsed();
    outcome
}

/// A run's outcome checked against the database: the increments the database lost (logins
/// acknowledged to a task but missing from the stored state) and what else does not add up.
struct Checked {
    outcome: Outcome,
    lost: i64,
    problems: Vec<String>,
}

async fn fields(db: &TestDb, plan: &Arc<Vec<usize>>) -> Result<Checked, sea_orm::DbErr> {
    create_table(&db.db, user::Entity).await?;
    let mut users = Vec::with_capacity(USERS);
    for i in 0..USERS {
        let u = user::ActiveModel {
            email: Set(format!("user{i}@example.com")),
            sign_in_count: Set(0),
            ..Default::default()
        }
        .insert(&db.db)
        .await?;
        users.push(u);
    }
    let users = Arc::new(users);

    let outcome = drive(&db.db, plan, move |db, u, i| {
        let users = users.clone();
        async move {
            let row = trackable_core::track_login(&db, &users[u], &client(i))
                .await
                .map_err(|e| e.to_string())?;
            if row.sign_in_count < 1 {
                return Err(format!("returned count {}", row.sign_in_count));
            }
            Ok(())
        }
    })
    .await;

    // Every user's stored count against the logins acknowledged for it.
    let stored = user::Entity::find()
        .order_by_asc(user::Column::Id)
        .all(&db.db)
        .await?;
    let mut lost = 0;
    let mut problems = Vec::new();
    for (u, row) in stored.iter().enumerate() {
        let acked = outcome.acknowledged[u];
        let count = i64::from(row.sign_in_count);
        lost += (acked - count).max(0);
        if count > acked {
            problems.push(format!(
                "user {} has count {count}, {acked} logins acknowledged",
                row.id
            ));
        }
    }
    Ok(Checked {
        outcome,
        lost,
        problems,
    })
}

async fn table(db: &TestDb, plan: &Arc<Vec<usize>>) -> Result<Checked, sea_orm::DbErr> {
    create_table(&db.db, member::Entity).await?;
    member::Model::migration().up(&db.db).await?;
    let mut members = Vec::with_capacity(USERS);
    for i in 0..USERS {
        let m = member::ActiveModel {
            email: Set(format!("member{i}@example.com")),
            ..Default::default()
        }
        .insert(&db.db)
        .await?;
        members.push(m);
    }
    let ids: Vec<i32> = members.iter().map(|m| m.id).collect();
    let members = Arc::new(members);

    let outcome = drive(&db.db, plan, move |db, u, i| {
        let members = members.clone();
        async move {
            let row = trackable_core::track_login(&db, &members[u], &client(i))
                .await
                .map_err(|e| e.to_string())?;
            if row.action != Action::Login || row.sign_in_count < 1 {
                return Err(format!("returned {row:?}"));
            }
            Ok(())
        }
    })
    .await;

    // Per user, in insertion order: counts 1..k with k the logins acknowledged for it, and
    // each row's last sign-in is the previous row's current one. An acknowledged login
    // without its own count is a lost increment.
    let rows = member_events::Entity::find()
        .order_by_asc(member_events::Column::UserId)
        .order_by_asc(member_events::Column::Id)
        .all(&db.db)
        .await?;
    let mut lost = 0;
    let mut problems = Vec::new();
    for (u, &id) in ids.iter().enumerate() {
        let mine: Vec<_> = rows.iter().filter(|r| r.user_id == id).collect();
        let acked = outcome.acknowledged[u];
        let mut counts: Vec<i64> = mine.iter().map(|r| r.sign_in_count).collect();
        counts.sort_unstable();
        counts.dedup();
        lost += (acked - counts.len() as i64).max(0);
        if mine.len() as i64 > acked {
            problems.push(format!(
                "member {id} has {} rows, {acked} logins acknowledged",
                mine.len()
            ));
        }
        for (k, row) in mine.iter().enumerate() {
            if row.sign_in_count != k as i64 + 1 {
                problems.push(format!(
                    "member {id}: row {} has count {}, expected {}",
                    row.id,
                    row.sign_in_count,
                    k + 1
                ));
            }
            let (last_at, last_ip) = match k {
                0 => (row.current_sign_in_at, &row.current_sign_in_ip),
                _ => (
                    mine[k - 1].current_sign_in_at,
                    &mine[k - 1].current_sign_in_ip,
                ),
            };
            if row.last_sign_in_at != last_at || &row.last_sign_in_ip != last_ip {
                problems.push(format!(
                    "member {id}: row {} does not follow the previous login",
                    row.id
                ));
            }
        }
    }
    Ok(Checked {
        outcome,
        lost,
        problems,
    })
}

async fn fresh(backend: &str) -> Result<Option<TestDb>, sea_orm::DbErr> {
    match backend {
        "SQLite" => trackable::sqlite_file(SQLITE_POOL).await.map(Some),
        "PostgreSQL" => trackable::postgres(SERVER_POOL).await,
        _ => trackable::mysql(SERVER_POOL).await,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

#[tokio::main]
async fn main() -> ExitCode {
    let plan = Arc::new(plan());
    let mut reports = Vec::new();
    let mut failed = false;
    println!("{LOGINS} logins over {USERS} users from {TASKS} concurrent tasks\n");

    for backend in ["SQLite", "PostgreSQL", "MariaDB"] {
        for mode in [Mode::Fields, Mode::Table] {
            let db = match fresh(backend).await {
                Ok(Some(db)) => db,
                Ok(None) => continue,
                Err(e) => {
                    eprintln!("{backend}: cannot create a database: {e}");
                    failed = true;
                    continue;
                }
            };
            let pool = if backend == "SQLite" {
                SQLITE_POOL
            } else {
                SERVER_POOL
            };
            let checked = match mode {
                Mode::Fields => fields(&db, &plan).await,
                Mode::Table => table(&db, &plan).await,
            };
            let checked = match checked {
                Ok(checked) => checked,
                Err(e) => {
                    failed = true;
                    eprintln!("{backend} {mode:?} mode: FAILED: {e}");
                    continue;
                }
            };
            let Checked {
                outcome,
                lost,
                problems,
            } = checked;
            let ok = lost == 0 && outcome.errors.is_empty() && problems.is_empty();
            println!(
                "{backend} {mode:?} mode: {}, {:.0} logins/s",
                if ok { "ok" } else { "FAILED" },
                outcome.latencies.len() as f64 / outcome.elapsed.as_secs_f64()
            );
            if !ok {
                failed = true;
                eprintln!(
                    "  {lost} lost increment(s), {} error(s), {} other problem(s); the first ones:",
                    outcome.errors.len(),
                    problems.len()
                );
                for p in outcome.errors.iter().chain(&problems).take(10) {
                    eprintln!("  {p}");
                }
            }
            reports.push(Report {
                backend,
                mode,
                pool,
                elapsed: outcome.elapsed,
                errors: outcome.errors.len(),
                lost,
                latencies: outcome.latencies,
            });
        }
    }

    println!(
        "\n| backend | mode | pool | wall time (s) | logins/s | p50 (ms) | p99 (ms) | lost increments | errors |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for mut r in reports {
        r.latencies.sort();
        println!(
            "| {} | {:?} | {} | {:.2} | {:.0} | {:.2} | {:.2} | {} | {} |",
            r.backend,
            r.mode,
            r.pool,
            r.elapsed.as_secs_f64(),
            r.latencies.len() as f64 / r.elapsed.as_secs_f64(),
            percentile(&r.latencies, 0.5),
            percentile(&r.latencies, 0.99),
            r.lost,
            r.errors,
        );
    }

    if failed {
        eprintln!("\nload run FAILED");
        ExitCode::FAILURE
    } else {
        println!("\nall checks passed");
        ExitCode::SUCCESS
    }
}
