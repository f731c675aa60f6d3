//! One tracked event, after the clock was read and the privacy policies applied, and the
//! `tracing` event that reports it. Every layer that records an event shares it.

use chrono::{DateTime, Utc};

use crate::action::Action;

/// One event, after the clock was read and the privacy policies applied.
#[derive(Debug)]
pub(crate) struct Event {
    pub(crate) action: Action,
    /// The time from the tracker's clock.
    pub(crate) now: DateTime<Utc>,
    /// Whether the statements take the time from the database's clock instead (PostgreSQL
    /// and MySQL; on SQLite `now` is the database's clock).
    pub(crate) database_clock: bool,
    pub(crate) ip: Option<String>,
    pub(crate) user_agent: Option<String>,
    /// The key of the audit trail's hash chain, if the tracker keeps one.
    pub(crate) chain: Option<crate::client::HashKey>,
    /// What the audit row records beside the action (table mode).
    pub(crate) details: Stored,
}

/// The detail columns of an audit row, as stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Stored {
    pub(crate) method: Option<String>,
    pub(crate) reason: Option<String>,
    pub(crate) session_seq: Option<i64>,
    pub(crate) session_digest: Option<String>,
    pub(crate) device: Option<String>,
}

/// The `tracing` event of one tracked event; `unknown_identifier` marks a failed login whose
/// identifier matched no user (its `user_id` is empty).
pub(crate) fn log_event(
    event: &Event,
    user_id: &str,
    outcome: &'static str,
    error: Option<&crate::error::Error>,
    unknown_identifier: bool,
) {
    let action = event.action.as_str();
    let ip = event.ip.as_deref().unwrap_or("");
    // The OWASP Application Logging Vocabulary's name, or the action's where it has none.
    let owasp = event.action.owasp_name().unwrap_or(action);
    let details = &event.details;
    let (method, reason) = (
        details.method.as_deref().unwrap_or(""),
        details.reason.as_deref().unwrap_or(""),
    );
    let device = details.device.as_deref().unwrap_or("");
    match (error, unknown_identifier) {
        (None, false) => tracing::info!(
            target: "trackable", action, owasp, user_id, ip, device, method, reason, outcome,
            "sign-in event"
        ),
        (None, true) => tracing::info!(
            target: "trackable", action, owasp, user_id, ip, device, outcome, unknown_identifier,
            "sign-in event"
        ),
        (Some(error), false) => tracing::warn!(
            target: "trackable", action, owasp, user_id, ip, device, method, reason, outcome,
            %error, "sign-in event"
        ),
        (Some(error), true) => tracing::warn!(
            target: "trackable", action, owasp, user_id, ip, device, outcome, unknown_identifier,
            %error, "sign-in event"
        ),
    }
}
