//! The `tracing` events of tracked actions, as a log file would receive them. SQLite always,
//! PostgreSQL and MySQL when configured.
//!
//! The subscriber is the global default and this binary holds one test: `tracing` caches per
//! event site whether anyone listens, and a thread-local subscriber misses the events of
//! sites that another test's thread reached first.

use std::io;
use std::sync::{Arc, Mutex};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;
use trackable::models::member;
use trackable::{USER_AGENT, all_backends, client, member_and_user};
use trackable_core::{HashKey, IpPolicy, Tracker};

/// Everything the `fmt` subscriber writes, as it would reach a log file.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

impl Captured {
    /// The lines of target `trackable`, taken out of the buffer.
    fn take(&self) -> Vec<String> {
        let bytes = std::mem::take(&mut *self.0.lock().unwrap());
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .filter(|line| line.contains(" trackable: "))
            .map(str::to_owned)
            .collect()
    }
}

/// The value of `name="..."` in a formatted event.
fn field(line: &str, name: &str) -> Option<String> {
    let start = line.find(&format!(" {name}="))? + name.len() + 2;
    let rest = &line[start..];
    match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next().map(str::to_owned),
        None => rest.split(' ').next().map(str::to_owned),
    }
}

const RAW_IP: &str = "203.0.113.77";

#[tokio::test]
async fn every_event_is_logged_with_the_ip_after_the_policy() {
    let key = b"an events test key, 32 bytes....";
    let policies = [
        (IpPolicy::Full, RAW_IP.to_owned()),
        (IpPolicy::truncate(), "203.0.113.0".to_owned()),
        (
            IpPolicy::keyed_hash(key).unwrap(),
            IpPolicy::keyed_hash(key)
                .unwrap()
                .apply(RAW_IP.parse().unwrap())
                .unwrap(),
        ),
        (IpPolicy::None, String::new()),
    ];
    let captured = Captured::default();
    tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .without_time()
        .finish()
        .try_init()
        .unwrap();

    for db in all_backends(2).await.unwrap() {
        let (member, user) = member_and_user(&db.db).await.unwrap();
        let from = client(RAW_IP);
        for (policy, logged_ip) in &policies {
            let tracker = Tracker::new()
                .with_ip_policy(policy.clone())
                .with_identifier_key(HashKey::new(key).unwrap());
            captured.take();

            tracker.login(&db.db, &member, &from).await.unwrap();
            tracker.failed_login(&db.db, &member, &from).await.unwrap();
            tracker.lock(&db.db, &member, &from).await.unwrap();
            tracker.logout(&db.db, &member, &from).await.unwrap();
            tracker
                .failed_login_unknown::<member::Model>(&db.db, "guessed.name@example.com", &from)
                .await
                .unwrap();
            tracker.login(&db.db, &user, &from).await.unwrap();
            tracker.failed_login(&db.db, &user, &from).await.unwrap();
            let mut ghost = member.clone();
            ghost.id += 1000;
            tracker.login(&db.db, &ghost, &from).await.unwrap_err();

            let lines = captured.take();
            let expected = [
                ("login", member.id.to_string(), "recorded"),
                ("failed_login", member.id.to_string(), "recorded"),
                ("lock", member.id.to_string(), "recorded"),
                ("logout", member.id.to_string(), "recorded"),
                ("failed_login", String::new(), "recorded"),
                ("login", user.id.to_string(), "recorded"),
                // fields mode keeps no failed logins, but the event is still reported
                ("failed_login", user.id.to_string(), "skipped"),
                ("login", ghost.id.to_string(), "failed"),
            ];
            assert_eq!(lines.len(), expected.len(), "{policy:?}: {lines:#?}");
            for (line, (action, user_id, outcome)) in lines.iter().zip(expected) {
                assert_eq!(field(line, "action").as_deref(), Some(action), "{line}");
                let owasp = action
                    .parse::<trackable_core::Action>()
                    .unwrap()
                    .owasp_name();
                assert_eq!(field(line, "owasp").as_deref(), owasp, "{line}");
                assert_eq!(field(line, "user_id"), Some(user_id), "{line}");
                assert_eq!(field(line, "outcome").as_deref(), Some(outcome), "{line}");
                assert_eq!(
                    field(line, "ip").as_ref(),
                    Some(logged_ip),
                    "{policy:?}: {line}"
                );
                if !matches!(policy, IpPolicy::Full) {
                    assert!(!line.contains(RAW_IP), "{policy:?} leaks the IP: {line}");
                }
                // nothing else from the request is logged
                assert!(!line.contains("guessed.name"), "{line}");
                assert!(!line.contains(USER_AGENT), "{line}");
            }
            assert_eq!(
                field(&lines[4], "unknown_identifier").as_deref(),
                Some("true")
            );
            assert!(lines[7].contains("WARN"), "a failure is a warning");
        }
    }
}
