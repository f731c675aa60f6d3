use chrono::{DateTime, Utc};

#[derive(trackable_core::Trackable)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    pub sign_in_count: i32,
    pub current_sign_in_at: Option<DateTime<Utc>>,
    pub current_sign_in_ip: Option<String>,
    pub last_sign_in_at: Option<DateTime<Utc>>,
    pub last_sing_in_ip: Option<String>,
}

fn main() {}
