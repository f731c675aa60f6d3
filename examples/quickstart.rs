use sea_orm::ConnectionTrait;
use trackable::models::user;
use trackable_core::Trackable;
#[tokio::main]
async fn main(){
  let db = trackable::sqlite_file(1).await.unwrap();
  db.db.execute_unprepared("CREATE TABLE users (id INTEGER PRIMARY KEY AUTOINCREMENT, email VARCHAR(255) NOT NULL)").await.unwrap();
  user::Model::migration().up(&db.db).await.unwrap();
  for s in user::Model::migration().down_statements(sea_orm::DbBackend::Sqlite) { let r = db.db.execute_raw(s.clone()).await; println!("{:?} {:?}", s.sql, r.map(|r| r.rows_affected())); }
  let r = db.db.query_one_raw(sea_orm::Statement::from_string(sea_orm::DbBackend::Sqlite, "SELECT sql FROM sqlite_master WHERE name='users'".to_owned())).await.unwrap().unwrap();
  println!("{:?}", r.try_get::<String>("", "sql"));
}
