#[trackable_core::sign_in_fields]
pub struct Model {
    pub id: i32,
    pub sign_in_count: i64,
}

fn main() {}
