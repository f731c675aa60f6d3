//! Logins from 1, 16 and 64 concurrent tasks, against the naive SeaORM code and a hand-written
//! single-statement floor, in both modes, on a WAL SQLite file (pool 8) and, when
//! `TRACKABLE_POSTGRES_URL` is set, on PostgreSQL (pool 16).
//!
//! For every backend, mode and number of tasks, the three variants run in alternating rounds
//! (the order rotating from round to round), so that load from other processes hits them all
//! alike. A round is a batch of events shared out to the tasks through one counter; its
//! throughput is the events acknowledged over its wall time. Every variant and level signs in
//! its own 100 users, so that after the run the database can be checked against what each
//! task acknowledged: an acknowledged login that the stored state does not hold is a lost
//! increment.
//!
//! - fields mode: `track_login`; naive: `find_by_id`, the five fields set in Rust, `update`;
//!   floor: the same `UPDATE ... RETURNING` written by hand and sent through sqlx;
//! - table mode: `track_login`; naive: select the latest audit row, insert the next one
//!   computed in Rust (no lock); floor: one hand-written statement through sqlx: on SQLite an
//!   `INSERT ... SELECT ... RETURNING` (safe, as SQLite has one writer), on PostgreSQL a call of
//!   the migration's append function (a plain `INSERT ... SELECT` is not safe there: under
//!   READ COMMITTED two of them read the same latest row).
//!
//! ```text
//! TRACKABLE_POSTGRES_URL=postgres://... cargo bench --bench concurrent
//! ```

use std::hint::black_box;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, Set};
use trackable::models::member::{self, member_events};
use trackable::models::user;
use trackable::{TestDb, create_table};
use trackable_core::{Action, ClientInfo, Trackable};

const USERS: usize = 100;
const LEVELS: [usize; 3] = [1, 16, 64];
const SQLITE_POOL: u32 = 8;
const SERVER_POOL: u32 = 16;
const USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) bench/1.0";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Fields,
    Table,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Variant {
    Trackable,
    Naive,
    Floor,
}

const VARIANTS: [Variant; 3] = [Variant::Trackable, Variant::Naive, Variant::Floor];

impl Variant {
    fn label(self, mode: Mode) -> &'static str {
        match (self, mode) {
            (Variant::Trackable, _) => "trackable",
            (Variant::Naive, Mode::Fields) => "naive read-modify-write",
            (Variant::Naive, Mode::Table) => "naive select + insert",
            (Variant::Floor, _) => "hand-written single statement",
        }
    }
}

struct Ctx {
    db: DatabaseConnection,
    /// `USERS` per (level, variant), in that order.
    users: Vec<user::Model>,
    members: Vec<member::Model>,
    client: ClientInfo,
    ip: IpAddr,
}

fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// The first user of the slice that `variant` signs in at `level`.
fn slot(level: usize, variant: usize) -> usize {
    (level * VARIANTS.len() + variant) * USERS
}

impl Ctx {
    async fn run(&self, mode: Mode, variant: Variant, user: usize) -> Result<(), String> {
        match (mode, variant) {
            (Mode::Fields, Variant::Trackable) => {
                let row = trackable_core::track_login(&self.db, &self.users[user], &self.client)
                    .await
                    .map_err(|e| e.to_string())?;
                black_box(row);
            }
            (Mode::Fields, Variant::Naive) => {
                black_box(self.fields_naive(self.users[user].id).await?);
            }
            (Mode::Fields, Variant::Floor) => {
                black_box(self.fields_floor(self.users[user].id).await?);
            }
            (Mode::Table, Variant::Trackable) => {
                let row = trackable_core::track_login(&self.db, &self.members[user], &self.client)
                    .await
                    .map_err(|e| e.to_string())?;
                black_box(row);
            }
            (Mode::Table, Variant::Naive) => {
                black_box(self.table_naive(self.members[user].id).await?);
            }
            (Mode::Table, Variant::Floor) => {
                black_box(self.table_floor(self.members[user].id).await?);
            }
        }
        Ok(())
    }

    /// Devise's `update_tracked_fields!` in SeaORM (see `trackable::naive`).
    async fn fields_naive(&self, id: i32) -> Result<user::Model, String> {
        let ip = self.ip.to_string();
        let login = trackable::naive::fields_login(&self.db, id, &ip, now());
        login.await.map_err(|e| e.to_string())
    }

