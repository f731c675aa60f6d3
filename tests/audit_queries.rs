//! The audit-trail queries (table mode), their index use, and failed logins for unknown
//! identifiers: SQLite always, PostgreSQL and MySQL when configured.

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::{ConnectionTrait, DbBackend, EntityTrait, Set, Statement, TransactionTrait};
use trackable::models::member::{self, member_events as events};
use trackable::{
    ManualClock, TestDb, USER_AGENT, client, events_of, insert_members, ip, members, new_member,
};
use trackable_core::{Action, HashKey, IpPolicy, MAX_PAGE_SIZE, Trackable, Tracker};

#[tokio::test]
async fn history_pages_newest_first_with_a_stable_cursor() {
    for db in members(2).await.unwrap() {
        let clock = ManualClock::default();
        let tracker = clock.tracker();
        let ada = new_member(&db.db, "ada@example.com").await.unwrap();
        let bob = new_member(&db.db, "bob@example.com").await.unwrap();
        for i in 0..25 {
            let action = [Action::Login, Action::FailedLogin, Action::Logout][i % 3];
            tracker
                .track(&db.db, &ada, action, &client("192.0.2.1"))
                .await
                .unwrap();
            tracker
                .failed_login(&db.db, &bob, &client("192.0.2.2"))
                .await
                .unwrap();
            clock.advance(TimeDelta::seconds(1));
        }
        let mut all = events_of(&db.db, &ada).await.unwrap();
        all.reverse(); // newest first, as pages are
        assert_eq!(all.len(), 25);

        let first = tracker.history(&db.db, &ada, None, 10).await.unwrap();
        assert_eq!(first.events, all[..10], "{:?}", db.backend);
        assert_eq!(first.next, Some(all[9].seq));

        // An event between two pages does not shift the cursor: no row skipped or repeated.
        tracker
            .login(&db.db, &ada, &client("192.0.2.9"))
            .await
            .unwrap();
        let second = tracker.history(&db.db, &ada, first.next, 10).await.unwrap();
        assert_eq!(second.events, all[10..20]);
        let third = tracker
            .history(&db.db, &ada, second.next, 10)
            .await
            .unwrap();
        assert_eq!(third.events, all[20..]);
        assert_eq!(third.next, None, "the last page has no cursor");
        assert!(third.events.iter().all(|e| e.user_id == ada.id));

        // An exact fit ends without an empty extra page; limits are clamped.
        let fit = tracker
            .history(&db.db, &ada, all[4].seq.into(), 20)
            .await
            .unwrap();
        assert_eq!(fit.events, all[5..]);
        assert_eq!(fit.next, None);
        let one = tracker.history(&db.db, &ada, None, 0).await.unwrap();
        assert_eq!(one.events.len(), 1);
        let many = tracker
            .history(&db.db, &ada, None, MAX_PAGE_SIZE * 10)
            .await
            .unwrap();
        assert_eq!(many.events.len(), 26);
    }
}

#[tokio::test]
async fn last_login_is_the_latest_login_row() {
    for db in members(2).await.unwrap() {
        let clock = ManualClock::default();
        let tracker = clock.tracker();
        let ada = new_member(&db.db, "ada@example.com").await.unwrap();
        assert_eq!(tracker.last_login(&db.db, &ada).await.unwrap(), None);

        tracker
            .login(&db.db, &ada, &client("192.0.2.1"))
            .await
            .unwrap();
        clock.advance(TimeDelta::minutes(1));
        let second = tracker
            .login(&db.db, &ada, &client("192.0.2.2"))
            .await
            .unwrap();
        // same microsecond: the higher id is the later login
        let third = tracker
            .login(&db.db, &ada, &client("192.0.2.3"))
            .await
            .unwrap();
        assert_eq!(second.inserted_at, third.inserted_at);
        clock.advance(TimeDelta::minutes(1));
        tracker
            .logout(&db.db, &ada, &client("192.0.2.3"))
            .await
            .unwrap();
        tracker
            .failed_login(&db.db, &ada, &client("192.0.2.4"))
            .await
            .unwrap();

        let last = tracker.last_login(&db.db, &ada).await.unwrap().unwrap();
        assert_eq!(last, third, "{:?}", db.backend);
        assert_eq!(last.remote_ip.as_deref(), Some("192.0.2.3"));
        assert_eq!(last.sign_in_count, 3);
    }
}

