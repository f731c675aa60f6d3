//! Client IP resolution, IP and user-agent policies (SPEC §4).

use std::error::Error as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use trackable::ip;
use trackable_core::{
    ClientConfig, ClientInfo, ForwardedHeader, HashKey, IdentifierNormalization, IpPolicy,
    IpSource, UserAgentPolicy,
};

/// Trusts 10.0.0.0/8, 2001:db8:ffff::/48 and the bare addresses 192.168.0.1
/// and ::1.
fn trusting(header: ForwardedHeader) -> ClientConfig {
    ClientConfig::new()
        .trust_proxies(["10.0.0.0/8", "2001:db8:ffff::/48", "192.168.0.1", "::1"])
        .unwrap()
        .header(header)
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Xff,
    Fwd,
    Cf,
    NoHeader,
    /// X-Forwarded-For with `max_hops(3)`.
    Xff3,
}

impl Kind {
    fn config(self) -> ClientConfig {
        match self {
            Kind::Xff => trusting(ForwardedHeader::XForwardedFor),
            Kind::Fwd => trusting(ForwardedHeader::Forwarded),
            Kind::Cf => trusting(ForwardedHeader::single_ip("CF-Connecting-IP")),
            Kind::NoHeader => trusting(ForwardedHeader::None),
            Kind::Xff3 => trusting(ForwardedHeader::XForwardedFor).max_hops(3),
        }
    }
}

use IpSource::{AllTrusted, Header, Peer, Unresolved};
use Kind::{Cf, Fwd, NoHeader, Xff, Xff3};

const P: &str = "10.0.0.1";
const C: &str = "203.0.113.7";

/// (name, header kind, peer, header lines, expected ip, expected source)
type Case = (
    &'static str,
    Kind,
    &'static str,
    &'static [&'static str],
    Option<&'static str>,
    IpSource,
);

