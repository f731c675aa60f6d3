#[derive(trackable_core::Trackable)]
pub enum Model {
    Admin,
    Member,
}

fn main() {}
