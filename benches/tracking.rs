//! The cost of tracking an event, against what an application would write by hand.
//!
//! On file-backed SQLite (WAL) always, and on PostgreSQL when `TRACKABLE_POSTGRES_URL` is set:
//!
//! - fields mode `track_login` against a SeaORM read-modify-write (`find_by_id`, set the five
//!   fields on the `ActiveModel`, `update`: what Coherence and Devise do, and what loses
//!   increments under concurrency) and against one hand-written `UPDATE ... RETURNING` sent
//!   through sqlx on the same pool (the floor);
//! - table mode `track_login` and `track_failed_login` against selecting the user's latest audit
//!   row and inserting the next one computed in Rust (no lock, so also not safe under
//!   concurrency), and the login with the hash chain (`Tracker::with_chain_key`);
//! - the SQL statements each operation sends, counted from the driver's statement log
//!   (`sqlx::query` events) plus SeaORM's `begin`/`commit`/`rollback` spans; also on MySQL /
//!   MariaDB when `TRACKABLE_MYSQL_URL` is set (counted only, not timed: it has no
//!   `UPDATE ... RETURNING` for the floor).
//!
//! After the criterion groups, an interleaved pass times every variant of a comparison in
//! alternating batches, so that load from other processes hits all of them alike; its medians
//! give the ratios.
//!
//! ```text
//! TRACKABLE_POSTGRES_URL=$(scripts/postgres.sh start) cargo bench --bench tracking
//! ```

use std::hint::black_box;
use std::net::IpAddr;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, SubsecRound, Utc};
use criterion::{Criterion, Throughput};
use sea_orm::sqlx;
use sea_orm::{
    ActiveModelTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend,
    Set, Statement,
};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::{Layer, Registry};
use trackable::models::member::{self, member_events};
use trackable::models::user;
use trackable::{TestDb, create_table};
use trackable_core::{Action, ClientInfo, Trackable};

const USERS: usize = 100;

// ---------------------------------------------------------------------------------------------
// Statement counting

static COUNTING: AtomicBool = AtomicBool::new(false);
static SELECTS: AtomicU64 = AtomicU64::new(0);
static INSERTS: AtomicU64 = AtomicU64::new(0);
static UPDATES: AtomicU64 = AtomicU64::new(0);
static SETS: AtomicU64 = AtomicU64::new(0);
static OTHER: AtomicU64 = AtomicU64::new(0);
static BEGINS: AtomicU64 = AtomicU64::new(0);
static ENDS: AtomicU64 = AtomicU64::new(0);
static SQLX_TXN: AtomicU64 = AtomicU64::new(0);

const TXN_TARGET: &str = "sea_orm::database::transaction";

fn counted(meta: &tracing::Metadata<'_>) -> bool {
    meta.target().starts_with("sqlx::query")
        || (meta.target() == TXN_TARGET && matches!(meta.name(), "begin" | "commit" | "rollback"))
}

/// Counts the statements the driver logs and the transactions SeaORM opens and closes, while
/// `COUNTING` is set. Every other callsite is disabled for good, so the timed runs pay nothing.
struct StatementCounter;

struct Summary(Option<String>);

