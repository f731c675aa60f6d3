//! Fields mode against real databases: SQLite always, PostgreSQL and MySQL when configured.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DbBackend, EntityTrait, PaginatorTrait, Set,
    TransactionTrait,
};
use trackable::models::{inserted, renamed, user};
use trackable::{
    TestDb, all_backends, client, create_table, create_tracked, new_user, stepping_clock, users,
};
use trackable_core::{Action, Error, HasSignInState, SignInState, Trackable, Tracker};

/// The first reading of the test clocks.
fn first_reading() -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000, 123_456_789).unwrap()
}

/// The user as stored now.
async fn reload(db: &TestDb, id: i32) -> user::Model {
    user::Entity::find_by_id(id)
        .one(&db.db)
        .await
        .unwrap()
        .unwrap()
}

/// Asserts the five tracked fields of `row`: the count, then the current and the last
/// sign-in as `(at, ip)`.
#[track_caller]
fn assert_fields(
    row: &user::Model,
    backend: DbBackend,
    count: i32,
    current: (Option<DateTime<Utc>>, Option<&str>),
    last: (Option<DateTime<Utc>>, Option<&str>),
) {
    assert_eq!(row.sign_in_count, count, "{backend:?}");
    let row_current = (row.current_sign_in_at, row.current_sign_in_ip.as_deref());
    assert_eq!(row_current, current, "{backend:?}: current sign-in");
    let row_last = (row.last_sign_in_at, row.last_sign_in_ip.as_deref());
    assert_eq!(row_last, last, "{backend:?}: last sign-in");
}

#[tokio::test]
async fn state_table_event_by_event() {
    for db in users(2).await.unwrap() {
        let tracker = Tracker::new().with_clock(stepping_clock(first_reading()));
        let u = new_user(&db.db, "ada@example.com").await.unwrap();

        // first login: last = (now, ip), current = (now, ip), count 1
        let a = tracker
            .login(&db.db, &u, &client("192.0.2.1"))
            .await
            .unwrap();
        let t1 = Utc.timestamp_opt(1_700_000_000, 123_456_000).unwrap();
        assert_fields(
            &a,
            db.backend,
            1,
            (Some(t1), Some("192.0.2.1")),
            (Some(t1), Some("192.0.2.1")),
        );

        // second login: last = previous current
        let b = tracker
            .login(&db.db, &u, &client("198.51.100.2"))
            .await
            .unwrap();
        let t2 = Utc.timestamp_opt(1_700_000_001, 123_456_000).unwrap();
        assert_fields(
            &b,
            db.backend,
            2,
            (Some(t2), Some("198.51.100.2")),
            (Some(t1), Some("192.0.2.1")),
        );

        // logout: last = current, current cleared, count kept
        let c = tracker
            .logout(&db.db, &u, &client("198.51.100.2"))
            .await
            .unwrap();
        assert_fields(
            &c,
            db.backend,
            2,
            (None, None),
            (Some(t2), Some("198.51.100.2")),
        );

        // logout twice: unchanged
        let d = tracker
            .logout(&db.db, &u, &client("203.0.113.9"))
            .await
            .unwrap();
        assert_eq!(d, c);

        // login after logout: last stays the logged-out session
        let e = tracker
            .login(&db.db, &u, &client("2001:db8:0:0:0:0:0:1"))
            .await
            .unwrap();
        let t5 = Utc.timestamp_opt(1_700_000_004, 123_456_000).unwrap();
        assert_fields(
            &e,
            db.backend,
            3,
            (Some(t5), Some("2001:db8::1")),
            (Some(t2), Some("198.51.100.2")),
        );

        // what is stored is what was returned
        let stored = reload(&db, u.id).await;
        assert_eq!(stored, e);
    }
}

#[tokio::test]
async fn other_events_write_nothing_in_fields_mode() {
    for db in users(2).await.unwrap() {
        let u = new_user(&db.db, "bob@example.com").await.unwrap();
        let after_login = trackable_core::track_login(&db.db, &u, &client("192.0.2.1"))
            .await
            .unwrap();
        for action in [
            Action::FailedLogin,
            Action::Lock,
            Action::Unlock,
            Action::UnlockToken,
            Action::PasswordReset,
        ] {
            let written = trackable_core::track(&db.db, &u, action, &client("192.0.2.7"))
                .await
                .unwrap();
            assert!(written.is_none(), "{action} wrote {written:?}");
        }
        let stored = reload(&db, u.id).await;
        assert_eq!(stored, after_login);
    }
}

