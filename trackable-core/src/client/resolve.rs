use std::net::IpAddr;

use super::config::{ClientConfig, ForwardedHeader};
use super::forwarded::{Entry, MAX_ELEMENT_LEN, RevEntries, Syntax, parse_node};

/// Where the IP address of a [`ClientInfo`](crate::ClientInfo) came from, or
/// why there is none.
///
/// [`Unresolved`](Self::Unresolved) and [`AllTrusted`](Self::AllTrusted) come
/// without an address; the other sources always have one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IpSource {
    /// The peer address of the connection: the peer is not a trusted proxy,
    /// no forwarding header is configured, or a trusted peer sent no
    /// forwarding header (or a list header with no entry in it).
    Peer,
    /// An entry of the configured forwarding header, read because the peer is
    /// a trusted proxy.
    Header,
    /// Set by the application ([`ClientInfo::from_ip`](crate::ClientInfo::from_ip), [`ClientInfo::with_ip`](crate::ClientInfo::with_ip)).
    Manual,
    /// No trustworthy address: the forwarding header was malformed where the
    /// client should be, too long, a single-IP header was present but blank,
    /// or the peer address is not known.
    #[default]
    Unresolved,
    /// No trustworthy address: every entry of the forwarding header is a
    /// trusted proxy. Any of them may have been written by a host inside the
    /// trusted networks, which can name whatever trusted address it likes, so
    /// none of them is taken for the client.
    AllTrusted,
}

impl IpSource {
    /// A short lowercase name (`"peer"`, `"header"`, `"manual"`,
    /// `"unresolved"`, `"all_trusted"`), for logs and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            IpSource::Peer => "peer",
            IpSource::Header => "header",
            IpSource::Manual => "manual",
            IpSource::Unresolved => "unresolved",
            IpSource::AllTrusted => "all_trusted",
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
/// `ip` is `None` exactly when `source` is [`IpSource::Unresolved`] or
/// [`IpSource::AllTrusted`].
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

    const ALL_TRUSTED: Self = Self {
        ip: None,
        source: IpSource::AllTrusted,
    };

    fn found(ip: IpAddr, source: IpSource) -> Self {
        Self {
            ip: Some(ip),
            source,
        }
    }

    /// The peer address of the connection is the client ([`IpSource::Peer`]), as another
    /// layer decided: a framework's own remote-IP middleware, say.
    pub fn peer(ip: IpAddr) -> Self {
        Self::found(ip.to_canonical(), IpSource::Peer)
    }