#[rustfmt::skip]
const CASES: &[Case] = &[
    // The peer decides whether any header is read.
    ("untrusted peer, no header", Xff, "198.51.100.5", &[], Some("198.51.100.5"), Peer),
    ("untrusted peer ignores header", Xff, "198.51.100.5", &["1.1.1.1"], Some("198.51.100.5"), Peer),
    ("untrusted mapped peer is canonical", Xff, "::ffff:198.51.100.5", &["1.1.1.1"], Some("198.51.100.5"), Peer),
    ("trusted peer, header absent", Xff, P, &[], Some(P), Peer),
    ("trusted peer, one entry", Xff, P, &[C], Some(C), Header),
    ("spoofed leftmost entry", Xff, P, &["1.1.1.1, 203.0.113.7"], Some(C), Header),
    ("two proxies", Xff, P, &["203.0.113.7, 10.0.0.2"], Some(C), Header),
    ("spoof before two proxies", Xff, P, &["6.6.6.6, 203.0.113.7, 10.0.0.2, 10.0.0.3"], Some(C), Header),
    ("several lines", Xff, P, &["6.6.6.6", "203.0.113.7", "10.0.0.2"], Some(C), Header),
    ("several lines, client in first", Xff, P, &["6.6.6.6, 203.0.113.7, 10.0.0.2", "10.0.0.3"], Some(C), Header),
    ("v4 port", Xff, P, &["203.0.113.7:8080"], Some(C), Header),
    ("v6 brackets and port", Xff, P, &["[2001:db8::1]:443"], Some("2001:db8::1"), Header),
    ("v6 bare", Xff, P, &["2001:db8::1"], Some("2001:db8::1"), Header),
    ("v6 brackets, no port", Xff, P, &["[2001:db8::1]"], Some("2001:db8::1"), Header),
    ("v6 uppercase and long form", Xff, P, &["2001:DB8:0:0:0:0:0:1"], Some("2001:db8::1"), Header),
    ("mapped client", Xff, P, &["::ffff:203.0.113.7"], Some(C), Header),
    ("mapped trusted proxy is skipped", Xff, P, &["203.0.113.7, ::ffff:10.0.0.2"], Some(C), Header),
    ("mapped trusted peer", Xff, "::ffff:10.0.0.1", &[C], Some(C), Header),
    ("garbage at client position", Xff, P, &["1.1.1.1, garbage, 10.0.0.2"], None, Unresolved),
    ("garbage further left is never read", Xff, P, &["garbage, 203.0.113.7, 10.0.0.2"], Some(C), Header),
    ("trailing comma", Xff, P, &["203.0.113.7,"], Some(C), Header),
    ("double comma", Xff, P, &["1.1.1.1,,203.0.113.7 , 10.0.0.2"], Some(C), Header),
    ("only empty elements", Xff, P, &[" , ,"], Some(P), Peer),
    ("empty last line", Xff, P, &["203.0.113.7", ""], Some(C), Header),
    ("tabs and spaces", Xff, P, &["\t203.0.113.7 \t"], Some(C), Header),
    ("zone", Xff, P, &["1.1.1.1, fe80::1%eth0"], None, Unresolved),
    ("bracketed zone with port", Xff, P, &["[fe80::1%25eth0]:80"], None, Unresolved),
    ("unspecified v4", Xff, P, &["1.1.1.1, 0.0.0.0"], None, Unresolved),
    ("unspecified v6", Xff, P, &["1.1.1.1, [::]:80"], None, Unresolved),
    ("unknown in XFF", Xff, P, &["1.1.1.1, unknown"], None, Unresolved),
    ("port out of range", Xff, P, &["203.0.113.7:70000"], None, Unresolved),
    ("leading zeros are ambiguous", Xff, P, &["010.0.0.1"], None, Unresolved),
    ("v4 in brackets", Xff, P, &["[203.0.113.7]"], None, Unresolved),
    ("all trusted: no client", Xff, P, &["10.0.0.5, 10.0.0.2"], None, AllTrusted),
    ("all trusted, one entry", Xff, P, &["192.168.0.1"], None, AllTrusted),
    ("all trusted across lines", Xff, P, &["10.0.0.5", "", "::1"], None, AllTrusted),
    ("forged trusted entry left of the client", Xff, P, &["10.0.0.9, 203.0.113.7, 10.0.0.2"], Some(C), Header),
    ("all trusted but garbage leftmost", Xff, P, &["garbage, 10.0.0.5"], None, Unresolved),
    ("v6 proxies", Xff, "2001:db8:ffff::1", &["2001:db8:1::5, 2001:db8:ffff::2"], Some("2001:db8:1::5"), Header),
    ("bare v4 trusted", Xff, "192.168.0.1", &[C], Some(C), Header),
    ("neighbour of bare v4 untrusted", Xff, "192.168.0.2", &[C], Some("192.168.0.2"), Peer),
    ("bare ::1 trusted", Xff, "::1", &["198.51.100.1"], Some("198.51.100.1"), Header),
    ("hop cap reached", Xff3, P, &["203.0.113.7, 10.0.0.2, 10.0.0.3, 10.0.0.4"], None, Unresolved),
    ("hop cap just enough", Xff3, P, &["203.0.113.7, 10.0.0.3, 10.0.0.4"], Some(C), Header),
    ("hop cap counts empty elements", Xff3, P, &["203.0.113.7,,, 10.0.0.4"], None, Unresolved),
    ("hop cap across lines", Xff3, P, &["203.0.113.7", "10.0.0.2", "10.0.0.3", "10.0.0.4"], None, Unresolved),
    ("no header configured", NoHeader, P, &[C], Some(P), Peer),
    // RFC 7239 Forwarded.
    ("fwd plain", Fwd, P, &["for=203.0.113.7"], Some(C), Header),
    ("fwd quoted with port", Fwd, P, &["for=\"203.0.113.7:8080\""], Some(C), Header),
    ("fwd case-insensitive name, v6", Fwd, P, &["For=\"[2001:db8::1]:443\""], Some("2001:db8::1"), Header),
    ("fwd several pairs", Fwd, P, &["FOR=203.0.113.7;proto=https;by=10.0.0.9"], Some(C), Header),
    ("fwd pairs in any order", Fwd, P, &["proto=https; for=203.0.113.7 ;host=example.com"], Some(C), Header),
    ("fwd spoof and proxies", Fwd, P, &["for=6.6.6.6, for=203.0.113.7;proto=https, for=10.0.0.2"], Some(C), Header),
    ("fwd several lines", Fwd, P, &["for=6.6.6.6", "for=203.0.113.7, for=10.0.0.2"], Some(C), Header),
    ("fwd unknown", Fwd, P, &["for=1.1.1.1, for=unknown"], None, Unresolved),
    ("fwd quoted unknown", Fwd, P, &["for=1.1.1.1, for=\"UNKNOWN\""], None, Unresolved),
    ("fwd obfuscated", Fwd, P, &["for=1.1.1.1, for=_hidden"], None, Unresolved),
    ("fwd obfuscated port", Fwd, P, &["for=\"203.0.113.7:_p1\""], Some(C), Header),
    ("fwd missing for", Fwd, P, &["for=1.1.1.1, proto=https"], None, Unresolved),
    ("fwd duplicate for", Fwd, P, &["for=1.1.1.1;for=203.0.113.7"], None, Unresolved),
    ("fwd comma inside quotes", Fwd, P, &["for=203.0.113.7;host=\"a,b\", for=10.0.0.2"], Some(C), Header),
    ("fwd escaped quote inside quotes", Fwd, P, &["for=1.1.1.1, for=203.0.113.7;by=\"x\\\",y\""], Some(C), Header),
    ("fwd unterminated quote", Fwd, P, &["for=\"203.0.113.7"], None, Unresolved),
    ("fwd pair without value", Fwd, P, &["for=203.0.113.7;secure"], None, Unresolved),
    ("fwd trailing comma", Fwd, P, &["for=203.0.113.7,"], Some(C), Header),
    ("fwd unquoted brackets", Fwd, P, &["for=[2001:db8::1]"], Some("2001:db8::1"), Header),
    ("fwd mapped", Fwd, P, &["for=\"[::ffff:203.0.113.7]\""], Some(C), Header),
    ("fwd trusted obfuscated by is fine", Fwd, P, &["for=1.1.1.1, for=10.0.0.2;by=_x, for=10.0.0.3"], Some("1.1.1.1"), Header),
    ("fwd zone", Fwd, P, &["for=\"[fe80::1%25eth0]\""], None, Unresolved),
    ("fwd all trusted", Fwd, P, &["for=10.0.0.5, for=\"[::1]:443\""], None, AllTrusted),
    ("fwd untrusted peer ignores header", Fwd, "198.51.100.5", &["for=1.1.1.1"], Some("198.51.100.5"), Peer),
    // Single-IP headers.
    ("cf trusted peer", Cf, P, &[C], Some(C), Header),
    ("cf untrusted peer", Cf, "198.51.100.5", &[C], Some("198.51.100.5"), Peer),
    ("cf absent", Cf, P, &[], Some(P), Peer),
    ("cf blank", Cf, P, &["  "], None, Unresolved),
    ("cf empty", Cf, P, &[""], None, Unresolved),
    ("cf blank from untrusted peer", Cf, "198.51.100.5", &[""], Some("198.51.100.5"), Peer),
    ("cf two lines", Cf, P, &["1.1.1.1", C], None, Unresolved),
    ("cf list", Cf, P, &["1.1.1.1, 203.0.113.7"], None, Unresolved),
    ("cf garbage", Cf, P, &["garbage"], None, Unresolved),
    ("cf value is taken even if trusted", Cf, P, &["10.0.0.9"], Some("10.0.0.9"), Header),
    ("cf v6 with port", Cf, P, &["[2001:db8::1]:443"], Some("2001:db8::1"), Header),
    ("cf unspecified", Cf, P, &["0.0.0.0"], None, Unresolved),
    ("unspecified peer v4", NoHeader, "0.0.0.0", &[], None, Unresolved),
    ("unspecified peer v6", Xff, "::", &["203.0.113.7"], None, Unresolved),
];

