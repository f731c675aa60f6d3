//! Sessions, devices, sign-in methods, failure reasons and the new actions, against real
//! databases: SQLite always, PostgreSQL and MySQL when configured.

use std::sync::{Arc, Mutex};

use chrono::TimeDelta;
use sea_orm::{ConnectionTrait, Statement};
use trackable::models::member;
use trackable::{ManualClock, TestDb, events_of, members, new_member};
use trackable_core::{
    Action, Activity, ClientInfo, Details, FailureReason, HashKey, NewDevice, SessionId,
    SignInMethod, Tracker,
};

const LAPTOP: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0";
const LAPTOP_UPDATED: &str =
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
const PHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1";
const DAY: TimeDelta = TimeDelta::days(1);

fn from(ip: &str, agent: &str) -> ClientInfo {
    trackable::bare_client(ip).with_user_agent(agent)
}

async fn open(tracker: &Tracker, db: &TestDb, user: &member::Model) -> Vec<SessionId> {
    tracker
        .open_sessions(&db.db, user, DAY * 30)
        .await
        .unwrap()
        .into_iter()
        .map(|session| session.id)
        .collect()
}

async fn start(
    tracker: &Tracker,
    db: &TestDb,
    user: &member::Model,
    client: &ClientInfo,
) -> SessionId {
    let details = Details::new().method(SignInMethod::Password);
    tracker
        .start_session(&db.db, user, client, &details)
        .await
        .unwrap()
        .0
}

#[tokio::test]
async fn two_devices_are_two_sessions_and_a_logout_ends_only_its_own() {
    for db in members(2).await.unwrap() {
        let clock = ManualClock::default();
        let tracker = clock.tracker();
        let ada = new_member(&db.db, "ada@example.com").await.unwrap();
        let (laptop, phone) = (from("192.0.2.1", LAPTOP), from("198.51.100.7", PHONE));

        let at_desk = start(&tracker, &db, &ada, &laptop).await;
        clock.advance(TimeDelta::hours(1));
        let on_phone = start(&tracker, &db, &ada, &phone).await;
        let sessions = tracker.open_sessions(&db.db, &ada, DAY).await.unwrap();
        assert_eq!(sessions.len(), 2, "{:?}", db.backend);
        assert_eq!(sessions[0].id, on_phone, "newest first");
        assert_eq!(sessions[0].device.as_deref(), Some("Safari on iOS"));
        assert_eq!(sessions[0].ip.as_deref(), Some("198.51.100.7"));
        assert_eq!(sessions[1].device.as_deref(), Some("Firefox on Linux"));
        assert_eq!(sessions[1].method.as_deref(), Some("password"));

        // The laptop signs out: the phone stays signed in.
        tracker
            .end_session(&db.db, &ada, &laptop, at_desk)
            .await
            .unwrap();
        assert_eq!(
            open(&tracker, &db, &ada).await,
            [on_phone],
            "{:?}",
            db.backend
        );

        // Sessions older than the maximum age are not open.
        clock.advance(DAY * 2);
        let sessions = tracker.open_sessions(&db.db, &ada, DAY).await.unwrap();
        assert!(sessions.is_empty());

        // The user row's state is fields mode's: count 2, current = the phone's login.
        let rows = events_of(&db.db, &ada).await.unwrap();
        let last = rows.last().unwrap();
        assert_eq!(last.sign_in_count, 2);
        assert_eq!(last.current_sign_in_ip, None, "a logout clears current_*");
        assert_eq!(last.last_sign_in_ip.as_deref(), Some("198.51.100.7"));
    }
}

#[tokio::test]
async fn sign_out_everywhere_else_ends_the_others_and_names_them() {
    for db in members(2).await.unwrap() {
        let tracker = Tracker::new();
        let ada = new_member(&db.db, "ada@example.com").await.unwrap();
        let here = from("192.0.2.1", LAPTOP);
        let mut sessions = Vec::new();
        for i in 1..=3 {
            sessions
                .push(start(&tracker, &db, &ada, &from(&format!("203.0.113.{i}"), PHONE)).await);
        }
        let mine = start(&tracker, &db, &ada, &here).await;
        tracker
            .end_session(&db.db, &ada, &here, sessions[0])
            .await
            .unwrap();
        let ended = tracker
            .sign_out_others(&db.db, &ada, &here, mine, DAY)
            .await
            .unwrap();
        assert_eq!(
            ended,
            [sessions[2], sessions[1]],
            "{:?}: newest first",
            db.backend
        );
        assert_eq!(open(&tracker, &db, &ada).await, [mine]);
        // A later sign-in is not ended by it.
        let later = start(&tracker, &db, &ada, &from("203.0.113.9", PHONE)).await;
        assert_eq!(open(&tracker, &db, &ada).await, [later, mine]);
        // An administrator revokes one session.
        tracker
            .revoke_session(&db.db, &ada, &here, later)
            .await
            .unwrap();
        assert_eq!(open(&tracker, &db, &ada).await, [mine]);
        // A plain logout (no session named) ends the newest open one.
        let another = start(&tracker, &db, &ada, &here).await;
        tracker.logout(&db.db, &ada, &here).await.unwrap();
        assert_eq!(open(&tracker, &db, &ada).await, [mine], "{another} ended");
    }
}

