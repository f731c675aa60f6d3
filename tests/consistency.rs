//! Exact counts and an unbroken chain beyond the default setup: every isolation level as the
//! database default and in the caller's transaction, SQLite caller transactions and its WAL,
//! app servers with skewed clocks, and rows written by someone else.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::TimeDelta;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, IsolationLevel, Statement,
    TransactionTrait,
};
use trackable::models::{member, user};
use trackable::{
    ManualClock, TestDb, all_backends, client, create_members, create_users, events_of, members,
    new_member, new_user, postgres_with_default_isolation, sqlite_file,
};
use trackable_core::{
    Attempt, Error, LockDecision, Lockout, Refusal, RefusalReason, Tracker, begin_write,
};

#[path = "support/logins.rs"]
mod logins;
use logins::{
    LOGINS, assert_both_logged_in, assert_counts_and_chain, concurrent_logins_on_the_pool,
    counting_tracker,
};

const LEVELS: [IsolationLevel; 3] = [
    IsolationLevel::ReadCommitted,
    IsolationLevel::RepeatableRead,
    IsolationLevel::Serializable,
];

#[tokio::test]
async fn postgres_pool_at_every_default_isolation() {
    for level in LEVELS {
        let Some(db) = postgres_with_default_isolation(8, level).await.unwrap() else {
            continue;
        };
        create_members(&db.db).await.unwrap();
        create_users(&db.db).await.unwrap();
        concurrent_logins_on_the_pool(&db, &format!("PostgreSQL pool, default {level}")).await;
    }
}

#[tokio::test]
async fn pool_at_the_server_default() {
    for db in all_backends(8).await.unwrap() {
        create_members(&db.db).await.unwrap();
        create_users(&db.db).await.unwrap();
        concurrent_logins_on_the_pool(&db, &format!("{:?} pool, server default", db.backend)).await;
    }
}

/// `LOGINS` tasks that each sign the member and the user in inside their own transaction,
/// begun at `level`, reading the user first as a handler does, and retrying the whole
/// transaction when the error says so. Returns the number of retries.
async fn logins_in_caller_transactions(
    db: &TestDb,
    level: Option<IsolationLevel>,
    setting: &str,
) -> usize {
    let (tracker, calls) = counting_tracker();
    let ada = new_member(&db.db, "ada@example.com").await.unwrap();
    let bob = new_user(&db.db, "bob@example.com").await.unwrap();
    let retries = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..LOGINS)
        .map(|i| {
            let (db, tracker, retries) = (db.db.clone(), tracker.clone(), retries.clone());
            let (ada_id, bob_id) = (ada.id, bob.id);
            tokio::spawn(async move {
                let ip = format!("192.0.2.{}", i % 2);
                for _ in 0..200 {
                    let txn = match level {
                        Some(level) => db.begin_with_config(Some(level), None).await?,
                        None => begin_write(&db).await?,
                    };
                    let outcome = async {
                        let ada = member::Entity::find_by_id(ada_id).one(&txn).await?.unwrap();
                        let bob = user::Entity::find_by_id(bob_id).one(&txn).await?.unwrap();
                        tracker.login(&txn, &ada, &client(&ip)).await?;
                        tracker.login(&txn, &bob, &client(&ip)).await?;
                        Ok::<_, Error>(())
                    }
                    .await;
                    let outcome = match outcome {
                        Ok(()) => txn.commit().await.map_err(Error::from),
                        Err(error) => {
                            txn.rollback().await?;
                            Err(error)
                        }
                    };
                    match outcome {
                        Ok(()) => return Ok(()),
                        Err(error) if error.is_retryable() => {
                            retries.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(error) => return Err(error),
                    }
                }
                panic!("200 attempts were not enough");
            })
        })
        .collect();
    for task in tasks {
        task.await
            .unwrap()
            .unwrap_or_else(|error| panic!("{setting}: {error:?}"));
    }
    assert_both_logged_in(db, &ada, &bob, setting).await;
    let calls = calls.lock().unwrap();
    assert!(
        calls.values().all(|n| *n >= 1) && calls.len() == 2,
        "{setting}: {calls:?}"
    );
    let retries = retries.load(Ordering::Relaxed);
    println!("{setting}: {LOGINS} of {LOGINS} logins committed after {retries} retries");
    retries
}