impl tracing::field::Visit for Summary {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "summary" {
            self.0 = Some(value.to_owned());
        }
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "summary" {
            self.0 = Some(format!("{value:?}").trim_matches('"').to_owned());
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for StatementCounter {
    fn register_callsite(
        &self,
        meta: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        if counted(meta) {
            tracing::subscriber::Interest::sometimes()
        } else {
            tracing::subscriber::Interest::never()
        }
    }

    fn enabled(&self, meta: &tracing::Metadata<'_>, _: Context<'_, S>) -> bool {
        counted(meta) && COUNTING.load(Ordering::Relaxed)
    }

    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut summary = Summary(None);
        event.record(&mut summary);
        let verb = summary
            .0
            .as_deref()
            .and_then(|s| s.split_whitespace().next())
            .unwrap_or("")
            .to_ascii_uppercase();
        let counter = match verb.as_str() {
            "SELECT" => &SELECTS,
            "INSERT" => &INSERTS,
            "UPDATE" => &UPDATES,
            // `SET TRANSACTION ISOLATION LEVEL ...` before a MySQL transaction.
            "SET" => &SETS,
            // Also counted by SeaORM's spans, which SQLite's driver does not log.
            "BEGIN" | "COMMIT" | "ROLLBACK" | "START" => &SQLX_TXN,
            _ => &OTHER,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _: &tracing::span::Id,
        _: Context<'_, S>,
    ) {
        match attrs.metadata().name() {
            "begin" => BEGINS.fetch_add(1, Ordering::Relaxed),
            _ => ENDS.fetch_add(1, Ordering::Relaxed),
        };
    }
}

#[derive(Clone, Copy, Default)]
struct Counts {
    set: u64,
    begin: u64,
    select: u64,
    insert: u64,
    update: u64,
    other: u64,
    end: u64,
}

impl Counts {
    fn total(&self) -> u64 {
        self.set + self.begin + self.select + self.insert + self.update + self.other + self.end
    }

    fn per_event(&self, n: u64) -> String {
        let mut parts = Vec::new();
        for (count, name) in [
            (self.set, "SET TRANSACTION"),
            (self.begin, "BEGIN"),
            (self.select, "SELECT"),
            (self.insert, "INSERT"),
            (self.update, "UPDATE"),
            (self.other, "other"),
            (self.end, "COMMIT"),
        ] {
            if count > 0 {
                if count.is_multiple_of(n) {
                    let k = count / n;
                    parts.push(if k == 1 {
                        name.to_owned()
                    } else {
                        format!("{k}×{name}")
                    });
                } else {
                    parts.push(format!("{:.2}×{name}", count as f64 / n as f64));
                }
            }
        }
        let total = self.total();
        let total = if total.is_multiple_of(n) {
            (total / n).to_string()
        } else {
            format!("{:.2}", total as f64 / n as f64)
        };
        format!("{total} ({})", parts.join(" + "))
    }
}

fn reset() {
    for c in [
        &SELECTS, &INSERTS, &UPDATES, &SETS, &OTHER, &BEGINS, &ENDS, &SQLX_TXN,
    ] {
        c.store(0, Ordering::SeqCst);
    }
}

fn snapshot(backend: DbBackend) -> Counts {
    let counts = Counts {
        set: SETS.load(Ordering::SeqCst),
        begin: BEGINS.load(Ordering::SeqCst),
        select: SELECTS.load(Ordering::SeqCst),
        insert: INSERTS.load(Ordering::SeqCst),
        update: UPDATES.load(Ordering::SeqCst),
        other: OTHER.load(Ordering::SeqCst),
        end: ENDS.load(Ordering::SeqCst),
    };
    // Where the driver logs BEGIN/COMMIT too (PostgreSQL, MySQL), it logs no more than
    // SeaORM's spans count (it does not log the BEGIN of a transaction begun with an
    // isolation level, which SeaORM's span does).
    let logged = SQLX_TXN.load(Ordering::SeqCst);
    if backend != DbBackend::Sqlite {
        assert!(
            logged <= counts.begin + counts.end && logged >= counts.end,
            "driver-logged BEGIN/COMMIT ({logged}) disagree with SeaORM's transaction spans"
        );
    }
    counts
}

// ---------------------------------------------------------------------------------------------
// The operations

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Op {
    FieldsTrackable,
    FieldsNaive,
    FieldsRaw,
    TableLoginTrackable,
    TableLoginNaive,
    TableLoginChained,
    TableFailedTrackable,
    TableFailedNaive,
}

impl Op {
    fn label(self) -> &'static str {
        match self {
            Op::FieldsTrackable | Op::TableLoginTrackable | Op::TableFailedTrackable => "trackable",
            Op::FieldsNaive => "naive read-modify-write",
            Op::FieldsRaw => "raw sqlx UPDATE RETURNING",
            Op::TableLoginNaive | Op::TableFailedNaive => "naive select + insert",
            Op::TableLoginChained => "trackable with the hash chain",
        }
    }
}

/// One comparison: ours first, then the baselines.
struct Comparison {
    name: &'static str,
    ops: &'static [Op],
}

const COMPARISONS: [Comparison; 3] = [
    Comparison {
        name: "fields login",
        ops: &[Op::FieldsTrackable, Op::FieldsNaive, Op::FieldsRaw],
    },
    Comparison {
        name: "table login",
        ops: &[
            Op::TableLoginTrackable,
            Op::TableLoginNaive,
            Op::TableLoginChained,
        ],
    },
    Comparison {
        name: "table failed_login",
        ops: &[Op::TableFailedTrackable, Op::TableFailedNaive],
    },
];

struct Ctx {
    db: DatabaseConnection,
    backend: DbBackend,
    users: Vec<user::Model>,
    members: Vec<member::Model>,
    client: ClientInfo,
    ip: IpAddr,
}

const USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) bench/1.0";

