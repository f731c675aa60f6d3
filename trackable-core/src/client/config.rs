use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net};

/// The one header that carries the client address when the peer is a
/// trusted proxy.
///
/// Only one source is ever consulted: a proxy that writes one header does not
/// sanitize the others, so reading several would let clients pick.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ForwardedHeader {
    /// Never read a header: the client is always the peer.
    None,
    /// `X-Forwarded-For: client, proxy1, proxy2` (the default).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client;proto=https, for="[2001:db8::1]:443"`.
    Forwarded,
    /// A header holding exactly one address, set by the proxy, such as
    /// `CF-Connecting-IP` or `True-Client-IP`. The name is matched without
    /// regard to case; a name that is not a valid header name never matches.
    SingleIp(Cow<'static, str>),
}

impl ForwardedHeader {
    /// A [`SingleIp`](Self::SingleIp) header with the given name.
    ///
    /// ```
    /// use trackable_core::ForwardedHeader;
    ///
    /// let cloudflare = ForwardedHeader::single_ip("CF-Connecting-IP");
    /// assert_eq!(cloudflare.name(), Some("cf-connecting-ip"));
    /// ```
    pub fn single_ip(name: impl Into<Cow<'static, str>>) -> Self {
        let name = name.into();
        // Header names are case-insensitive and stored lowercase by `http`;
        // keep the `&'static str` without copying when it already is.
        if name.bytes().any(|b| b.is_ascii_uppercase()) {
            ForwardedHeader::SingleIp(Cow::Owned(name.to_ascii_lowercase()))
        } else {
            ForwardedHeader::SingleIp(name)
        }
    }

    /// The header name, lowercase for the built-in ones; `None` for
    /// [`ForwardedHeader::None`].
    pub fn name(&self) -> Option<&str> {
        match self {
            ForwardedHeader::None => None,
            ForwardedHeader::XForwardedFor => Some("x-forwarded-for"),
            ForwardedHeader::Forwarded => Some("forwarded"),
            ForwardedHeader::SingleIp(name) => Some(name),
        }
    }
}

