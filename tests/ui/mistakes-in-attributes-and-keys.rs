#[derive(trackable_core::Trackable)]
#[sea_orm(table_name = "users")]
#[trackable(tabel = "trackables")]
#[trackable(table = "trackables")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub tenant: i32,
    #[sea_orm(primary_key)]
    pub id: i32,
}

fn main() {}