#[tokio::test]
async fn caller_transactions_at_every_isolation() {
    for db in all_backends(8).await.unwrap() {
        if db.backend == DbBackend::Sqlite {
            continue; // SQLite has one isolation: see the test of `begin_write` below
        }
        for level in LEVELS {
            let db = match db.backend {
                DbBackend::Postgres => trackable::postgres(8).await.unwrap().unwrap(),
                _ => trackable::mysql(8).await.unwrap().unwrap(),
            };
            create_members(&db.db).await.unwrap();
            create_users(&db.db).await.unwrap();
            let setting = format!("{:?} caller transaction at {level}", db.backend);
            logins_in_caller_transactions(&db, Some(level), &setting).await;
        }
    }
}

#[tokio::test]
async fn sqlite_caller_transactions_begun_for_writing_are_never_busy() {
    let db = sqlite_file(8).await.unwrap();
    create_members(&db.db).await.unwrap();
    create_users(&db.db).await.unwrap();
    let retries = logins_in_caller_transactions(&db, None, "SQLite, begin_write").await;
    assert_eq!(retries, 0, "no transaction met a busy database");
}

/// The documented MariaDB pattern: `db.begin()` at the server's default REPEATABLE READ,
/// track, commit; 16 tasks × 25 logins over 16 users, with no retry at all.
#[tokio::test]
async fn mysql_caller_transactions_at_the_default_never_fail() {
    let Some(db) = trackable::mysql(16).await.unwrap() else {
        return;
    };
    create_members(&db.db).await.unwrap();
    let members = trackable::insert_members(&db.db, 16).await.unwrap();
    let tracker = Tracker::new();
    let tasks: Vec<_> = (0..16)
        .map(|task| {
            let (db, tracker, members) = (db.db.clone(), tracker.clone(), members.clone());
            tokio::spawn(async move {
                let mut errors = Vec::new();
                for i in 0..25 {
                    let member = &members[(task + i) % members.len()];
                    let txn = db.begin().await.unwrap();
                    match tracker.login(&txn, member, &client("192.0.2.1")).await {
                        Ok(_) => txn.commit().await.unwrap(),
                        Err(error) => {
                            errors.push(format!("{error:?}"));
                            txn.rollback().await.unwrap();
                        }
                    }
                }
                errors
            })
        })
        .collect();
    let mut errors = Vec::new();
    for task in tasks {
        errors.extend(task.await.unwrap());
    }
    assert!(
        errors.is_empty(),
        "{} of 400 failed: {errors:?}",
        errors.len()
    );
    for member in &members {
        assert_counts_and_chain(&db, member, 25, "MariaDB default").await;
    }
}