/// How the client address of a request is found: which peers are trusted
/// proxies and which header they set.
///
/// The default trusts nobody, so the client is always the peer address, and
/// no header is ever read.
///
/// ```
/// use trackable_core::{ClientConfig, ForwardedHeader};
///
/// # fn main() -> Result<(), trackable_core::ConfigError> {
/// // Behind a load balancer in 10.0.0.0/8 that appends to X-Forwarded-For.
/// let config = ClientConfig::new().trust_proxy("10.0.0.0/8")?;
///
/// // Behind Cloudflare (list abbreviated), which sets CF-Connecting-IP.
/// let cloudflare = ClientConfig::new()
///     .trust_proxies(["173.245.48.0/20", "2400:cb00::/32"])?
///     .header(ForwardedHeader::single_ip("cf-connecting-ip"));
/// # let _ = (config, cloudflare);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    trusted_proxies: Vec<IpNet>,
    header: ForwardedHeader,
    max_hops: usize,
    max_user_agent_len: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientConfig {
    /// Default [`max_hops`](Self::max_hops): header entries examined before
    /// giving up.
    pub const DEFAULT_MAX_HOPS: usize = 20;

    /// Default [`max_user_agent_len`](Self::max_user_agent_len), in bytes.
    pub const DEFAULT_MAX_USER_AGENT_LEN: usize = 256;

    /// Peer address only: no trusted proxy, so no header is read. The header
    /// read once proxies are trusted is `X-Forwarded-For` unless
    /// [`header`](Self::header) says otherwise.
    pub const fn new() -> Self {
        Self {
            trusted_proxies: Vec::new(),
            header: ForwardedHeader::XForwardedFor,
            max_hops: Self::DEFAULT_MAX_HOPS,
            max_user_agent_len: Self::DEFAULT_MAX_USER_AGENT_LEN,
        }
    }

    /// Trusts a proxy: an address (`"10.0.0.1"`, `"::1"`) or a network in CIDR
    /// notation (`"10.0.0.0/8"`, `"fd00::/8"`).
    ///
    /// IPv4-mapped IPv6 networks (`"::ffff:10.0.0.0/104"`) are stored as
    /// IPv4, the form addresses are compared in.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] if `proxy` is neither an address nor a network.
    pub fn trust_proxy(self, proxy: &str) -> Result<Self, ConfigError> {
        let net = parse_proxy(proxy)?;
        Ok(self.trust_network(net))
    }

    /// Trusts every proxy of `proxies`, as [`trust_proxy`](Self::trust_proxy).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for the first entry that is neither an address nor a
    /// network.
    pub fn trust_proxies<I>(mut self, proxies: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        for proxy in proxies {
            self = self.trust_proxy(proxy.as_ref())?;
        }
        Ok(self)
    }

    /// Trusts a network that is already parsed.
    #[must_use]
    pub fn trust_network(mut self, net: IpNet) -> Self {
        let net = canonical_net(net);
        if !self.trusted_proxies.contains(&net) {
            self.trusted_proxies.push(net);
        }
        self
    }

    /// The header read when the peer is a trusted proxy.
    #[must_use]
    pub fn header(mut self, header: ForwardedHeader) -> Self {
        self.header = header;
        self
    }

    /// How many entries of a forwarding header are examined, from the right,
    /// before resolution gives up as [`Unresolved`](super::IpSource::Unresolved)
    /// (default [`DEFAULT_MAX_HOPS`](Self::DEFAULT_MAX_HOPS)). Empty list
    /// elements count. It bounds the work on huge headers; set it above the
    /// number of proxies in front of the application.
    #[must_use]
    pub fn max_hops(mut self, max_hops: usize) -> Self {
        self.max_hops = max_hops;
        self
    }

    /// How many bytes of the `User-Agent` header are read from a request
    /// (default [`DEFAULT_MAX_USER_AGENT_LEN`](Self::DEFAULT_MAX_USER_AGENT_LEN)).
    #[must_use]
    pub fn max_user_agent_len(mut self, max_len: usize) -> Self {
        self.max_user_agent_len = max_len;
        self
    }

    /// The trusted proxy networks, in the order they were added.
    pub fn trusted_proxies(&self) -> &[IpNet] {
        &self.trusted_proxies
    }

    /// The configured forwarding header.
    pub fn forwarded_header(&self) -> &ForwardedHeader {
        &self.header
    }

    /// The configured hop limit.
    pub fn hop_limit(&self) -> usize {
        self.max_hops
    }

    /// The configured user-agent length limit, in bytes.
    pub fn user_agent_limit(&self) -> usize {
        self.max_user_agent_len
    }

    /// Whether `ip` (IPv4-mapped addresses compared as IPv4) belongs to a
    /// trusted proxy network.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }
}

fn parse_proxy(input: &str) -> Result<IpNet, ConfigError> {
    let trimmed = input.trim();
    if let Ok(ip) = trimmed.parse::<IpAddr>() {
        return Ok(IpNet::from(ip));
    }
    trimmed.parse::<IpNet>().map_err(|source| ConfigError {
        kind: ErrorKind::InvalidProxy {
            input: input.to_owned(),
            source,
        },
    })
}

/// Host bits cleared, and `::ffff:0:0/96` subnets turned into IPv4 networks.
fn canonical_net(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => {
                Ipv4Net::new(v4, v6.prefix_len() - 96).map_or(net, |v4net| IpNet::V4(v4net.trunc()))
            }
            None => IpNet::V6(v6.trunc()),
        },
        IpNet::V6(v6) => IpNet::V6(v6.trunc()),
        IpNet::V4(v4) => IpNet::V4(v4.trunc()),
    }
}

/// An invalid configuration value: a trusted proxy that is neither an IP
/// address nor a CIDR network, or an IP hash key that is too short.
#[derive(Debug)]
pub struct ConfigError {
    kind: ErrorKind,
}

#[derive(Debug)]
enum ErrorKind {
    InvalidProxy {
        input: String,
        source: ipnet::AddrParseError,
    },
    ShortHashKey {
        len: usize,
        min: usize,
    },
}

impl ConfigError {
    pub(super) fn short_hash_key(len: usize, min: usize) -> Self {
        Self {
            kind: ErrorKind::ShortHashKey { len, min },
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::InvalidProxy { input, .. } => write!(
                f,
                "invalid trusted proxy {input:?}: expected an IP address or a CIDR network"
            ),
            ErrorKind::ShortHashKey { len, min } => write!(
                f,
                "IP hash key too short: {len} bytes, at least {min} required"
            ),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ErrorKind::InvalidProxy { source, .. } => Some(source),
            ErrorKind::ShortHashKey { .. } => None,
        }
    }
}