    /// A forwarding header, read by another layer that trusts its sender, names the client
    /// ([`IpSource::Header`]).
    pub fn header(ip: IpAddr) -> Self {
        Self::found(ip.to_canonical(), IpSource::Header)
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
    ///   client unless it is a trusted proxy (or
    ///   [`trust_every_peer_insecure`](ClientConfig::trust_every_peer_insecure)
    ///   is set) and a header is configured; then the header is read, and the
    ///   peer's own address is the client only when the header is absent.
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
    /// - If every entry is a trusted proxy, there is no client address
    ///   ([`IpSource::AllTrusted`]): a host inside the trusted networks can
    ///   write any trusted address, so the leftmost entry proves nothing. With
    ///   no entry at all, the peer is the client ([`IpSource::Peer`]).
    /// - Single-IP headers (`CF-Connecting-IP`): the value is the client,
    ///   trusted or not. An absent header leaves the peer; a blank one (empty
    ///   or only whitespace: the proxy had no address to give), several
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
    /// // Only trusted proxies: no client address.
    /// let r = config.resolve_ip(peer, ["10.9.9.9, 10.0.0.2"]);
    /// assert_eq!((r.ip, r.source), (None, IpSource::AllTrusted));
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
            _ if !self.trusts_peer(peer) => return Resolution::found(peer, IpSource::Peer),
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
        // Without a single entry the peer sent no forwarded address: it is the client.
        let mut exhausted = Resolution::found(peer, IpSource::Peer);
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
                        exhausted = Resolution::ALL_TRUSTED;
                    }
                    Entry::Node(Some(ip)) => return Resolution::found(ip, IpSource::Header),
                    Entry::Node(None) => return Resolution::UNRESOLVED,
                }
            }
        }
        exhausted
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
        // The proxy wrote the header without an address: the peer is that proxy, not the client.
        return Resolution::UNRESOLVED;
    }
    match parse_node(value, false) {
        Some(ip) => Resolution::found(ip, IpSource::Header),
        None => Resolution::UNRESOLVED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn behind(header: ForwardedHeader) -> ClientConfig {
        ClientConfig::new()
            .trust_proxy("10.0.0.0/8")
            .unwrap()
            .header(header)
    }

    fn resolve(config: &ClientConfig, peer: &str, lines: &[&str]) -> (Option<IpAddr>, IpSource) {
        let r = config.resolve_ip(ip(peer), lines.iter().copied());
        (r.ip, r.source)
    }

    #[test]
    fn only_trusted_entries_are_all_trusted_not_the_leftmost() {
        let xff = behind(ForwardedHeader::XForwardedFor);
        let fwd = behind(ForwardedHeader::Forwarded);
        let all_trusted = (None, IpSource::AllTrusted);
        assert_eq!(
            resolve(&xff, "10.0.0.1", &["10.0.0.5, 10.0.0.2"]),
            all_trusted
        );
        assert_eq!(resolve(&xff, "10.0.0.1", &["10.0.0.5"]), all_trusted);
        assert_eq!(resolve(&xff, "10.0.0.1", &[", 10.0.0.5,,"]), all_trusted);
        assert_eq!(
            resolve(&xff, "10.0.0.1", &["10.0.0.5", "10.0.0.2"]),
            all_trusted
        );
        assert_eq!(
            resolve(&fwd, "10.0.0.1", &["for=10.0.0.5, for=\"10.0.0.2:80\""]),
            all_trusted
        );
        // A mapped trusted entry is trusted too.
        assert_eq!(resolve(&xff, "10.0.0.1", &["::ffff:10.0.0.5"]), all_trusted);
        assert_eq!(IpSource::AllTrusted.as_str(), "all_trusted");
        assert_eq!(IpSource::AllTrusted.to_string(), "all_trusted");
    }

    #[test]
    fn the_first_untrusted_entry_from_the_right_is_the_client() {
        let xff = behind(ForwardedHeader::XForwardedFor);
        let client = (Some(ip("203.0.113.7")), IpSource::Header);
        // Trusted addresses left of the client, forged or not, are never reached.
        assert_eq!(
            resolve(&xff, "10.0.0.1", &["10.0.0.9, 203.0.113.7, 10.0.0.2"]),
            client
        );
        assert_eq!(
            resolve(&xff, "10.0.0.1", &["10.0.0.9", "203.0.113.7"]),
            client
        );
        // Garbage after trusted entries fails closed, before any leftmost entry.
        assert_eq!(
            resolve(&xff, "10.0.0.1", &["203.0.113.7, garbage, 10.0.0.2"]),
            (None, IpSource::Unresolved)
        );
        // No entry at all: the trusted peer itself.
        assert_eq!(
            resolve(&xff, "10.0.0.1", &[]),
            (Some(ip("10.0.0.1")), IpSource::Peer)
        );
        assert_eq!(
            resolve(&xff, "10.0.0.1", &[" , "]),
            (Some(ip("10.0.0.1")), IpSource::Peer)
        );
    }

    #[test]
    fn the_hop_limit_wins_over_all_trusted() {
        let xff = behind(ForwardedHeader::XForwardedFor).max_hops(2);
        assert_eq!(
            resolve(&xff, "10.0.0.1", &["10.0.0.5, 10.0.0.2"]),
            (None, IpSource::AllTrusted)
        );
        assert_eq!(
            resolve(&xff, "10.0.0.1", &["10.0.0.6, 10.0.0.5, 10.0.0.2"]),
            (None, IpSource::Unresolved)
        );
    }

    #[test]
    fn blank_single_ip_header_is_unresolved_absent_is_the_peer() {
        let cf = behind(ForwardedHeader::single_ip("CF-Connecting-IP"));
        for blank in ["", " ", "\t \t"] {
            assert_eq!(
                resolve(&cf, "10.0.0.1", &[blank]),
                (None, IpSource::Unresolved),
                "{blank:?}"
            );
        }
        assert_eq!(
            resolve(&cf, "10.0.0.1", &[]),
            (Some(ip("10.0.0.1")), IpSource::Peer)
        );
        // From a peer that is not trusted the header is not read at all.
        assert_eq!(
            resolve(&cf, "198.51.100.4", &[""]),
            (Some(ip("198.51.100.4")), IpSource::Peer)
        );
    }

    #[test]
    fn every_peer_trusted_reads_the_header_of_any_peer() {
        let config = ClientConfig::new().trust_every_peer_insecure();
        assert!(config.trusts_every_peer());
        assert!(!ClientConfig::new().trusts_every_peer());
        assert!(!config.is_trusted(ip("198.51.100.4")));
        // One proxy of unknown address: the entry it appended is the client.
        assert_eq!(
            resolve(&config, "198.51.100.4", &["1.1.1.1, 203.0.113.7"]),
            (Some(ip("203.0.113.7")), IpSource::Header)
        );
        assert_eq!(
            resolve(&config, "198.51.100.4", &[]),
            (Some(ip("198.51.100.4")), IpSource::Peer)
        );
        // Header entries are still compared with the trusted networks.
        let config = config.trust_proxy("10.0.0.0/8").unwrap();
        assert_eq!(
            resolve(&config, "198.51.100.4", &["203.0.113.7, 10.0.0.2"]),
            (Some(ip("203.0.113.7")), IpSource::Header)
        );
        assert_eq!(
            resolve(&config, "198.51.100.4", &["10.0.0.2"]),
            (None, IpSource::AllTrusted)
        );
        let none = config.header(ForwardedHeader::None);
        assert_eq!(
            resolve(&none, "198.51.100.4", &["203.0.113.7"]),
            (Some(ip("198.51.100.4")), IpSource::Peer)
        );
    }
}