#[test]
fn resolution_table() {
    assert!(CASES.len() >= 40);
    let mut failures = Vec::new();
    for &(name, kind, peer, lines, want_ip, want_source) in CASES {
        let got = kind.config().resolve_ip(ip(peer), lines.iter().copied());
        let want = (want_ip.map(ip), want_source);
        if (got.ip, got.source) != want {
            failures.push(format!(
                "{name}: got {:?} {:?}, want {want:?}",
                got.ip, got.source
            ));
        }
        assert_eq!(got.ip.is_none(), unresolved(got.source), "{name}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Whether a source comes without an address.
fn unresolved(source: IpSource) -> bool {
    matches!(source, Unresolved | AllTrusted)
}

#[test]
fn non_utf8_bytes_are_unparseable() {
    let config = Kind::Xff.config();
    let r = config.resolve_ip(ip(P), [b"\xff\xfe, 203.0.113.7".as_slice()]);
    assert_eq!((r.ip, r.source), (Some(ip(C)), Header));
    let r = config.resolve_ip(ip(P), [b"203.0.113.7, 1.1.1.\xff".as_slice()]);
    assert_eq!((r.ip, r.source), (None, Unresolved));
    let r = Kind::Fwd
        .config()
        .resolve_ip(ip(P), [b"for=\"\xc3\xa9\"".as_slice()]);
    assert_eq!((r.ip, r.source), (None, Unresolved));
}

#[test]
fn huge_headers_are_unresolved_not_walked() {
    let config = Kind::Xff.config();
    // 100 KB of trusted entries: the walk stops at the hop limit.
    let trusted = "10.0.0.2, ".repeat(10_000);
    let r = config.resolve_ip(ip(P), [format!("203.0.113.7, {trusted}10.0.0.3")]);
    assert_eq!((r.ip, r.source), (None, Unresolved));
    // One 100 KB element.
    let r = config.resolve_ip(ip(P), ["9".repeat(100_000)]);
    assert_eq!((r.ip, r.source), (None, Unresolved));
    // A client at the right end of a huge header is still found.
    let r = config.resolve_ip(
        ip(P),
        [format!("{}203.0.113.7", "1.1.1.1, ".repeat(12_000))],
    );
    assert_eq!((r.ip, r.source), (Some(ip(C)), Header));
    // A huge Forwarded header with an unbalanced quote.
    let r = Kind::Fwd
        .config()
        .resolve_ip(ip(P), [format!("for=\"{}", "x,".repeat(50_000))]);
    assert_eq!((r.ip, r.source), (None, Unresolved));
}

#[test]
fn many_empty_lines_are_bounded() {
    let lines = vec![""; 10_000];
    let r = Kind::Xff.config().resolve_ip(ip(P), &lines);
    assert_eq!((r.ip, r.source), (None, Unresolved));
    let r = Kind::Xff.config().resolve_ip(ip(P), &lines[..5]);
    assert_eq!((r.ip, r.source), (Some(ip(P)), Peer));
}

#[test]
fn config_parses_networks_and_addresses() {
    let config = ClientConfig::new()
        .trust_proxies([
            "10.1.2.3/8",
            "192.168.0.1",
            "::1",
            "::ffff:172.16.0.0/108",
            " fd00::/8 ",
        ])
        .unwrap();
    let nets: Vec<String> = config
        .trusted_proxies()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        nets,
        [
            "10.0.0.0/8",
            "192.168.0.1/32",
            "::1/128",
            "172.16.0.0/12",
            "fd00::/8"
        ]
    );
    assert!(config.is_trusted(ip("172.31.255.255")));
    assert!(config.is_trusted(ip("::ffff:172.16.0.1")));
    assert!(!config.is_trusted(ip("172.32.0.0")));
    assert!(!ClientConfig::new().is_trusted(ip("127.0.0.1")));
    assert_eq!(ClientConfig::default(), ClientConfig::new());
    assert_eq!(
        ClientConfig::new().hop_limit(),
        ClientConfig::DEFAULT_MAX_HOPS
    );
    assert_eq!(
        ClientConfig::new().forwarded_header(),
        &ForwardedHeader::XForwardedFor
    );
}

#[test]
fn config_rejects_bad_networks() {
    for bad in [
        "10.0.0.0/33",
        "nonsense",
        "",
        "10.0.0.0/",
        "fe80::1%eth0",
        "::/129",
    ] {
        let err = ClientConfig::new().trust_proxy(bad).unwrap_err();
        assert!(err.to_string().contains("invalid trusted proxy"), "{err}");
        assert!(err.source().is_some());
    }
    let err = ClientConfig::new()
        .trust_proxies(["10.0.0.0/8", "bad"])
        .unwrap_err();
    assert!(err.to_string().contains("\"bad\""), "{err}");
}

#[test]
fn config_refuses_to_trust_every_client() {
    for everyone in ["0.0.0.0/0", "::/0", "::ffff:0.0.0.0/96", "::/64"] {
        let err = ClientConfig::new().trust_proxy(everyone).unwrap_err();
        assert!(
            err.to_string()
                .contains("every client could then choose its own IP"),
            "{err}"
        );
        assert!(
            ClientConfig::new()
                .trust_network(everyone.parse().unwrap())
                .is_err()
        );
    }
    let config = ClientConfig::new().trust_every_peer_insecure();
    let r = config.resolve_ip(ip("198.51.100.5"), ["6.6.6.6, 203.0.113.7"]);
    assert_eq!((r.ip, r.source), (Some(ip(C)), Header));
}

#[test]
fn single_ip_header_names() {
    assert_eq!(
        ForwardedHeader::single_ip("CF-Connecting-IP"),
        ForwardedHeader::SingleIp("cf-connecting-ip".into())
    );
    assert_eq!(
        ForwardedHeader::XForwardedFor.name(),
        Some("x-forwarded-for")
    );
    assert_eq!(ForwardedHeader::Forwarded.name(), Some("forwarded"));
    assert_eq!(ForwardedHeader::None.name(), None);
}

#[test]
fn client_info_by_hand() {
    let client = ClientInfo::new();
    assert_eq!(client, ClientInfo::default());
    assert_eq!((client.ip(), client.ip_source()), (None, Unresolved));
    assert_eq!(client.user_agent(), None);

    let client = ClientInfo::from_ip(ip("::ffff:203.0.113.7")).with_user_agent("agent");
    assert_eq!(client.ip(), Some(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7))));
    assert_eq!(client.ip_source(), IpSource::Manual);
    assert_eq!(client.user_agent(), Some("agent"));

    let client = ClientInfo::new().with_ip(ip("2001:db8::1"));
    assert_eq!(client.ip_source(), IpSource::Manual);
    assert_eq!(ClientInfo::from(ip(C)), ClientInfo::from_ip(ip(C)));

    let resolved = Kind::Xff.config().resolve_ip(ip(P), [C]);
    let client = ClientInfo::from_resolution(resolved);
    assert_eq!((client.ip(), client.ip_source()), (Some(ip(C)), Header));
    assert_eq!(IpSource::Header.to_string(), "header");

    let resolved = Kind::Xff.config().resolve_ip(ip(P), ["10.0.0.2"]);
    let client = ClientInfo::from_resolution(resolved);
    assert_eq!((client.ip(), client.ip_source()), (None, AllTrusted));
    assert_eq!(AllTrusted.to_string(), "all_trusted");
}

