//! Retention of the audit trail: purge in batches (never a user's latest row) and IP
//! anonymisation, also while logins are tracked concurrently. SQLite always, PostgreSQL and
//! MySQL when configured.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, Set,
    Statement, TransactionTrait,
};
use trackable::models::member::{self, member_events as events};
use trackable::{TestDb, bare_client, events_of, insert_members, members, new_member};
use trackable_core::{
    Action, HasSignInState, IpPolicy, SignInState, Tracker, anonymize_audit_ips, purge_audit_trail,
};

fn at(days: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_600_000_000, 0).unwrap() + TimeDelta::days(days)
}

fn fixed(days: i64) -> Tracker {
    Tracker::new().with_clock(move || at(days))
}

/// `user` signs in from `ip` on day `day`.
async fn login(db: &TestDb, day: i64, user: &member::Model, ip: &str) -> events::Model {
    fixed(day)
        .login(&db.db, user, &bare_client(ip))
        .await
        .unwrap()
}

/// An unknown identifier fails to sign in from `ip` on day `day`.
async fn unknown_failure(db: &TestDb, day: i64, ip: &str) {
    fixed(day)
        .failed_login_unknown::<member::Model>(&db.db, "x", &bare_client(ip))
        .await
        .unwrap();
}

async fn unknown_ips(db: &TestDb) -> Vec<Option<String>> {
    db.db
        .query_all_raw(Statement::from_string(
            db.backend,
            "SELECT remote_ip FROM member_events_unknown ORDER BY id",
        ))
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get("", "remote_ip").unwrap())
        .collect()
}

#[tokio::test]
async fn purge_keeps_each_users_latest_row_and_the_state_it_carries() {
    for db in members(2).await.unwrap() {
        let active = new_member(&db.db, "active@example.com").await.unwrap();
        let idle = new_member(&db.db, "idle@example.com").await.unwrap();
        let fresh = new_member(&db.db, "fresh@example.com").await.unwrap();
        for day in 0..10 {
            for user in [&active, &idle] {
                login(&db, day, user, "192.0.2.1").await;
            }
            unknown_failure(&db, day, "192.0.2.9").await;
        }
        for day in 100..103 {
            login(&db, day, &active, "192.0.2.2").await;
            unknown_failure(&db, day, "192.0.2.9").await;
        }
        login(&db, 100, &fresh, "192.0.2.3").await;
        let idle_latest = events_of(&db.db, &idle).await.unwrap().pop().unwrap();

        // Small batches, so the purge crosses many batch boundaries and kept rows.
        let deleted = purge_audit_trail::<member::Model>(&db.db, at(50), 3)
            .await
            .unwrap();
        // active: 10 old rows; idle: 9 of 10 (the latest stays); unknown: 10 old rows
        assert_eq!(deleted, 10 + 9 + 10, "{:?}", db.backend);
        let active_rows = events_of(&db.db, &active).await.unwrap();
        assert_eq!(active_rows.len(), 3);
        assert!(active_rows.iter().all(|r| r.inserted_at >= at(50)));
        assert_eq!(
            events_of(&db.db, &idle).await.unwrap(),
            vec![idle_latest.clone()]
        );
        assert_eq!(events_of(&db.db, &fresh).await.unwrap().len(), 1);
        assert_eq!(unknown_ips(&db).await.len(), 3);

        // The kept row carries the state: the next login continues from it.
        let next = login(&db, 200, &idle, "192.0.2.4").await;
        assert_eq!(next.sign_in_count, 11);
        assert_eq!(next.last_sign_in_at, idle_latest.current_sign_in_at);
        assert_eq!(next.last_sign_in_ip, idle_latest.current_sign_in_ip);

        // Now the old row is no longer the latest; a second purge takes it.
        let deleted = purge_audit_trail::<member::Model>(&db.db, at(50), 1000)
            .await
            .unwrap();
        assert_eq!(deleted, 1);
        assert_eq!(events_of(&db.db, &idle).await.unwrap(), vec![next]);
        assert_eq!(
            purge_audit_trail::<member::Model>(&db.db, at(50), 1000)
                .await
                .unwrap(),
            0
        );
    }
}