    /// The floor (`trackable::floor`): the same `UPDATE ... RETURNING` through sqlx.
    async fn fields_floor(&self, id: i32) -> Result<user::Model, String> {
        let ip = self.ip.to_string();
        let login = trackable::floor::fields_login(&self.db, id, &ip, now());
        login.await.map_err(|e| e.to_string())
    }

    /// The latest audit row, then the next one computed in Rust and inserted, without a lock.
    async fn table_naive(&self, id: i32) -> Result<member_events::Model, String> {
        let ip = self.ip.to_string();
        let login = Action::Login;
        let event = trackable::naive::table_event(&self.db, id, login, &ip, USER_AGENT, now());
        event.await.map_err(|e| e.to_string())
    }

    /// The floor (`trackable::floor`): the same `INSERT ... SELECT` (SQLite) or append
    /// function (PostgreSQL) through sqlx.
    async fn table_floor(&self, id: i32) -> Result<member_events::Model, String> {
        let ip = self.ip.to_string();
        let login = trackable::floor::table_login(&self.db, id, &ip, USER_AGENT, now());
        login.await.map_err(|e| e.to_string())
    }
}

// ---------------------------------------------------------------------------------------------
// Setup

async fn populate(db: &DatabaseConnection, n: usize) -> (Vec<user::Model>, Vec<member::Model>) {
    create_table(db, user::Entity).await.expect("users table");
    create_table(db, member::Entity)
        .await
        .expect("members table");
    member::Model::migration()
        .up(db)
        .await
        .expect("audit table");
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        user::Entity::insert_many(chunk.iter().map(|i| user::ActiveModel {
            email: Set(format!("user{i}@example.com")),
            sign_in_count: Set(0),
            ..Default::default()
        }))
        .exec(db)
        .await
        .expect("users");
    }
    let users = user::Entity::find()
        .order_by_asc(user::Column::Id)
        .all(db)
        .await
        .expect("users");
    let members = trackable::insert_members(db, n).await.expect("members");
    (users, members)
}

// ---------------------------------------------------------------------------------------------
// Measurement

/// CPU time used so far by every thread of this process (the SQLite worker threads included).
fn process_cpu() -> Option<Duration> {
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(total))
}

#[derive(Default)]
struct Tally {
    /// Events per second of each round.
    throughputs: Vec<f64>,
    latencies: Vec<Duration>,
    /// Acknowledged logins per user of the variant's slice.
    acknowledged: Vec<i64>,
    errors: Vec<String>,
    cpu: Duration,
}

/// One round: `events` logins of `variant`, spread over `tasks` tasks, for the users of the
/// slice starting at `first`.
async fn round(
    ctx: &Arc<Ctx>,
    mode: Mode,
    variant: Variant,
    tasks: usize,
    events: usize,
    first: usize,
    tally: &mut Tally,
) {
    let next = Arc::new(AtomicUsize::new(0));
    let cpu = process_cpu();
    let start = Instant::now();
    let mut handles = Vec::with_capacity(tasks);
    for _ in 0..tasks {
        let (ctx, next) = (ctx.clone(), next.clone());
        handles.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut acknowledged = vec![0i64; USERS];
            let mut errors = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= events {
                    break;
                }
                let user = i % USERS;
                let t = Instant::now();
                match ctx.run(mode, variant, first + user).await {
                    Ok(()) => {
                        latencies.push(t.elapsed());
                        acknowledged[user] += 1;
                    }
                    Err(e) => errors.push(e),
                }
            }
            (latencies, acknowledged, errors)
        }));
    }
    let mut done = 0;
    for handle in handles {
        let (latencies, acknowledged, errors) = handle.await.expect("task");
        done += latencies.len();
        tally.latencies.extend(latencies);
        for (sum, n) in tally.acknowledged.iter_mut().zip(acknowledged) {
            *sum += n;
        }
        tally.errors.extend(errors);
    }
    let elapsed = start.elapsed();
    tally.throughputs.push(done as f64 / elapsed.as_secs_f64());
    if let (Some(before), Some(after)) = (cpu, process_cpu()) {
        tally.cpu += after.saturating_sub(before);
    }
}

