#[trackable_core::sign_in_fields]
pub enum Model {
    Admin,
    Member,
}

fn main() {}
