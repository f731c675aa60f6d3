//! What an event records beside its action: how the user signed in, why a sign-in failed,
//! which session an event belongs to.

use std::fmt;
use std::str::FromStr;

/// How a user signed in, stored in the audit row's `method` column as a stable string.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SignInMethod {
    /// An identifier and a password: `password`.
    Password,
    /// A WebAuthn passkey: `passkey`.
    Passkey,
    /// An OAuth or OpenID Connect provider: `oauth:<provider>`, the provider's name in lower
    /// case (letters, digits, `-`, `_`, at most 24 characters; others are replaced by `_`).
    OAuth(String),
    /// A link sent by e-mail: `magic_link`.
    MagicLink,
    /// An API token: `api_token`. Record it only when the token opens a session, not on
    /// every request it authorises.
    ApiToken,
    /// A remember-me cookie: `remember_me`. A restored session is an
    /// [`Action::SessionRestored`](crate::Action::SessionRestored), not a login.
    RememberMe,
}

impl SignInMethod {
    /// The stable string stored in the database.
    pub fn as_stored(&self) -> String {
        match self {
            SignInMethod::Password => "password".to_owned(),
            SignInMethod::Passkey => "passkey".to_owned(),
            SignInMethod::OAuth(provider) => {
                let provider: String = provider
                    .chars()
                    .take(24)
                    .map(|c| match c.to_ascii_lowercase() {
                        c @ ('a'..='z' | '0'..='9' | '-' | '_') => c,
                        _ => '_',
                    })
                    .collect();
                format!("oauth:{provider}")
            }
            SignInMethod::MagicLink => "magic_link".to_owned(),
            SignInMethod::ApiToken => "api_token".to_owned(),
            SignInMethod::RememberMe => "remember_me".to_owned(),
        }
    }
}

impl fmt::Display for SignInMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_stored())
    }
}

impl FromStr for SignInMethod {
    type Err = ParseDetailError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "password" => SignInMethod::Password,
            "passkey" => SignInMethod::Passkey,
            "magic_link" => SignInMethod::MagicLink,
            "api_token" => SignInMethod::ApiToken,
            "remember_me" => SignInMethod::RememberMe,
            _ => match s.strip_prefix("oauth:") {
                Some(provider) if !provider.is_empty() => SignInMethod::OAuth(provider.to_owned()),
                _ => return Err(ParseDetailError(s.to_owned())),
            },
        })
    }
}

/// Why a sign-in failed (or was refused), stored in the audit row's `reason` column as a
/// stable string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureReason {
    /// `wrong_password`.
    WrongPassword,
    /// `unknown_identifier`: the identifier matched no user.
    UnknownIdentifier,
    /// `locked`: the account is locked.
    Locked,
    /// `disabled`: the account is disabled (by an administrator, unconfirmed, banned).
    Disabled,
    /// `second_factor_failed`.
    SecondFactorFailed,
    /// `network_blocked`: the client's network failed too often (see [`Lockout`](crate::Lockout)).
    NetworkBlocked,
    /// `too_many_attempts`: as many attempts as the lockout's threshold were in flight.
    TooManyAttempts,
}

impl FailureReason {
    /// Every reason.
    pub const ALL: [FailureReason; 7] = [
        FailureReason::WrongPassword,
        FailureReason::UnknownIdentifier,
        FailureReason::Locked,
        FailureReason::Disabled,
        FailureReason::SecondFactorFailed,
        FailureReason::NetworkBlocked,
        FailureReason::TooManyAttempts,
    ];

    /// The stable string stored in the database.
    pub const fn as_str(self) -> &'static str {
        match self {
            FailureReason::WrongPassword => "wrong_password",
            FailureReason::UnknownIdentifier => "unknown_identifier",
            FailureReason::Locked => "locked",
            FailureReason::Disabled => "disabled",
            FailureReason::SecondFactorFailed => "second_factor_failed",
            FailureReason::NetworkBlocked => "network_blocked",
            FailureReason::TooManyAttempts => "too_many_attempts",
        }
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FailureReason {
    type Err = ParseDetailError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FailureReason::ALL
            .into_iter()
            .find(|reason| reason.as_str() == s)
            .ok_or_else(|| ParseDetailError(s.to_owned()))
    }
}

/// The error returned when a stored method or reason is not one of the stable names.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a stored sign-in method or failure reason")]
pub struct ParseDetailError(String);

/// A session: the event number (`seq`) of the login that began it. Keep it in the app's
/// session (it is not a secret), and end the session with it
/// ([`Tracker::end_session`](crate::Tracker::end_session)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(pub i64);

impl SessionId {
    /// The login's event number.
    pub const fn seq(self) -> i64 {
        self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for SessionId {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(SessionId)
    }
}

/// What an event records beside its action and client, all optional:
///
/// ```
/// use trackable_core::{Details, FailureReason, SignInMethod};
///
/// let sign_in = Details::new().method(SignInMethod::OAuth("GitHub".into()));
/// let failure = Details::new().reason(FailureReason::WrongPassword);
/// # let _ = (sign_in, failure);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Details {
    pub(crate) method: Option<SignInMethod>,
    pub(crate) reason: Option<FailureReason>,
    pub(crate) session: Option<SessionId>,
    pub(crate) app_session_id: Option<String>,
}

impl Details {
    /// No details.
    pub fn new() -> Self {
        Details::default()
    }

    /// How the user signed in.
    #[must_use]
    pub fn method(mut self, method: SignInMethod) -> Self {
        self.method = Some(method);
        self
    }

    /// Why the sign-in failed.
    #[must_use]
    pub fn reason(mut self, reason: FailureReason) -> Self {
        self.reason = Some(reason);
        self
    }

    /// The session the event belongs to (a logout, a revocation: the one it ends).
    #[must_use]
    pub fn session(mut self, session: SessionId) -> Self {
        self.session = Some(session);
        self
    }

    /// The app's own session id, stored only as a keyed hash (HMAC-SHA256 under
    /// [`Tracker::with_identifier_key`](crate::Tracker::with_identifier_key); without a key
    /// nothing is stored), so that a session can be found from the app's session store.
    #[must_use]
    pub fn app_session_id(mut self, id: impl Into<String>) -> Self {
        self.app_session_id = Some(id.into());
        self
    }
}