#[tokio::test]
async fn concurrent_logins_are_distinct_open_sessions() {
    for db in members(8).await.unwrap() {
        let tracker = Tracker::new();
        let ada = new_member(&db.db, "ada@example.com").await.unwrap();
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let (db, tracker, ada) = (db.db.clone(), tracker.clone(), ada.clone());
                tokio::spawn(async move {
                    let client = from(&format!("192.0.2.{i}"), PHONE);
                    let details = Details::new();
                    tracker
                        .start_session(&db, &ada, &client, &details)
                        .await
                        .unwrap()
                        .0
                })
            })
            .collect();
        let mut started = Vec::new();
        for task in tasks {
            started.push(task.await.unwrap());
        }
        started.sort();
        started.dedup();
        assert_eq!(started.len(), 16, "{:?}", db.backend);
        let mut listed = open(&tracker, &db, &ada).await;
        listed.sort();
        assert_eq!(listed, started);
    }
}

#[tokio::test]
async fn methods_reasons_and_the_new_actions_are_stored_as_stable_strings() {
    for db in members(2).await.unwrap() {
        let key = HashKey::new([3; 32]).unwrap();
        let tracker = Tracker::new().with_identifier_key(key);
        let ada = new_member(&db.db, "ada@example.com").await.unwrap();
        let client = from("192.0.2.1", LAPTOP);
        let github = Details::new()
            .method(SignInMethod::OAuth("GitHub".into()))
            .app_session_id("s3cr3t-session-id");
        let (session, _) = tracker
            .start_session(&db.db, &ada, &client, &github)
            .await
            .unwrap();
        for reason in FailureReason::ALL {
            let details = Details::new().reason(reason);
            tracker
                .track_with(&db.db, &ada, Action::FailedLogin, &client, &details)
                .await
                .unwrap();
        }
        let new_actions = [
            Action::Registration,
            Action::PasswordChange,
            Action::EmailChange,
            Action::MfaSuccess,
            Action::MfaFailure,
        ];
        for action in new_actions {
            tracker.track(&db.db, &ada, action, &client).await.unwrap();
        }
        tracker
            .restore_session(&db.db, &ada, &client, session)
            .await
            .unwrap();

        let page = tracker.activity(&db.db, &ada, None, 100).await.unwrap();
        let mut events: Vec<Activity> = page.events;
        events.reverse();
        assert_eq!(events[0].action, Action::Login, "{:?}", db.backend);
        assert_eq!(events[0].method.as_deref(), Some("oauth:github"));
        assert_eq!(events[0].session, Some(session));
        assert_eq!(events[0].device.as_deref(), Some("Firefox on Linux"));
        let reasons: Vec<FailureReason> = events[1..=FailureReason::ALL.len()]
            .iter()
            .map(|event| event.reason.as_deref().unwrap().parse().unwrap())
            .collect();
        assert_eq!(reasons, FailureReason::ALL);
        let actions: Vec<Action> = events
            .iter()
            .skip(1 + FailureReason::ALL.len())
            .map(|e| e.action)
            .collect();
        assert_eq!(actions[..5], new_actions);
        // A restored session is its own event and no login: the count stays 1.
        let restored = events.last().unwrap();
        assert_eq!(restored.action, Action::SessionRestored);
        assert_eq!(restored.sign_in_count, 1);
        assert_eq!(restored.session, Some(session));
        assert_eq!(open(&tracker, &db, &ada).await, [session]);

        // The app's session id is kept only as a keyed hash.
        let digests: Vec<Option<String>> = db
            .db
            .query_all_raw(Statement::from_string(
                db.backend,
                "SELECT session_digest FROM member_events WHERE action = 'login'",
            ))
            .await
            .unwrap()
            .iter()
            .map(|row| row.try_get("", "session_digest").unwrap())
            .collect();
        let digest = digests[0].as_deref().unwrap();
        assert!(
            digest.starts_with("hmac:") && !digest.contains("s3cr3t"),
            "{digest}"
        );
        assert_eq!(
            "oauth:github".parse::<SignInMethod>(),
            Ok(SignInMethod::OAuth("github".into()))
        );
    }
}

#[tokio::test]
async fn the_new_device_hook_fires_for_a_new_device_and_not_for_an_update() {
    for db in members(4).await.unwrap() {
        let seen: Arc<Mutex<Vec<(String, bool)>>> = Arc::default();
        let calls = seen.clone();
        let tracker = Tracker::new().on_new_device(move |sign_in: &NewDevice| {
            let mut calls = calls.lock().unwrap();
            calls.push((sign_in.device.clone(), sign_in.first_login));
        });
        let ada = new_member(&db.db, "ada@example.com").await.unwrap();
        start(&tracker, &db, &ada, &from("192.0.2.1", LAPTOP)).await;
        start(&tracker, &db, &ada, &from("192.0.2.1", LAPTOP_UPDATED)).await;
        // Two logins from a new phone at once: one call.
        let tasks: Vec<_> = (0..2)
            .map(|_| {
                let (db, tracker, ada) = (db.db.clone(), tracker.clone(), ada.clone());
                tokio::spawn(async move {
                    tracker
                        .login(&db, &ada, &from("198.51.100.7", PHONE))
                        .await
                        .unwrap();
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let calls = seen.lock().unwrap().clone();
        assert_eq!(
            calls,
            [
                ("Firefox on Linux".to_owned(), true),
                ("Safari on iOS".to_owned(), false)
            ],
            "{:?}",
            db.backend
        );
    }
}
