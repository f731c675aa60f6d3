use std::fmt;
use std::str::FromStr;

use sea_orm::entity::prelude::*;

/// A tracked event.
///
/// Stored in the audit table's `action` column as a stable string
/// ([`Action::as_str`]) that never changes between releases.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[non_exhaustive]
pub enum Action {
    /// A successful sign-in: counted, and the sign-in time and IP move to `current_*`.
    #[sea_orm(string_value = "login")]
    Login,
    /// A sign-out: `current_*` moves to `last_*`.
    #[sea_orm(string_value = "logout")]
    Logout,
    /// A password reset.
    #[sea_orm(string_value = "password_reset")]
    PasswordReset,
    /// A sign-in attempt with wrong credentials.
    #[sea_orm(string_value = "failed_login")]
    FailedLogin,
    /// The account was locked.
    #[sea_orm(string_value = "lock")]
    Lock,
    /// The account was unlocked.
    #[sea_orm(string_value = "unlock")]
    Unlock,
    /// An unlock token was issued or used.
    #[sea_orm(string_value = "unlock_token")]
    UnlockToken,
    /// A sign-in attempt that the [`Lockout`](crate::Lockout) refused without checking the
    /// credentials: the account was locked, the client's network blocked, or as many
    /// attempts as the threshold were already in flight. Not counted as a failure.
    #[sea_orm(string_value = "refused")]
    Refused,
    /// An account was created.
    #[sea_orm(string_value = "registration")]
    Registration,
    /// The user changed their password (knowing the old one; a reset is
    /// [`PasswordReset`](Action::PasswordReset)).
    #[sea_orm(string_value = "password_change")]
    PasswordChange,
    /// The user changed their e-mail address.
    #[sea_orm(string_value = "email_change")]
    EmailChange,
    /// One session was ended other than by its own sign-out (an administrator, the user from
    /// another session): `session_seq` names it.
    #[sea_orm(string_value = "session_revoked")]
    SessionRevoked,
    /// "Sign out everywhere else": every session begun before this event ends, except the one
    /// that `session_seq` names.
    #[sea_orm(string_value = "others_revoked")]
    OthersRevoked,
    /// A second factor (TOTP, WebAuthn, SMS code) was verified.
    #[sea_orm(string_value = "mfa_success")]
    MfaSuccess,
    /// A second factor was wrong.
    #[sea_orm(string_value = "mfa_failure")]
    MfaFailure,
    /// A session was restored from a remember-me cookie: recorded, but not a login (not
    /// counted, and `current_*` does not move).
    #[sea_orm(string_value = "session_restored")]
    SessionRestored,
}

impl Action {
    /// Every action, in declaration order.
    pub const ALL: [Action; 16] = [
        Action::Login,
        Action::Logout,
        Action::PasswordReset,
        Action::FailedLogin,
        Action::Lock,
        Action::Unlock,
        Action::UnlockToken,
        Action::Refused,
        Action::Registration,
        Action::PasswordChange,
        Action::EmailChange,
        Action::SessionRevoked,
        Action::OthersRevoked,
        Action::MfaSuccess,
        Action::MfaFailure,
        Action::SessionRestored,
    ];

    /// The stable string stored in the database.
    pub const fn as_str(self) -> &'static str {
        match self {
            Action::Login => "login",
            Action::Logout => "logout",
            Action::PasswordReset => "password_reset",
            Action::FailedLogin => "failed_login",
            Action::Lock => "lock",
            Action::Unlock => "unlock",
            Action::UnlockToken => "unlock_token",
            Action::Refused => "refused",
            Action::Registration => "registration",
            Action::PasswordChange => "password_change",
            Action::EmailChange => "email_change",
            Action::SessionRevoked => "session_revoked",
            Action::OthersRevoked => "others_revoked",
            Action::MfaSuccess => "mfa_success",
            Action::MfaFailure => "mfa_failure",
            Action::SessionRestored => "session_restored",
        }
    }

    /// The name of the event in the OWASP Application Logging Vocabulary, where it has one
    /// (`authn_login_success`, `authn_login_fail`, `authn_login_lock`, `session_expired`,
    /// ...): the field `owasp` of the `tracing` events.
    pub const fn owasp_name(self) -> Option<&'static str> {
        Some(match self {
            Action::Login => "authn_login_success",
            Action::FailedLogin => "authn_login_fail",
            Action::Refused => "authn_login_fail_max",
            Action::Lock => "authn_login_lock",
            Action::PasswordReset | Action::PasswordChange => "authn_password_change",
            Action::UnlockToken => "authn_token_created",
            Action::Logout | Action::SessionRevoked | Action::OthersRevoked => "session_expired",
            Action::SessionRestored => "session_renewed",
            Action::Registration => "user_created",
            Action::EmailChange => "user_updated",
            Action::Unlock | Action::MfaSuccess | Action::MfaFailure => return None,
        })
    }

    /// Whether the event ends a session (a sign-out, a revocation).
    pub const fn ends_sessions(self) -> bool {
        matches!(
            self,
            Action::Logout | Action::SessionRevoked | Action::OthersRevoked
        )
    }

    /// Whether the event changes the sign-in state (only logins and logouts do).
    pub const fn changes_state(self) -> bool {
        matches!(self, Action::Login | Action::Logout)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error returned when a string is not one of the stable action names.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown action `{0}`; expected one of login, logout, password_reset, failed_login, lock, unlock, unlock_token, refused, registration, password_change, email_change, session_revoked, others_revoked, mfa_success, mfa_failure, session_restored"
)]
pub struct ParseActionError(String);

impl FromStr for Action {
    type Err = ParseActionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Action::ALL
            .into_iter()
            .find(|action| action.as_str() == s)
            .ok_or_else(|| ParseActionError(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_strings_round_trip() {
        for action in Action::ALL {
            assert_eq!(action.as_str().parse::<Action>(), Ok(action));
            assert_eq!(action.to_value(), action.as_str());
        }
        assert!("Login".parse::<Action>().is_err());
    }
}
