//! Helpers the integration tests share: clients, clocks, and the tables and rows of the test
//! models.

#![deny(missing_docs)]

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    Set,
};
use trackable_core::{ClientInfo, Trackable, Tracker};

use crate::models::member::{self, member_events};
use crate::models::user;
use crate::{TestDb, all_backends, create_table};

/// The user agent that [`client`] sends.
pub const USER_AGENT: &str = "tests/1.0";

/// The address written as `text`.
///
/// # Panics
///
/// When `text` is not an IPv4 or IPv6 address.
#[track_caller]
pub fn ip(text: &str) -> IpAddr {
    match text.parse() {
        Ok(ip) => ip,
        Err(e) => panic!("{text:?} is not an IP address: {e}"),
    }
}

/// A client at `ip` that sends [`USER_AGENT`].
///
/// # Panics
///
/// When `ip` is not an IPv4 or IPv6 address.
#[track_caller]
pub fn client(ip: &str) -> ClientInfo {
    bare_client(ip).with_user_agent(USER_AGENT)
}

/// A client at `ip` that sends no user agent.
///
/// # Panics
///
/// When `ip` is not an IPv4 or IPv6 address.
#[track_caller]
pub fn bare_client(ip: &str) -> ClientInfo {
    ClientInfo::from_ip(self::ip(ip))
}

/// A clock that reads `first`, then one second later at each reading.
pub fn stepping_clock(first: DateTime<Utc>) -> impl Fn() -> DateTime<Utc> + Send + Sync + 'static {
    let tick = Arc::new(AtomicI64::new(0));
    move || first + TimeDelta::seconds(tick.fetch_add(1, Ordering::SeqCst))
}

/// A clock that stays where it is put, starting at 2024-01-01 00:00 UTC. Clones share the time.
#[derive(Clone, Debug, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// 2024-01-01 00:00 UTC, where every clock starts.
    const START: DateTime<Utc> = DateTime::from_timestamp_nanos(1_704_067_200_000_000_000);

    /// Moves the clock by `by` (back when negative).
    ///
    /// # Panics
    ///
    /// When `by` does not fit in 64 bits of microseconds.
    pub fn advance(&self, by: TimeDelta) {
        let micros = by
            .num_microseconds()
            .expect("a clock moves by less than 292,000 years");
        self.0.fetch_add(micros, Ordering::SeqCst);
    }

    /// The time the clock shows.
    pub fn now(&self) -> DateTime<Utc> {
        Self::START + TimeDelta::microseconds(self.0.load(Ordering::SeqCst))
    }

    /// A tracker that reads this clock.
    pub fn tracker(&self) -> Tracker {
        let clock = self.clone();
        Tracker::new().with_clock(move || clock.now())
    }
}

/// Creates the `users` table of [`user`] (fields mode) on `db`.
pub async fn create_users<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    create_table(db, user::Entity).await
}

/// Creates the user table of `entity`, a table-mode model, and, through the model's
/// migration, its audit tables.
pub async fn create_tracked<C, E>(db: &C, entity: E) -> Result<(), DbErr>
where
    C: ConnectionTrait,
    E: EntityTrait,
    E::Model: Trackable,
{
    create_table(db, entity).await?;
    E::Model::migration().up(db).await
}

/// Creates the `members` table of [`member`] and its audit tables.
pub async fn create_members<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    create_tracked(db, member::Entity).await
}

/// One fresh database per available backend (see [`all_backends`]) with the `users` table.
pub async fn users(connections: u32) -> Result<Vec<TestDb>, DbErr> {
    let dbs = all_backends(connections).await?;
    for db in &dbs {
        create_users(&db.db).await?;
    }
    Ok(dbs)
}

/// One fresh database per available backend (see [`all_backends`]) with the `members` table
/// and its audit tables.
pub async fn members(connections: u32) -> Result<Vec<TestDb>, DbErr> {
    let dbs = all_backends(connections).await?;
    for db in &dbs {
        create_members(&db.db).await?;
    }
    Ok(dbs)
}

/// Inserts a [`user`] who has never signed in.
pub async fn new_user<C: ConnectionTrait>(db: &C, email: &str) -> Result<user::Model, DbErr> {
    user::ActiveModel {
        email: Set(email.to_owned()),
        sign_in_count: Set(0),
        ..Default::default()
    }
    .insert(db)
    .await
}

/// Inserts a [`member`].
pub async fn new_member<C: ConnectionTrait>(db: &C, email: &str) -> Result<member::Model, DbErr> {
    member::ActiveModel {
        email: Set(email.to_owned()),
        ..Default::default()
    }
    .insert(db)
    .await
}

/// Creates the tables of both modes on `db` and inserts a member (table mode,
/// `ada@example.com`) and a user (fields mode, `bob@example.com`).
pub async fn member_and_user<C: ConnectionTrait>(
    db: &C,
) -> Result<(member::Model, user::Model), DbErr> {
    create_members(db).await?;
    create_users(db).await?;
    let member = new_member(db, "ada@example.com").await?;
    let user = new_user(db, "bob@example.com").await?;
    Ok((member, user))
}

/// The audit rows of `member`, oldest first.
pub async fn events_of<C: ConnectionTrait>(
    db: &C,
    member: &member::Model,
) -> Result<Vec<member_events::Model>, DbErr> {
    member_events::Entity::find()
        .filter(member_events::Column::UserId.eq(member.id))
        .order_by_asc(member_events::Column::Id)
        .all(db)
        .await
}

/// Inserts `count` members, `u0@example.com`, `u1@example.com` and on, in bulk, and returns
/// every member of the table in id order.
pub async fn insert_members<C: ConnectionTrait>(
    db: &C,
    count: usize,
) -> Result<Vec<member::Model>, DbErr> {
    for chunk in (0..count).collect::<Vec<_>>().chunks(500) {
        member::Entity::insert_many(chunk.iter().map(|i| member::ActiveModel {
            email: Set(format!("u{i}@example.com")),
            ..Default::default()
        }))
        .exec(db)
        .await?;
    }
    member::Entity::find()
        .order_by_asc(member::Column::Id)
        .all(db)
        .await
}