#[test]
fn client_info_debug_hides_ip_and_user_agent() {
    let client = ClientInfo::from_ip(ip(C)).with_user_agent("curl/8.5.0");
    let debug = format!("{client:?}");
    assert!(
        !debug.contains(C) && !debug.contains("203.0.113"),
        "{debug}"
    );
    assert!(!debug.contains("curl"), "{debug}");
    assert!(debug.contains(r#"ip: "<redacted>""#), "{debug}");
    assert!(
        debug.contains(r#"user_agent: Some("<10 bytes>")"#),
        "{debug}"
    );
}

// ---------------------------------------------------------------- policies

#[test]
fn full_policy_is_canonical_text() {
    let full = IpPolicy::default();
    assert_eq!(full.apply(ip("203.0.113.77")).unwrap(), "203.0.113.77");
    assert_eq!(
        full.apply(ip("2001:DB8:0:0:1:0:0:1")).unwrap(),
        "2001:db8::1:0:0:1"
    );
    assert_eq!(
        full.apply(ip("::ffff:203.0.113.77")).unwrap(),
        "203.0.113.77"
    );
}

#[test]
fn truncation_defaults_to_24_and_48() {
    let t = IpPolicy::truncate();
    assert_eq!(t.apply(ip("203.0.113.77")).unwrap(), "203.0.113.0");
    assert_eq!(
        t.apply(ip("2001:db8:1234:5678:9abc::1")).unwrap(),
        "2001:db8:1234::"
    );
    // Mapped addresses are truncated as IPv4.
    assert_eq!(t.apply(ip("::ffff:203.0.113.77")).unwrap(), "203.0.113.0");
}

#[test]
fn truncation_covers_ipv4_inside_ipv6() {
    let t = IpPolicy::truncate();
    // 6to4 of 203.0.113.7 (the bug report), Teredo, NAT64.
    assert_eq!(
        t.apply(ip("2002:cb00:7107::1")).unwrap(),
        "2002:cb00:7100::"
    );
    assert_eq!(
        t.apply(ip("2001:0:4136:e378:8000:63bf:3fff:fdd2")).unwrap(),
        "2001:0:4136:e300::"
    );
    assert_eq!(
        t.apply(ip("64:ff9b::203.0.113.7")).unwrap(),
        "64:ff9b::cb00:7100"
    );
}

#[test]
fn identifiers_are_normalised_before_hashing() {
    let fold = IdentifierNormalization::default();
    assert_eq!(
        fold.apply("  Alice@Example.com "),
        fold.apply("alice@example.com")
    );
    assert_eq!(IdentifierNormalization::Trim.apply(" Alice "), "Alice");
    assert_eq!(IdentifierNormalization::Exact.apply(" Alice "), " Alice ");
}

#[test]
fn truncation_custom_prefixes() {
    let cases = [
        ((16, 64), "203.0.113.77", "203.0.0.0"),
        ((16, 64), "2001:db8:1:2:3:4:5:6", "2001:db8:1:2::"),
        ((0, 0), "203.0.113.77", "0.0.0.0"),
        ((0, 0), "2001:db8::1", "::"),
        ((32, 128), "203.0.113.77", "203.0.113.77"),
        ((32, 128), "2001:db8::1", "2001:db8::1"),
        ((40, 200), "203.0.113.77", "203.0.113.77"),
        ((40, 200), "2001:db8::1", "2001:db8::1"),
        ((25, 56), "203.0.113.255", "203.0.113.128"),
        ((25, 56), "2001:db8:1:2ff::", "2001:db8:1:200::"),
    ];
    for ((v4, v6), input, want) in cases {
        let policy = IpPolicy::Truncate {
            ipv4_prefix: v4,
            ipv6_prefix: v6,
        };
        assert_eq!(policy.apply(ip(input)).unwrap(), want, "{v4}/{v6} {input}");
        assert_eq!(
            IpPolicy::truncate_to(v4, v6).apply(ip(input)).unwrap(),
            want
        );
    }
}

#[test]
fn keyed_hash_is_stable_keyed_and_opaque() {
    let a = IpPolicy::keyed_hash("first key, 32 bytes of secrets!!").unwrap();
    let b = IpPolicy::keyed_hash("second key, other secret bytes!!").unwrap();
    let v4 = ip("203.0.113.77");
    let ha = a.apply(v4).unwrap();
    assert_eq!(a.apply(v4).unwrap(), ha, "stable");
    assert_eq!(a.clone().apply(v4).unwrap(), ha, "stable across clones");
    assert_ne!(b.apply(v4).unwrap(), ha, "depends on the key");
    assert_ne!(
        a.apply(ip("203.0.113.78")).unwrap(),
        ha,
        "depends on the address"
    );
    assert_eq!(
        a.apply(ip("::ffff:203.0.113.77")).unwrap(),
        ha,
        "canonical first"
    );
    assert!(!ha.contains("203"), "{ha}");
    assert!(ha.len() <= 64);
    let hex = ha.strip_prefix("hmac:").unwrap();
    assert_eq!(hex.len(), 32);
    assert!(hex.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')));
    let v6 = a.apply(ip("2001:db8::1")).unwrap();
    assert!(v6.starts_with("hmac:") && v6.len() == 37 && !v6.contains("db8"));
}

#[test]
fn keyed_hash_matches_hmac_sha256_of_the_text() {
    // HMAC-SHA256(key = 16 x 0x0b, "127.0.0.1"), first 16 bytes, computed
    // independently (Python: hmac.new(b"\x0b"*16, b"127.0.0.1", "sha256")).
    let policy = IpPolicy::keyed_hash([0x0b; 16]).unwrap();
    let got = policy.apply(ip("127.0.0.1")).unwrap();
    assert_eq!(got, EXPECTED_HMAC_127);
}

const EXPECTED_HMAC_127: &str = "hmac:88a75a2dc039d813defb413dbe12d044";

#[test]
fn keyed_hash_key_stays_secret() {
    let secret = "do-not-print-this-secret-key";
    let policy = IpPolicy::keyed_hash(secret).unwrap();
    let debug = format!("{policy:?}");
    assert!(!debug.contains(secret), "{debug}");
    assert!(debug.contains("redacted"), "{debug}");
    let err = HashKey::new("short").unwrap_err();
    assert!(err.to_string().contains("too short"), "{err}");
    assert!(IpPolicy::keyed_hash([0u8; HashKey::MIN_LEN - 1]).is_err());
    assert!(HashKey::new([0u8; HashKey::MIN_LEN]).is_ok());
}

#[test]
fn none_policy_stores_nothing() {
    assert_eq!(IpPolicy::None.apply(ip("203.0.113.77")), None);
    assert_eq!(IpPolicy::None.apply(IpAddr::V6(Ipv6Addr::LOCALHOST)), None);
}

#[test]
fn user_agent_is_cleaned() {
    let p = UserAgentPolicy::default();
    assert_eq!(p.limit(), 256);
    assert!(p.captures());
    assert_eq!(
        p.apply("  Mozilla/5.0 (X11)  ").unwrap(),
        "Mozilla/5.0 (X11)"
    );
    assert_eq!(p.apply("a\u{0}b\u{7f}c\u{1b}[31md").unwrap(), "abc[31md");
    assert_eq!(p.apply("a\tb\r\nc").unwrap(), "a b  c");
    assert_eq!(p.apply("x\u{85}y\u{9f}z").unwrap(), "xyz", "C1 controls");
    assert_eq!(
        p.apply("evil\u{202e}gpj.exe").unwrap(),
        "evilgpj.exe",
        "bidi override"
    );
    assert_eq!(p.apply("\u{feff}ua").unwrap(), "ua");
    assert_eq!(
        p.apply("a\u{ad}b\u{200b}c\u{2028}d\u{e0041}e").unwrap(),
        "abcde",
        "format characters and separators"
    );
    assert_eq!(p.apply("\r\n\t \u{0}"), None, "nothing printable left");
    assert_eq!(p.apply(""), None);
    assert_eq!(
        p.apply("\u{3000}ua\u{a0}").unwrap(),
        "ua",
        "unicode whitespace trimmed"
    );
}

#[test]
fn user_agent_is_truncated_at_a_char_boundary() {
    // "é" is 2 bytes, "😀" is 4.
    assert_eq!(UserAgentPolicy::max_len(3).apply("aéé").unwrap(), "aé");
    assert_eq!(UserAgentPolicy::max_len(4).apply("aéé").unwrap(), "aé");
    assert_eq!(UserAgentPolicy::max_len(5).apply("aéé").unwrap(), "aéé");
    assert_eq!(UserAgentPolicy::max_len(3).apply("😀x"), None);
    assert_eq!(UserAgentPolicy::max_len(4).apply("😀x").unwrap(), "😀");
    assert_eq!(UserAgentPolicy::max_len(0).apply("abc"), None);
    // A cut that ends on a space is trimmed again.
    assert_eq!(
        UserAgentPolicy::max_len(5).apply("abcd efgh").unwrap(),
        "abcd"
    );
    let long = "x".repeat(10_000);
    assert_eq!(UserAgentPolicy::default().apply(&long).unwrap().len(), 256);
    // Control characters do not count towards the limit.
    assert_eq!(
        UserAgentPolicy::max_len(3)
            .apply("\u{1}a\u{1}b\u{1}c\u{1}d")
            .unwrap(),
        "abc"
    );
}

#[test]
fn user_agent_capture_can_be_disabled() {
    let p = UserAgentPolicy::disabled();
    assert!(!p.captures());
    assert_eq!(p.apply("Mozilla/5.0"), None);
}

// -------------------------------------------------------------- properties

fn any_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<Ipv4Addr>().prop_map(IpAddr::V4),
        any::<Ipv6Addr>().prop_map(IpAddr::V6),
        any::<Ipv4Addr>().prop_map(|v4| IpAddr::V6(v4.to_ipv6_mapped())),
        // Trusted peers, so that the header is read.
        (0u32..=0x00ff_ffff).prop_map(|low| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | low))),
    ]
}

