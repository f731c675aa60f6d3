//! The app's migrations: Loco's users table, then the audit trail of trackable.

use sea_orm_migration::prelude::*;
use trackable_core::Trackable;

use crate::models::users;
use crate::schema::{Users, users_table};

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(CreateUsers), Box::new(CreateUserEvents)]
    }
}

struct CreateUsers;

impl MigrationName for CreateUsers {
    fn name(&self) -> &str {
        "m20250101_000001_users"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateUsers {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.create_table(users_table()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Users::Table).to_owned())
            .await
    }
}

struct CreateUserEvents;

impl MigrationName for CreateUserEvents {
    fn name(&self) -> &str {
        "m20250101_000002_user_events"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateUserEvents {
    /// `user_events` and its companions (see `#[trackable(table = "user_events")]`).
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        users::Model::migration().up(manager.get_connection()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        users::Model::migration()
            .down(manager.get_connection())
            .await
    }
}
