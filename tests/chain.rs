//! The keyed hash chain of the audit trail: tampering of each kind is found at the right row,
//! purges and anonymisation keep the trail verifiable, and concurrency is as without it.
//! SQLite always, PostgreSQL and MySQL when configured.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use sea_orm::{ActiveModelTrait, ConnectionTrait, DbBackend, Set, Statement};
use trackable::models::member::{self, member_events as events};
use trackable::{TestDb, bare_client, client, events_of, members, new_member};
use trackable_core::{
    Action, BreakKind, HashKey, IpPolicy, Tracker, TrailBreak, anonymize_audit_ips,
    forget_audit_user_agents, purge_audit_trail,
};

#[path = "support/logins.rs"]
#[allow(dead_code)]
mod logins;

fn key() -> HashKey {
    HashKey::new([42; 32]).unwrap()
}

fn at(days: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000, 0).unwrap() + TimeDelta::days(days)
}

fn chained(days: i64) -> Tracker {
    Tracker::new()
        .with_chain_key(key())
        .with_clock(move || at(days))
}

/// Runs `sql` with `{u}` standing for the user's id.
async fn raw(db: &TestDb, sql: &str, user: &member::Model) {
    let sql = sql.replace("{u}", &user.id.to_string());
    db.db
        .execute_raw(Statement::from_string(db.backend, sql))
        .await
        .unwrap();
}

/// A member with `n` chained events: logins, a failed login, a logout.
async fn member_with_events(db: &TestDb, email: &str, n: usize) -> member::Model {
    let ada = new_member(&db.db, email).await.unwrap();
    for i in 0..n {
        let tracker = chained(i as i64);
        let from = client(&format!("192.0.2.{}", i + 1));
        match i % 3 {
            0 => drop(tracker.login(&db.db, &ada, &from).await.unwrap()),
            1 => drop(tracker.failed_login(&db.db, &ada, &from).await.unwrap()),
            _ => drop(tracker.logout(&db.db, &ada, &from).await.unwrap()),
        }
    }
    ada
}

fn broken(seq: i64, kind: BreakKind) -> (i64, BreakKind) {
    (seq, kind)
}

fn first_break(b: Option<TrailBreak>) -> Option<(i64, BreakKind)> {
    b.map(|b| (b.seq, b.kind))
}

#[tokio::test]
async fn each_kind_of_tampering_is_found_at_its_row() {
    for db in members(2).await.unwrap() {
        let tracker = chained(0);
        let check = |user: member::Model| {
            let (tracker, db) = (tracker.clone(), &db);
            async move {
                let report = tracker.verify_trail(&db.db, &user, None).await.unwrap();
                first_break(report.broken)
            }
        };
        let backend = db.backend;

        // Intact.
        let intact = member_with_events(&db, "intact@example.com", 6).await;
        let report = tracker.verify_trail(&db.db, &intact, None).await.unwrap();
        assert!(report.is_intact(), "{backend:?}: {report:?}");
        assert_eq!((report.checked, report.from_seq), (6, 1));

        // A row altered by SQL.
        let altered = member_with_events(&db, "altered@example.com", 6).await;
        raw(
            &db,
            "UPDATE member_events SET sign_in_count = 99 WHERE user_id = {u} AND seq = 3",
            &altered,
        )
        .await;
        assert_eq!(
            check(altered).await,
            Some(broken(3, BreakKind::Altered)),
            "{backend:?}"
        );

        // A middle row deleted.
        let removed = member_with_events(&db, "removed@example.com", 6).await;
        raw(
            &db,
            "DELETE FROM member_events WHERE user_id = {u} AND seq = 4",
            &removed,
        )
        .await;
        assert_eq!(
            check(removed).await,
            Some(broken(4, BreakKind::Removed)),
            "{backend:?}"
        );

        // The newest row deleted: only a head kept elsewhere tells.
        let truncated = member_with_events(&db, "truncated@example.com", 6).await;
        let head = tracker
            .trail_head(&db.db, &truncated)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(head.seq, 6);
        raw(
            &db,
            "DELETE FROM member_events WHERE user_id = {u} AND seq = 6",
            &truncated,
        )
        .await;
        let without = tracker
            .verify_trail(&db.db, &truncated, None)
            .await
            .unwrap();
        assert!(without.is_intact(), "a shorter trail is still a chain");
        let with = tracker
            .verify_trail(&db.db, &truncated, Some(&head))
            .await
            .unwrap();
        assert_eq!(
            first_break(with.broken),
            Some(broken(6, BreakKind::Removed)),
            "{backend:?}"
        );

        // A row inserted through the generated entity.
        let forged = member_with_events(&db, "forged@example.com", 4).await;
        events::ActiveModel {
            user_id: Set(forged.id),
            seq: Set(5),
            action: Set(Action::Login),
            sign_in_count: Set(0),
            inserted_at: Set(at(10)),
            ..Default::default()
        }
        .insert(&db.db)
        .await
        .unwrap();
        assert_eq!(
            check(forged.clone()).await,
            Some(broken(5, BreakKind::InsertedOutOfBand)),
            "{backend:?}"
        );
        // Events after it chain on, but the break stays where it is.
        tracker
            .login(&db.db, &forged, &bare_client("192.0.2.9"))
            .await
            .unwrap();
        assert_eq!(
            check(forged).await,
            Some(broken(5, BreakKind::InsertedOutOfBand))
        );

        // Two rows swapped.
        let swapped = member_with_events(&db, "swapped@example.com", 6).await;
        for sql in [
            "UPDATE member_events SET seq = -2 WHERE user_id = {u} AND seq = 2",
            "UPDATE member_events SET seq = 2 WHERE user_id = {u} AND seq = 3",
            "UPDATE member_events SET seq = 3 WHERE user_id = {u} AND seq = -2",
        ] {
            raw(&db, sql, &swapped).await;
        }
        assert_eq!(
            check(swapped).await,
            Some(broken(2, BreakKind::Reordered { written_as: 3 })),
            "{backend:?}"
        );

        // All trails at once: the five broken ones.
        let all = tracker
            .verify_trails::<_, member::Model>(&db.db, 2)
            .await
            .unwrap();
        assert_eq!(all.users, 6, "{backend:?}");
        assert_eq!(all.broken.len(), 4, "the truncated one needs its head");
    }
}

