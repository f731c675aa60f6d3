#[derive(trackable_core::Trackable)]
#[trackable(table = "trackables")]
pub struct Model {
    pub id: i32,
    pub email: String,
}

fn main() {}
