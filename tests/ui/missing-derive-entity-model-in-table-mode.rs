use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, trackable_core::Trackable)]
#[sea_orm(table_name = "users")]
#[trackable(table = "trackables")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub email: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

fn main() {}
