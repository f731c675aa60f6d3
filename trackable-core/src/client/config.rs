use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

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
    trust_every_peer: bool,
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
            trust_every_peer: false,
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
    /// ```
    /// use trackable_core::ClientConfig;
    ///
    /// // Every client could write its own address into the header.
    /// let err = ClientConfig::new().trust_proxy("0.0.0.0/0").unwrap_err();
    /// assert!(err.to_string().contains("trust_every_peer_insecure"));
    /// ```
    ///
    /// # Errors
    ///
    /// [`ConfigError`] if `proxy` is neither an address nor a network, or if
    /// it covers every address, as [`trust_network`](Self::trust_network)
    /// refuses.
    pub fn trust_proxy(self, proxy: &str) -> Result<Self, ConfigError> {
        let net = parse_proxy(proxy)?;
        self.trust_network(net)
    }

    /// Trusts every proxy of `proxies`, as [`trust_proxy`](Self::trust_proxy).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for the first entry that
    /// [`trust_proxy`](Self::trust_proxy) refuses.
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
    ///
    /// # Errors
    ///
    /// [`ConfigError`] if `net` holds all of IPv4 (`0.0.0.0/0`), all of IPv6
    /// (`::/0`), or all of IPv4 through its IPv4-mapped form
    /// (`::ffff:0.0.0.0/96`, or any shorter prefix that contains it): with
    /// every peer trusted, every client could choose its own IP by sending the
    /// header. Behind one proxy whose address is not known, see
    /// [`trust_every_peer_insecure`](Self::trust_every_peer_insecure).
    pub fn trust_network(mut self, net: IpNet) -> Result<Self, ConfigError> {
        if let Some(scope) = covers_everyone(net) {
            return Err(ConfigError {
                kind: ErrorKind::TrustsEveryone { net, scope },
            });
        }
        let net = canonical_net(net);
        if !self.trusted_proxies.contains(&net) {
            self.trusted_proxies.push(net);
        }
        Ok(self)
    }

    /// Trusts every peer as a proxy, whatever its address: the forwarding
    /// header is read on every connection. Header entries are still compared
    /// with the trusted networks only, so behind one proxy the rightmost entry
    /// (the one that proxy wrote) is the client.
    ///
    /// **Dangerous**: any client that can reach the application without
    /// passing through the proxy chooses its own IP by sending the header, and
    /// every lockout or audit keyed on the IP believes it. Meant for tests,
    /// and for an application reachable only through one proxy whose address
    /// is not known in advance. Prefer [`trust_proxy`](Self::trust_proxy) with
    /// the proxy's network.
    ///
    /// ```
    /// use trackable_core::{ClientConfig, IpSource};
    ///
    /// let config = ClientConfig::new().trust_every_peer_insecure();
    /// let r = config.resolve_ip("198.51.100.4".parse().unwrap(), ["1.1.1.1, 203.0.113.7"]);
    /// assert_eq!((r.ip, r.source), (Some("203.0.113.7".parse().unwrap()), IpSource::Header));
    /// ```
    #[must_use]
    pub fn trust_every_peer_insecure(mut self) -> Self {
        self.trust_every_peer = true;
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

    /// Whether every peer is trusted as a proxy
    /// ([`trust_every_peer_insecure`](Self::trust_every_peer_insecure)).
    pub fn trusts_every_peer(&self) -> bool {
        self.trust_every_peer
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
    /// trusted proxy network. [`trusts_every_peer`](Self::trusts_every_peer)
    /// plays no part: it trusts peers, not header entries.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }

    /// Whether the header of a connection from `peer` is read.
    pub(super) fn trusts_peer(&self, peer: IpAddr) -> bool {
        self.trust_every_peer || self.is_trusted(peer)
    }
}

/// What part of the address space `net` trusts wholesale, if it does.
fn covers_everyone(net: IpNet) -> Option<&'static str> {
    // Every IPv4 address also has an IPv4-mapped form in ::ffff:0:0/96; a prefix of at most 96
    // bits that holds its first address holds it all.
    const MAPPED_FIRST: Ipv6Addr = Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0);
    match net {
        IpNet::V4(v4) if v4.prefix_len() == 0 => Some("all of IPv4"),
        IpNet::V6(v6) if v6.prefix_len() == 0 => Some("all of IPv6"),
        IpNet::V6(v6) if v6.prefix_len() <= 96 && v6.contains(&MAPPED_FIRST) => {
            Some("all of IPv4 (as IPv4-mapped IPv6)")
        }
        _ => None,
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
/// address nor a CIDR network, a trusted network that holds every client,
/// or an IP hash key that is too short.
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
    TrustsEveryone {
        net: IpNet,
        scope: &'static str,
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
            ErrorKind::TrustsEveryone { net, scope } => write!(
                f,
                "trusted proxy network {net} holds {scope}: every client could then choose \
                 its own IP; trust the proxies' own networks, or, in tests behind one proxy \
                 of unknown address, use ClientConfig::trust_every_peer_insecure"
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
            ErrorKind::TrustsEveryone { .. } | ErrorKind::ShortHashKey { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn networks_holding_every_client_are_refused() {
        for everyone in [
            "0.0.0.0/0",
            "1.2.3.4/0",
            "::/0",
            "2001:db8::/0",
            "::ffff:0.0.0.0/96",
            "::ffff:0:0/96",
            "::ffff:1.2.3.4/96",
            "::ffff:0:0/95",
            "::/80",
            "::/64",
            "::/1",
        ] {
            let err = ClientConfig::new().trust_proxy(everyone).unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.contains("every client could then choose its own IP"),
                "{everyone}: {msg}"
            );
            assert!(
                msg.contains("trust_every_peer_insecure"),
                "{everyone}: {msg}"
            );
            assert!(err.source().is_none());
            let net: IpNet = everyone.parse().unwrap();
            assert!(
                ClientConfig::new().trust_network(net).is_err(),
                "{everyone}"
            );
        }
        let err = ClientConfig::new()
            .trust_proxies(["10.0.0.0/8", "::/0"])
            .unwrap_err();
        assert!(err.to_string().contains("all of IPv6"), "{err}");
        let err = ClientConfig::new()
            .trust_proxy("::ffff:0:0/96")
            .unwrap_err();
        assert!(err.to_string().contains("::ffff:0.0.0.0/96"), "{err}");
        assert!(err.to_string().contains("IPv4-mapped"), "{err}");
    }

    #[test]
    fn large_networks_short_of_everyone_are_accepted() {
        for large in [
            "0.0.0.0/1",
            "128.0.0.0/1",
            "8000::/1",
            "::ffff:0.0.0.0/97",
            "::/96",
            "::ffff:0:0/112",
            "fd00::/8",
        ] {
            assert!(ClientConfig::new().trust_proxy(large).is_ok(), "{large}");
        }
        let config = ClientConfig::new()
            .trust_network("::ffff:0.0.0.0/97".parse().unwrap())
            .unwrap();
        assert_eq!(config.trusted_proxies(), ["0.0.0.0/1".parse().unwrap()]);
        assert!(config.is_trusted("127.0.0.1".parse().unwrap()));
        assert!(!config.is_trusted("128.0.0.1".parse().unwrap()));
    }
}