/// 5,000 fields-mode and 5,000 table-mode logins keep the WAL under SQLite's default
/// auto-checkpoint (1,000 pages of 4 KB), where a statement left unfinished would hold it.
#[tokio::test]
async fn the_sqlite_wal_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal.db");
    let db = trackable::sqlite_at(&path, 8).await.unwrap();
    create_members(&db).await.unwrap();
    create_users(&db).await.unwrap();
    let ada = new_member(&db, "ada@example.com").await.unwrap();
    let bob = new_user(&db, "bob@example.com").await.unwrap();
    let tracker = Tracker::new();
    let tasks: Vec<_> = (0..1)
        .map(|_| {
            let (db, tracker, ada, bob) = (db.clone(), tracker.clone(), ada.clone(), bob.clone());
            tokio::spawn(async move {
                for _ in 0..5000 {
                    tracker
                        .login(&db, &ada, &client("192.0.2.1"))
                        .await
                        .unwrap();
                    tracker
                        .login(&db, &bob, &client("192.0.2.1"))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let wal = std::fs::metadata(dir.path().join("wal.db-wal"))
        .unwrap()
        .len();
    println!("WAL after 10,000 logins: {wal} bytes");
    assert!(wal < 8 * 1024 * 1024, "WAL of {wal} bytes");
    let rows = events_of(&db, &ada).await.unwrap();
    assert_eq!(rows.len(), 5_000);
}

/// Two app servers whose clocks are 10 minutes apart agree on the order of events.
#[tokio::test]
async fn app_servers_with_skewed_clocks_agree_on_the_order() {
    for db in members(2).await.unwrap() {
        let slow = ManualClock::default();
        let fast = ManualClock::default();
        fast.advance(TimeDelta::minutes(10));
        let (slow_tracker, fast_tracker) = (slow.tracker(), fast.tracker());
        let lockout = Lockout::new(5, TimeDelta::minutes(15), TimeDelta::minutes(15));
        let ada = new_member(&db.db, "ada@example.com").await.unwrap();
        let c = client("192.0.2.1");

        fast_tracker.login(&db.db, &ada, &c).await.unwrap();
        for _ in 0..10 {
            slow_tracker.failed_login(&db.db, &ada, &c).await.unwrap();
            slow.advance(TimeDelta::seconds(1));
        }
        let attempt = lockout
            .begin(&slow_tracker, &db.db, Some(&ada), "", &c)
            .await
            .unwrap();
        assert!(
            matches!(
                attempt,
                Attempt::Refused(Refusal {
                    reason: RefusalReason::AccountLocked,
                    ..
                })
            ),
            "{:?}: failures after the fast server's login count: {attempt:?}",
            db.backend
        );

        // The latest login is the one recorded last, not the one with the latest clock.
        let earlier = fast_tracker.login(&db.db, &ada, &c).await.unwrap();
        let latest = slow_tracker.login(&db.db, &ada, &c).await.unwrap();
        assert!(earlier.inserted_at > latest.inserted_at);
        let found = slow_tracker
            .last_login(&db.db, &ada)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.seq, latest.seq, "{:?}", db.backend);

        // A lock on the fast server, then an unlock on the slow one: unlocked.
        fast_tracker.lock(&db.db, &ada, &c).await.unwrap();
        slow_tracker.unlock(&db.db, &ada, &c).await.unwrap();
        let locked = lockout.locked_until(&slow_tracker, &db.db, &ada).await;
        assert_eq!(locked.unwrap(), None, "{:?}", db.backend);
    }
}

/// Runs `sql`, with `{t}` standing for the audit table and `{u}` for the user's id.
async fn raw(db: &DatabaseConnection, sql: &str, user: i32) {
    let sql = sql
        .replace("{t}", "member_events")
        .replace("{u}", &user.to_string());
    db.execute_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap();
}

#[tokio::test]
async fn postgres_infinite_times_are_errors_not_panics() {
    let Some(db) = trackable::postgres(2).await.unwrap() else {
        return;
    };
    create_members(&db.db).await.unwrap();
    create_users(&db.db).await.unwrap();
    let tracker = Tracker::new();
    let c = client("192.0.2.1");
    let ada = new_member(&db.db, "ada@example.com").await.unwrap();
    tracker.login(&db.db, &ada, &c).await.unwrap();

    // A login row at `infinity` (imported data): history says so.
    raw(
        &db.db,
        "UPDATE {t} SET inserted_at = 'infinity' WHERE user_id = {u}",
        ada.id,
    )
    .await;
    let error = tracker.history(&db.db, &ada, None, 10).await.unwrap_err();
    assert!(matches!(error, Error::InvalidData { .. }), "{error:?}");

    // A lock at `infinity`: the lockout says so.
    raw(
        &db.db,
        "INSERT INTO {t} (user_id, seq, action, sign_in_count, inserted_at) \
         VALUES ({u}, 2, 'lock', 1, 'infinity')",
        ada.id,
    )
    .await;
    let lockout = Lockout::default();
    let error = lockout
        .locked_until(&tracker, &db.db, &ada)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::InvalidData { .. }), "{error:?}");
    let error = lockout
        .begin(&tracker, &db.db, Some(&ada), "", &c)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::InvalidData { .. }), "{error:?}");

    // A current sign-in at `infinity`: the next login answers an error, never panics.
    raw(
        &db.db,
        "UPDATE {t} SET current_sign_in_at = 'infinity' WHERE seq = 2 AND user_id = {u}",
        ada.id,
    )
    .await;
    let error = tracker.login(&db.db, &ada, &c).await.unwrap_err();
    assert!(matches!(error, Error::InvalidData { .. }), "{error:?}");

    // Fields mode, likewise.
    let bob = new_user(&db.db, "bob@example.com").await.unwrap();
    raw(
        &db.db,
        "UPDATE users SET current_sign_in_at = 'infinity' WHERE id = {u}",
        bob.id,
    )
    .await;
    let error = tracker.login(&db.db, &bob, &c).await.unwrap_err();
    assert!(matches!(error, Error::InvalidData { .. }), "{error:?}");

    // A row at `-infinity` is purged like any old row.
    let eve = new_member(&db.db, "eve@example.com").await.unwrap();
    tracker.login(&db.db, &eve, &c).await.unwrap();
    tracker.login(&db.db, &eve, &c).await.unwrap();
    raw(
        &db.db,
        "UPDATE {t} SET inserted_at = '-infinity' WHERE user_id = {u} AND seq = 1",
        eve.id,
    )
    .await;
    let purged = trackable_core::purge_audit_trail::<member::Model>(
        &db.db,
        chrono::Utc::now() - TimeDelta::days(1),
        100,
    )
    .await
    .unwrap();
    assert_eq!(purged, 1);
}