#[tokio::test]
async fn failed_logins_within_a_window_per_user_and_per_ip() {
    for db in members(2).await.unwrap() {
        let clock = ManualClock::default();
        // Truncating policy: the IP a caller passes must go through it to match.
        let tracker = clock.tracker().with_ip_policy(IpPolicy::truncate());
        let ada = new_member(&db.db, "ada@example.com").await.unwrap();
        let bob = new_member(&db.db, "bob@example.com").await.unwrap();
        let start = clock.now();

        for minute in [0, 10, 20] {
            tracker
                .failed_login(&db.db, &ada, &client("198.51.100.7"))
                .await
                .unwrap();
            tracker
                .failed_login(&db.db, &bob, &client("198.51.100.8"))
                .await
                .unwrap();
            tracker
                .failed_login_unknown::<member::Model>(&db.db, "eve", &client("198.51.100.9"))
                .await
                .unwrap();
            tracker
                .failed_login(&db.db, &ada, &client("203.0.113.5"))
                .await
                .unwrap();
            // logins are not failures
            tracker
                .login(&db.db, &ada, &client("198.51.100.7"))
                .await
                .unwrap();
            let _ = minute;
            clock.advance(TimeDelta::minutes(10));
        }
        let since = start + TimeDelta::minutes(5);

        // per user: ada's failures at 10 and 20 min, from both networks
        assert_eq!(
            tracker
                .count_failed_logins(&db.db, &ada, since)
                .await
                .unwrap(),
            4,
            "{:?}",
            db.backend
        );
        assert_eq!(
            tracker
                .count_failed_logins(&db.db, &ada, start)
                .await
                .unwrap(),
            6
        );
        let rows = tracker.failed_logins(&db.db, &ada, since, 3).await.unwrap();
        assert_eq!(rows.len(), 3);
        assert!(rows.iter().all(|r| r.action == Action::FailedLogin));
        assert!(rows.windows(2).all(|w| w[0].id > w[1].id), "newest first");
        assert_eq!(rows[0].inserted_at, start + TimeDelta::minutes(20));

        // per IP: the /24 of all three failing clients, known users and unknown identifiers
        for raw in ["198.51.100.7", "198.51.100.200"] {
            let n = failures_from(&tracker, &db, raw, since).await;
            assert_eq!(n, 6, "{raw} on {:?}", db.backend);
        }
        assert_eq!(failures_from(&tracker, &db, "203.0.113.99", start).await, 3);
        assert_eq!(failures_from(&tracker, &db, "192.0.2.1", start).await, 0);
        // without the policy the stored text does not match the raw address
        let full = clock.tracker();
        assert_eq!(failures_from(&full, &db, "198.51.100.7", start).await, 0);
        let none = clock.tracker().with_ip_policy(IpPolicy::None);
        assert_eq!(failures_from(&none, &db, "198.51.100.7", start).await, 0);
    }
}

/// The failed logins of members from `address` since `since`, as `tracker` counts them.
async fn failures_from(tracker: &Tracker, db: &TestDb, address: &str, since: DateTime<Utc>) -> u64 {
    tracker
        .count_failed_logins_from::<member::Model>(&db.db, ip(address), since)
        .await
        .unwrap()
}

/// Whether `tracker` finds `address` new for `user`.
async fn is_new(tracker: &Tracker, db: &TestDb, user: &member::Model, address: &str) -> bool {
    tracker.is_new_ip(&db.db, user, ip(address)).await.unwrap()
}

#[tokio::test]
async fn an_ip_is_new_until_the_user_signs_in_from_it() {
    for db in members(2).await.unwrap() {
        let tracker = Tracker::new();
        let ada = new_member(&db.db, "ada@example.com").await.unwrap();
        let bob = new_member(&db.db, "bob@example.com").await.unwrap();
        let home = "192.0.2.10";
        assert!(is_new(&tracker, &db, &ada, home).await);

        // a failed login or another user's login does not make it known
        tracker
            .failed_login(&db.db, &ada, &client(home))
            .await
            .unwrap();
        tracker.login(&db.db, &bob, &client(home)).await.unwrap();
        assert!(is_new(&tracker, &db, &ada, home).await);

        tracker.login(&db.db, &ada, &client(home)).await.unwrap();
        assert!(!is_new(&tracker, &db, &ada, home).await);
        assert!(
            !is_new(&tracker, &db, &ada, "::ffff:192.0.2.10").await,
            "IPv4-mapped is the same address"
        );
        assert!(is_new(&tracker, &db, &ada, "192.0.2.11").await);

        // under a truncating policy, a new network is what counts
        let truncating = Tracker::new().with_ip_policy(IpPolicy::truncate());
        truncating
            .login(&db.db, &bob, &client("198.51.100.1"))
            .await
            .unwrap();
        assert!(!is_new(&truncating, &db, &bob, "198.51.100.77").await);
        assert!(is_new(&truncating, &db, &bob, "198.51.101.1").await);
    }
}

