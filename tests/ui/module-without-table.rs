#[derive(trackable_core::Trackable)]
#[trackable(module = "audit")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
}

fn main() {}