#[tokio::test]
async fn a_trail_stays_verifiable_after_purges_and_anonymisation() {
    for db in members(2).await.unwrap() {
        let ada = member_with_events(&db, "ada@example.com", 9).await;
        let tracker = chained(100);
        let report = tracker.verify_trail(&db.db, &ada, None).await.unwrap();
        assert!(report.is_intact());

        // Anonymise and forget the user agents of everything older than day 6.
        let changed = anonymize_audit_ips::<member::Model>(&db.db, at(6), &IpPolicy::truncate(), 2)
            .await
            .unwrap();
        assert!(changed > 0);
        forget_audit_user_agents::<member::Model>(&db.db, at(6), 2)
            .await
            .unwrap();
        let report = tracker.verify_trail(&db.db, &ada, None).await.unwrap();
        assert!(report.is_intact(), "{:?}: {report:?}", db.backend);

        // Purge twice: the anchor moves, verification starts after it.
        let purged = purge_audit_trail::<member::Model>(&db.db, at(3), 2)
            .await
            .unwrap();
        assert_eq!(purged, 3);
        let report = tracker.verify_trail(&db.db, &ada, None).await.unwrap();
        assert!(report.is_intact(), "{:?}: {report:?}", db.backend);
        assert_eq!((report.from_seq, report.checked), (4, 6));
        purge_audit_trail::<member::Model>(&db.db, at(7), 1000)
            .await
            .unwrap();
        let head = tracker.trail_head(&db.db, &ada).await.unwrap();
        let report = tracker
            .verify_trail(&db.db, &ada, head.as_ref())
            .await
            .unwrap();
        assert!(report.is_intact(), "{:?}: {report:?}", db.backend);
        assert_eq!((report.from_seq, report.checked), (8, 2));

        // A purge cannot hide a deletion after the anchor.
        raw(
            &db,
            "DELETE FROM member_events WHERE user_id = {u} AND seq = 8",
            &ada,
        )
        .await;
        let report = tracker.verify_trail(&db.db, &ada, None).await.unwrap();
        assert_eq!(
            first_break(report.broken),
            Some(broken(8, BreakKind::Removed))
        );
    }
}