#[tokio::test]
async fn the_state_matches_the_reference_rule() {
    for db in users(2).await.unwrap() {
        let tracker = Tracker::new().with_clock(stepping_clock(first_reading()));
        let reference_clock = stepping_clock(first_reading());
        let u = new_user(&db.db, "eve@example.com").await.unwrap();
        let mut expected = SignInState::default();
        let script = [
            Action::Logout,
            Action::Login,
            Action::Login,
            Action::Logout,
            Action::Logout,
            Action::Login,
            Action::Logout,
            Action::Login,
        ];
        for (i, action) in script.into_iter().enumerate() {
            let ip = format!("10.0.0.{i}");
            let now = chrono::SubsecRound::trunc_subsecs(reference_clock(), 6);
            expected = expected.apply(action, now, Some(&ip));
            let row = tracker
                .track(&db.db, &u, action, &client(&ip))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                row.sign_in_state(),
                expected,
                "after {action} #{i} on {:?}",
                db.backend
            );
        }
    }
}

#[tokio::test]
async fn renamed_fields_and_a_nullable_count() {
    for db in all_backends(2).await.unwrap() {
        create_table(&db.db, renamed::Entity).await.unwrap();
        let u = renamed::ActiveModel {
            logins: Set(None),
            ..Default::default()
        }
        .insert(&db.db)
        .await
        .unwrap();
        assert_eq!(u.logins, None);
        let a = trackable_core::track_login(&db.db, &u, &client("192.0.2.1"))
            .await
            .unwrap();
        assert_eq!(a.logins, Some(1), "NULL counts as 0");
        assert_eq!(a.current_ip.as_deref(), Some("192.0.2.1"));
        let b = trackable_core::track_logout(&db.db, &u, &client("192.0.2.1"))
            .await
            .unwrap();
        assert_eq!(b.current_at, None);
        assert_eq!(b.last_at, a.current_at);
        assert_eq!(b.last_ip.as_deref(), Some("192.0.2.1"));
    }
}

/// A user row as sea-orm-cli generates it for `timestamptz` columns (a Loco app's entity).
mod zoned {
    use sea_orm::entity::prelude::*;
    use trackable_core::Trackable;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Trackable)]
    #[sea_orm(table_name = "zoned_users")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub sign_in_count: i32,
        pub current_sign_in_at: Option<DateTimeWithTimeZone>,
        pub current_sign_in_ip: Option<String>,
        pub last_sign_in_at: Option<DateTimeWithTimeZone>,
        pub last_sign_in_ip: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

#[tokio::test]
async fn times_with_a_zone_are_read_and_anonymised_as_utc() {
    for db in all_backends(2).await.unwrap() {
        create_table(&db.db, zoned::Entity).await.unwrap();
        let u = zoned::ActiveModel {
            sign_in_count: Set(0),
            ..Default::default()
        }
        .insert(&db.db)
        .await
        .unwrap();
        let tracker = Tracker::new().with_clock(stepping_clock(first_reading()));
        let a = tracker
            .login(&db.db, &u, &client("192.0.2.1"))
            .await
            .unwrap();
        let b = tracker
            .login(&db.db, &a, &client("192.0.2.2"))
            .await
            .unwrap();
        assert_eq!(b.sign_in_count, 2, "{:?}", db.backend);
        let t1 = Utc.timestamp_opt(1_700_000_000, 123_456_000).unwrap();
        assert_eq!(
            b.last_sign_in_at.map(|at| at.to_utc()),
            Some(t1),
            "{:?}",
            db.backend
        );
        assert!(
            b.current_sign_in_at.unwrap().to_utc() > t1,
            "{:?}",
            db.backend
        );
        assert_eq!(b.sign_in_state().last_sign_in_at, Some(t1));

        // Both sign-ins are older than a cut-off after them: both IPs are anonymised.
        let cut_off = b.current_sign_in_at.unwrap().to_utc() + chrono::TimeDelta::seconds(1);
        let policy = trackable_core::IpPolicy::truncate();
        let changed = trackable_core::anonymize_sign_in_ips::<zoned::Model>(
            &db.db,
            cut_off,
            Some(&policy),
            100,
        )
        .await
        .unwrap();
        assert_eq!(changed, 1, "{:?}", db.backend);
        let stored = zoned::Entity::find_by_id(u.id)
            .one(&db.db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.current_sign_in_ip.as_deref(), Some("192.0.2.0"));
        assert_eq!(stored.last_sign_in_ip.as_deref(), Some("192.0.2.0"));
    }
}

