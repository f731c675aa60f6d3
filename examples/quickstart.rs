//! Sign-in tracking in both modes, on an embedded SQLite database.
//!
//! ```text
//! cargo run --example quickstart
//! ```

use std::net::IpAddr;

use chrono::TimeDelta;
use sea_orm::{ActiveModelTrait, ConnectionTrait, Database, DbErr, Set};
use trackable_core::{ClientInfo, Details, SignInMethod, Trackable, Tracker};

/// Fields mode: five tracking columns on the user row.
mod user {
    use sea_orm::entity::prelude::*;
    use trackable_core::Trackable;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Trackable)]
    #[sea_orm(table_name = "users")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub email: String,
        pub sign_in_count: i32,
        pub current_sign_in_at: Option<DateTimeUtc>,
        pub current_sign_in_ip: Option<String>,
        pub last_sign_in_at: Option<DateTimeUtc>,
        pub last_sign_in_ip: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Table mode: an append-only audit table, generated as module `member::trackables`.
mod member {
    use sea_orm::entity::prelude::*;
    use trackable_core::Trackable;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Trackable)]
    #[sea_orm(table_name = "members")]
    #[trackable(table = "trackables")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub email: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::temp_dir().join("trackable-quickstart.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let db = Database::connect(format!("sqlite://{}?mode=rwc", path.display())).await?;
    println!("SQLite database: {}\n", path.display());

    // An existing users table, then the migration the derive generated for it.
    db.execute_unprepared(
        "CREATE TABLE users (id INTEGER PRIMARY KEY AUTOINCREMENT, email TEXT NOT NULL)",
    )
    .await?;
    user::Model::migration().up(&db).await?;
    db.execute_unprepared(
        "CREATE TABLE members (id INTEGER PRIMARY KEY AUTOINCREMENT, email TEXT NOT NULL)",
    )
    .await?;
    member::Model::migration().up(&db).await?;

    let tracker = Tracker::new();
    let laptop = client(
        "203.0.113.7",
        "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0",
    );
    let phone = client(
        "2001:db8::42",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    );

    println!("Fields mode: the user row after each step\n");
    let ada = user::ActiveModel {
        email: Set("ada@example.com".into()),
        sign_in_count: Set(0),
        ..Default::default()
    }
    .insert(&db)
    .await?;
    let mut rows = vec![fields_row("signed up", &ada)];
    let ada = tracker.login(&db, &ada, &laptop).await?;
    rows.push(fields_row("login (laptop)", &ada));
    let ada = tracker.logout(&db, &ada, &laptop).await?;
    rows.push(fields_row("logout", &ada));
    let ada = tracker.login(&db, &ada, &phone).await?;
    rows.push(fields_row("login (phone)", &ada));
    tracker.failed_login(&db, &ada, &laptop).await?; // fields mode stores nothing for it
    rows.push(fields_row("failed login", &ada));
    let ada = tracker.login(&db, &ada, &laptop).await?;
    rows.push(fields_row("login (laptop)", &ada));
    print_table(
        &[
            "step",
            "sign_in_count",
            "current_sign_in_at",
            "current_sign_in_ip",
            "last_sign_in_at",
            "last_sign_in_ip",
        ],
        &rows,
    );

    println!("\nTable mode: the audit trail of one member\n");
    let grace = member::ActiveModel {
        email: Set("grace@example.com".into()),
        ..Default::default()
    }
    .insert(&db)
    .await?;
    let mut trail = Vec::new();
    trail.push(tracker.login(&db, &grace, &laptop).await?);
    trail.push(tracker.failed_login(&db, &grace, &phone).await?);
    trail.push(tracker.lock(&db, &grace, &phone).await?);
    trail.push(tracker.unlock(&db, &grace, &laptop).await?);
    trail.push(tracker.logout(&db, &grace, &laptop).await?);
    trail.push(tracker.password_reset(&db, &grace, &phone).await?);
    let rows: Vec<Vec<String>> = trail
        .iter()
        .map(|row| {
            vec![
                row.seq.to_string(),
                row.action.to_string(),
                row.sign_in_count.to_string(),
                time(row.current_sign_in_at),
                text(&row.current_sign_in_ip),
                time(row.last_sign_in_at),
                text(&row.last_sign_in_ip),
                text(&row.remote_ip),
                row.inserted_at.format("%H:%M:%S%.6f").to_string(),
            ]
        })
        .collect();
    print_table(
        &[
            "seq",
            "action",
            "count",
            "current_at",
            "current_ip",
            "last_at",
            "last_ip",
            "remote_ip",
            "inserted_at",
        ],
        &rows,
    );
    println!(
        "\nUser agents are stored too, e.g.: {}",
        text(&trail[0].user_agent)
    );

    println!("\nSessions: Grace signs in on her laptop and her phone, then signs the laptop out\n");
    let password = Details::new().method(SignInMethod::Password);
    let (on_laptop, _) = tracker
        .start_session(&db, &grace, &laptop, &password)
        .await?;
    let (on_phone, _) = tracker
        .start_session(&db, &grace, &phone, &password)
        .await?;
    let sessions = tracker
        .open_sessions(&db, &grace, TimeDelta::days(30))
        .await?;
    let rows: Vec<Vec<String>> = sessions
        .iter()
        .map(|session| {
            vec![
                session.id.to_string(),
                text(&session.device),
                text(&session.ip),
                text(&session.method),
                session.signed_in_at.format("%H:%M:%S%.6f").to_string(),
            ]
        })
        .collect();
    print_table(&["session", "device", "ip", "method", "signed in"], &rows);
    tracker.end_session(&db, &grace, &laptop, on_laptop).await?;
    let open = tracker
        .open_sessions(&db, &grace, TimeDelta::days(30))
        .await?;
    println!(
        "\nAfter the laptop's sign-out, open: {:?} (the phone's session is {on_phone})",
        open.iter().map(|s| s.id.seq()).collect::<Vec<_>>()
    );
    db.close().await.map_err(|e: DbErr| e)?;
    Ok(())
}

fn client(ip: &str, user_agent: &str) -> ClientInfo {
    let ip: IpAddr = ip.parse().expect("a literal IP");
    ClientInfo::from_ip(ip).with_user_agent(user_agent)
}

fn fields_row(step: &str, user: &user::Model) -> Vec<String> {
    vec![
        step.to_owned(),
        user.sign_in_count.to_string(),
        time(user.current_sign_in_at),
        text(&user.current_sign_in_ip),
        time(user.last_sign_in_at),
        text(&user.last_sign_in_ip),
    ]
}

fn time(at: Option<chrono::DateTime<chrono::Utc>>) -> String {
    at.map_or_else(
        || "-".to_owned(),
        |at| at.format("%H:%M:%S%.6f").to_string(),
    )
}

fn text(value: &Option<String>) -> String {
    value.clone().unwrap_or_else(|| "-".to_owned())
}

fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|row| row[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let cells: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("| {} |", cells.join(" | "));
    };
    line(header.to_vec());
    println!(
        "|{}|",
        widths
            .iter()
            .map(|w| "-".repeat(w + 2))
            .collect::<Vec<_>>()
            .join("|")
    );
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}