#[tokio::test]
async fn counts_at_the_integer_limit_are_errors_and_write_nothing() {
    for db in all_backends(2).await.unwrap() {
        create_members(&db.db).await.unwrap();
        create_users(&db.db).await.unwrap();
        let tracker = Tracker::new();
        let c = client("192.0.2.1");

        let bob = new_user(&db.db, "bob@example.com").await.unwrap();
        raw(
            &db.db,
            &format!(
                "UPDATE users SET sign_in_count = {} WHERE id = {{u}}",
                i32::MAX
            ),
            bob.id,
        )
        .await;
        let error = tracker.login(&db.db, &bob, &c).await.unwrap_err();
        assert!(
            matches!(error, Error::CountOverflow { .. }),
            "{:?}: {error:?}",
            db.backend
        );
        let stored = user::Entity::find_by_id(bob.id)
            .one(&db.db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            stored.sign_in_count,
            i32::MAX,
            "{:?}: nothing written",
            db.backend
        );
        assert_eq!(stored.current_sign_in_at, None);
        // A logout still works: it does not count.
        tracker.logout(&db.db, &bob, &c).await.unwrap();

        let ada = new_member(&db.db, "ada@example.com").await.unwrap();
        tracker.login(&db.db, &ada, &c).await.unwrap();
        raw(
            &db.db,
            &format!(
                "UPDATE {{t}} SET sign_in_count = {} WHERE user_id = {{u}}",
                i64::MAX
            ),
            ada.id,
        )
        .await;
        let error = tracker.login(&db.db, &ada, &c).await.unwrap_err();
        assert!(
            matches!(error, Error::CountOverflow { .. }),
            "{:?}: {error:?}",
            db.backend
        );
        assert_eq!(
            events_of(&db.db, &ada).await.unwrap().len(),
            1,
            "nothing written"
        );
        // Events that do not count go on.
        tracker.failed_login(&db.db, &ada, &c).await.unwrap();
        assert_eq!(events_of(&db.db, &ada).await.unwrap().len(), 2);
    }
}

#[tokio::test]
async fn a_corrupt_action_is_a_decode_error() {
    for db in members(2).await.unwrap() {
        let tracker = Tracker::new();
        let ada = new_member(&db.db, "ada@example.com").await.unwrap();
        tracker
            .login(&db.db, &ada, &client("192.0.2.1"))
            .await
            .unwrap();
        raw(
            &db.db,
            "UPDATE {t} SET action = 'bogus' WHERE user_id = {u}",
            ada.id,
        )
        .await;
        let error = tracker.history(&db.db, &ada, None, 10).await.unwrap_err();
        assert!(
            matches!(error, Error::Decode { .. }),
            "{:?}: {error:?}",
            db.backend
        );
        // The next event still continues the user's state from the row.
        let row = tracker
            .login(&db.db, &ada, &client("192.0.2.1"))
            .await
            .unwrap();
        assert_eq!((row.seq, row.sign_in_count), (2, 2), "{:?}", db.backend);
    }
}

