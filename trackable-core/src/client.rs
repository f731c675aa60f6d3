//! Placeholder until the request-aware client module lands.
use std::net::IpAddr;

/// Who made the request: client IP and user agent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientInfo {
    ip: Option<IpAddr>,
    user_agent: Option<String>,
}

impl ClientInfo {
    /// Nothing known about the client.
    pub fn new() -> Self {
        Self::default()
    }
    /// A client known by its IP.
    pub fn from_ip(ip: IpAddr) -> Self {
        Self::new().with_ip(ip)
    }
    /// Sets the IP.
    pub fn with_ip(mut self, ip: IpAddr) -> Self {
        self.ip = Some(ip.to_canonical());
        self
    }
    /// Sets the user agent.
    pub fn with_user_agent(mut self, ua: impl Into<String>) -> Self {
        self.user_agent = Some(ua.into());
        self
    }
    /// The client IP.
    pub fn ip(&self) -> Option<IpAddr> {
        self.ip
    }
    /// The user agent.
    pub fn user_agent(&self) -> Option<&str> {
        self.user_agent.as_deref()
    }
}

/// What is stored of a client IP.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub enum IpPolicy {
    /// The whole address.
    #[default]
    Full,
    /// No address.
    None,
}

impl IpPolicy {
    /// The stored text for `ip`.
    pub fn apply(&self, ip: IpAddr) -> Option<String> {
        match self {
            IpPolicy::Full => Some(ip.to_canonical().to_string()),
            IpPolicy::None => None,
        }
    }
}

/// What is stored of the user agent.
#[derive(Clone, Debug)]
pub struct UserAgentPolicy {
    capture: bool,
    max_len: usize,
}

impl Default for UserAgentPolicy {
    fn default() -> Self {
        UserAgentPolicy { capture: true, max_len: 256 }
    }
}

impl UserAgentPolicy {
    /// The stored text for `raw`.
    pub fn apply(&self, raw: &str) -> Option<String> {
        if !self.capture {
            return None;
        }
        let clean: String = raw.chars().filter(|c| !c.is_control()).collect();
        let mut end = clean.len().min(self.max_len);
        while !clean.is_char_boundary(end) {
            end -= 1;
        }
        let out = clean[..end].trim();
        (!out.is_empty()).then(|| out.to_owned())
    }
}