#[tokio::test]
async fn unknown_identifiers_are_stored_only_as_a_keyed_hash() {
    for db in members(2).await.unwrap() {
        let key = HashKey::new(b"0123456789abcdef0123456789abcdef").unwrap();
        let tracker = Tracker::new().with_identifier_key(key);
        for identifier in ["eve@example.com", "eve@example.com", "mallory"] {
            tracker
                .failed_login_unknown::<member::Model>(&db.db, identifier, &client("192.0.2.66"))
                .await
                .unwrap();
        }
        Tracker::new()
            .failed_login_unknown::<member::Model>(&db.db, "nokey", &client("192.0.2.66"))
            .await
            .unwrap();

        let rows = db
            .db
            .query_all_raw(Statement::from_string(
                db.backend,
                "SELECT identifier_hash, remote_ip, user_agent FROM member_events_unknown ORDER BY id",
            ))
            .await
            .unwrap();
        let hashes: Vec<Option<String>> = rows
            .iter()
            .map(|r| r.try_get("", "identifier_hash").unwrap())
            .collect();
        assert_eq!(hashes.len(), 4);
        let eve = hashes[0].clone().unwrap();
        assert!(eve.starts_with("hmac:") && eve.len() == 37, "{eve}");
        assert_eq!(
            hashes[1].as_deref(),
            Some(eve.as_str()),
            "same identifier, same hash"
        );
        assert_ne!(hashes[2].as_deref(), Some(eve.as_str()));
        assert_eq!(hashes[3], None, "no key: no trace of the identifier");
        // A hash of the identifier is not the hash of an IP under the same key.
        let as_ip = IpPolicy::keyed_hash(b"0123456789abcdef0123456789abcdef")
            .unwrap()
            .apply(ip("192.0.2.66"))
            .unwrap();
        assert!(!hashes.contains(&Some(as_ip)));
        for row in &rows {
            let ip: Option<String> = row.try_get("", "remote_ip").unwrap();
            assert_eq!(ip.as_deref(), Some("192.0.2.66"));
            let ua: Option<String> = row.try_get("", "user_agent").unwrap();
            assert_eq!(ua.as_deref(), Some(USER_AGENT));
        }
        // the table holds no identifier text anywhere
        let dump = format!("{rows:?}");
        for identifier in ["eve@example.com", "mallory", "nokey"] {
            assert!(!dump.contains(identifier), "{identifier} stored");
        }

        // the migration's down drops the table too
        member::Model::migration().down(&db.db).await.unwrap();
        assert!(
            db.db
                .query_all_raw(Statement::from_string(
                    db.backend,
                    "SELECT 1 FROM member_events_unknown",
                ))
                .await
                .is_err()
        );
    }
}

/// The index each query is built for: `(query, [index names that its plan must show])`; `a|b`
/// where either is a seek that serves it.
const EXPECTED: [(&str, &[&str]); 12] = [
    ("history", &["idx_member_events_user_id_seq"]),
    ("history_before", &["idx_member_events_user_id_seq"]),
    ("last_login", &["idx_member_events_user_id_action_seq"]),
    (
        "failed_logins_user",
        &["idx_member_events_user_id_action_inserted_at"],
    ),
    (
        "failed_logins_user_rows",
        &["idx_member_events_user_id_action_inserted_at"],
    ),
    (
        "failed_logins_ip",
        &[
            "idx_member_events_remote_ip_action_inserted_at",
            "idx_member_events_unknown_remote_ip_inserted_at",
        ],
    ),
    (
        // On a small table PostgreSQL may seek the IP's logins and filter by the user.
        "is_new_ip",
        &[
            "idx_member_events_user_id_action_remote_ip_seq|idx_member_events_remote_ip_action_inserted_at",
        ],
    ),
    (
        "new_ip_hook",
        &[
            "idx_member_events_user_id_action_remote_ip_seq|idx_member_events_remote_ip_action_inserted_at",
        ],
    ),
    ("lockout_state", &["idx_member_events_user_id_action_seq"]),
    (
        "purge_batch",
        &[
            "idx_member_events_inserted_at_id",
            "idx_member_events_user_id_seq",
        ],
    ),
    (
        "purge_unknown_batch",
        &["idx_member_events_unknown_inserted_at_id"],
    ),
    ("anonymize_batch", &["idx_member_events_inserted_at_id"]),
];

