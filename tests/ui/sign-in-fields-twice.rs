#[trackable_core::sign_in_fields]
#[trackable_core::sign_in_fields]
pub struct Model {
    pub id: i32,
}

fn main() {}
