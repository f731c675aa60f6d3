use chrono::{DateTime, Utc};

use crate::Action;

/// The tracking state of one user: what fields mode keeps on the user row, and what every
/// audit row of table mode holds after its event.
///
/// [`SignInState::apply`] is the reference for how each event changes it; both modes write
/// exactly what it computes, in the database, in one statement.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SignInState {
    /// Number of logins; `NULL` in the database counts as 0.
    pub sign_in_count: i64,
    /// Time of the current session's login, if signed in.
    pub current_sign_in_at: Option<DateTime<Utc>>,
    /// IP of the current session's login, after the privacy policy.
    pub current_sign_in_ip: Option<String>,
    /// Time of the previous login.
    pub last_sign_in_at: Option<DateTime<Utc>>,
    /// IP of the previous login, after the privacy policy.
    pub last_sign_in_ip: Option<String>,
}

/// A row that holds a sign-in state: the user row in fields mode, an audit row in table mode.
/// Implemented by `#[derive(Trackable)]`.
pub trait HasSignInState {
    /// The state this row holds.
    fn sign_in_state(&self) -> SignInState;
}

impl SignInState {
    /// The state after `action` happened at `now` from `ip`.
    ///
    /// | event | new state |
    /// |---|---|
    /// | login | last = current if `current_sign_in_at` is set, else last if `last_sign_in_at` is set, else (now, ip); current = (now, ip); count + 1 |
    /// | logout | if `current_sign_in_at` is set: last = current, current = (none, none); otherwise unchanged |
    /// | anything else | unchanged |
    #[must_use]
    pub fn apply(&self, action: Action, now: DateTime<Utc>, ip: Option<&str>) -> SignInState {
        match action {
            Action::Login => {
                let (last_at, last_ip) = if self.current_sign_in_at.is_some() {
                    (self.current_sign_in_at, self.current_sign_in_ip.clone())
                } else if self.last_sign_in_at.is_some() {
                    (self.last_sign_in_at, self.last_sign_in_ip.clone())
                } else {
                    (Some(now), ip.map(str::to_owned))
                };
                SignInState {
                    sign_in_count: self.sign_in_count + 1,
                    current_sign_in_at: Some(now),
                    current_sign_in_ip: ip.map(str::to_owned),
                    last_sign_in_at: last_at,
                    last_sign_in_ip: last_ip,
                }
            }
            Action::Logout if self.current_sign_in_at.is_some() => SignInState {
                sign_in_count: self.sign_in_count,
                current_sign_in_at: None,
                current_sign_in_ip: None,
                last_sign_in_at: self.current_sign_in_at,
                last_sign_in_ip: self.current_sign_in_ip.clone(),
            },
            _ => self.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(secs, 0).single().unwrap()
    }

    #[test]
    fn first_login_sets_last_to_now() {
        let s = SignInState::default().apply(Action::Login, at(10), Some("1.1.1.1"));
        assert_eq!(s.sign_in_count, 1);
        assert_eq!(s.current_sign_in_at, Some(at(10)));
        assert_eq!(s.last_sign_in_at, Some(at(10)));
        assert_eq!(s.last_sign_in_ip.as_deref(), Some("1.1.1.1"));
    }

    #[test]
    fn logout_then_login_keeps_the_logged_out_session_as_last() {
        let s = SignInState::default()
            .apply(Action::Login, at(10), Some("1.1.1.1"))
            .apply(Action::Logout, at(20), Some("9.9.9.9"))
            .apply(Action::Login, at(30), Some("2.2.2.2"));
        assert_eq!(s.sign_in_count, 2);
        assert_eq!(s.last_sign_in_at, Some(at(10)));
        assert_eq!(s.last_sign_in_ip.as_deref(), Some("1.1.1.1"));
        assert_eq!(s.current_sign_in_ip.as_deref(), Some("2.2.2.2"));
    }

    #[test]
    fn logout_twice_is_unchanged_the_second_time() {
        let once = SignInState::default()
            .apply(Action::Login, at(10), Some("1.1.1.1"))
            .apply(Action::Logout, at(20), None);
        assert_eq!(once.apply(Action::Logout, at(30), None), once);
    }
}
