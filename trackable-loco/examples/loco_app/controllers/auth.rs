//! `/api/auth`: register, login, logout and the signed-in user's history.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, debug_handler};
use loco_rs::app::AppContext;
use loco_rs::auth::jwt;
use loco_rs::controller::Routes;
use loco_rs::controller::extractor::auth::JWT;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use trackable_core::SessionId;
use trackable_loco::{SignIn, Tracking};

use crate::models::users;

#[derive(Deserialize)]
pub struct Register {
    pub email: String,
    pub password: String,
    pub name: String,
}

#[derive(Deserialize)]
pub struct Login {
    pub email: String,
    pub password: String,
}

#[derive(Serialize, Deserialize)]
pub struct Session {
    pub token: String,
    pub pid: String,
    pub session: i64,
    pub sign_in_count: i64,
}

#[derive(Serialize, Deserialize)]
pub struct Event {
    pub seq: i64,
    pub action: String,
    pub remote_ip: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Deserialize)]
pub struct Page {
    pub before: Option<i64>,
}

#[derive(Serialize, Deserialize)]
pub struct History {
    pub events: Vec<Event>,
    pub next: Option<i64>,
}

#[debug_handler]
async fn register(
    State(ctx): State<AppContext>,
    Json(form): Json<Register>,
) -> loco_rs::Result<Response> {
    let user = users::Model::create(&ctx.db, &form.email, &form.password, &form.name).await?;
    Ok((StatusCode::CREATED, Json(user.pid.to_string())).into_response())
}

/// The session id goes into the token's claims, so that the logout ends that session.
#[debug_handler]
async fn login(
    State(ctx): State<AppContext>,
    tracking: Tracking,
    Json(form): Json<Login>,
) -> loco_rs::Result<Response> {
    let user = users::Model::find_by_email(&ctx.db, &form.email).await?;
    let outcome = tracking
        .sign_in(user, &form.email, |user| {
            users::Model::verify_password(user, &form.password)
        })
        .await?;
    let (user, session, record) = match outcome {
        SignIn::SignedIn {
            user,
            session,
            record,
        } => (user, session, record),
        SignIn::Failed => return Ok(StatusCode::UNAUTHORIZED.into_response()),
        SignIn::Refused(refusal) => return Ok(tracking.refused(&refusal)),
    };
    let jwt_config = ctx.config.get_jwt_config()?;
    let mut claims = Map::new();
    claims.insert("session".to_owned(), Value::from(session.0));
    let token = jwt::JWT::new(&jwt_config.secret)
        .generate_token(jwt_config.expiration, user.pid.to_string(), claims)
        .map_err(|error| loco_rs::Error::Unauthorized(error.to_string()))?;
    Ok(Json(Session {
        token,
        pid: user.pid.to_string(),
        session: session.0,
        sign_in_count: record.sign_in_count,
    })
    .into_response())
}

#[debug_handler]
async fn logout(
    State(ctx): State<AppContext>,
    auth: JWT,
    tracking: Tracking,
) -> loco_rs::Result<Response> {
    let Some(user) = users::Model::find_by_pid(&ctx.db, &auth.claims.pid).await? else {
        return Ok(StatusCode::UNAUTHORIZED.into_response());
    };
    let session = auth.claims.claims.get("session").and_then(Value::as_i64);
    match session {
        Some(session) => {
            tracking
                .tracker()
                .end_session(&ctx.db, &user, tracking.client(), SessionId(session))
                .await
                .map_err(loco_rs::Error::wrap)?;
        }
        None => {
            tracking.logout(&user).await?;
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[debug_handler]
async fn history(
    State(ctx): State<AppContext>,
    auth: JWT,
    tracking: Tracking,
    Query(page): Query<Page>,
) -> loco_rs::Result<Response> {
    let Some(user) = users::Model::find_by_pid(&ctx.db, &auth.claims.pid).await? else {
        return Ok(StatusCode::UNAUTHORIZED.into_response());
    };
    let page = tracking
        .tracker()
        .history(&ctx.db, &user, page.before, 20)
        .await
        .map_err(loco_rs::Error::wrap)?;
    let events = page
        .events
        .into_iter()
        .map(|row| Event {
            seq: row.seq,
            action: row.action.to_string(),
            remote_ip: row.remote_ip,
            user_agent: row.user_agent,
        })
        .collect();
    Ok(Json(History {
        events,
        next: page.next,
    })
    .into_response())
}

pub fn routes() -> Routes {
    Routes::new()
        .prefix("/api/auth")
        .add("/register", axum::routing::post(register))
        .add("/login", axum::routing::post(login))
        .add("/logout", axum::routing::post(logout))
        .add("/history", axum::routing::get(history))
}
