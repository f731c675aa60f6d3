//! The new-IP hook: once per login from an IP new for the user, also under concurrent logins.
//! SQLite always, PostgreSQL and MySQL when configured.

use std::sync::{Arc, Mutex};

use sea_orm::Value;
use trackable::{USER_AGENT, all_backends, client, member_and_user};
use trackable_core::{Action, ClientInfo, IpPolicy, NewIp, Tracker};

fn recorder() -> (Tracker, Arc<Mutex<Vec<NewIp>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let tracker = Tracker::new().on_new_ip(move |sign_in: &NewIp| {
        sink.lock().unwrap().push(sign_in.clone());
    });
    (tracker, seen)
}

#[tokio::test]
async fn the_new_ip_hook_fires_once_per_new_ip_of_a_user() {
    for db in all_backends(2).await.unwrap() {
        let (member, user) = member_and_user(&db.db).await.unwrap();
        let (tracker, seen) = recorder();
        let take = || std::mem::take(&mut *seen.lock().unwrap());

        let first = tracker
            .login(&db.db, &member, &client("192.0.2.1"))
            .await
            .unwrap();
        let fired = take();
        assert_eq!(fired.len(), 1, "{:?}", db.backend);
        assert_eq!(fired[0].user_id, Value::Int(Some(member.id)));
        assert_eq!(fired[0].ip, "192.0.2.1");
        assert_eq!(fired[0].user_agent.as_deref(), Some(USER_AGENT));
        assert_eq!(fired[0].at, first.inserted_at);
        assert_eq!(fired[0].event_id, first.id);
        assert!(fired[0].first_login);

        tracker
            .login(&db.db, &member, &client("192.0.2.1"))
            .await
            .unwrap();
        // only logins count, and only logins fire
        tracker
            .failed_login(&db.db, &member, &client("192.0.2.2"))
            .await
            .unwrap();
        tracker
            .track(&db.db, &member, Action::PasswordReset, &client("192.0.2.3"))
            .await
            .unwrap();
        assert!(take().is_empty());
        let second = tracker
            .login(&db.db, &member, &client("192.0.2.2"))
            .await
            .unwrap();
        let fired = take();
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].event_id, second.id);
        assert!(!fired[0].first_login);

        // no stored IP, no hook
        let blind = Tracker::new()
            .with_ip_policy(IpPolicy::None)
            .on_new_ip(|_: &NewIp| panic!("no IP is stored under IpPolicy::None"));
        blind
            .login(&db.db, &member, &client("192.0.2.9"))
            .await
            .unwrap();
        blind
            .login(&db.db, &member, &ClientInfo::new())
            .await
            .unwrap();
        // fields mode keeps no IP history
        let fields = Tracker::new().on_new_ip(|_: &NewIp| panic!("fields mode has no hook"));
        fields
            .login(&db.db, &user, &client("192.0.2.9"))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_logins_from_a_new_ip_fire_the_hook_once() {
    const IPS: usize = 4;
    const EACH: usize = 8;
    for db in all_backends(8).await.unwrap() {
        let (member, _) = member_and_user(&db.db).await.unwrap();
        let (tracker, seen) = recorder();
        tracker
            .login(&db.db, &member, &client("192.0.2.1"))
            .await
            .unwrap();
        seen.lock().unwrap().clear();

        let db = Arc::new(db);
        let mut tasks = Vec::new();
        for i in 0..IPS * EACH {
            let (db, tracker, member) = (Arc::clone(&db), tracker.clone(), member.clone());
            tasks.push(tokio::spawn(async move {
                let ip = format!("198.51.100.{}", i % IPS);
                tracker.login(&db.db, &member, &client(&ip)).await.unwrap()
            }));
        }
        let mut rows = Vec::new();
        for task in tasks {
            rows.push(task.await.unwrap());
        }
        let mut fired = std::mem::take(&mut *seen.lock().unwrap());
        fired.sort_by(|a, b| a.ip.cmp(&b.ip));
        let ips: Vec<&str> = fired.iter().map(|f| f.ip.as_str()).collect();
        assert_eq!(
            ips,
            [
                "198.51.100.0",
                "198.51.100.1",
                "198.51.100.2",
                "198.51.100.3"
            ],
            "{:?}: once per new IP",
            db.backend
        );
        // and each time for the first login from that IP
        for f in &fired {
            let first = rows
                .iter()
                .filter(|r| r.remote_ip.as_deref() == Some(f.ip.as_str()))
                .map(|r| r.id)
                .min();
            assert_eq!(Some(f.event_id), first);
            assert!(!f.first_login);
        }
    }
}
