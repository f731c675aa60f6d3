#[derive(trackable_core::Trackable)]
#[sea_orm(table_name = "users")]
#[trackable(table = "a_very_long_audit_table_name_for_users")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
}

fn main() {}
