use std::net::SocketAddr;

use http::HeaderMap;
use http::header::USER_AGENT;
use http::request::Parts;

use crate::client::{ClientConfig, ClientInfo, ForwardedHeader, Resolution, sanitize_user_agent};

impl ClientInfo {
    /// The client of an `http` request, from its head and the peer address
    /// of its connection.
    ///
    /// See [`ClientInfo::from_headers`].
    #[cfg_attr(docsrs, doc(cfg(feature = "http")))]
    pub fn from_parts(parts: &Parts, peer: SocketAddr, config: &ClientConfig) -> Self {
        Self::from_headers(&parts.headers, peer, config)
    }

    /// The client of a request, from its headers and the peer address of its
    /// connection.
    ///
    /// The IP is resolved by [`ClientConfig::resolve_ip`] from every line of
    /// the configured header. The user agent is read from the first
    /// `User-Agent` line, cleaned and cut to
    /// [`max_user_agent_len`](ClientConfig::max_user_agent_len) bytes as it
    /// is read (see [`UserAgentPolicy`](crate::UserAgentPolicy)), so a huge
    /// header is never copied whole. A malformed header never fails.
    ///
    /// ```
    /// use http::{HeaderMap, HeaderValue};
    /// use trackable_core::{ClientConfig, ClientInfo, IpSource};
    ///
    /// # fn main() -> Result<(), trackable_core::ConfigError> {
    /// let config = ClientConfig::new().trust_proxy("10.0.0.0/8")?;
    /// let mut headers = HeaderMap::new();
    /// headers.append("x-forwarded-for", HeaderValue::from_static("203.0.113.7"));
    /// headers.append("x-forwarded-for", HeaderValue::from_static("10.1.2.3"));
    /// headers.insert("user-agent", HeaderValue::from_static("curl/8.5.0"));
    ///
    /// let client = ClientInfo::from_headers(&headers, "10.0.0.1:41000".parse().unwrap(), &config);
    /// assert_eq!(client.ip(), Some("203.0.113.7".parse().unwrap()));
    /// assert_eq!(client.ip_source(), IpSource::Header);
    /// assert_eq!(client.user_agent(), Some("curl/8.5.0"));
    /// # Ok(())
    /// # }
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "http")))]
    pub fn from_headers(headers: &HeaderMap, peer: SocketAddr, config: &ClientConfig) -> Self {
        let resolution = resolve(headers, peer, config);
        if resolution.ip.is_none() {
            tracing::debug!(
                target: "trackable",
                header = config.forwarded_header().name(),
                source = resolution.source.as_str(),
                "forwarding header did not yield a trustworthy client address"
            );
        }
        Self::from_resolution(resolution).with_user_agent_from(headers, config)
    }

    /// Replaces the user agent with the request's, read from `headers` as
    /// [`from_headers`](Self::from_headers) reads it: for a client whose IP another layer
    /// resolved (a framework's remote-IP middleware).
    ///
    /// ```
    /// use http::{HeaderMap, HeaderValue};
    /// use trackable_core::{ClientConfig, ClientInfo, IpSource, Resolution};
    ///
    /// let mut headers = HeaderMap::new();
    /// headers.insert("user-agent", HeaderValue::from_static("curl/8.5.0"));
    /// let resolved = Resolution::header("203.0.113.7".parse().unwrap());
    /// let client = ClientInfo::from_resolution(resolved)
    ///     .with_user_agent_from(&headers, &ClientConfig::new());
    /// assert_eq!(client.ip_source(), IpSource::Header);
    /// assert_eq!(client.user_agent(), Some("curl/8.5.0"));
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "http")))]
    #[must_use]
    pub fn with_user_agent_from(self, headers: &HeaderMap, config: &ClientConfig) -> Self {
        self.with_cleaned_user_agent(user_agent(headers, config.user_agent_limit()))
    }
}

fn resolve(headers: &HeaderMap, peer: SocketAddr, config: &ClientConfig) -> Resolution {
    match config.forwarded_header() {
        ForwardedHeader::None => config.resolve_ip(peer.ip(), std::iter::empty::<&[u8]>()),
        ForwardedHeader::XForwardedFor => {
            config.resolve_ip(peer.ip(), headers.get_all("x-forwarded-for"))
        }
        ForwardedHeader::Forwarded => {
            config.resolve_ip(peer.ip(), headers.get_all(http::header::FORWARDED))
        }
        ForwardedHeader::SingleIp(name) => config.resolve_ip(peer.ip(), headers.get_all(&**name)),
    }
}

fn user_agent(headers: &HeaderMap, max_len: usize) -> Option<String> {
    sanitize_user_agent(headers.get(USER_AGENT)?.as_bytes(), max_len)
}
