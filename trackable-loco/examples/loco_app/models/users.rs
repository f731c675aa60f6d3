use sea_orm::entity::prelude::*;
use sea_orm::{ActiveValue::Set, QueryFilter};

pub use super::_entities::users::{ActiveModel, Column, Entity, Model};

/// The password hash checked when no user has the e-mail given, so that an unknown address
/// takes as long as a wrong password.
static DUMMY_HASH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    loco_rs::hash::hash_password("not the password of anyone").unwrap_or_default()
});

#[async_trait::async_trait]
impl ActiveModelBehavior for ActiveModel {}

impl Model {
    pub async fn find_by_email(
        db: &DatabaseConnection,
        email: &str,
    ) -> Result<Option<Self>, DbErr> {
        Entity::find().filter(Column::Email.eq(email)).one(db).await
    }

    pub async fn find_by_pid(db: &DatabaseConnection, pid: &str) -> Result<Option<Self>, DbErr> {
        let Ok(pid) = Uuid::parse_str(pid) else {
            return Ok(None);
        };
        Entity::find().filter(Column::Pid.eq(pid)).one(db).await
    }

    /// Whether `password` is `user`'s; with no user, checks a dummy hash and answers false.
    pub fn verify_password(user: Option<&Self>, password: &str) -> bool {
        let hash = user.map_or(DUMMY_HASH.as_str(), |user| &user.password);
        loco_rs::hash::verify_password(password, hash) && user.is_some()
    }

    pub async fn create(
        db: &DatabaseConnection,
        email: &str,
        password: &str,
        name: &str,
    ) -> loco_rs::Result<Self> {
        let now = chrono::Utc::now().fixed_offset();
        let user = ActiveModel {
            pid: Set(Uuid::new_v4()),
            email: Set(email.to_owned()),
            password: Set(loco_rs::hash::hash_password(password)?),
            name: Set(name.to_owned()),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        };
        Ok(user.insert(db).await?)
    }
}
