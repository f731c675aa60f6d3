#[derive(trackable_core::Trackable)]
#[sea_orm(table_name = "users")]
#[trackable(table = "login-events", module = "login_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
}

fn main() {}