#[tokio::test]
async fn concurrent_logins_with_the_chain_keep_exact_counts_and_a_valid_chain() {
    for db in members(8).await.unwrap() {
        let tracker = Tracker::new().with_chain_key(key());
        let ada = new_member(&db.db, "ada@example.com").await.unwrap();
        let tasks: Vec<_> = (0..logins::LOGINS)
            .map(|i| {
                let (db, tracker, ada) = (db.db.clone(), tracker.clone(), ada.clone());
                tokio::spawn(async move {
                    let from = bare_client(&format!("192.0.2.{i}"));
                    tracker.login(&db, &ada, &from).await.unwrap();
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let setting = format!("{:?} with the chain", db.backend);
        logins::assert_counts_and_chain(&db, &ada, logins::LOGINS, &setting).await;
        let report = tracker.verify_trail(&db.db, &ada, None).await.unwrap();
        assert!(report.is_intact(), "{setting}: {report:?}");
        assert_eq!(report.checked, logins::LOGINS as u64);
        let rows = events_of(&db.db, &ada).await.unwrap();
        assert_eq!(rows.len(), logins::LOGINS);
    }
}

#[tokio::test]
async fn without_a_key_nothing_is_chained_and_nothing_can_be_verified() {
    for db in members(2).await.unwrap() {
        let ada = new_member(&db.db, "ada@example.com").await.unwrap();
        let plain = Tracker::new();
        plain
            .login(&db.db, &ada, &bare_client("192.0.2.1"))
            .await
            .unwrap();
        let head = plain.trail_head(&db.db, &ada).await.unwrap().unwrap();
        assert_eq!(head.mac, None, "{:?}", db.backend);
        let error = plain.verify_trail(&db.db, &ada, None).await.unwrap_err();
        assert!(matches!(error, trackable_core::Error::NoChainKey));
        // Turning the key on later: the rows before it are unchained, the chain starts after.
        let tracker = Tracker::new().with_chain_key(key());
        tracker
            .login(&db.db, &ada, &bare_client("192.0.2.2"))
            .await
            .unwrap();
        let report = tracker.verify_trail(&db.db, &ada, None).await.unwrap();
        assert!(report.is_intact(), "{report:?}");
        assert_eq!((report.checked, report.unchained), (2, 1));
    }
}

#[tokio::test]
async fn the_append_only_trigger_refuses_changes_but_retention() {
    let Some(db) = trackable::postgres(2).await.unwrap() else {
        return;
    };
    trackable::create_members(&db.db).await.unwrap();
    <member::Model as trackable_core::Trackable>::migration()
        .with_append_only_trigger()
        .up(&db.db)
        .await
        .unwrap();
    assert_eq!(db.backend, DbBackend::Postgres);
    let ada = member_with_events(&db, "ada@example.com", 4).await;
    for sql in [
        "UPDATE member_events SET sign_in_count = 9 WHERE user_id = {u}",
        "DELETE FROM member_events WHERE user_id = {u}",
        "TRUNCATE member_events",
        "DELETE FROM members WHERE id = {u}",
    ] {
        let sql = sql.replace("{u}", &ada.id.to_string());
        let error = db
            .db
            .execute_raw(Statement::from_string(db.backend, sql.clone()))
            .await
            .unwrap_err();
        assert!(error.to_string().contains("append-only"), "{sql}: {error}");
    }
    // The retention functions go through.
    assert_eq!(
        purge_audit_trail::<member::Model>(&db.db, at(2), 100)
            .await
            .unwrap(),
        2
    );
    anonymize_audit_ips::<member::Model>(&db.db, at(10), &IpPolicy::truncate(), 100)
        .await
        .unwrap();
    let report = chained(0).verify_trail(&db.db, &ada, None).await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    // Erasure, then the user, in one transaction.
    let txn = sea_orm::TransactionTrait::begin(&db.db).await.unwrap();
    let erased = trackable_core::erase_audit_trail(&txn, &ada).await.unwrap();
    assert_eq!(erased, 2);
    txn.execute_raw(Statement::from_string(
        db.backend,
        format!("DELETE FROM members WHERE id = {}", ada.id),
    ))
    .await
    .unwrap();
    txn.commit().await.unwrap();
    assert!(events_of(&db.db, &ada).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_deleted_users_trail_can_be_archived_under_a_pseudonym_and_still_verifies() {
    for db in members(2).await.unwrap() {
        let ada = member_with_events(&db, "ada@example.com", 6).await;
        purge_audit_trail::<member::Model>(&db.db, at(2), 100)
            .await
            .unwrap();
        let tracker = chained(10);
        let txn = sea_orm::TransactionTrait::begin(&db.db).await.unwrap();
        let (subject, rows) = tracker.archive_audit_trail(&txn, &ada).await.unwrap();
        assert_eq!(rows, 4, "{:?}", db.backend);
        txn.execute_raw(Statement::from_string(
            db.backend,
            format!("DELETE FROM members WHERE id = {}", ada.id),
        ))
        .await
        .unwrap();
        txn.commit().await.unwrap();
        assert!(events_of(&db.db, &ada).await.unwrap().is_empty());

        let report = tracker
            .verify_archived_trail::<_, member::Model>(&db.db, &subject)
            .await
            .unwrap();
        assert!(report.is_intact(), "{:?}: {report:?}", db.backend);
        assert_eq!((report.from_seq, report.checked), (3, 4));
        // Nothing that names the user, their IPs or their browser is kept.
        for column in ["user_id", "remote_ip", "current_sign_in_ip", "user_agent"] {
            let select = format!("SELECT {column} FROM member_events_archive");
            let outcome = db
                .db
                .query_all_raw(Statement::from_string(db.backend, select))
                .await;
            assert!(
                outcome.is_err(),
                "{:?}: the archive has no {column}",
                db.backend
            );
        }
        // And the archive is chained like the trail was.
        db.db
            .execute_raw(Statement::from_string(
                db.backend,
                "UPDATE member_events_archive SET action = 'lock' WHERE seq = 4",
            ))
            .await
            .unwrap();
        let report = tracker
            .verify_archived_trail::<_, member::Model>(&db.db, &subject)
            .await
            .unwrap();
        assert_eq!(
            first_break(report.broken),
            Some(broken(4, BreakKind::Altered))
        );
    }
}