#[tokio::test]
async fn fields_inserted_by_the_attribute_macro() {
    for db in all_backends(2).await.unwrap() {
        create_table(&db.db, inserted::Entity).await.unwrap();
        let u = inserted::ActiveModel {
            name: Set("Grace".to_owned()),
            sign_in_count: Set(0),
            ..Default::default()
        }
        .insert(&db.db)
        .await
        .unwrap();
        let a = trackable_core::track_login(&db.db, &u, &client("192.0.2.1"))
            .await
            .unwrap();
        assert_eq!(a.sign_in_count, 1);
        assert_eq!(a.name, "Grace");
    }
}

#[tokio::test]
async fn concurrent_logins_lose_no_increment() {
    const TASKS: usize = 64;
    const LOGINS: usize = 20;
    for db in users(8).await.unwrap() {
        let u = new_user(&db.db, "busy@example.com").await.unwrap();
        let db = Arc::new(db);
        let mut tasks = Vec::new();
        for t in 0..TASKS {
            let db = Arc::clone(&db);
            // Every task holds the same stale model: tracking must not trust it.
            let u = u.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..LOGINS {
                    let ip = format!("10.{}.{}.1", t, i);
                    trackable_core::track_login(&db.db, &u, &client(&ip)).await?;
                }
                Ok::<_, Error>(())
            }));
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let stored = reload(&db, u.id).await;
        assert_eq!(
            stored.sign_in_count as usize,
            TASKS * LOGINS,
            "{:?}",
            db.backend
        );
    }
}

#[tokio::test]
async fn an_unknown_user_is_an_error_and_nothing_is_written() {
    for db in users(2).await.unwrap() {
        let real = new_user(&db.db, "real@example.com").await.unwrap();
        let mut ghost = real.clone();
        ghost.id = real.id + 1000;
        for action in Action::ALL {
            let error = trackable_core::track(&db.db, &ghost, action, &client("192.0.2.1"))
                .await
                .unwrap_err();
            match error {
                Error::UserNotFound {
                    table,
                    user_id,
                    action: a,
                } => {
                    assert_eq!(table, "users");
                    assert_eq!(user_id, ghost.id.to_string());
                    assert_eq!(a, action);
                }
                other => panic!("expected UserNotFound, got {other:?}"),
            }
        }
        assert_eq!(user::Entity::find().count(&db.db).await.unwrap(), 1);
        let stored = reload(&db, real.id).await;
        assert_eq!(stored, real);
    }
}

#[tokio::test]
async fn a_rolled_back_transaction_leaves_nothing_behind() {
    for db in users(2).await.unwrap() {
        let u = new_user(&db.db, "txn@example.com").await.unwrap();
        let txn = db.db.begin().await.unwrap();
        let inside = trackable_core::track_login(&txn, &u, &client("192.0.2.1"))
            .await
            .unwrap();
        assert_eq!(inside.sign_in_count, 1);
        txn.rollback().await.unwrap();
        let stored = reload(&db, u.id).await;
        assert_eq!(stored, u);

        let txn = db.db.begin().await.unwrap();
        trackable_core::track_login(&txn, &u, &client("192.0.2.1"))
            .await
            .unwrap();
        txn.commit().await.unwrap();
        let stored = reload(&db, u.id).await;
        assert_eq!(stored.sign_in_count, 1);
    }
}

#[tokio::test]
async fn a_stale_model_does_not_overwrite_a_newer_login() {
    for db in users(2).await.unwrap() {
        let stale = new_user(&db.db, "stale@example.com").await.unwrap();
        let newer = trackable_core::track_login(&db.db, &stale, &client("192.0.2.1"))
            .await
            .unwrap();
        let latest = trackable_core::track_login(&db.db, &stale, &client("192.0.2.2"))
            .await
            .unwrap();
        assert_eq!(latest.sign_in_count, 2);
        assert_eq!(latest.last_sign_in_ip, newer.current_sign_in_ip);
    }
}

#[tokio::test]
async fn ip_privacy_policy_none_stores_no_ip() {
    for db in users(2).await.unwrap() {
        let u = new_user(&db.db, "private@example.com").await.unwrap();
        let tracker = Tracker::new().with_ip_policy(trackable_core::IpPolicy::None);
        let a = tracker
            .login(&db.db, &u, &client("192.0.2.1"))
            .await
            .unwrap();
        assert_eq!(a.sign_in_count, 1);
        assert_eq!(a.current_sign_in_ip, None);
        assert_eq!(a.last_sign_in_ip, None);
    }
}

