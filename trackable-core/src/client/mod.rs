//! Who is signing in: the client IP address and user agent of a request.
//!
//! [`ClientInfo`] is what the tracking functions record. Build it by hand
//! ([`ClientInfo::from_ip`]), from an `http` request (feature `http`:
//! [`ClientInfo::from_parts`]) or with the axum extractor (feature `axum`).
//!
//! The client IP is the peer address of the connection unless the peer is one
//! of the proxies trusted by a [`ClientConfig`]; only then is the configured
//! forwarding header read (see [`ClientConfig::resolve_ip`] for the rules).
//! Privacy policies ([`IpPolicy`], [`UserAgentPolicy`]) turn the raw values
//! into what is stored and logged.

mod config;
mod device;
mod forwarded;
mod policy;
mod resolve;

use std::fmt;
use std::net::IpAddr;

pub use config::{ClientConfig, ConfigError, ForwardedHeader};
pub use device::device_label;
#[cfg(feature = "http")]
pub(crate) use policy::sanitize_user_agent;
pub use policy::{HashKey, IdentifierNormalization, IpPolicy, UserAgentPolicy};
pub use resolve::{IpSource, Resolution};

/// The client of a request: its IP address (if known) and user agent.
///
/// The values are raw: the [`IpPolicy`] and [`UserAgentPolicy`] of the
/// tracker are applied when they are stored or logged. For the same reason
/// its [`Debug`] output shows neither: only whether there is an IP, its
/// source, and the length of the user agent.
///
/// ```
/// use std::net::{IpAddr, Ipv4Addr};
/// use trackable_core::{ClientInfo, IpSource};
///
/// let client = ClientInfo::from_ip("::ffff:203.0.113.9".parse().unwrap())
///     .with_user_agent("curl/8.5.0");
/// assert_eq!(client.ip(), Some(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9))));
/// assert_eq!(client.ip_source(), IpSource::Manual);
/// assert_eq!(client.user_agent(), Some("curl/8.5.0"));
///
/// assert_eq!(ClientInfo::new().ip(), None);
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct ClientInfo {
    ip: Option<IpAddr>,
    ip_source: IpSource,
    user_agent: Option<String>,
}

impl ClientInfo {
    /// Nothing known: no IP ([`IpSource::Unresolved`]) and no user agent.
    pub const fn new() -> Self {
        Self {
            ip: None,
            ip_source: IpSource::Unresolved,
            user_agent: None,
        }
    }

    /// A client with the given IP address, set by hand ([`IpSource::Manual`]).
    ///
    /// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is stored as IPv4.
    pub fn from_ip(ip: IpAddr) -> Self {
        Self::new().with_ip(ip)
    }

    /// The client of a [`Resolution`], as returned by
    /// [`ClientConfig::resolve_ip`]; no user agent.
    pub fn from_resolution(resolution: Resolution) -> Self {
        Self {
            ip: resolution.ip,
            ip_source: resolution.source,
            user_agent: None,
        }
    }

    /// Replaces the IP address with one set by hand ([`IpSource::Manual`]);
    /// IPv4-mapped IPv6 addresses become IPv4.
    #[must_use]
    pub fn with_ip(mut self, ip: IpAddr) -> Self {
        self.ip = Some(ip.to_canonical());
        self.ip_source = IpSource::Manual;
        self
    }

    /// Replaces the user agent. It is kept as given; [`UserAgentPolicy`]
    /// cleans and truncates it when it is stored.
    #[must_use]
    pub fn with_user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = Some(user_agent.into());
        self
    }

    /// Replaces the user agent with one already cleaned by [`UserAgentPolicy`]'s rules, as
    /// the `http` integration reads it.
    #[cfg(feature = "http")]
    pub(crate) fn with_cleaned_user_agent(mut self, user_agent: Option<String>) -> Self {
        self.user_agent = user_agent;
        self
    }

    /// The client IP address, if one could be trusted.
    pub fn ip(&self) -> Option<IpAddr> {
        self.ip
    }

    /// Where [`ip`](Self::ip) came from or, when it is `None`, why
    /// ([`IpSource::Unresolved`], [`IpSource::AllTrusted`]).
    pub fn ip_source(&self) -> IpSource {
        self.ip_source
    }

    /// The user agent, if the request had one.
    pub fn user_agent(&self) -> Option<&str> {
        self.user_agent.as_deref()
    }
}

impl fmt::Debug for ClientInfo {
    /// `ClientInfo { ip: "<redacted>", ip_source: Header, user_agent: Some("<11 bytes>") }`:
    /// debug output ends up in logs, which must not hold what the policies keep out of the
    /// database.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ip: &dyn fmt::Debug = match self.ip {
            Some(_) => &"<redacted>",
            None => &None::<()>,
        };
        let user_agent = self
            .user_agent
            .as_ref()
            .map(|ua| format!("<{} bytes>", ua.len()));
        f.debug_struct("ClientInfo")
            .field("ip", ip)
            .field("ip_source", &self.ip_source)
            .field("user_agent", &user_agent)
            .finish()
    }
}

impl From<IpAddr> for ClientInfo {
    /// Same as [`ClientInfo::from_ip`].
    fn from(ip: IpAddr) -> Self {
        Self::from_ip(ip)
    }
}

impl From<Resolution> for ClientInfo {
    /// Same as [`ClientInfo::from_resolution`].
    fn from(resolution: Resolution) -> Self {
        Self::from_resolution(resolution)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_neither_ip_nor_user_agent() {
        let client = ClientInfo::from_ip("203.0.113.7".parse().unwrap())
            .with_user_agent("Secret/1.0 (Device 1234)");
        let debug = format!("{client:?}");
        assert!(!debug.contains("203.0.113"), "{debug}");
        assert!(!debug.contains("Secret"), "{debug}");
        assert_eq!(
            debug,
            r#"ClientInfo { ip: "<redacted>", ip_source: Manual, user_agent: Some("<24 bytes>") }"#
        );
        let v6 = format!(
            "{:#?}",
            ClientInfo::from_ip("2001:db8::77".parse().unwrap())
        );
        assert!(!v6.contains("2001") && !v6.contains("db8"), "{v6}");
        assert_eq!(
            format!("{:?}", ClientInfo::new()),
            "ClientInfo { ip: None, ip_source: Unresolved, user_agent: None }"
        );
    }
}