#[tokio::test]
async fn anonymize_rewrites_old_ips_only_and_later_rows_still_chain() {
    for db in members(2).await.unwrap() {
        let ada = new_member(&db.db, "ada@example.com").await.unwrap();
        let bob = new_member(&db.db, "bob@example.com").await.unwrap();
        login(&db, 0, &ada, "198.51.100.7").await;
        login(&db, 1, &ada, "2001:db8:1:2::7").await;
        fixed(1)
            .failed_login(&db.db, &ada, &bare_client("203.0.113.5"))
            .await
            .unwrap();
        unknown_failure(&db, 2, "203.0.113.6").await;
        // already hashed by its tracker's policy: not an address, left alone
        let hashing = IpPolicy::keyed_hash(b"0123456789abcdef").unwrap();
        let hashed = fixed(2)
            .with_ip_policy(hashing.clone())
            .login(&db.db, &bob, &bare_client("192.0.2.1"))
            .await
            .unwrap();
        login(&db, 100, &bob, "192.0.2.50").await;
        unknown_failure(&db, 100, "203.0.113.7").await;

        let changed =
            anonymize_audit_ips::<member::Model>(&db.db, at(50), &IpPolicy::truncate(), 2)
                .await
                .unwrap();
        // ada's three rows and the old unknown row; bob's old row holds hashes only
        assert_eq!(changed, 4, "{:?}", db.backend);
        let ada_rows = events_of(&db.db, &ada).await.unwrap();
        let ips = |r: &events::Model| {
            [
                r.remote_ip.clone(),
                r.current_sign_in_ip.clone(),
                r.last_sign_in_ip.clone(),
            ]
        };
        assert_eq!(
            ips(&ada_rows[0]),
            [
                Some("198.51.100.0".into()),
                Some("198.51.100.0".into()),
                Some("198.51.100.0".into())
            ]
        );
        assert_eq!(
            ips(&ada_rows[1]),
            [
                Some("2001:db8:1::".into()),
                Some("2001:db8:1::".into()),
                Some("198.51.100.0".into())
            ]
        );
        assert_eq!(ips(&ada_rows[2])[0].as_deref(), Some("203.0.113.0"));
        let bob_rows = events_of(&db.db, &bob).await.unwrap();
        assert_eq!(bob_rows[0], hashed);
        assert_eq!(
            bob_rows[1].remote_ip.as_deref(),
            Some("192.0.2.50"),
            "newer row untouched"
        );
        assert_eq!(
            unknown_ips(&db).await,
            [Some("203.0.113.0".into()), Some("203.0.113.7".into())]
        );
        // times and counts are never touched
        assert_eq!(ada_rows[1].sign_in_count, 2);
        assert_eq!(ada_rows[1].last_sign_in_at, Some(at(0)));

        // Idempotent: the same policy again changes nothing.
        assert_eq!(
            anonymize_audit_ips::<member::Model>(&db.db, at(50), &IpPolicy::truncate(), 1000)
                .await
                .unwrap(),
            0
        );

        // ada's latest row was rewritten, so her next login chains to the rewritten value.
        let next = login(&db, 101, &ada, "192.0.2.77").await;
        let latest = &ada_rows[2];
        assert_eq!(next.last_sign_in_ip, latest.current_sign_in_ip);
        assert_eq!(next.last_sign_in_ip.as_deref(), Some("2001:db8:1::"));
        let mut state = SignInState::default();
        for row in events_of(&db.db, &ada).await.unwrap() {
            state = state.apply(row.action, row.inserted_at, row.remote_ip.as_deref());
            assert_eq!(row.sign_in_state(), state, "rows chain after anonymising");
        }

        // IpPolicy::None removes the addresses.
        anonymize_audit_ips::<member::Model>(&db.db, at(50), &IpPolicy::None, 1000)
            .await
            .unwrap();
        let first = &events_of(&db.db, &ada).await.unwrap()[0];
        assert_eq!(ips(first), [None, None, None]);
        assert_eq!(unknown_ips(&db).await[0], None);
    }
}