/// The default tracker with a hash chain: each row's MAC under a fixed bench key.
static CHAINED: LazyLock<trackable_core::Tracker> = LazyLock::new(|| {
    let key = trackable_core::HashKey::new([7; 32]).expect("a 32-byte key");
    trackable_core::Tracker::new().with_chain_key(key)
});

fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

impl Ctx {
    async fn run(&self, op: Op, i: usize) {
        let user = &self.users[i % USERS];
        let member = &self.members[i % USERS];
        match op {
            Op::FieldsTrackable => {
                let row = trackable_core::track_login(&self.db, user, &self.client)
                    .await
                    .expect("track_login");
                black_box(row);
            }
            Op::FieldsNaive => {
                black_box(self.fields_naive(user.id).await);
            }
            Op::FieldsRaw => {
                black_box(self.fields_raw(user.id).await);
            }
            Op::TableLoginTrackable => {
                let row = trackable_core::track_login(&self.db, member, &self.client)
                    .await
                    .expect("track_login");
                black_box(row);
            }
            Op::TableLoginChained => {
                let row = CHAINED
                    .login(&self.db, member, &self.client)
                    .await
                    .expect("chained login");
                black_box(row);
            }
            Op::TableFailedTrackable => {
                let row = trackable_core::track_failed_login(&self.db, member, &self.client)
                    .await
                    .expect("track_failed_login");
                black_box(row);
            }
            Op::TableLoginNaive => {
                black_box(self.table_naive(member.id, Action::Login).await);
            }
            Op::TableFailedNaive => {
                black_box(self.table_naive(member.id, Action::FailedLogin).await);
            }
        }
    }

    /// Devise's `update_tracked_fields!` in SeaORM (see `trackable::naive`).
    async fn fields_naive(&self, id: i32) -> user::Model {
        let ip = self.ip.to_string();
        let login = trackable::naive::fields_login(&self.db, id, &ip, now());
        login.await.expect("naive login")
    }

    /// The floor (`trackable::floor`): the same single `UPDATE ... RETURNING`, written by
    /// hand, sent through sqlx on the same pool, decoded field by field.
    async fn fields_raw(&self, id: i32) -> user::Model {
        let ip = self.ip.to_string();
        let login = trackable::floor::fields_login(&self.db, id, &ip, now());
        login.await.expect("raw update")
    }

    /// The latest audit row, then the next one computed in Rust and inserted, without a lock.
    async fn table_naive(&self, id: i32, action: Action) -> member_events::Model {
        let ip = self.ip.to_string();
        let event = trackable::naive::table_event(&self.db, id, action, &ip, USER_AGENT, now());
        event.await.expect("naive insert")
    }
}

// ---------------------------------------------------------------------------------------------
// Setup

struct Backend {
    name: &'static str,
    /// Timed, or only counted (MySQL, which has no `UPDATE ... RETURNING` for the floor).
    timed: bool,
    ctx: Ctx,
    /// The same database through a pool that logs every statement.
    counting: Ctx,
    /// The SQLite file's directory, or the server database.
    _keep: Box<dyn std::any::Any>,
}

async fn populate(db: &DatabaseConnection) -> (Vec<user::Model>, Vec<member::Model>) {
    create_table(db, user::Entity).await.expect("users table");
    create_table(db, member::Entity)
        .await
        .expect("members table");
    member::Model::migration()
        .up(db)
        .await
        .expect("audit table");
    let mut users = Vec::new();
    let mut members = Vec::new();
    for i in 0..USERS {
        let email = format!("user{i}@example.com");
        users.push(
            user::ActiveModel {
                email: Set(email.clone()),
                sign_in_count: Set(0),
                ..Default::default()
            }
            .insert(db)
            .await
            .expect("user"),
        );
        members.push(
            member::ActiveModel {
                email: Set(email),
                ..Default::default()
            }
            .insert(db)
            .await
            .expect("member"),
        );
    }
    (users, members)
}

