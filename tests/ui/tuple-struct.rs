#[derive(trackable_core::Trackable)]
pub struct Model(i32, String);

fn main() {}
