//! Table mode against real databases: SQLite always, PostgreSQL and MySQL when configured.

use std::sync::Arc;

use chrono::{DateTime, SubsecRound, TimeZone, Utc};
use sea_orm::{
    ActiveModelTrait, EntityTrait, ModelTrait, PaginatorTrait, QueryOrder, Set, TransactionTrait,
};
use trackable::models::{account, handle_user, member, uuid_user};
use trackable::{
    TestDb, USER_AGENT, all_backends, client, create_members, create_table, create_tracked,
    events_of, members, new_member, stepping_clock,
};
use trackable_core::sea_orm::prelude::Uuid;
use trackable_core::{Action, Error, HasSignInState, SignInState, Trackable, Tracker};

/// The first reading of the clocks of `run_script`.
fn first_reading() -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000, 987_654_321).unwrap()
}

const SCRIPT: [Action; 8] = [
    Action::Login,
    Action::FailedLogin,
    Action::Lock,
    Action::Unlock,
    Action::Logout,
    Action::PasswordReset,
    Action::UnlockToken,
    Action::Login,
];

/// Runs `SCRIPT` for `user` and checks every returned row against the reference rule.
async fn run_script<M>(db: &TestDb, user: &M) -> Vec<M::Record>
where
    M: Trackable,
{
    let tracker = Tracker::new().with_clock(stepping_clock(first_reading()));
    let reference = stepping_clock(first_reading());
    let mut expected = SignInState::default();
    let mut rows = Vec::new();
    for (i, action) in SCRIPT.into_iter().enumerate() {
        let ip = format!("192.0.2.{i}");
        expected = expected.apply(action, reference().trunc_subsecs(6), Some(&ip));
        let row = tracker
            .track(&db.db, user, action, &client(&ip))
            .await
            .unwrap()
            .expect("table mode writes every event");
        assert_eq!(
            row.sign_in_state(),
            expected,
            "after {action} on {:?}",
            db.backend
        );
        rows.push(row);
    }
    rows
}