fn any_kind() -> impl Strategy<Value = Kind> {
    prop_oneof![Just(Xff), Just(Fwd), Just(Cf), Just(NoHeader), Just(Xff3)]
}

/// Bytes biased towards header syntax, so that parsers get past the first
/// character.
fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        any::<u8>().prop_map(|b| vec![b]),
        Just(b",".to_vec()),
        Just(b";".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"\\".to_vec()),
        Just(b" ".to_vec()),
        Just(b"for=".to_vec()),
        Just(b"[".to_vec()),
        Just(b"]:".to_vec()),
        Just(b"10.0.0.2".to_vec()),
        Just(b"203.0.113.7".to_vec()),
        Just(b"2001:db8::1".to_vec()),
        Just(b"::ffff:".to_vec()),
        Just(b"%eth0".to_vec()),
        Just(b"unknown".to_vec()),
        Just(b"_obf".to_vec()),
    ];
    prop::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
}

#[derive(Clone, Debug)]
enum Hop {
    Trusted(u32),
    Untrusted(Ipv4Addr),
    Garbage,
    Empty,
}

fn hop() -> impl Strategy<Value = Hop> {
    prop_oneof![
        3 => (0u32..=0x00ff_ffff).prop_map(Hop::Trusted),
        2 => any::<Ipv4Addr>()
            .prop_filter("untrusted, specified", |ip| {
                !ip.is_unspecified() && ip.octets()[0] != 10 && *ip != Ipv4Addr::new(192, 168, 0, 1)
            })
            .prop_map(Hop::Untrusted),
        1 => Just(Hop::Garbage),
        1 => Just(Hop::Empty),
    ]
}