/// What one PostgreSQL database offers (the append function) says nothing of another: a
/// login in a caller's transaction on a database without the function works after logins
/// on one with it.
#[tokio::test]
async fn postgres_databases_with_and_without_the_append_function() {
    let (Some(with), Some(without)) = (
        trackable::postgres(2).await.unwrap(),
        trackable::postgres(2).await.unwrap(),
    ) else {
        return;
    };
    create_members(&with.db).await.unwrap();
    trackable::create_table(&without.db, member::Entity)
        .await
        .unwrap();
    trackable::create_table(&without.db, member::member_events::Entity)
        .await
        .unwrap();
    let tracker = Tracker::new();
    let c = client("192.0.2.1");
    let ada = new_member(&with.db, "ada@example.com").await.unwrap();
    let eve = new_member(&without.db, "eve@example.com").await.unwrap();
    tracker.login(&with.db, &ada, &c).await.unwrap();
    tracker.login(&without.db, &eve, &c).await.unwrap();
    let txn = without.db.begin().await.unwrap();
    tracker.login(&txn, &eve, &c).await.unwrap();
    tracker.logout(&txn, &eve, &c).await.unwrap();
    txn.commit().await.unwrap();
    tracker.login(&with.db, &ada, &c).await.unwrap();
    assert_counts_and_chain(&with, &ada, 2, "with the function").await;
    assert_eq!(events_of(&without.db, &eve).await.unwrap().len(), 3);
}

/// The migration upgrades an audit table of the first release: it adds `seq`, numbers each
/// user's rows in `id` order, and swaps the indexes; tracking goes on from there.
#[tokio::test]
async fn the_migration_upgrades_a_table_without_event_numbers() {
    for db in all_backends(1).await.unwrap() {
        create_members(&db.db).await.unwrap();
        // Back to the first release's table: no `seq`, the `(user_id, id)` index.
        let on = |sql: &str| {
            let table = if db.backend == DbBackend::MySql {
                " ON member_events"
            } else {
                ""
            };
            sql.replace("{on}", table)
        };
        for index in [
            "user_id_seq",
            "user_id_action_seq",
            "user_id_action_remote_ip_seq",
            "user_id_action_device_seq",
        ] {
            raw(
                &db.db,
                &on(&format!("DROP INDEX idx_member_events_{index}{{on}}")),
                0,
            )
            .await;
        }
        for column in [
            "seq",
            "mac",
            "client_digest",
            "method",
            "reason",
            "session_seq",
            "session_digest",
            "device",
        ] {
            let drop = format!("ALTER TABLE member_events DROP COLUMN {column}");
            raw(&db.db, &drop, 0).await;
        }
        raw(
            &db.db,
            "CREATE INDEX idx_member_events_user_id_id ON member_events (user_id, id)",
            0,
        )
        .await;
        let ada = new_member(&db.db, "ada@example.com").await.unwrap();
        let bob = new_member(&db.db, "bob@example.com").await.unwrap();
        for (user, count) in [(&ada, 1), (&bob, 1), (&ada, 2), (&bob, 2), (&ada, 3)] {
            raw(
                &db.db,
                &format!(
                    "INSERT INTO member_events (user_id, action, sign_in_count, inserted_at) \
                     VALUES ({{u}}, 'login', {count}, '2024-01-01 00:00:0{count}')"
                ),
                user.id,
            )
            .await;
        }

        <member::Model as trackable_core::Trackable>::migration()
            .up(&db.db)
            .await
            .unwrap();
        let rows = events_of(&db.db, &ada).await.unwrap();
        assert_eq!(
            rows.iter()
                .map(|r| (r.seq, r.sign_in_count))
                .collect::<Vec<_>>(),
            [(1, 1), (2, 2), (3, 3)],
            "{:?}",
            db.backend
        );
        let firefox = trackable::bare_client("192.0.2.1").with_user_agent(
            "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
        );
        let next = Tracker::new().login(&db.db, &ada, &firefox).await.unwrap();
        assert_eq!((next.seq, next.sign_in_count), (4, 4), "{:?}", db.backend);
        let device = next.device.as_deref();
        assert_eq!(
            device,
            Some("Firefox on Linux"),
            "the detail columns were added"
        );
        let next = Tracker::new()
            .login(&db.db, &bob, &client("192.0.2.1"))
            .await
            .unwrap();
        assert_eq!((next.seq, next.sign_in_count), (3, 3), "{:?}", db.backend);
        // The unique index is there: a second row with a taken number is refused.
        let taken = db
            .db
            .execute_raw(Statement::from_string(
                db.backend,
                format!(
                    "INSERT INTO member_events (user_id, seq, action, sign_in_count, inserted_at) \
                     VALUES ({}, 1, 'login', 9, '2024-01-01 00:00:00')",
                    ada.id
                ),
            ))
            .await;
        assert!(taken.is_err(), "{:?}", db.backend);
        // And the migration can run again.
        <member::Model as trackable_core::Trackable>::migration()
            .up(&db.db)
            .await
            .unwrap();
    }
}

