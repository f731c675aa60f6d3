//! Concurrent logins and the checks of their rows, shared by the consistency tests.

use std::collections::BTreeMap;
use std::sync::Arc;

use sea_orm::EntityTrait;
use trackable::models::{member, user};
use trackable::{TestDb, client, events_of, new_member, new_user};
use trackable_core::{Error, NewIp, Tracker};

pub const LOGINS: usize = 16;

/// Checks that `member`'s rows are logins 1..=n with event numbers 1..=n, each chaining to
/// the one before (`last_*` = the previous login's `current_*`).
/// Checks the rows of `LOGINS` logins of the table-mode `member` and the fields-mode `user`.
pub async fn assert_both_logged_in(
    db: &TestDb,
    member: &member::Model,
    user: &user::Model,
    setting: &str,
) {
    assert_counts_and_chain(db, member, LOGINS, setting).await;
    let user = user::Entity::find_by_id(user.id)
        .one(&db.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.sign_in_count, LOGINS as i32, "{setting}: fields mode");
}

pub async fn assert_counts_and_chain(db: &TestDb, member: &member::Model, n: usize, setting: &str) {
    let rows = events_of(&db.db, member).await.unwrap();
    let mut counts: Vec<i64> = rows.iter().map(|row| row.sign_in_count).collect();
    counts.sort_unstable();
    assert_eq!(
        counts,
        (1..=n as i64).collect::<Vec<_>>(),
        "{setting}: each count once"
    );
    let mut by_seq = rows.clone();
    by_seq.sort_by_key(|row| row.seq);
    assert_eq!(
        by_seq.iter().map(|row| row.seq).collect::<Vec<_>>(),
        (1..=n as i64).collect::<Vec<_>>(),
        "{setting}: event numbers 1..n"
    );
    for pair in by_seq.windows(2) {
        assert_eq!(
            pair[1].sign_in_count,
            pair[0].sign_in_count + 1,
            "{setting}"
        );
        assert_eq!(
            (pair[1].last_sign_in_at, &pair[1].last_sign_in_ip),
            (pair[0].current_sign_in_at, &pair[0].current_sign_in_ip),
            "{setting}: row {} chains to row {}",
            pair[1].seq,
            pair[0].seq
        );
    }
}

/// A tracker whose new-IP hook counts its calls per IP.
#[allow(clippy::type_complexity)]
pub fn counting_tracker() -> (Tracker, Arc<std::sync::Mutex<BTreeMap<String, usize>>>) {
    let calls = Arc::new(std::sync::Mutex::new(BTreeMap::new()));
    let seen = calls.clone();
    let tracker = Tracker::new().on_new_ip(move |sign_in: &NewIp| {
        *seen.lock().unwrap().entry(sign_in.ip.clone()).or_insert(0) += 1;
    });
    (tracker, calls)
}

/// `LOGINS` concurrent logins of one member and one user on the pool, from two IPs.
pub async fn concurrent_logins_on_the_pool(db: &TestDb, setting: &str) {
    let (tracker, calls) = counting_tracker();
    let ada = new_member(&db.db, "ada@example.com").await.unwrap();
    let bob = new_user(&db.db, "bob@example.com").await.unwrap();
    let tasks: Vec<_> = (0..LOGINS)
        .map(|i| {
            let (db, tracker, ada, bob) =
                (db.db.clone(), tracker.clone(), ada.clone(), bob.clone());
            tokio::spawn(async move {
                let ip = format!("192.0.2.{}", i % 2);
                tracker.login(&db, &ada, &client(&ip)).await?;
                tracker.login(&db, &bob, &client(&ip)).await?;
                Ok::<_, Error>(())
            })
        })
        .collect();
    let mut failed = 0;
    for task in tasks {
        if let Err(error) = task.await.unwrap() {
            eprintln!("{setting}: {error:?}");
            failed += 1;
        }
    }
    println!(
        "{setting}: {} of {LOGINS} logins succeeded",
        LOGINS - failed
    );
    assert_eq!(failed, 0, "{setting}: every login succeeds");
    assert_both_logged_in(db, &ada, &bob, setting).await;
    let calls = calls.lock().unwrap().clone();
    assert_eq!(
        calls,
        BTreeMap::from([("192.0.2.0".to_owned(), 1), ("192.0.2.1".to_owned(), 1)]),
        "{setting}: the hook fires once per new IP"
    );
}
