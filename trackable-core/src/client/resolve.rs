use std::net::IpAddr;

use super::config::{ClientConfig, ForwardedHeader};
use super::forwarded::{Entry, MAX_ELEMENT_LEN, RevEntries, Syntax, parse_node};

/// Where the IP address of a [`ClientInfo`](crate::ClientInfo) came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IpSource {
    /// The peer address of the connection: the peer is not a trusted proxy,
    /// no forwarding header is configured, or the trusted chain ended at the
    /// peer.
    Peer,
    /// An entry of the configured forwarding header, read because the peer is
    /// a trusted proxy.
    Header,
    /// Set by the application ([`ClientInfo::from_ip`](crate::ClientInfo::from_ip), [`ClientInfo::with_ip`](crate::ClientInfo::with_ip)).
    Manual,
    /// No trustworthy address: the forwarding header was malformed where the
    /// client should be, too long, or the peer address is not known.
    #[default]
    Unresolved,
}

impl IpSource {
    /// A short lowercase name (`"peer"`, `"header"`, `"manual"`, `"unresolved"`),
    /// for logs and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            IpSource::Peer => "peer",
            IpSource::Header => "header",
            IpSource::Manual => "manual",
            IpSource::Unresolved => "unresolved",
        }
    }
}

impl std::fmt::Display for IpSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of [`ClientConfig::resolve_ip`]: the client address, if one
/// can be trusted, and where it came from.
///
/// `ip` is `None` exactly when `source` is [`IpSource::Unresolved`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Resolution {
    /// The client address, canonical (IPv4-mapped IPv6 addresses as IPv4).
    pub ip: Option<IpAddr>,
    /// Where `ip` came from.
    pub source: IpSource,
}

impl Resolution {
    const UNRESOLVED: Self = Self {
        ip: None,
        source: IpSource::Unresolved,
    };

    fn found(ip: IpAddr, source: IpSource) -> Self {
        Self {
            ip: Some(ip),
            source,
        }
    }

    /// The client address, if one can be trusted.
    pub fn ip(&self) -> Option<IpAddr> {
        self.ip
    }

    /// Where the address came from.
    pub fn source(&self) -> IpSource {
        self.source
    }
}

