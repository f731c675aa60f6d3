use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, trackable_core::Trackable)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    #[trackable(sign_in_count)]
    pub logins: Option<u32>,
    pub current_sign_in_at: Option<DateTimeUtc>,
    pub current_sign_in_ip: Option<String>,
    pub last_sign_in_at: Option<DateTimeUtc>,
    #[trackable(last_sign_in_ip)]
    pub last_ip: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

fn main() {}