/// With the database's clock, app servers whose clocks are 10 minutes apart record one time
/// line, and the lockout's windows use it too. On SQLite the database's clock is the app's.
#[tokio::test]
async fn the_database_clock_gives_app_servers_one_time_line() {
    for db in all_backends(2).await.unwrap() {
        create_members(&db.db).await.unwrap();
        create_users(&db.db).await.unwrap();
        let slow = ManualClock::default();
        let fast = ManualClock::default();
        fast.advance(TimeDelta::minutes(10));
        let (slow_tracker, fast_tracker) = (
            slow.tracker().with_database_clock(),
            fast.tracker().with_database_clock(),
        );
        let c = client("192.0.2.1");
        let ada = new_member(&db.db, "ada@example.com").await.unwrap();
        let bob = new_user(&db.db, "bob@example.com").await.unwrap();
        let real = chrono::Utc::now();

        let first = fast_tracker.login(&db.db, &ada, &c).await.unwrap();
        let second = slow_tracker.login(&db.db, &ada, &c).await.unwrap();
        let bob_row = fast_tracker.login(&db.db, &bob, &c).await.unwrap();
        let failed = slow_tracker.failed_login(&db.db, &ada, &c).await.unwrap();
        if db.backend == DbBackend::Sqlite {
            assert_eq!(first.inserted_at, fast.now(), "SQLite: the app's clock");
            continue;
        }
        for at in [first.inserted_at, second.inserted_at, failed.inserted_at] {
            let off = (at - real).num_seconds().abs();
            assert!(off < 60, "{:?}: {at} is the database's time", db.backend);
        }
        assert!(first.inserted_at <= second.inserted_at, "{:?}", db.backend);
        assert!(second.inserted_at <= failed.inserted_at, "{:?}", db.backend);
        assert_eq!(second.current_sign_in_at, Some(second.inserted_at));
        assert_eq!(second.last_sign_in_at, first.current_sign_in_at, "chained");
        let bob_at = bob_row.current_sign_in_at.unwrap();
        assert!(
            (bob_at - real).num_seconds().abs() < 60,
            "{:?}: fields mode",
            db.backend
        );

        // The lockout counts failures in the database's window, from either server.
        // With the failure above, three so far.
        let lockout = Lockout::new(4, TimeDelta::minutes(15), TimeDelta::minutes(15));
        fast_tracker.failed_login(&db.db, &ada, &c).await.unwrap();
        slow_tracker.failed_login(&db.db, &ada, &c).await.unwrap();
        let Attempt::Permitted(permit) = lockout
            .begin(&fast_tracker, &db.db, Some(&ada), "", &c)
            .await
            .unwrap()
        else {
            panic!("{:?}: three failures of four", db.backend);
        };
        let decision = permit.failed(&db.db).await.unwrap();
        let LockDecision::Lock { until } = decision else {
            panic!("{:?}: {decision:?}", db.backend);
        };
        assert!((until - real - TimeDelta::minutes(15)).num_seconds().abs() < 60);
        let locked = lockout.locked_until(&slow_tracker, &db.db, &ada).await;
        assert_eq!(locked.unwrap(), Some(until), "{:?}", db.backend);

        // The network's window and block take the database's time too.
        let guesses = [
            (&slow_tracker, "who"),
            (&fast_tracker, "me"),
            (&slow_tracker, "it"),
        ];
        for (tracker, guess) in guesses {
            let attempt = lockout.begin::<_, member::Model>(tracker, &db.db, None, guess, &c);
            let Attempt::Permitted(permit) = attempt.await.unwrap() else {
                panic!("{:?}: the network has one failure", db.backend);
            };
            permit.failed(&db.db).await.unwrap();
        }
        let attempt = lockout
            .begin::<_, member::Model>(&slow_tracker, &db.db, None, "x", &c)
            .await
            .unwrap();
        let Attempt::Refused(refusal) = attempt else {
            panic!("{:?}: {attempt:?}", db.backend);
        };
        assert_eq!(refusal.reason, RefusalReason::NetworkBlocked);
        assert!(
            (refusal.until - real - TimeDelta::minutes(15))
                .num_seconds()
                .abs()
                < 60
        );
    }
}