impl Hop {
    fn ip(&self) -> Option<IpAddr> {
        match self {
            Hop::Trusted(low) => Some(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | low))),
            Hop::Untrusted(ip) => Some(IpAddr::V4(*ip)),
            Hop::Garbage | Hop::Empty => None,
        }
    }

    /// The entry as X-Forwarded-For (`fwd == false`) or Forwarded writes it,
    /// in one of several spellings.
    fn render(&self, style: u8, fwd: bool) -> String {
        let node = match (self.ip(), self) {
            (_, Hop::Empty) => return String::new(),
            (None, _) => {
                return if fwd {
                    "for=un,known\"".into()
                } else {
                    "not-an-ip".into()
                };
            }
            (Some(IpAddr::V4(v4)), _) => match style % 4 {
                0 => v4.to_string(),
                1 => format!("{v4}:{}", 1000 + u32::from(style)),
                2 => format!("[{}]", v4.to_ipv6_mapped()),
                _ => format!("[{}]:443", v4.to_ipv6_mapped()),
            },
            (Some(IpAddr::V6(v6)), _) => format!("[{v6}]"),
        };
        if fwd {
            format!("for=\"{node}\";proto=https")
        } else {
            format!(" {node} ")
        }
    }
}

/// What the rules say for a chain of hops, computed without parsing.
fn model(hops: &[Vec<Hop>], max_hops: usize, peer: IpAddr) -> (Option<IpAddr>, IpSource) {
    let mut exhausted = (Some(peer), Peer);
    let mut budget = max_hops;
    for hop in hops.iter().rev().flat_map(|line| line.iter().rev()) {
        if budget == 0 {
            return (None, Unresolved);
        }
        budget -= 1;
        match hop {
            Hop::Empty => {}
            Hop::Trusted(_) => exhausted = (None, AllTrusted),
            Hop::Untrusted(_) => return (hop.ip(), Header),
            Hop::Garbage => return (None, Unresolved),
        }
    }
    exhausted
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn resolver_never_panics(
        kind in any_kind(),
        peer in any_ip(),
        lines in prop::collection::vec(header_bytes(), 0..4),
    ) {
        let r = kind.config().resolve_ip(peer, &lines);
        prop_assert_eq!(r.ip.is_none(), unresolved(r.source));
        if r.source == Header {
            let got = r.ip.unwrap();
            prop_assert!(!got.is_unspecified());
            prop_assert_eq!(got, got.to_canonical());
        }
    }

    #[test]
    fn resolver_never_panics_on_raw_bytes(
        kind in any_kind(),
        peer in any_ip(),
        lines in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..4),
    ) {
        let r = kind.config().resolve_ip(peer, &lines);
        prop_assert_eq!(r.ip.is_none(), unresolved(r.source));
    }

    #[test]
    fn untrusted_peer_is_always_the_client(
        kind in any_kind(),
        peer in any_ip(),
        lines in prop::collection::vec(header_bytes(), 0..4),
    ) {
        let config = kind.config();
        prop_assume!(!config.is_trusted(peer));
        let r = config.resolve_ip(peer, &lines);
        if peer.to_canonical().is_unspecified() {
            // 0.0.0.0 and :: name no host.
            prop_assert_eq!((r.ip, r.source), (None, Unresolved));
        } else {
            prop_assert_eq!((r.ip, r.source), (Some(peer.to_canonical()), Peer));
        }
    }

    #[test]
    fn nothing_left_of_the_client_matters(
        fwd in any::<bool>(),
        prefix in header_bytes(),
        separate_line in any::<bool>(),
        client in any::<Ipv4Addr>().prop_filter("untrusted", |ip| {
            !ip.is_unspecified() && ip.octets()[0] != 10 && *ip != Ipv4Addr::new(192, 168, 0, 1)
        }),
        proxies in prop::collection::vec(0u32..=0x00ff_ffff, 0..5),
    ) {
        let kind = if fwd { Fwd } else { Xff };
        let mut suffix = Hop::Untrusted(client).render(0, fwd);
        for low in &proxies {
            suffix.push(',');
            suffix.push_str(&Hop::Trusted(*low).render(1, fwd));
        }
        let lines: Vec<Vec<u8>> = if separate_line {
            vec![prefix, suffix.into_bytes()]
        } else {
            let mut line = prefix;
            line.push(b',');
            line.extend_from_slice(suffix.as_bytes());
            vec![line]
        };
        let r = kind.config().resolve_ip(ip(P), &lines);
        prop_assert_eq!((r.ip, r.source), (Some(IpAddr::V4(client)), Header));
    }

    #[test]
    fn resolver_agrees_with_the_model(
        fwd in any::<bool>(),
        hops in prop::collection::vec(prop::collection::vec((hop(), any::<u8>()), 0..6), 0..4),
        max_hops in 0usize..12,
    ) {
        let kind = if fwd { Fwd } else { Xff };
        let config = kind.config().max_hops(max_hops);
        let lines: Vec<String> = hops
            .iter()
            .map(|line| {
                line.iter()
                    .map(|(hop, style)| hop.render(*style, fwd))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect();
        let hops: Vec<Vec<Hop>> = hops
            .into_iter()
            .map(|line| {
                // An empty line is one empty element.
                if line.is_empty() {
                    vec![Hop::Empty]
                } else {
                    line.into_iter().map(|(hop, _)| hop).collect()
                }
            })
            .collect();
        let r = config.resolve_ip(ip(P), &lines);
        prop_assert_eq!((r.ip, r.source), model(&hops, max_hops, ip(P)), "{:?}", lines);
    }
}