fn ctx(db: DatabaseConnection, users: &[user::Model], members: &[member::Model]) -> Ctx {
    let ip: IpAddr = "203.0.113.7".parse().expect("ip");
    Ctx {
        backend: db.get_database_backend(),
        db,
        users: users.to_vec(),
        members: members.to_vec(),
        client: ClientInfo::from_ip(ip).with_user_agent(USER_AGENT),
        ip,
    }
}

async fn sqlite() -> Backend {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bench.db");
    let db = trackable::sqlite_at(&path, 8).await.expect("sqlite");
    let (users, members) = populate(&db).await;
    let mut options = ConnectOptions::new(format!("sqlite://{}", path.display()));
    options
        .max_connections(1)
        .sqlx_logging(true)
        .map_sqlx_sqlite_opts(|o| {
            o.journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(60))
        });
    let counting = Database::connect(options).await.expect("sqlite (logged)");
    Backend {
        name: "SQLite",
        timed: true,
        ctx: ctx(db, &users, &members),
        counting: ctx(counting, &users, &members),
        _keep: Box::new(dir),
    }
}

async fn postgres() -> Option<Backend> {
    let url = std::env::var("TRACKABLE_POSTGRES_URL").ok()?;
    let test_db = trackable::postgres(8)
        .await
        .expect("postgres")
        .expect("TRACKABLE_POSTGRES_URL is set");
    Some(
        server(
            "PostgreSQL",
            &url,
            "SELECT current_database() AS name",
            test_db,
            true,
        )
        .await,
    )
}

async fn mysql() -> Option<Backend> {
    let url = std::env::var("TRACKABLE_MYSQL_URL").ok()?;
    let test_db = trackable::mysql(8)
        .await
        .expect("mysql")
        .expect("TRACKABLE_MYSQL_URL is set");
    Some(server("MariaDB", &url, "SELECT DATABASE() AS name", test_db, false).await)
}

/// A server backend on the fresh database of `test_db`, which the server at `url` holds.
async fn server(
    name: &'static str,
    url: &str,
    current_database: &str,
    test_db: TestDb,
    timed: bool,
) -> Backend {
    let db = test_db.db.clone();
    let (users, members) = populate(&db).await;
    let backend = db.get_database_backend();
    let database = db
        .query_one_raw(Statement::from_string(backend, current_database))
        .await
        .expect("current database")
        .expect("a row")
        .try_get::<String>("", "name")
        .expect("name");
    let (base, _) = url.rsplit_once('/').unwrap_or((url, ""));
    let mut options = ConnectOptions::new(format!("{base}/{database}"));
    options.max_connections(1).sqlx_logging(true);
    let counting = Database::connect(options).await.expect("logged pool");
    Backend {
        name,
        timed,
        ctx: ctx(db, &users, &members),
        counting: ctx(counting, &users, &members),
        _keep: Box::new(test_db),
    }
}

// ---------------------------------------------------------------------------------------------
// Measurements

/// Statements per event for each operation, counted over `n` events after a warm-up that
/// prepares and caches every statement.
async fn count(ctx: &Ctx, op: Op, n: u64) -> Counts {
    for i in 0..5 {
        ctx.run(op, i).await;
    }
    reset();
    COUNTING.store(true, Ordering::SeqCst);
    for i in 0..n as usize {
        ctx.run(op, i).await;
    }
    COUNTING.store(false, Ordering::SeqCst);
    snapshot(ctx.backend)
}

/// CPU time used so far by every thread of this process (the SQLite worker threads
/// included), from the scheduler's per-thread statistics; `None` where they are missing.
fn process_cpu() -> Option<Duration> {
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(total))
}

struct Timing {
    /// Median wall time per event.
    median: Duration,
    /// Client-side CPU time per event, over all rounds.
    cpu: Option<Duration>,
}

/// Median per-event time of each op, over `rounds` rounds of `batch` events per op, the order
/// of the ops rotating from round to round.
async fn interleaved(ctx: &Ctx, ops: &[Op], rounds: usize, batch: usize) -> Vec<Timing> {
    let mut samples = vec![Vec::with_capacity(rounds); ops.len()];
    let mut cpu = vec![Some(Duration::ZERO); ops.len()];
    let mut i = 0;
    for round in 0..rounds {
        for k in 0..ops.len() {
            let j = (round + k) % ops.len();
            let cpu_before = process_cpu();
            let start = Instant::now();
            for _ in 0..batch {
                ctx.run(ops[j], i).await;
                i += 1;
            }
            samples[j].push(start.elapsed() / batch as u32);
            cpu[j] = match (cpu[j], cpu_before, process_cpu()) {
                (Some(sum), Some(before), Some(after)) => Some(sum + after.saturating_sub(before)),
                _ => None,
            };
        }
    }
    samples
        .into_iter()
        .zip(cpu)
        .map(|(mut s, cpu)| {
            s.sort();
            Timing {
                median: s[s.len() / 2],
                cpu: cpu.map(|c| c / (rounds * batch) as u32),
            }
        })
        .collect()
}

