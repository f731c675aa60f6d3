//! The benchmarks' floors (`trackable::floor`) do the same work as trackable: for the same
//! logins they write and return the same rows, on SQLite and PostgreSQL (MySQL has no
//! `RETURNING`, and no floor).

use chrono::TimeDelta;
use sea_orm::DbBackend;
use trackable::{
    ManualClock, all_backends, bare_client, create_members, create_users, events_of, floor,
    new_member, new_user,
};

/// A user agent with a device, so that the floor must store it as trackable does.
const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";

const IPS: [&str; 3] = ["192.0.2.1", "198.51.100.2", "2001:db8::3"];

#[tokio::test]
async fn floors_write_and_return_what_trackable_does() {
    for db in all_backends(2).await.unwrap() {
        if db.backend == DbBackend::MySql {
            continue;
        }
        let db = &db.db;
        create_users(db).await.unwrap();
        create_members(db).await.unwrap();
        let clock = ManualClock::default();
        let tracker = clock.tracker();
        let (ours, theirs) = (
            new_user(db, "ours@example.com").await.unwrap(),
            new_user(db, "theirs@example.com").await.unwrap(),
        );
        let (ours_m, theirs_m) = (
            new_member(db, "ours@example.com").await.unwrap(),
            new_member(db, "theirs@example.com").await.unwrap(),
        );
        for ip in IPS {
            clock.advance(TimeDelta::milliseconds(1500));
            let now = clock.now();

            let a = tracker
                .login(db, &ours, &bare_client(ip).with_user_agent(FIREFOX))
                .await
                .unwrap();
            let b = floor::fields_login(db, theirs.id, ip, now).await.unwrap();
            assert_eq!((a.id, &a.email), (ours.id, &ours.email));
            assert_eq!(
                (a.sign_in_count, a.current_sign_in_at, &a.current_sign_in_ip),
                (b.sign_in_count, b.current_sign_in_at, &b.current_sign_in_ip),
                "{ip}"
            );
            assert_eq!(
                (a.last_sign_in_at, &a.last_sign_in_ip),
                (b.last_sign_in_at, &b.last_sign_in_ip),
                "{ip}"
            );

            let a = tracker
                .login(db, &ours_m, &bare_client(ip).with_user_agent(FIREFOX))
                .await
                .unwrap();
            let b = floor::table_login(db, theirs_m.id, ip, FIREFOX, now)
                .await
                .unwrap();
            let same = |mut row: trackable::models::member::member_events::Model| {
                row.id = 0;
                row.user_id = 0;
                row
            };
            assert_eq!(same(a), same(b), "{ip}");
        }
        let a: Vec<_> = events_of(db, &ours_m).await.unwrap();
        let b: Vec<_> = events_of(db, &theirs_m).await.unwrap();
        assert_eq!(a.len(), 3);
        assert_eq!(b.len(), 3);
        assert!(
            b.iter().all(|row| row.device.is_some()),
            "the floor stores the device"
        );
    }
}
