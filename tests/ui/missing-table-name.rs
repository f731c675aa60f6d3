use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, trackable_core::Trackable)]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub sign_in_count: i32,
    pub current_sign_in_at: Option<DateTimeUtc>,
    pub current_sign_in_ip: Option<String>,
    pub last_sign_in_at: Option<DateTimeUtc>,
    pub last_sign_in_ip: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

fn main() {}
