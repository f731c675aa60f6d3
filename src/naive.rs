//! The baselines of the benchmarks: what an application writes by hand with SeaORM, as
//! Devise and Coherence do. Neither locks anything, so both lose or repeat counts under
//! concurrency; the benchmarks count how many.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, Set,
};
use trackable_core::{Action, HasSignInState, SignInState};

use crate::models::member::member_events;
use crate::models::user;

/// Devise's `update_tracked_fields!` in SeaORM: read the row, compute in Rust, write back.
pub async fn fields_login(
    db: &DatabaseConnection,
    id: i32,
    ip: &str,
    now: DateTime<Utc>,
) -> Result<user::Model, DbErr> {
    let found = user::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("user {id}")))?;
    let ip = Some(ip.to_owned());
    let (last_at, last_ip) = if found.current_sign_in_at.is_some() {
        (found.current_sign_in_at, found.current_sign_in_ip.clone())
    } else if found.last_sign_in_at.is_some() {
        (found.last_sign_in_at, found.last_sign_in_ip.clone())
    } else {
        (Some(now), ip.clone())
    };
    let count = found.sign_in_count + 1;
    let mut model = found.into_active_model();
    model.last_sign_in_at = Set(last_at);
    model.last_sign_in_ip = Set(last_ip);
    model.current_sign_in_at = Set(Some(now));
    model.current_sign_in_ip = Set(ip);
    model.sign_in_count = Set(count);
    model.update(db).await
}

/// The user's latest audit row, then the next one computed in Rust and inserted.
pub async fn table_event(
    db: &DatabaseConnection,
    id: i32,
    action: Action,
    ip: &str,
    user_agent: &str,
    now: DateTime<Utc>,
) -> Result<member_events::Model, DbErr> {
    let latest = member_events::Entity::find()
        .filter(member_events::Column::UserId.eq(id))
        .order_by_desc(member_events::Column::Seq)
        .one(db)
        .await?;
    let seq = latest.as_ref().map_or(0, |row| row.seq) + 1;
    let state = latest
        .map(|row| row.sign_in_state())
        .unwrap_or_else(SignInState::default)
        .apply(action, now, Some(ip));
    member_events::ActiveModel {
        user_id: Set(id),
        seq: Set(seq),
        action: Set(action),
        sign_in_count: Set(state.sign_in_count),
        current_sign_in_at: Set(state.current_sign_in_at),
        current_sign_in_ip: Set(state.current_sign_in_ip),
        last_sign_in_at: Set(state.last_sign_in_at),
        last_sign_in_ip: Set(state.last_sign_in_ip),
        remote_ip: Set(Some(ip.to_owned())),
        user_agent: Set(Some(user_agent.to_owned())),
        inserted_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await
}
