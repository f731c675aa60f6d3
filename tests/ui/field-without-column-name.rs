#[derive(trackable_core::Trackable)]
#[trackable(table = "trackables")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub __: i32,
}

fn main() {}
