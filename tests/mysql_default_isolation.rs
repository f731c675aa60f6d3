//! The crate's own transactions on MySQL / MariaDB under each default isolation of the
//! server. `SET GLOBAL` changes the default for every new connection, so this test has a
//! binary of its own (cargo runs test binaries one after another) and restores the default.

use sea_orm::{ConnectionTrait, IsolationLevel};
use trackable::{create_members, create_users};

#[path = "support/logins.rs"]
mod logins;

#[tokio::test]
async fn mysql_pool_at_every_default_isolation() {
    let Some(admin) = trackable::mysql(1).await.unwrap() else {
        return;
    };
    for level in [
        IsolationLevel::ReadCommitted,
        IsolationLevel::RepeatableRead,
        IsolationLevel::Serializable,
    ] {
        admin
            .execute_unprepared(&format!("SET GLOBAL TRANSACTION ISOLATION LEVEL {level}"))
            .await
            .unwrap();
        let db = trackable::mysql(8).await.unwrap().unwrap();
        let default: String = db
            .query_one_raw(sea_orm::Statement::from_string(
                db.backend,
                "SELECT @@SESSION.tx_isolation AS level",
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get("", "level")
            .unwrap();
        assert_eq!(default.replace('-', " "), level.to_string());
        create_members(&db.db).await.unwrap();
        create_users(&db.db).await.unwrap();
        logins::concurrent_logins_on_the_pool(&db, &format!("MariaDB pool, default {level}")).await;
    }
    admin
        .execute_unprepared("SET GLOBAL TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .await
        .unwrap();
}