/// `users` members with `per_user` events each, in rounds, and `extra` more events of the
/// member at index `heavy` spread among them; inserted in bulk.
async fn seed(
    db: &TestDb,
    users: usize,
    per_user: usize,
    heavy: usize,
    extra: usize,
) -> Vec<member::Model> {
    let txn = db.db.begin().await.unwrap();
    let members = insert_members(&txn, users).await.unwrap();
    let normal = users * per_user;
    let mut owners = Vec::with_capacity(normal + extra);
    for n in 0..normal {
        owners.push(n % users);
        if n % (normal / extra) == 0 && owners.len() < normal + extra {
            owners.push(heavy);
        }
    }
    let start = Utc::now() - TimeDelta::days(10);
    let mut seqs = vec![0; users];
    let rows: Vec<events::ActiveModel> = owners
        .iter()
        .enumerate()
        .map(|(n, &owner)| {
            seqs[owner] += 1;
            let at = start + TimeDelta::seconds(n as i64 * 97);
            let ip = Some(format!("10.{}.{}.{}", n % 200, n % 7, n % 250));
            events::ActiveModel {
                user_id: Set(members[owner].id),
                seq: Set(seqs[owner]),
                action: Set(Action::ALL[n % Action::ALL.len()]),
                sign_in_count: Set(n as i64),
                current_sign_in_at: Set(Some(at)),
                current_sign_in_ip: Set(ip.clone()),
                last_sign_in_at: Set(Some(at)),
                last_sign_in_ip: Set(ip.clone()),
                remote_ip: Set(ip),
                user_agent: Set(Some("seed".into())),
                inserted_at: Set(at),
                ..Default::default()
            }
        })
        .collect();
    for chunk in rows.chunks(500) {
        events::Entity::insert_many(chunk.to_vec())
            .exec(&txn)
            .await
            .unwrap();
    }
    txn.commit().await.unwrap();
    members
}

fn uses_index(plan: &str, index: &str) -> bool {
    plan.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .any(|word| word == index)
}

#[tokio::test]
async fn every_query_uses_an_index_of_the_migration() {
    for db in members(2).await.unwrap() {
        // Realistic statistics: 10,000 users with a few events each, spread over actions,
        // IPs and ten days, and the explained user with a long history (as active users
        // have), their rows interleaved with everyone else's.
        let users = seed(&db, 10_000, 5, 3, 100).await;
        let target = &users[3];
        let txn = db.db.begin().await.unwrap();
        for round in 0..150 {
            let ip = format!("10.9.{}.{}", round % 3, round % 11);
            Tracker::new()
                .failed_login_unknown::<member::Model>(&txn, "x", &client(&ip))
                .await
                .unwrap();
        }
        txn.commit().await.unwrap();
        let analyze = match db.backend {
            DbBackend::MySql => "ANALYZE TABLE member_events, member_events_unknown",
            _ => "ANALYZE",
        };
        db.db.execute_unprepared(analyze).await.unwrap();

        let txn = db.db.begin().await.unwrap();
        if db.backend == DbBackend::Postgres {
            // A few hundred rows fit in a page or two: make the planner show its index choice.
            txn.execute_unprepared("SET LOCAL enable_seqscan = off")
                .await
                .unwrap();
        }
        let plans = trackable_core::explain_audit_queries(&txn, target)
            .await
            .unwrap();
        txn.commit().await.unwrap();

        assert_eq!(plans.len(), EXPECTED.len());
        for (plan, (query, indexes)) in plans.iter().zip(EXPECTED) {
            assert_eq!(plan.query, query);
            println!(
                "--- {:?} {}\n{}\n{}\n",
                db.backend, plan.query, plan.sql, plan.plan
            );
            // MySQL reads the MAX() of an index prefix while optimising, and says so.
            let optimized_away = db.backend == DbBackend::MySql
                && plan.query == "lockout_state"
                && plan.plan.matches("Select tables optimized away").count() == 3;
            for index in indexes {
                // `a|b`: either serves the query with one seek.
                assert!(
                    index.split('|').any(|index| uses_index(&plan.plan, index)) || optimized_away,
                    "{:?} {query}: {index} not used:\n{}",
                    db.backend,
                    plan.plan
                );
            }
            let full_scan = match db.backend {
                // `SCAN f` reads the UNION's co-routine, not a table
                DbBackend::Sqlite => plan.plan.lines().any(|line| {
                    let mut words = line.split_whitespace();
                    words.next() == Some("SCAN")
                        && words.next().is_some_and(|table| {
                            ["member_events", "member_events_unknown", "a", "b"].contains(&table)
                        })
                        && !line.contains("INDEX")
                }),
                DbBackend::Postgres => plan.plan.contains("Seq Scan"),
                // `<derived2>` and `<union1,2>` are MySQL's temporary results, not tables
                _ => plan
                    .plan
                    .lines()
                    .any(|line| line.contains("type=ALL") && !line.contains(" <")),
            };
            assert!(
                !full_scan,
                "{:?} {query} scans a table:\n{}",
                db.backend, plan.plan
            );
        }
    }
}