/// 100,000 old rows purged in batches while logins go on: no login row is lost, and the
/// logins made during the purge carry the counts after the old ones, each once, chained.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn purging_100_000_rows_while_users_sign_in_loses_no_login() {
    const USERS: usize = 1000;
    const PER_USER: usize = 100;
    const BUSY: usize = 4;
    for db in members(8).await.unwrap() {
        let backend = db.backend;
        let users = seed(&db, USERS, PER_USER).await;
        assert_eq!(
            events::Entity::find().count(&db.db).await.unwrap(),
            (USERS * PER_USER) as u64
        );
        let db = Arc::new(db);
        let done = Arc::new(AtomicBool::new(false));

        // BUSY users sign in again and again, from the start of the purge to its end. They
        // are not neighbours by id: on MariaDB, table-mode logins of users with adjacent
        // ids can deadlock with each other (gap lock vs AUTO-INC lock, purge or not).
        let busy: Vec<usize> = (0..BUSY).map(|i| i * (USERS / BUSY) + 7).collect();
        let mut logins = Vec::new();
        for (i, user) in busy.iter().map(|&i| users[i].clone()).enumerate() {
            let (db, done) = (Arc::clone(&db), Arc::clone(&done));
            logins.push(tokio::spawn(async move {
                let tracker = Tracker::new();
                let mut rows = Vec::new();
                while !done.load(Ordering::SeqCst) || rows.len() < 20 {
                    let ip = format!("10.1.{i}.{}", rows.len() % 250);
                    rows.push(
                        tracker
                            .login(&db.db, &user, &bare_client(&ip))
                            .await
                            .unwrap(),
                    );
                }
                rows
            }));
        }
        let purge = {
            let db = Arc::clone(&db);
            tokio::spawn(
                async move { purge_audit_trail::<member::Model>(&db.db, at(1000), 1000).await },
            )
        };
        let deleted = purge.await.unwrap().unwrap();
        done.store(true, Ordering::SeqCst);
        let mut during = Vec::new();
        for task in logins {
            during.push(task.await.unwrap());
        }

        let old = |user: &member::Model| {
            let db = Arc::clone(&db);
            let id = user.id;
            async move {
                events::Entity::find()
                    .filter(events::Column::UserId.eq(id))
                    .filter(events::Column::InsertedAt.lt(at(1000)))
                    .all(&db.db)
                    .await
                    .unwrap()
            }
        };
        // Every idle user keeps exactly their latest seeded row; busy users keep it only
        // if the purge passed it before their first new login committed.
        let mut kept = 0;
        for (i, user) in users.iter().enumerate() {
            let rows = old(user).await;
            if busy.contains(&i) {
                assert!(rows.len() <= 1, "{backend:?}");
            } else {
                assert_eq!(rows.len(), 1, "{backend:?}: user {i}");
                assert_eq!(rows[0].sign_in_count, PER_USER as i64);
            }
            kept += rows.len();
        }
        assert_eq!(deleted as usize + kept, USERS * PER_USER, "{backend:?}");
        assert!(kept >= USERS - BUSY);

        for (user, returned) in busy.iter().map(|&i| &users[i]).zip(&during) {
            let stored: Vec<events::Model> = events::Entity::find()
                .filter(events::Column::UserId.eq(user.id))
                .filter(events::Column::InsertedAt.gte(at(1000)))
                .order_by_asc(events::Column::Id)
                .all(&db.db)
                .await
                .unwrap();
            // no login row lost
            assert_eq!(&stored, returned, "{backend:?}: every login row survives");
            let counts: Vec<i64> = stored.iter().map(|r| r.sign_in_count).collect();
            let expected: Vec<i64> =
                (PER_USER as i64 + 1..=(PER_USER + stored.len()) as i64).collect();
            assert_eq!(counts, expected, "{backend:?}: counts continue once each");
            // chained to the last seeded login, then to each other
            assert_eq!(stored[0].last_sign_in_at, Some(seeded_at(PER_USER - 1)));
            for pair in stored.windows(2) {
                assert_eq!(pair[1].last_sign_in_at, pair[0].current_sign_in_at);
                assert_eq!(pair[1].last_sign_in_ip, pair[0].current_sign_in_ip);
            }
        }
        println!(
            "{backend:?}: purged {deleted} rows while {} logins were tracked",
            during.iter().map(Vec::len).sum::<usize>()
        );
    }
}

fn seeded_at(k: usize) -> DateTime<Utc> {
    at(0) + TimeDelta::seconds(k as i64)
}