#[tokio::test]
async fn the_migration_adds_the_columns_to_an_existing_table() {
    // One connection: SQLite prepares statements against a connection's cached schema, so
    // DDL on one pooled connection can leave another one briefly unaware of new columns.
    for db in all_backends(1).await.unwrap() {
        let id = match db.backend {
            DbBackend::Postgres => "id SERIAL PRIMARY KEY",
            DbBackend::MySql => "id INT AUTO_INCREMENT PRIMARY KEY",
            _ => "id INTEGER PRIMARY KEY AUTOINCREMENT",
        };
        db.db
            .execute_unprepared(&format!(
                "CREATE TABLE users ({id}, email VARCHAR(255) NOT NULL)"
            ))
            .await
            .unwrap();
        db.db
            .execute_unprepared("INSERT INTO users (email) VALUES ('old@example.com')")
            .await
            .unwrap();
        let migration = user::Model::migration();
        assert_eq!(migration.name(), "trackable_users_sign_in_fields");
        migration.up(&db.db).await.unwrap();
        // Again: the columns exist now, and are left as they are.
        migration.up(&db.db).await.unwrap();

        let old = user::Entity::find().one(&db.db).await.unwrap().unwrap();
        assert_eq!(old.sign_in_count, 0, "existing rows get the default");
        assert_eq!(old.current_sign_in_at, None);
        let a = trackable_core::track_login(&db.db, &old, &client("192.0.2.1"))
            .await
            .unwrap();
        assert_eq!(a.sign_in_count, 1);

        migration.down(&db.db).await.unwrap();
        let columns = db
            .db
            .query_one_raw(sea_orm::Statement::from_string(
                db.backend,
                "SELECT * FROM users".to_owned(),
            ))
            .await
            .unwrap()
            .unwrap()
            .column_names();
        assert_eq!(columns, vec!["id".to_owned(), "email".to_owned()]);
    }
}

#[tokio::test]
async fn tracking_bypasses_save_hooks_and_validation() {
    use trackable::models::strict_user;
    for db in all_backends(1).await.unwrap() {
        create_table(&db.db, strict_user::Entity).await.unwrap();
        // Rows written before the validation rule existed; `Entity::insert` runs no hooks.
        strict_user::Entity::insert(strict_user::ActiveModel {
            email: Set("old@elsewhere.example".into()),
            sign_in_count: Set(0),
            ..Default::default()
        })
        .exec(&db.db)
        .await
        .unwrap();
        let u = strict_user::Entity::find()
            .one(&db.db)
            .await
            .unwrap()
            .unwrap();
        let mut edit: strict_user::ActiveModel = u.clone().into();
        edit.email = Set("new@elsewhere.example".into());
        assert!(edit.update(&db.db).await.is_err(), "the hook rejects saves");

        let a = trackable_core::track_login(&db.db, &u, &client("192.0.2.1"))
            .await
            .unwrap();
        assert_eq!(a.sign_in_count, 1);
        let b = trackable_core::track_logout(&db.db, &u, &client("192.0.2.1"))
            .await
            .unwrap();
        assert_eq!(b.last_sign_in_at, a.current_sign_in_at);
    }
}

#[tokio::test]
async fn models_in_the_sea_orm_model_format() {
    use trackable::models::{dense_member, dense_user};
    for db in all_backends(1).await.unwrap() {
        create_table(&db.db, dense_user::Entity).await.unwrap();
        create_tracked(&db.db, dense_member::Entity).await.unwrap();
        let u = dense_user::ActiveModel {
            sign_in_count: Set(0),
            ..Default::default()
        }
        .insert(&db.db)
        .await
        .unwrap();
        let a = trackable_core::track_login(&db.db, &u, &client("192.0.2.1"))
            .await
            .unwrap();
        assert_eq!(a.sign_in_count, 1);

        let m = dense_member::ActiveModel {
            email: Set("m@example.com".into()),
            ..Default::default()
        }
        .insert(&db.db)
        .await
        .unwrap();
        let row = trackable_core::track_login(&db.db, &m, &client("192.0.2.1"))
            .await
            .unwrap();
        assert_eq!((row.user_id, row.sign_in_count), (m.id, 1));
    }
}

#[tokio::test]
async fn the_migration_leaves_a_table_created_from_the_entity_alone() {
    for db in all_backends(1).await.unwrap() {
        create_table(&db.db, user::Entity).await.unwrap();
        user::Model::migration().up(&db.db).await.unwrap();
        let u = new_user(&db.db, "entity@example.com").await.unwrap();
        let a = trackable_core::track_login(&db.db, &u, &client("192.0.2.1"))
            .await
            .unwrap();
        assert_eq!(a.sign_in_count, 1, "{:?}", db.backend);
    }
}