#[tokio::test]
async fn every_action_appends_one_row_i32_keys() {
    for db in all_backends(2).await.unwrap() {
        create_members(&db.db).await.unwrap();
        let user = new_member(&db.db, "ada@example.com").await.unwrap();
        let returned = run_script(&db, &user).await;

        let stored = events_of(&db.db, &user).await.unwrap();
        assert_eq!(stored, returned, "rows read back equal on {:?}", db.backend);
        let actions: Vec<Action> = stored.iter().map(|row| row.action).collect();
        assert_eq!(actions, SCRIPT);
        for (i, row) in stored.iter().enumerate() {
            assert_eq!(
                row.remote_ip.as_deref(),
                Some(format!("192.0.2.{i}").as_str())
            );
            assert_eq!(row.user_agent.as_deref(), Some(USER_AGENT));
            assert_eq!(row.inserted_at.timestamp(), 1_700_000_000 + i as i64);
            assert_eq!(row.inserted_at.timestamp_subsec_nanos(), 987_654_000);
        }
        // the stored action strings are the stable ones
        let raw: Vec<String> = member::member_events::Entity::find()
            .select_only()
            .column(member::member_events::Column::Action)
            .order_by_asc(member::member_events::Column::Id)
            .into_tuple()
            .all(&db.db)
            .await
            .unwrap();
        assert_eq!(
            raw,
            [
                "login",
                "failed_login",
                "lock",
                "unlock",
                "logout",
                "password_reset",
                "unlock_token",
                "login"
            ]
        );

        // relations both ways
        let with_events = member::Entity::find()
            .find_with_related(member::member_events::Entity)
            .all(&db.db)
            .await
            .unwrap();
        assert_eq!(with_events.len(), 1);
        assert_eq!(with_events[0].1.len(), SCRIPT.len());
        let owner = stored[0]
            .find_related(member::Entity)
            .one(&db.db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(owner, user);

        // ON DELETE CASCADE
        user.delete(&db.db).await.unwrap();
        assert_eq!(audit_rows(&db).await, 0);
    }
}

use sea_orm::QuerySelect;

#[tokio::test]
async fn i64_keys_and_a_named_module() {
    for db in all_backends(2).await.unwrap() {
        create_tracked(&db.db, account::Entity).await.unwrap();
        let user = account::ActiveModel {
            login: Set("root".into()),
            ..Default::default()
        }
        .insert(&db.db)
        .await
        .unwrap();
        let rows = run_script(&db, &user).await;
        assert!(
            rows.iter()
                .all(|row: &account::audit::Model| row.user_id == user.id)
        );
        assert_eq!(
            account::Model::MODE,
            trackable_core::Mode::Table {
                table: "account_log"
            }
        );
    }
}

#[tokio::test]
async fn uuid_keys() {
    for db in all_backends(2).await.unwrap() {
        create_tracked(&db.db, uuid_user::Entity).await.unwrap();
        let user = uuid_user::ActiveModel {
            id: Set(Uuid::new_v4()),
            email: Set("uuid@example.com".into()),
        }
        .insert(&db.db)
        .await
        .unwrap();
        let rows = run_script(&db, &user).await;
        assert!(rows.iter().all(|row| row.user_id == user.id));
        let related = user
            .find_related(uuid_user::events::Entity)
            .count(&db.db)
            .await
            .unwrap();
        assert_eq!(related, SCRIPT.len() as u64);
    }
}

#[tokio::test]
async fn string_keys() {
    for db in all_backends(2).await.unwrap() {
        create_tracked(&db.db, handle_user::Entity).await.unwrap();
        let user = handle_user::ActiveModel {
            handle: Set("o'brien".into()),
            name: Set("Flann".into()),
        }
        .insert(&db.db)
        .await
        .unwrap();
        let rows = run_script(&db, &user).await;
        assert!(rows.iter().all(|row| row.user_id == "o'brien"));
    }
}

/// How many audit rows the members have, all together.
async fn audit_rows(db: &TestDb) -> u64 {
    member::member_events::Entity::find()
        .count(&db.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn concurrent_logins_get_each_count_once_and_chain() {
    const LOGINS: usize = 64;
    for db in members(8).await.unwrap() {
        let user = new_member(&db.db, "busy@example.com").await.unwrap();
        let other = new_member(&db.db, "other@example.com").await.unwrap();
        let db = Arc::new(db);
        let mut tasks = Vec::new();
        for i in 0..LOGINS {
            let db = Arc::clone(&db);
            let (user, other) = (user.clone(), other.clone());
            tasks.push(tokio::spawn(async move {
                let ip = format!("10.0.{}.{}", i / 256, i % 256);
                trackable_core::track_login(&db.db, &user, &client(&ip)).await?;
                // Interleave another user's events and a non-login event of the same user.
                trackable_core::track_failed_login(&db.db, &other, &client(&ip)).await?;
                trackable_core::track_failed_login(&db.db, &user, &client(&ip)).await?;
                Ok::<_, Error>(())
            }));
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let rows = events_of(&db.db, &user).await.unwrap();
        assert_eq!(rows.len(), 2 * LOGINS);
        let logins: Vec<_> = rows.iter().filter(|r| r.action == Action::Login).collect();
        let mut counts: Vec<i64> = logins.iter().map(|r| r.sign_in_count).collect();
        assert_eq!(
            counts,
            (1..=LOGINS as i64).collect::<Vec<_>>(),
            "{:?}: in id order",
            db.backend
        );
        counts.dedup();
        assert_eq!(counts.len(), LOGINS);
        for pair in logins.windows(2) {
            assert_eq!(pair[1].last_sign_in_at, pair[0].current_sign_in_at);
            assert_eq!(pair[1].last_sign_in_ip, pair[0].current_sign_in_ip);
        }
        // every row carries the state of the row before it
        let mut state = SignInState::default();
        for row in &rows {
            state = state.apply(row.action, row.inserted_at, row.remote_ip.as_deref());
            assert_eq!(row.sign_in_state(), state);
        }
    }
}

#[tokio::test]
async fn an_unknown_user_is_an_error_and_nothing_is_written() {
    for db in members(2).await.unwrap() {
        let real = new_member(&db.db, "real@example.com").await.unwrap();
        let mut ghost = real.clone();
        ghost.id += 1000;
        for action in Action::ALL {
            let error = trackable_core::track(&db.db, &ghost, action, &client("192.0.2.1"))
                .await
                .unwrap_err();
            assert!(
                matches!(&error, Error::UserNotFound { user_id, .. } if *user_id == ghost.id.to_string()),
                "{error:?}"
            );
        }
        assert_eq!(audit_rows(&db).await, 0);
    }
}

#[tokio::test]
async fn a_rolled_back_transaction_leaves_nothing_behind() {
    for db in members(2).await.unwrap() {
        let user = new_member(&db.db, "txn@example.com").await.unwrap();
        let txn = db.db.begin().await.unwrap();
        let row = trackable_core::track_login(&txn, &user, &client("192.0.2.1"))
            .await
            .unwrap();
        assert_eq!(row.sign_in_count, 1);
        trackable_core::track_logout(&txn, &user, &client("192.0.2.1"))
            .await
            .unwrap();
        txn.rollback().await.unwrap();
        assert_eq!(audit_rows(&db).await, 0);

        let txn = db.db.begin().await.unwrap();
        trackable_core::track_login(&txn, &user, &client("192.0.2.1"))
            .await
            .unwrap();
        txn.commit().await.unwrap();
        let row = trackable_core::track_login(&db.db, &user, &client("192.0.2.1"))
            .await
            .unwrap();
        assert_eq!(row.sign_in_count, 2);
    }
}

#[tokio::test]
async fn a_renamed_crate_path_and_an_aliased_key_type() {
    use trackable::models::aliased;
    for db in all_backends(1).await.unwrap() {
        create_tracked(&db.db, aliased::Entity).await.unwrap();
        let user = aliased::ActiveModel {
            email: Set("alias@example.com".into()),
            ..Default::default()
        }
        .insert(&db.db)
        .await
        .unwrap();
        let row = trackable_core::track_login(&db.db, &user, &client("192.0.2.1"))
            .await
            .unwrap();
        assert_eq!((row.user_id, row.sign_in_count), (user.id, 1));
        let rows = user
            .find_related(aliased::aliased_events::Entity)
            .all(&db.db)
            .await
            .unwrap();
        assert_eq!(rows, vec![row]);
    }
}

#[tokio::test]
async fn many_users_signing_in_at_once() {
    const USERS: usize = 32;
    const LOGINS: usize = 8;
    for db in members(8).await.unwrap() {
        let mut users = Vec::new();
        for i in 0..USERS {
            users.push(
                new_member(&db.db, &format!("u{i}@example.com"))
                    .await
                    .unwrap(),
            );
        }
        let db = Arc::new(db);
        let mut tasks = Vec::new();
        for round in 0..LOGINS {
            for user in &users {
                let (db, user) = (Arc::clone(&db), user.clone());
                tasks.push(tokio::spawn(async move {
                    let ip = format!("10.1.{round}.{}", user.id % 250);
                    trackable_core::track_login(&db.db, &user, &client(&ip)).await
                }));
            }
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        for user in &users {
            let rows = events_of(&db.db, user).await.unwrap();
            let counts: Vec<i64> = rows.iter().map(|r| r.sign_in_count).collect();
            assert_eq!(
                counts,
                (1..=LOGINS as i64).collect::<Vec<_>>(),
                "{:?}",
                db.backend
            );
            for pair in rows.windows(2) {
                assert_eq!(pair[1].last_sign_in_at, pair[0].current_sign_in_at);
            }
        }
    }
}

#[tokio::test]
async fn an_audit_table_created_from_the_entity_works_too() {
    use trackable::models::plain_member;
    const LOGINS: usize = 24;
    for db in all_backends(8).await.unwrap() {
        create_table(&db.db, plain_member::Entity).await.unwrap();
        create_table(&db.db, plain_member::events::Entity)
            .await
            .unwrap();
        let user = plain_member::ActiveModel {
            email: Set("plain@example.com".into()),
            ..Default::default()
        }
        .insert(&db.db)
        .await
        .unwrap();
        let db = Arc::new(db);
        let tasks: Vec<_> = (0..LOGINS)
            .map(|i| {
                let (db, user) = (Arc::clone(&db), user.clone());
                tokio::spawn(async move {
                    trackable_core::track_login(&db.db, &user, &client(&format!("10.2.0.{i}")))
                        .await
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let counts: Vec<i64> = plain_member::events::Entity::find()
            .order_by_asc(plain_member::events::Column::Id)
            .all(&db.db)
            .await
            .unwrap()
            .iter()
            .map(|row| row.sign_in_count)
            .collect();
        assert_eq!(
            counts,
            (1..=LOGINS as i64).collect::<Vec<_>>(),
            "{:?}",
            db.backend
        );
    }
}

/// Schemas other than the default one are a PostgreSQL matter (MySQL calls databases schemas,
/// SQLite has none), so this runs where PostgreSQL is configured, which CI requires.
#[tokio::test]
async fn a_user_table_in_another_postgres_schema() {
    use sea_orm::ConnectionTrait;
    use trackable::models::schema_member;
    let Some(db) = trackable::postgres(4).await.unwrap() else {
        return;
    };
    db.db
        .execute_unprepared("CREATE SCHEMA auth")
        .await
        .unwrap();
    create_table(&db.db, schema_member::Entity).await.unwrap();
    schema_member::Model::migration().up(&db.db).await.unwrap();
    let user = schema_member::ActiveModel {
        email: Set("schema@example.com".into()),
        ..Default::default()
    }
    .insert(&db.db)
    .await
    .unwrap();
    let tracker = Tracker::new().on_new_ip(|_: &trackable_core::NewIp| {});
    for i in 0..3 {
        let row = tracker
            .login(&db.db, &user, &client(&format!("192.0.2.{i}")))
            .await
            .unwrap();
        assert_eq!(row.sign_in_count, i + 1);
    }
    let page = tracker.history(&db.db, &user, None, 10).await.unwrap();
    assert_eq!(page.events.len(), 3);
    let stored: i64 = db
        .db
        .query_one_raw(sea_orm::Statement::from_string(
            db.backend,
            "SELECT COUNT(*) AS n FROM auth.member_log".to_owned(),
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get("", "n")
        .unwrap();
    assert_eq!(stored, 3);
    schema_member::Model::migration()
        .down(&db.db)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_migration_can_run_twice_and_be_reverted() {
    for db in all_backends(1).await.unwrap() {
        create_table(&db.db, member::Entity).await.unwrap();
        let migration = member::Model::migration();
        migration.up(&db.db).await.unwrap();
        migration.up(&db.db).await.unwrap();
        let user = new_member(&db.db, "twice@example.com").await.unwrap();
        let row = trackable_core::track_login(&db.db, &user, &client("192.0.2.1"))
            .await
            .unwrap();
        assert_eq!(row.sign_in_count, 1, "{:?}", db.backend);
        migration.down(&db.db).await.unwrap();
        let manager = sea_orm_migration::SchemaManager::new(&db.db);
        assert!(!manager.has_table("member_events").await.unwrap());
        assert!(!manager.has_table("member_events_unknown").await.unwrap());
    }
}