/// `users` members with `per_user` old logins each, chained, inserted in bulk.
async fn seed(db: &TestDb, users: usize, per_user: usize) -> Vec<member::Model> {
    let txn = db.db.begin().await.unwrap();
    let members = insert_members(&txn, users).await.unwrap();
    let mut batch = Vec::with_capacity(1000);
    // Rounds over users, so that each user's rows are spread over the table.
    for k in 0..per_user {
        for m in &members {
            let ip = |k: usize| Some(format!("10.0.{}.{}", k % 250, m.id % 250));
            batch.push(events::ActiveModel {
                user_id: Set(m.id),
                seq: Set(k as i64 + 1),
                action: Set(Action::Login),
                sign_in_count: Set(k as i64 + 1),
                current_sign_in_at: Set(Some(seeded_at(k))),
                current_sign_in_ip: Set(ip(k)),
                last_sign_in_at: Set(Some(seeded_at(k.saturating_sub(1)))),
                last_sign_in_ip: Set(ip(k.saturating_sub(1))),
                remote_ip: Set(ip(k)),
                user_agent: Set(None),
                inserted_at: Set(seeded_at(k)),
                ..Default::default()
            });
            if batch.len() == 1000 {
                events::Entity::insert_many(std::mem::take(&mut batch))
                    .exec(&txn)
                    .await
                    .unwrap();
            }
        }
    }
    if !batch.is_empty() {
        events::Entity::insert_many(batch).exec(&txn).await.unwrap();
    }
    txn.commit().await.unwrap();
    members
}

/// Every IP stored in the audit rows of `user`, in any column.
async fn stored_ips(db: &TestDb, user: &member::Model) -> Vec<String> {
    events_of(&db.db, user)
        .await
        .unwrap()
        .into_iter()
        .flat_map(|row| [row.remote_ip, row.current_sign_in_ip, row.last_sign_in_ip])
        .flatten()
        .collect()
}

#[tokio::test]
async fn anonymising_by_age_reaches_every_copy_of_an_old_ip() {
    for db in members(2).await.unwrap() {
        let ada = new_member(&db.db, "ada@example.com").await.unwrap();
        let bob = new_member(&db.db, "bob@example.com").await.unwrap();
        let old = "2001:db8:1:2::7";
        // Day 0 is 400 days before day 400, "now".
        login(&db, 0, &ada, old).await;
        login(&db, 395, &ada, "2001:db8:9::1").await; // last_sign_in_ip copies the old one
        login(&db, 0, &bob, old).await;
        fixed(396) // current_sign_in_ip copies the old login: no login since
            .failed_login(&db.db, &bob, &bare_client("192.0.2.50"))
            .await
            .unwrap();
        let cut_off = at(370);
        anonymize_audit_ips::<member::Model>(&db.db, cut_off, &IpPolicy::truncate(), 2)
            .await
            .unwrap();
        purge_audit_trail::<member::Model>(&db.db, cut_off, 2)
            .await
            .unwrap();
        for user in [&ada, &bob] {
            let ips = stored_ips(&db, user).await;
            assert!(!ips.iter().any(|ip| ip == old), "{:?}: {ips:?}", db.backend);
            assert!(
                ips.iter().any(|ip| ip == "2001:db8:1::"),
                "truncated: {ips:?}"
            );
        }
        // What is newer than the cut-off stays as it was.
        let ips = stored_ips(&db, &ada).await;
        assert!(ips.iter().any(|ip| ip == "2001:db8:9::1"), "{ips:?}");
        let ips = stored_ips(&db, &bob).await;
        assert!(ips.iter().any(|ip| ip == "192.0.2.50"), "{ips:?}");
        // The state still chains: the next login's last_* is the anonymised current_*.
        let next = login(&db, 400, &bob, "192.0.2.51").await;
        assert_eq!(next.last_sign_in_ip.as_deref(), Some("2001:db8:1::"));
    }
}