/// The server's version, as it reports it.
async fn version(db: &DatabaseConnection) -> String {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Sqlite => "SELECT sqlite_version() AS v",
        _ => "SELECT version() AS v",
    };
    db.query_one_raw(Statement::from_string(backend, sql))
        .await
        .ok()
        .flatten()
        .and_then(|row| row.try_get::<String>("", "v").ok())
        .unwrap_or_else(|| "(unknown version)".to_owned())
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let subscriber = Registry::default().with(StatementCounter);
    tracing::subscriber::set_global_default(subscriber).expect("subscriber");

    // `cargo bench` passes --bench; `cargo test --benches` does not, and gets a quick run.
    // Under a profiler (`--profile-time`), only the criterion loops run.
    let args: Vec<String> = std::env::args().collect();
    let full = args.iter().any(|a| a == "--bench");
    let profiling = args.iter().any(|a| a == "--profile-time");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    let mut backends = vec![rt.block_on(sqlite())];
    backends.extend(rt.block_on(postgres()));
    backends.extend(rt.block_on(mysql()));

    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
        .configure_from_args();

    for backend in backends.iter().filter(|b| b.timed) {
        for comparison in &COMPARISONS {
            let mut group =
                criterion.benchmark_group(format!("{}/{}", backend.name, comparison.name));
            group.throughput(Throughput::Elements(1));
            for &op in comparison.ops {
                let ctx = &backend.ctx;
                group.bench_function(op.label(), |b| {
                    let mut i = 0;
                    b.iter_custom(|iters| {
                        rt.block_on(async {
                            let start = Instant::now();
                            for _ in 0..iters {
                                ctx.run(op, i).await;
                                i += 1;
                            }
                            start.elapsed()
                        })
                    })
                });
            }
            group.finish();
        }
    }

    if profiling {
        return;
    }
    for backend in &backends {
        println!("{} {}", backend.name, rt.block_on(version(&backend.ctx.db)));
    }
    let (n, rounds, batch) = if full { (200, 80, 25) } else { (10, 2, 2) };
    println!("\nStatements per event (counted over {n} events, after a warm-up)\n");
    println!("| backend | operation | variant | statements per event |");
    println!("|---|---|---|---|");
    for backend in &backends {
        for comparison in &COMPARISONS {
            for &op in comparison.ops {
                if op == Op::FieldsRaw && !backend.timed {
                    continue;
                }
                let counts = rt.block_on(count(&backend.counting, op, n));
                println!(
                    "| {} | {} | {} | {} |",
                    backend.name,
                    comparison.name,
                    op.label(),
                    counts.per_event(n)
                );
            }
        }
    }

    println!(
        "\nInterleaved: median per event over {rounds} rounds of {batch} events per variant\n"
    );
    println!(
        "| backend | operation | variant | median µs/event | events/s | trackable's throughput vs this | client CPU µs/event |"
    );
    println!("|---|---|---|---|---|---|---|");
    for backend in backends.iter().filter(|b| b.timed) {
        for comparison in &COMPARISONS {
            let timings = rt.block_on(interleaved(&backend.ctx, comparison.ops, rounds, batch));
            let ours = timings[0].median;
            for (&op, timing) in comparison.ops.iter().zip(&timings) {
                let ratio = if op == comparison.ops[0] {
                    "".to_owned()
                } else {
                    format!("{:.2}×", timing.median.as_secs_f64() / ours.as_secs_f64())
                };
                println!(
                    "| {} | {} | {} | {:.1} | {:.0} | {} | {} |",
                    backend.name,
                    comparison.name,
                    op.label(),
                    micros(timing.median),
                    1.0 / timing.median.as_secs_f64(),
                    ratio,
                    timing
                        .cpu
                        .map_or("n/a".to_owned(), |c| format!("{:.1}", micros(c))),
                );
            }
        }
    }

    criterion.final_summary();
}