/// Lost increments of the slice starting at `first`: logins acknowledged that the stored state
/// does not hold.
async fn lost(ctx: &Ctx, mode: Mode, first: usize, acknowledged: &[i64]) -> i64 {
    let mut lost = 0;
    for (k, &acked) in acknowledged.iter().enumerate() {
        let held = match mode {
            Mode::Fields => {
                let row = user::Entity::find_by_id(ctx.users[first + k].id)
                    .one(&ctx.db)
                    .await
                    .expect("reload")
                    .expect("user");
                i64::from(row.sign_in_count)
            }
            Mode::Table => {
                let mut counts: Vec<i64> = member_events::Entity::find()
                    .filter(member_events::Column::UserId.eq(ctx.members[first + k].id))
                    .all(&ctx.db)
                    .await
                    .expect("rows")
                    .into_iter()
                    .map(|r| r.sign_in_count)
                    .collect();
                counts.sort_unstable();
                counts.dedup();
                counts.len() as i64
            }
        };
        lost += (acked - held).max(0);
    }
    lost
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

struct Plan<'a> {
    rounds: usize,
    events: usize,
    /// Runs only the backend/mode pairs whose `Backend/Mode` name contains it.
    filter: Option<&'a str>,
}

async fn bench_backend(name: &str, test_db: &TestDb, pool: u32, plan: &Plan<'_>) {
    let Plan {
        rounds,
        events,
        filter,
    } = *plan;
    let n = LEVELS.len() * VARIANTS.len() * USERS;
    let (users, members) = populate(&test_db.db, n).await;
    let ip: IpAddr = "203.0.113.7".parse().expect("ip");
    let ctx = Arc::new(Ctx {
        db: test_db.db.clone(),
        users,
        members,
        client: ClientInfo::from_ip(ip).with_user_agent(USER_AGENT),
        ip,
    });
    for mode in [Mode::Fields, Mode::Table] {
        if filter.is_some_and(|f| !format!("{name}/{mode:?}").contains(f)) {
            continue;
        }
        for (level, &tasks) in LEVELS.iter().enumerate() {
            let mut tallies: Vec<Tally> = VARIANTS
                .iter()
                .map(|_| Tally {
                    acknowledged: vec![0; USERS],
                    ..Tally::default()
                })
                .collect();
            for r in 0..rounds {
                for k in 0..VARIANTS.len() {
                    let v = (r + k) % VARIANTS.len();
                    let first = slot(level, v);
                    round(
                        &ctx,
                        mode,
                        VARIANTS[v],
                        tasks,
                        events,
                        first,
                        &mut tallies[v],
                    )
                    .await;
                }
            }
            let ours = median(&mut tallies[0].throughputs.clone());
            for (v, tally) in tallies.iter_mut().enumerate() {
                let lost = lost(&ctx, mode, slot(level, v), &tally.acknowledged).await;
                let throughput = median(&mut tally.throughputs);
                tally.latencies.sort();
                let acked = tally.latencies.len().max(1);
                let ratio = if v == 0 {
                    String::new()
                } else {
                    format!("{:.2}×", ours / throughput)
                };
                println!(
                    "| {name} (pool {pool}) | {mode:?} | {tasks} | {} | {throughput:.0} | {ratio} | {:.2} | {:.2} | {:.0} | {lost} | {} |",
                    VARIANTS[v].label(mode),
                    percentile_ms(&tally.latencies, 0.5),
                    percentile_ms(&tally.latencies, 0.99),
                    tally.cpu.as_secs_f64() * 1e6 / acked as f64,
                    tally.errors.len(),
                );
                if let Some(first) = tally.errors.first() {
                    eprintln!(
                        "{name} {mode:?} {tasks} tasks {}: first error: {first}",
                        VARIANTS[v].label(mode)
                    );
                }
            }
        }
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` does not, and gets a quick run.
    // A free argument (`cargo bench --bench concurrent -- SQLite/Table`) restricts the run.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let full = args.iter().any(|a| a == "--bench");
    let (rounds, events) = if full { (15, 400) } else { (1, 64) };
    let plan = Plan {
        rounds,
        events,
        filter: args
            .iter()
            .find(|a| !a.starts_with("--"))
            .map(String::as_str),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "{rounds} interleaved rounds of {events} logins per variant and level, over {USERS} users per variant\n"
    );
    println!(
        "| backend | mode | tasks | variant | median logins/s | trackable's throughput vs this | p50 (ms) | p99 (ms) | client CPU µs/login | lost increments | errors |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    rt.block_on(async {
        let sqlite = trackable::sqlite_file(SQLITE_POOL).await.expect("sqlite");
        bench_backend("SQLite", &sqlite, SQLITE_POOL, &plan).await;
        drop(sqlite);
        if plan
            .filter
            .is_some_and(|f| !"PostgreSQL/".contains(f) && !f.starts_with("PostgreSQL"))
        {
            return;
        }
        if let Some(pg) = trackable::postgres(SERVER_POOL).await.expect("postgres") {
            bench_backend("PostgreSQL", &pg, SERVER_POOL, &plan).await;
        }
    });
}
