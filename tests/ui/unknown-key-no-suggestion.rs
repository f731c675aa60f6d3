#[derive(trackable_core::Trackable)]
#[trackable(colour = "blue")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
}

fn main() {}