#[tokio::test]
async fn user_agents_older_than_the_cut_off_are_removed() {
    for db in members(2).await.unwrap() {
        let ada = new_member(&db.db, "ada@example.com").await.unwrap();
        for day in [0, 1, 50] {
            fixed(day)
                .login(&db.db, &ada, &trackable::client("192.0.2.1"))
                .await
                .unwrap();
        }
        fixed(0)
            .failed_login_unknown::<member::Model>(&db.db, "x", &trackable::client("192.0.2.1"))
            .await
            .unwrap();
        let changed = trackable_core::forget_audit_user_agents::<member::Model>(&db.db, at(10), 1)
            .await
            .unwrap();
        assert_eq!(changed, 3, "{:?}", db.backend);
        let agents: Vec<_> = events_of(&db.db, &ada)
            .await
            .unwrap()
            .into_iter()
            .map(|row| row.user_agent.is_some())
            .collect();
        assert_eq!(agents, [false, false, true]);
        let unknown: Vec<Option<String>> = db
            .db
            .query_all_raw(Statement::from_string(
                db.backend,
                "SELECT user_agent FROM member_events_unknown",
            ))
            .await
            .unwrap()
            .iter()
            .map(|row| row.try_get("", "user_agent").unwrap())
            .collect();
        assert_eq!(unknown, [None]);
    }
}

#[tokio::test]
async fn fields_mode_sign_in_ips_older_than_the_cut_off_are_anonymised_or_cleared() {
    use trackable::models::user;
    for db in trackable::users(2).await.unwrap() {
        let bob = trackable::new_user(&db.db, "bob@example.com")
            .await
            .unwrap();
        let carol = trackable::new_user(&db.db, "carol@example.com")
            .await
            .unwrap();
        for (user, day, ip) in [
            (&bob, 0, "198.51.100.7"),
            (&bob, 1, "198.51.100.8"),
            (&carol, 0, "203.0.113.7"),
            (&carol, 60, "203.0.113.99"),
        ] {
            fixed(day)
                .login(&db.db, user, &bare_client(ip))
                .await
                .unwrap();
        }
        let find = |id| {
            let db = &db;
            async move {
                let row = user::Entity::find_by_id(id)
                    .one(&db.db)
                    .await
                    .unwrap()
                    .unwrap();
                (row.current_sign_in_ip, row.last_sign_in_ip)
            }
        };
        let policy = IpPolicy::truncate();
        let changed =
            trackable_core::anonymize_sign_in_ips::<user::Model>(&db.db, at(30), Some(&policy), 1)
                .await
                .unwrap();
        assert_eq!(changed, 2, "{:?}", db.backend);
        assert_eq!(
            find(bob.id).await,
            (Some("198.51.100.0".into()), Some("198.51.100.0".into()))
        );
        assert_eq!(
            find(carol.id).await,
            (Some("203.0.113.99".into()), Some("203.0.113.0".into())),
            "the recent sign-in stays"
        );
        trackable_core::anonymize_sign_in_ips::<user::Model>(&db.db, at(30), None, 1)
            .await
            .unwrap();
        assert_eq!(find(bob.id).await, (None, None), "cleared");
        assert_eq!(find(carol.id).await.0.as_deref(), Some("203.0.113.99"));
        // Table mode keeps these IPs in its trail: a typed error, nothing changed.
        let error = trackable_core::anonymize_sign_in_ips::<member::Model>(&db.db, at(30), None, 1)
            .await
            .unwrap_err();
        assert!(matches!(error, trackable_core::Error::FieldsModeOnly));
    }
}

#[tokio::test]
async fn erasing_a_trail_leaves_no_row_of_the_user() {
    for db in members(2).await.unwrap() {
        let ada = new_member(&db.db, "ada@example.com").await.unwrap();
        let bob = new_member(&db.db, "bob@example.com").await.unwrap();
        for day in 0..4 {
            login(&db, day, &ada, "192.0.2.1").await;
        }
        login(&db, 0, &bob, "192.0.2.2").await;
        purge_audit_trail::<member::Model>(&db.db, at(2), 10)
            .await
            .unwrap();
        let erased = trackable_core::erase_audit_trail(&db.db, &ada)
            .await
            .unwrap();
        assert_eq!(erased, 2, "{:?}", db.backend);
        assert!(events_of(&db.db, &ada).await.unwrap().is_empty());
        let anchors: i64 = db
            .db
            .query_one_raw(Statement::from_string(
                db.backend,
                format!(
                    "SELECT COUNT(*) AS n FROM member_events_anchors WHERE user_id = {}",
                    ada.id
                ),
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get("", "n")
            .unwrap();
        assert_eq!(anchors, 0);
        assert_eq!(events_of(&db.db, &bob).await.unwrap().len(), 1);
    }
}
