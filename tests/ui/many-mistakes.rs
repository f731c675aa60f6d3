#[derive(trackable_core::Trackable)]
#[sea_orm(table_name = "users")]
#[trackable(feilds, crate = "not a path")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    #[trackable(sign_in_count = 1)]
    pub logins: i32,
}

fn main() {}
