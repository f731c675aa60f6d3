//! The generated migrations run from sea-orm-migration's `MigratorTrait`, up and down.

use sea_orm::EntityTrait;
use sea_orm_migration::prelude::*;
use trackable::models::{member, user};
use trackable::{all_backends, bare_client, create_table, new_member};
use trackable_core::Trackable;

struct AddSignInFields;

impl MigrationName for AddSignInFields {
    fn name(&self) -> &str {
        "m20261128_000001_add_sign_in_fields"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AddSignInFields {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        user::Model::migration().up(manager.get_connection()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        user::Model::migration()
            .down(manager.get_connection())
            .await
    }
}

struct CreateMemberEvents;

impl MigrationName for CreateMemberEvents {
    fn name(&self) -> &str {
        "m20261128_000002_create_member_events"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateMemberEvents {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        member::Model::migration()
            .up(manager.get_connection())
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        member::Model::migration()
            .down(manager.get_connection())
            .await
    }
}

struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(AddSignInFields), Box::new(CreateMemberEvents)]
    }
}

#[tokio::test]
async fn generated_migrations_run_under_the_migrator() {
    for db in all_backends(1).await.unwrap() {
        let users = match db.backend {
            sea_orm::DbBackend::Postgres => {
                "CREATE TABLE users (id SERIAL PRIMARY KEY, email VARCHAR(255) NOT NULL)"
            }
            sea_orm::DbBackend::MySql => {
                "CREATE TABLE users (id INT AUTO_INCREMENT PRIMARY KEY, email VARCHAR(255) NOT NULL)"
            }
            _ => {
                "CREATE TABLE users (id INTEGER PRIMARY KEY AUTOINCREMENT, email VARCHAR(255) NOT NULL)"
            }
        };
        sea_orm::ConnectionTrait::execute_unprepared(&db.db, users)
            .await
            .unwrap();
        create_table(&db.db, member::Entity).await.unwrap();

        Migrator::up(&db.db, None).await.unwrap();
        assert_eq!(
            Migrator::get_pending_migrations(&db.db)
                .await
                .unwrap()
                .len(),
            0
        );
        let manager = SchemaManager::new(&db.db);
        assert!(
            manager
                .has_column("users", "last_sign_in_ip")
                .await
                .unwrap()
        );
        assert!(manager.has_table("member_events").await.unwrap());
        assert!(
            manager
                .has_index("member_events", "idx_member_events_user_id_seq")
                .await
                .unwrap()
        );

        sea_orm::ConnectionTrait::execute_unprepared(
            &db.db,
            "INSERT INTO users (email) VALUES ('a@example.com')",
        )
        .await
        .unwrap();
        let u = user::Entity::find().one(&db.db).await.unwrap().unwrap();
        let client = bare_client("192.0.2.1");
        assert_eq!(
            trackable_core::track_login(&db.db, &u, &client)
                .await
                .unwrap()
                .sign_in_count,
            1
        );
        let m = new_member(&db.db, "m@example.com").await.unwrap();
        assert_eq!(
            trackable_core::track_login(&db.db, &m, &client)
                .await
                .unwrap()
                .sign_in_count,
            1
        );

        Migrator::down(&db.db, None).await.unwrap();
        assert!(
            !manager
                .has_column("users", "last_sign_in_ip")
                .await
                .unwrap()
        );
        assert!(!manager.has_table("member_events").await.unwrap());
    }
}
