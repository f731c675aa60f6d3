//! The lockout against real databases: SQLite always, PostgreSQL and MySQL when configured.
//! Attempts go through `Lockout::begin` and report their outcome, as a login handler does.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::TimeDelta;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};
use trackable::models::member::{self, member_events as events};
use trackable::{ManualClock, TestDb, bare_client, client, members, new_member};
use trackable_core::{
    Action, Attempt, ClientInfo, HashKey, IpPolicy, LockDecision, Lockout, Refusal, RefusalReason,
    Tracker,
};

const MINUTE: TimeDelta = TimeDelta::minutes(1);

async fn rows(db: &TestDb, user: &member::Model, action: Action) -> Vec<events::Model> {
    events::Entity::find()
        .filter(events::Column::UserId.eq(user.id))
        .filter(events::Column::Action.eq(action))
        .order_by_asc(events::Column::Seq)
        .all(&db.db)
        .await
        .unwrap()
}

async fn locks(db: &TestDb, user: &member::Model) -> u64 {
    events::Entity::find()
        .filter(events::Column::UserId.eq(user.id))
        .filter(events::Column::Action.eq(Action::Lock))
        .count(&db.db)
        .await
        .unwrap()
}

/// What one attempt through the lockout came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Refused(Refusal),
    Failed(LockDecision),
    SignedIn,
}

/// One attempt, as the documented handler makes it: `right` says whether the credentials
/// were right (only a permit gets to know).
async fn attempt(
    lockout: &Lockout,
    tracker: &Tracker,
    db: &TestDb,
    user: Option<&member::Model>,
    identifier: &str,
    from: &ClientInfo,
    right: bool,
) -> Outcome {
    match lockout
        .begin(tracker, &db.db, user, identifier, from)
        .await
        .unwrap()
    {
        Attempt::Refused(refusal) => Outcome::Refused(refusal),
        Attempt::Permitted(permit) if right => {
            permit.succeeded(&db.db).await.unwrap();
            Outcome::SignedIn
        }
        Attempt::Permitted(permit) => Outcome::Failed(permit.failed(&db.db).await.unwrap()),
    }
}

fn refused(reason: RefusalReason, until: chrono::DateTime<chrono::Utc>) -> Outcome {
    Outcome::Refused(Refusal { reason, until })
}

#[tokio::test]
async fn an_account_is_locked_at_the_threshold_and_attempts_while_locked_are_recorded() {
    for db in members(2).await.unwrap() {
        let clock = ManualClock::default();
        let tracker = clock.tracker();
        let lockout = Lockout::new(3, MINUTE * 10, MINUTE * 15);
        let ada = new_member(&db.db, "ada@example.com").await.unwrap();
        let bob = new_member(&db.db, "bob@example.com").await.unwrap();
        // A new address each time, so that only the account's count matters here.
        let from = |n: u8| client(&format!("192.0.2.{n}"));
        let wrong = |user, n| {
            let (lockout, tracker, db) = (&lockout, &tracker, &db);
            async move { attempt(lockout, tracker, db, Some(user), "", &from(n), false).await }
        };

        for n in 1..=2 {
            assert_eq!(wrong(&ada, n).await, Outcome::Failed(LockDecision::Allow));
            assert_eq!(wrong(&bob, n).await, Outcome::Failed(LockDecision::Allow));
            clock.advance(MINUTE);
        }
        let locked_at = clock.now();
        let until = locked_at + MINUTE * 15;
        assert_eq!(
            wrong(&ada, 3).await,
            Outcome::Failed(LockDecision::Lock { until }),
            "{:?}",
            db.backend
        );
        assert_eq!(locks(&db, &ada).await, 1, "the lock is recorded");
        assert_eq!(
            lockout.locked_until(&tracker, &db.db, &ada).await.unwrap(),
            Some(until)
        );
        assert_eq!(
            lockout.locked_until(&tracker, &db.db, &bob).await.unwrap(),
            None
        );

        // Refused without a password check, recorded with IP and user agent, and the lock is
        // not extended: the right password is refused too, with when to come back.
        clock.advance(MINUTE * 14);
        let right = attempt(&lockout, &tracker, &db, Some(&ada), "", &from(9), true).await;
        assert_eq!(right, refused(RefusalReason::AccountLocked, until));
        if let Outcome::Refused(refusal) = right {
            assert_eq!(refusal.retry_after_secs(clock.now()), 60);
        }
        let refusals = rows(&db, &ada, Action::Refused).await;
        assert_eq!(refusals.len(), 1);
        assert_eq!(refusals[0].remote_ip.as_deref(), Some("192.0.2.9"));
        assert!(refusals[0].user_agent.is_some());
        assert_eq!(locks(&db, &ada).await, 1);
        assert_eq!(rows(&db, &ada, Action::FailedLogin).await.len(), 3);

        // After the cool-off the count starts again: failures before the lock no longer
        // count, nor do the refused attempts.
        clock.advance(MINUTE);
        assert_eq!(wrong(&ada, 10).await, Outcome::Failed(LockDecision::Allow));
        assert_eq!(
            attempt(&lockout, &tracker, &db, Some(&ada), "", &from(11), true).await,
            Outcome::SignedIn
        );

        // An unlock by an administrator ends a lock.
        for n in 12..=14 {
            wrong(&ada, n).await;
        }
        assert_eq!(locks(&db, &ada).await, 2);
        tracker.unlock(&db.db, &ada, &from(1)).await.unwrap();
        assert_eq!(wrong(&ada, 15).await, Outcome::Failed(LockDecision::Allow));
    }
}