impl ClientConfig {
    /// Finds the client address of a request from its peer address and the
    /// lines of the configured forwarding header, in the order they appear
    /// in the request (pass no line when the header is absent).
    ///
    /// This is the pure core of the request constructors of
    /// [`ClientInfo`](super::ClientInfo); it never panics, whatever the bytes.
    ///
    /// # Rules
    ///
    /// - The peer (IPv4-mapped addresses compared and returned as IPv4) is the
    ///   client unless it is a trusted proxy and a header is configured; then
    ///   the header is read and the peer's own address is only the fallback.
    /// - `X-Forwarded-For` and `Forwarded`: the lines form one list, read from
    ///   the right (the entries closest to us, written by our own proxies).
    ///   Trusted proxies are skipped; the first entry that is not trusted is
    ///   the client ([`IpSource::Header`]).
    /// - Fail closed: if that entry cannot be parsed (garbage, `unknown`, an
    ///   obfuscated `_name`, a zone `fe80::1%eth0`, `0.0.0.0` or `::`, a
    ///   `Forwarded` element without exactly one `for`, an element over 512
    ///   bytes), the result is [`IpSource::Unresolved`], never an entry
    ///   further left. So is reaching [`max_hops`](ClientConfig::max_hops)
    ///   elements without finding the client.
    /// - Empty list elements (`a,,b`, a trailing comma, an empty line) are
    ///   list syntax and skipped, as RFC 9110 §5.6.1 asks; they still count
    ///   towards the hop limit.
    /// - If every entry is a trusted proxy, the leftmost one is the client
    ///   (the request started inside the trusted network). With no entry at
    ///   all, the peer is the client ([`IpSource::Peer`]).
    /// - Single-IP headers (`CF-Connecting-IP`): the value is the client,
    ///   trusted or not. An absent or blank header leaves the peer; several
    ///   lines, or a value that is not one address (or is over 512 bytes),
    ///   are unresolved.
    /// - Ports (`1.2.3.4:8080`, `[2001:db8::1]:443`) and brackets are
    ///   stripped; non-ASCII bytes make an entry unparseable.
    ///
    /// ```
    /// use std::net::IpAddr;
    /// use trackable_core::{ClientConfig, IpSource};
    ///
    /// # fn main() -> Result<(), trackable_core::ConfigError> {
    /// let config = ClientConfig::new().trust_proxy("10.0.0.0/8")?;
    /// let peer: IpAddr = "10.0.0.3".parse().unwrap();
    ///
    /// // The client claims to be 1.1.1.1; our proxies appended the rest.
    /// let r = config.resolve_ip(peer, ["1.1.1.1, 203.0.113.7, 10.0.0.2"]);
    /// assert_eq!(r.ip, Some("203.0.113.7".parse().unwrap()));
    /// assert_eq!(r.source, IpSource::Header);
    ///
    /// // Garbage where the client should be: unresolved, not 1.1.1.1.
    /// let r = config.resolve_ip(peer, ["1.1.1.1, nonsense, 10.0.0.2"]);
    /// assert_eq!((r.ip, r.source), (None, IpSource::Unresolved));
    ///
    /// // A peer that is not trusted is the client, whatever the header says.
    /// let r = config.resolve_ip("198.51.100.4".parse().unwrap(), ["1.1.1.1"]);
    /// assert_eq!(r.source, IpSource::Peer);
    /// # Ok(())
    /// # }
    /// ```
    #[must_use]
    pub fn resolve_ip<I>(&self, peer: IpAddr, header_lines: I) -> Resolution
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
        I::IntoIter: DoubleEndedIterator,
    {
        let peer = peer.to_canonical();
        // 0.0.0.0 and :: name no host; header entries get the same treatment.
        if peer.is_unspecified() {
            return Resolution::UNRESOLVED;
        }
        let syntax = match self.forwarded_header() {
            ForwardedHeader::None => return Resolution::found(peer, IpSource::Peer),
            _ if !self.is_trusted(peer) => return Resolution::found(peer, IpSource::Peer),
            ForwardedHeader::XForwardedFor => Syntax::XForwardedFor,
            ForwardedHeader::Forwarded => Syntax::Forwarded,
            ForwardedHeader::SingleIp(_) => return single_ip(peer, header_lines),
        };
        self.walk(peer, header_lines, syntax)
    }

    fn walk<I>(&self, peer: IpAddr, lines: I, syntax: Syntax) -> Resolution
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
        I::IntoIter: DoubleEndedIterator,
    {
        let mut leftmost = Resolution::found(peer, IpSource::Peer);
        let mut budget = self.hop_limit();
        for line in lines.into_iter().rev() {
            for entry in RevEntries::new(line.as_ref(), syntax) {
                if budget == 0 {
                    return Resolution::UNRESOLVED;
                }
                budget -= 1;
                match entry {
                    Entry::Empty => {}
                    Entry::Node(Some(ip)) if self.is_trusted(ip) => {
                        leftmost = Resolution::found(ip, IpSource::Header);
                    }
                    Entry::Node(Some(ip)) => return Resolution::found(ip, IpSource::Header),
                    Entry::Node(None) => return Resolution::UNRESOLVED,
                }
            }
        }
        leftmost
    }
}

fn single_ip<I>(peer: IpAddr, lines: I) -> Resolution
where
    I: IntoIterator,
    I::Item: AsRef<[u8]>,
{
    let mut lines = lines.into_iter();
    let Some(line) = lines.next() else {
        return Resolution::found(peer, IpSource::Peer);
    };
    if lines.next().is_some() {
        return Resolution::UNRESOLVED;
    }
    let line = line.as_ref();
    if line.len() > MAX_ELEMENT_LEN {
        return Resolution::UNRESOLVED;
    }
    let value = line.trim_ascii();
    if value.is_empty() {
        return Resolution::found(peer, IpSource::Peer);
    }
    match parse_node(value, false) {
        Some(ip) => Resolution::found(ip, IpSource::Header),
        None => Resolution::UNRESOLVED,
    }
}
