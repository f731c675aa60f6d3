#[derive(trackable_core::Trackable)]
#[sea_orm(table_name = "users")]
#[trackable(table = "trackables")]
pub struct Model {
    pub id: i32,
    pub email: String,
}

fn main() {}