#[tokio::test]
async fn a_login_restarts_the_count_and_old_failures_leave_the_window() {
    for db in members(2).await.unwrap() {
        let clock = ManualClock::default();
        let tracker = clock.tracker();
        let lockout = Lockout::new(3, MINUTE * 10, MINUTE * 15);
        let ada = new_member(&db.db, "ada@example.com").await.unwrap();
        let go = |n: u8, right| {
            let (lockout, tracker, db, ada) = (&lockout, &tracker, &db, &ada);
            let from = bare_client(&format!("192.0.2.{n}"));
            async move { attempt(lockout, tracker, db, Some(ada), "", &from, right).await }
        };
        go(1, false).await;
        go(2, false).await;
        clock.advance(MINUTE);
        assert_eq!(go(3, true).await, Outcome::SignedIn);
        clock.advance(MINUTE);
        go(4, false).await;
        assert_eq!(go(5, false).await, Outcome::Failed(LockDecision::Allow));
        // two failures at t, one at t + 11 min: the first two left the 10-minute window
        clock.advance(MINUTE * 11);
        assert_eq!(go(6, false).await, Outcome::Failed(LockDecision::Allow));
        assert_eq!(locks(&db, &ada).await, 0, "{:?}", db.backend);
    }
}

/// `n` attempts at once, each holding its permit for a moment as a password hash would;
/// returns how many password checks ran.
async fn parallel_wrong_attempts(
    db: &Arc<TestDb>,
    tracker: &Tracker,
    lockout: Lockout,
    n: usize,
    who: impl Fn(usize) -> (Option<member::Model>, String, ClientInfo),
) -> usize {
    let checks = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(tokio::sync::Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (user, identifier, from) = who(i);
            let (db, tracker, checks, start) =
                (db.clone(), tracker.clone(), checks.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                let attempt = lockout
                    .begin(&tracker, &db.db, user.as_ref(), &identifier, &from)
                    .await
                    .unwrap();
                if let Attempt::Permitted(permit) = attempt {
                    checks.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    permit.failed(&db.db).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    checks.load(Ordering::SeqCst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_guesses_get_at_most_threshold_password_checks() {
    for db in members(8).await.unwrap() {
        let db = Arc::new(db);
        let tracker = Tracker::new();
        let lockout = Lockout::default();
        let threshold = lockout.threshold() as usize;

        // 40 guesses at one account, each from its own address.
        let ada = new_member(&db.db, "ada@example.com").await.unwrap();
        let user = ada.clone();
        let checks = parallel_wrong_attempts(&db, &tracker, lockout, 40, move |i| {
            (
                Some(user.clone()),
                String::new(),
                bare_client(&format!("192.0.2.{i}")),
            )
        })
        .await;
        println!(
            "{:?}: one account, 40 at once: {checks} password checks",
            db.backend
        );
        assert_eq!(checks, threshold, "{:?}", db.backend);
        assert_eq!(locks(&db, &ada).await, 1, "{:?}", db.backend);
        assert_eq!(rows(&db, &ada, Action::FailedLogin).await.len(), threshold);
        assert_eq!(
            rows(&db, &ada, Action::Refused).await.len(),
            40 - threshold,
            "every refused attempt is recorded"
        );

        // 40 guesses from one address at 40 accounts.
        let mut victims = Vec::new();
        for i in 0..40 {
            victims.push(
                new_member(&db.db, &format!("m{i}@example.com"))
                    .await
                    .unwrap(),
            );
        }
        let checks = parallel_wrong_attempts(&db, &tracker, lockout, 40, move |i| {
            (
                Some(victims[i].clone()),
                String::new(),
                bare_client("198.51.100.7"),
            )
        })
        .await;
        println!(
            "{:?}: one address, 40 accounts: {checks} password checks",
            db.backend
        );
        assert_eq!(checks, threshold, "{:?}", db.backend);

        // 40 guesses from one /64 at identifiers that match no user.
        let checks = parallel_wrong_attempts(&db, &tracker, lockout, 40, |i| {
            (
                None,
                format!("guess{i}@example.com"),
                bare_client(&format!("2001:db8:7:7::{i:x}")),
            )
        })
        .await;
        println!(
            "{:?}: one /64, 40 unknown identifiers: {checks} password checks",
            db.backend
        );
        assert_eq!(checks, threshold, "{:?}", db.backend);
    }
}

#[tokio::test]
async fn a_permit_without_an_outcome_times_out() {
    for db in members(2).await.unwrap() {
        let clock = ManualClock::default();
        let tracker = clock.tracker();
        let lockout = Lockout::new(2, MINUTE * 10, MINUTE * 15).with_attempt_timeout(MINUTE);
        let ada = new_member(&db.db, "ada@example.com").await.unwrap();
        let from = bare_client("192.0.2.1");
        for _ in 0..2 {
            let attempt = lockout
                .begin(&tracker, &db.db, Some(&ada), "", &from)
                .await
                .unwrap();
            assert!(matches!(attempt, Attempt::Permitted(_)));
            drop(attempt); // the handler failed before it reported anything
        }
        let until = clock.now() + MINUTE;
        assert_eq!(
            attempt(&lockout, &tracker, &db, Some(&ada), "", &from, true).await,
            refused(RefusalReason::TooManyAttempts, until),
            "{:?}",
            db.backend
        );
        clock.advance(MINUTE);
        assert_eq!(
            attempt(&lockout, &tracker, &db, Some(&ada), "", &from, true).await,
            Outcome::SignedIn,
            "not locked forever"
        );
        assert_eq!(locks(&db, &ada).await, 0);
    }
}

#[tokio::test]
async fn networks_are_ipv4_addresses_and_ipv6_slash_64s() {
    for db in members(2).await.unwrap() {
        let clock = ManualClock::default();
        let tracker = clock.tracker();
        let lockout = Lockout::new(3, MINUTE * 10, MINUTE * 5);
        let unknown = |identifier: &str, ip: &str| {
            let (lockout, tracker, db) = (&lockout, &tracker, &db);
            let (identifier, from) = (identifier.to_owned(), bare_client(ip));
            async move { attempt(lockout, tracker, db, None, &identifier, &from, false).await }
        };
        // An attacker rotating addresses inside one /64.
        for i in 1..=2 {
            let outcome = unknown(&format!("g{i}"), &format!("2001:db8:1:2::{i}")).await;
            assert_eq!(
                outcome,
                Outcome::Failed(LockDecision::Allow),
                "{:?}",
                db.backend
            );
        }
        let until = clock.now() + MINUTE * 5;
        assert_eq!(
            unknown("g3", "2001:db8:1:2:ffff::3").await,
            Outcome::Failed(LockDecision::Locked { until })
        );
        assert_eq!(
            unknown("g4", "2001:db8:1:2:abcd::4").await,
            refused(RefusalReason::NetworkBlocked, until)
        );
        assert_eq!(
            unknown("g5", "2001:db8:1:3::1").await,
            Outcome::Failed(LockDecision::Allow),
            "the next /64 is another network"
        );
        // IPv4: the address.
        for i in 1..=3 {
            unknown(&format!("h{i}"), "198.51.100.23").await;
        }
        assert_eq!(
            unknown("h4", "198.51.100.23").await,
            refused(RefusalReason::NetworkBlocked, until)
        );
        assert_eq!(
            unknown("h5", "198.51.100.24").await,
            Outcome::Failed(LockDecision::Allow)
        );
        // The block ends with the cool-off, and the count starts again.
        clock.advance(MINUTE * 5);
        assert_eq!(
            unknown("h6", "198.51.100.23").await,
            Outcome::Failed(LockDecision::Allow)
        );
        // Other prefixes, configured.
        let wide = lockout.with_network_prefixes(24, 48);
        assert_eq!(wide.network_prefixes(), (24, 48));
        for i in 1..=3 {
            let from = bare_client(&format!("203.0.113.{i}"));
            attempt(&wide, &tracker, &db, None, "x", &from, false).await;
        }
        let neighbour = bare_client("203.0.113.200");
        let blocked = attempt(&wide, &tracker, &db, None, "y", &neighbour, false).await;
        assert!(matches!(
            blocked,
            Outcome::Refused(Refusal {
                reason: RefusalReason::NetworkBlocked,
                ..
            })
        ));
    }
}

#[tokio::test]
async fn clients_without_a_resolved_ip_share_one_network() {
    for db in members(2).await.unwrap() {
        let clock = ManualClock::default();
        let tracker = clock.tracker();
        let lockout = Lockout::new(3, MINUTE * 10, MINUTE * 5);
        let ada = new_member(&db.db, "ada@example.com").await.unwrap();
        let nowhere = ClientInfo::new(); // e.g. a forged forwarding header
        for i in 0..3 {
            let identifier = format!("guess{i}");
            attempt(&lockout, &tracker, &db, None, &identifier, &nowhere, false).await;
        }
        let outcome = attempt(&lockout, &tracker, &db, Some(&ada), "", &nowhere, true).await;
        assert!(
            matches!(
                outcome,
                Outcome::Refused(Refusal {
                    reason: RefusalReason::NetworkBlocked,
                    ..
                })
            ),
            "{:?}: {outcome:?}",
            db.backend
        );
        // A client with an address is not held back by them.
        let from = bare_client("192.0.2.1");
        assert_eq!(
            attempt(&lockout, &tracker, &db, Some(&ada), "", &from, true).await,
            Outcome::SignedIn
        );
    }
}

#[tokio::test]
async fn identifiers_that_match_no_user_lock_like_accounts() {
    for db in members(2).await.unwrap() {
        let clock = ManualClock::default();
        let key = HashKey::new([7; 32]).unwrap();
        let tracker = clock.tracker().with_identifier_key(key);
        let lockout = Lockout::new(3, MINUTE * 10, MINUTE * 15);
        let ada = new_member(&db.db, "ada@example.com").await.unwrap();
        let go = |user: Option<&member::Model>, identifier: &str, n: u8| {
            let (lockout, tracker, db, user) = (&lockout, &tracker, &db, user.cloned());
            let (identifier, from) = (identifier.to_owned(), bare_client(&format!("192.0.2.{n}")));
            async move {
                attempt(
                    lockout,
                    tracker,
                    db,
                    user.as_ref(),
                    &identifier,
                    &from,
                    false,
                )
                .await
            }
        };
        // Spread over addresses, case and spaces changed: one identifier all the same.
        go(None, "nobody@example.com", 1).await;
        go(None, "Nobody@Example.com", 2).await;
        let until = clock.now() + MINUTE * 15;
        assert_eq!(
            go(None, "  NOBODY@example.com ", 3).await,
            Outcome::Failed(LockDecision::Lock { until }),
            "{:?}",
            db.backend
        );
        let unknown = go(None, "nobody@example.com", 4).await;
        for n in 1..=3 {
            go(Some(&ada), "ada@example.com", n).await;
        }
        let known = go(Some(&ada), "ada@example.com", 4).await;
        // The same answer for an account that exists and one that does not.
        assert_eq!(unknown, refused(RefusalReason::AccountLocked, until));
        assert_eq!(known, unknown);
    }
}

#[tokio::test]
async fn a_progressive_cool_off_doubles_each_lock_up_to_the_cap() {
    for db in members(2).await.unwrap() {
        let clock = ManualClock::default();
        let tracker = clock.tracker();
        let lockout = Lockout::new(1, MINUTE * 10, MINUTE * 5)
            .with_progressive_cool_off(MINUTE * 15, TimeDelta::days(1));
        let ada = new_member(&db.db, "ada@example.com").await.unwrap();
        let from = bare_client("192.0.2.1");
        let mut lengths = Vec::new();
        for _ in 0..4 {
            match attempt(&lockout, &tracker, &db, Some(&ada), "", &from, false).await {
                Outcome::Failed(LockDecision::Lock { until }) => {
                    lengths.push((until - clock.now()).num_minutes());
                    assert_eq!(
                        lockout.locked_until(&tracker, &db.db, &ada).await.unwrap(),
                        Some(until)
                    );
                    clock.advance(until - clock.now());
                }
                other => panic!("{:?}: {other:?}", db.backend),
            }
        }
        assert_eq!(lengths, [5, 10, 15, 15], "{:?}", db.backend);
        // Locks older than the period no longer count.
        clock.advance(TimeDelta::days(1));
        match attempt(&lockout, &tracker, &db, Some(&ada), "", &from, false).await {
            Outcome::Failed(LockDecision::Lock { until }) => {
                assert_eq!(until - clock.now(), MINUTE * 5);
            }
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn an_ip_the_owner_signed_in_from_is_exempt_from_locks_caused_elsewhere() {
    for db in members(2).await.unwrap() {
        let clock = ManualClock::default();
        let tracker = clock.tracker().with_ip_policy(IpPolicy::Full);
        let lockout = Lockout::new(3, MINUTE * 10, MINUTE * 15).exempt_known_ips();
        let ada = new_member(&db.db, "ada@example.com").await.unwrap();
        let home = bare_client("192.0.2.1");
        assert_eq!(
            attempt(&lockout, &tracker, &db, Some(&ada), "", &home, true).await,
            Outcome::SignedIn
        );
        // An attacker elsewhere locks the account.
        for n in 1..=3 {
            let from = bare_client(&format!("203.0.113.{n}"));
            attempt(&lockout, &tracker, &db, Some(&ada), "", &from, false).await;
        }
        assert_eq!(locks(&db, &ada).await, 1);
        let elsewhere = bare_client("203.0.113.9");
        let outcome = attempt(&lockout, &tracker, &db, Some(&ada), "", &elsewhere, true).await;
        assert!(matches!(outcome, Outcome::Refused(_)), "{:?}", db.backend);
        // The owner at home is not locked out; a new place is.
        assert_eq!(
            attempt(&lockout, &tracker, &db, Some(&ada), "", &home, true).await,
            Outcome::SignedIn,
            "{:?}",
            db.backend
        );
        // Without the option, the owner is locked out too.
        for n in 1..=3 {
            let from = bare_client(&format!("203.0.113.{n}"));
            attempt(&lockout, &tracker, &db, Some(&ada), "", &from, false).await;
        }
        let strict = Lockout::new(3, MINUTE * 10, MINUTE * 15);
        let outcome = attempt(&strict, &tracker, &db, Some(&ada), "", &home, true).await;
        assert!(
            matches!(
                outcome,
                Outcome::Refused(Refusal {
                    reason: RefusalReason::AccountLocked,
                    ..
                })
            ),
            "{outcome:?}"
        );
    }
}

#[tokio::test]
async fn idle_gates_are_forgotten() {
    for db in members(2).await.unwrap() {
        let clock = ManualClock::default();
        let tracker = clock.tracker();
        let lockout = Lockout::new(3, MINUTE * 10, MINUTE * 5);
        let ada = new_member(&db.db, "ada@example.com").await.unwrap();
        attempt(
            &lockout,
            &tracker,
            &db,
            Some(&ada),
            "",
            &bare_client("192.0.2.1"),
            false,
        )
        .await;
        clock.advance(MINUTE * 9);
        let forgotten = lockout.forget_idle_gates::<member::Model>(&tracker, &db.db);
        assert_eq!(forgotten.await.unwrap(), 0, "{:?}", db.backend);
        clock.advance(MINUTE * 2);
        let forgotten = lockout.forget_idle_gates::<member::Model>(&tracker, &db.db);
        assert_eq!(
            forgotten.await.unwrap(),
            2,
            "the account's and the network's"
        );
    }
}

#[test]
fn retry_after_rounds_up_to_whole_seconds() {
    let now = chrono::Utc::now();
    let refusal = Refusal {
        reason: RefusalReason::AccountLocked,
        until: now + TimeDelta::milliseconds(1500),
    };
    assert_eq!(refusal.retry_after_secs(now), 2);
    assert_eq!(refusal.retry_after_secs(now + TimeDelta::seconds(5)), 0);
}
