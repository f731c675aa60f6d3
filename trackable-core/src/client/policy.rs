use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use caseless::Caseless;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use unicode_normalization::UnicodeNormalization;

use super::config::ConfigError;

/// What is kept of a client IP address before it is stored or logged.
///
/// Every policy first makes the address canonical: IPv4-mapped IPv6
/// addresses become IPv4, and IPv6 is written as RFC 5952 says
/// (`2001:db8::1`).
///
/// ```
/// use trackable_core::IpPolicy;
///
/// let ip = "203.0.113.77".parse().unwrap();
/// assert_eq!(IpPolicy::Full.apply(ip).as_deref(), Some("203.0.113.77"));
/// assert_eq!(IpPolicy::truncate().apply(ip).as_deref(), Some("203.0.113.0"));
/// assert_eq!(IpPolicy::None.apply(ip), None);
///
/// let hashed = IpPolicy::keyed_hash(b"a secret of at least 16 bytes")
///     .unwrap()
///     .apply(ip)
///     .unwrap();
/// assert!(hashed.starts_with("hmac:") && hashed.len() == 37);
/// ```
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub enum IpPolicy {
    /// The whole address (the default).
    #[default]
    Full,
    /// The network address of the given prefix: `203.0.113.77` with
    /// `ipv4_prefix: 24` is stored as `203.0.113.0`. Prefixes above 32 (IPv4)
    /// or 128 (IPv6) keep the whole address. See [`IpPolicy::truncate`] for
    /// the usual /24 and /48.
    ///
    /// IPv6 addresses that carry a public IPv4 address are cut by the IPv4
    /// rule, so that the IPv4 address is never kept in more detail than
    /// `ipv4_prefix` allows, whatever its form: the IPv6 prefix and the first
    /// `ipv4_prefix` bits of the IPv4 address are kept and every bit after them
    /// is zeroed. These are 6to4 (`2002::/16`, the IPv4 address in bits
    /// 16..48: `2002:cb00:7107::1` becomes `2002:cb00:7100::` under /24),
    /// Teredo (`2001::/32`, the server's IPv4 address in bits 32..64; the
    /// client's, obfuscated in the last 32 bits, is zeroed) and the NAT64
    /// well-known prefix (`64:ff9b::/96`, the IPv4 address in the last 32
    /// bits). When `ipv4_prefix` keeps the whole IPv4 address, the bits after
    /// it follow `ipv6_prefix`. IPv4-mapped addresses are IPv4 already.
    Truncate {
        /// Leading bits kept of an IPv4 address.
        ipv4_prefix: u8,
        /// Leading bits kept of an IPv6 address.
        ipv6_prefix: u8,
    },
    /// A keyed hash (HMAC-SHA256) of the canonical address text, stored as
    /// `hmac:` and 32 lowercase hex digits (the first 128 bits): 37
    /// characters. The same address gives the same value under one key, so
    /// "is this IP new for the user" still works; without the key the
    /// address cannot be found by hashing all 2³² IPv4 addresses.
    KeyedHash {
        /// The secret key.
        key: HashKey,
    },
    /// No address at all.
    None,
}

impl IpPolicy {
    /// IPv4 truncated to /24 and IPv6 to /48.
    pub const fn truncate() -> Self {
        Self::truncate_to(24, 48)
    }

    /// IPv4 truncated to `ipv4_prefix` bits and IPv6 to `ipv6_prefix` bits.
    pub const fn truncate_to(ipv4_prefix: u8, ipv6_prefix: u8) -> Self {
        IpPolicy::Truncate {
            ipv4_prefix,
            ipv6_prefix,
        }
    }

    /// A keyed hash with the given secret (see [`HashKey::new`]).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] if the key is shorter than [`HashKey::MIN_LEN`] bytes.
    pub fn keyed_hash(key: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        Ok(IpPolicy::KeyedHash {
            key: HashKey::new(key)?,
        })
    }

    /// The text to store for `ip`, or `None` under [`IpPolicy::None`].
    #[must_use]
    pub fn apply(&self, ip: IpAddr) -> Option<String> {
        let ip = ip.to_canonical();
        match self {
            IpPolicy::Full => Some(ip.to_string()),
            IpPolicy::Truncate {
                ipv4_prefix,
                ipv6_prefix,
            } => Some(truncate(ip, *ipv4_prefix, *ipv6_prefix).to_string()),
            IpPolicy::KeyedHash { key } => Some(key.hash(ip)),
            IpPolicy::None => None,
        }
    }
}

fn truncate(ip: IpAddr, ipv4_prefix: u8, ipv6_prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask32(ipv4_prefix))),
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let kept = match embedded_ipv4(bits) {
                Some(start) if ipv4_prefix < 32 => start + u32::from(ipv4_prefix),
                Some(start) => u32::from(ipv6_prefix).max(start + 32),
                None => u32::from(ipv6_prefix),
            };
            IpAddr::V6(Ipv6Addr::from(bits & mask128(kept)))
        }
    }
}

/// Where the public IPv4 address starts in an IPv6 address of a transition mechanism that
/// keeps it right after a fixed prefix.
fn embedded_ipv4(bits: u128) -> Option<u32> {
    /// (prefix, its length): the IPv4 address follows the prefix.
    const PREFIXES: [(u128, u32); 3] = [
        // 6to4 (RFC 3056): 2002:V4::/48.
        (0x2002 << 112, 16),
        // Teredo (RFC 4380): 2001:0:SERVER:flags:port:CLIENT, the client's address obfuscated.
        (0x2001_0000 << 96, 32),
        // NAT64 well-known prefix (RFC 6052): 64:ff9b::V4.
        (0x0064_ff9b << 96, 96),
    ];
    PREFIXES
        .into_iter()
        .find(|&(prefix, len)| bits & mask128(len) == prefix)
        .map(|(_, len)| len)
}

/// The first `prefix` bits set (all of them above 32).
fn mask32(prefix: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0)
}

/// The first `prefix` bits set (all of them above 128).
fn mask128(prefix: u32) -> u128 {
    u128::MAX.checked_shl(128 - prefix.min(128)).unwrap_or(0)
}

/// The secret of [`IpPolicy::KeyedHash`]. Cheap to clone; its [`Debug`]
/// output never shows the key.
///
/// Changing the key changes every hash: keep it as long as the stored
/// values must be compared.
#[derive(Clone)]
pub struct HashKey(Arc<Hmac<Sha256>>);

impl HashKey {
    /// Shortest key accepted, in bytes.
    pub const MIN_LEN: usize = 16;

    /// A key from secret bytes, such as 32 random bytes from the
    /// application's secret store.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] if the key is shorter than [`MIN_LEN`](Self::MIN_LEN)
    /// bytes: a short key could be found by trying them all.
    pub fn new(key: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        let key = key.as_ref();
        match Hmac::<Sha256>::new_from_slice(key) {
            Ok(mac) if key.len() >= Self::MIN_LEN => Ok(Self(Arc::new(mac))),
            _ => Err(ConfigError::short_hash_key(key.len(), Self::MIN_LEN)),
        }
    }

    fn hash(&self, ip: IpAddr) -> String {
        self.hash_parts(&[ip.to_string().as_bytes()])
    }

    /// The keyed hash of a sign-in identifier (an email or a user name), normalised first, in
    /// the format of IP hashes. A domain prefix keeps it from ever equalling the hash of an IP
    /// under the same key.
    pub(crate) fn hash_identifier(
        &self,
        identifier: &str,
        normalization: IdentifierNormalization,
    ) -> String {
        let identifier = normalization.apply(identifier);
        self.hash_parts(&[b"trackable identifier\0", identifier.as_bytes()])
    }

    /// The keyed hash of an application's session id, in the format of IP hashes, in a
    /// domain of its own.
    pub(crate) fn hash_session(&self, session_id: &str) -> String {
        self.hash_parts(&[b"trackable session\0", session_id.as_bytes()])
    }

    /// HMAC-SHA256 of `message` under the key, as 64 hex digits.
    pub(crate) fn mac_hex(&self, message: &[u8]) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut mac = Hmac::clone(&self.0);
        mac.update(message);
        let digest = mac.finalize().into_bytes();
        let mut out = String::with_capacity(64);
        for &byte in digest.iter() {
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
        out
    }

    fn hash_parts(&self, parts: &[&[u8]]) -> String {
        const PREFIX: &str = "hmac:";
        const HEX: &[u8; 16] = b"0123456789abcdef";
        // The keyed state is computed once, in `new`.
        let mut mac = Hmac::clone(&self.0);
        for part in parts {
            mac.update(part);
        }
        let digest = mac.finalize().into_bytes();
        let mut out = String::with_capacity(PREFIX.len() + 32);
        out.push_str(PREFIX);
        for &byte in &digest[..16] {
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
        out
    }
}

impl fmt::Debug for HashKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HashKey(<redacted>)")
    }
}

/// How a sign-in identifier (an email or a user name) is normalised before it is hashed
/// ([`Tracker::with_identifier_key`](crate::Tracker::with_identifier_key)), so that attempts on
/// one account spelled differently still share one hash.
///
/// The default, [`CaseFold`](Self::CaseFold), trims and folds case, so `"  Alice@Example.com "`
/// and `"alice@example.com"` hash the same. Changing the normalisation changes the hash of
/// every identifier that it treats differently: keep it as long as stored hashes are compared.
///
/// ```
/// use trackable_core::IdentifierNormalization;
///
/// let fold = IdentifierNormalization::default();
/// assert_eq!(fold.apply("  Alice@Example.com "), "alice@example.com");
/// assert_eq!(fold.apply("Stra\u{df}e"), fold.apply("STRASSE"));
/// assert_eq!(IdentifierNormalization::Trim.apply(" Alice "), "Alice");
/// assert_eq!(IdentifierNormalization::Exact.apply(" Alice "), " Alice ");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IdentifierNormalization {
    /// Leading and trailing Unicode white space removed, then Unicode caseless matching in its
    /// canonical form (Unicode §3.13): canonical decomposition, full case folding (`"ß"` and
    /// `"SS"` alike become `"ss"`), then canonical composition, so that an accent typed as one
    /// character or as a letter and a combining mark is the same. The default.
    #[default]
    CaseFold,
    /// Leading and trailing Unicode white space removed; case kept.
    Trim,
    /// The identifier exactly as given.
    Exact,
}

impl IdentifierNormalization {
    /// The normalised form of `identifier`, borrowed when nothing changes.
    #[must_use]
    pub fn apply(self, identifier: &str) -> Cow<'_, str> {
        match self {
            IdentifierNormalization::CaseFold => {
                let trimmed = identifier.trim();
                // Most identifiers are ASCII; lowercase ASCII is already its own fold.
                if trimmed
                    .bytes()
                    .all(|b| b.is_ascii() && !b.is_ascii_uppercase())
                {
                    return Cow::Borrowed(trimmed);
                }
                Cow::Owned(trimmed.nfd().default_case_fold().nfc().collect())
            }
            IdentifierNormalization::Trim => Cow::Borrowed(identifier.trim()),
            IdentifierNormalization::Exact => Cow::Borrowed(identifier),
        }
    }
}

/// Whether the user agent is stored, and how much of it.
///
/// The stored value has its control characters removed (tabs and line breaks
/// become spaces), as well as every Unicode format character (category Cf:
/// bidirectional-text controls, zero-width characters, the soft hyphen, tag
/// characters, ...) and the line and paragraph separators U+2028 and U+2029,
/// which can hide text or make a log line read differently from what it
/// holds; it is trimmed and then cut at a character boundary to at most
/// `max_len` bytes. A value left empty is not stored.
///
/// ```
/// use trackable_core::UserAgentPolicy;
///
/// let policy = UserAgentPolicy::default();
/// assert_eq!(policy.apply("  curl/8.5.0\r\n").as_deref(), Some("curl/8.5.0"));
/// assert_eq!(UserAgentPolicy::max_len(4).apply("Mozilla/5.0").as_deref(), Some("Mozi"));
/// assert_eq!(UserAgentPolicy::disabled().apply("curl/8.5.0"), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UserAgentPolicy {
    capture: bool,
    max_len: usize,
}

impl Default for UserAgentPolicy {
    fn default() -> Self {
        Self::new()
    }
}

impl UserAgentPolicy {
    /// Default length limit, in bytes.
    pub const DEFAULT_MAX_LEN: usize = 256;

    /// Captures up to [`DEFAULT_MAX_LEN`](Self::DEFAULT_MAX_LEN) bytes.
    pub const fn new() -> Self {
        Self::max_len(Self::DEFAULT_MAX_LEN)
    }

    /// Never stores a user agent.
    pub const fn disabled() -> Self {
        Self {
            capture: false,
            max_len: 0,
        }
    }

    /// Captures up to `max_len` bytes.
    pub const fn max_len(max_len: usize) -> Self {
        Self {
            capture: true,
            max_len,
        }
    }

    /// Whether user agents are stored at all.
    pub const fn captures(&self) -> bool {
        self.capture
    }

    /// The length limit, in bytes.
    pub const fn limit(&self) -> usize {
        self.max_len
    }

    /// The text to store for `raw`, or `None` when capture is off or nothing
    /// printable is left.
    #[must_use]
    pub fn apply(&self, raw: &str) -> Option<String> {
        if !self.capture {
            return None;
        }
        sanitize_user_agent(raw.as_bytes(), self.max_len)
    }
}

/// Cleans `raw` as [`UserAgentPolicy`] describes, reading no further than
/// needed to fill `max_len` bytes. Invalid UTF-8 becomes U+FFFD.
pub(crate) fn sanitize_user_agent(raw: &[u8], max_len: usize) -> Option<String> {
    let mut out = String::new();
    'chunks: for chunk in raw.utf8_chunks() {
        let replacement = (!chunk.invalid().is_empty()).then_some(char::REPLACEMENT_CHARACTER);
        for c in chunk.valid().chars().chain(replacement) {
            let c = match c {
                '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' => ' ',
                c if c.is_control() || is_invisible(c) => continue,
                c => c,
            };
            if out.is_empty() && c.is_whitespace() {
                continue;
            }
            if out.len() + c.len_utf8() > max_len {
                break 'chunks;
            }
            if out.capacity() == 0 {
                out.reserve_exact(max_len.min(raw.len()));
            }
            out.push(c);
        }
    }
    out.truncate(out.trim_end().len());
    (!out.is_empty()).then_some(out)
}

/// Unicode format characters (general category Cf, Unicode 16.0) and the line and paragraph
/// separators (Zl, Zp), as sorted, disjoint, inclusive ranges.
const INVISIBLE: &[(char, char)] = &[
    ('\u{ad}', '\u{ad}'),
    ('\u{600}', '\u{605}'),
    ('\u{61c}', '\u{61c}'),
    ('\u{6dd}', '\u{6dd}'),
    ('\u{70f}', '\u{70f}'),
    ('\u{890}', '\u{891}'),
    ('\u{8e2}', '\u{8e2}'),
    ('\u{180e}', '\u{180e}'),
    ('\u{200b}', '\u{200f}'),
    ('\u{2028}', '\u{2029}'),
    ('\u{202a}', '\u{202e}'),
    ('\u{2060}', '\u{2064}'),
    ('\u{2066}', '\u{206f}'),
    ('\u{feff}', '\u{feff}'),
    ('\u{fff9}', '\u{fffb}'),
    ('\u{110bd}', '\u{110bd}'),
    ('\u{110cd}', '\u{110cd}'),
    ('\u{13430}', '\u{1343f}'),
    ('\u{1bca0}', '\u{1bca3}'),
    ('\u{1d173}', '\u{1d17a}'),
    ('\u{e0001}', '\u{e0001}'),
    ('\u{e0020}', '\u{e007f}'),
];

fn is_invisible(c: char) -> bool {
    INVISIBLE
        .binary_search_by(|&(first, last)| {
            if last < c {
                std::cmp::Ordering::Less
            } else if first > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn truncated(policy: &IpPolicy, ip: &str) -> String {
        policy.apply(ip.parse().unwrap()).unwrap()
    }

    #[test]
    fn embedded_ipv4_is_truncated_as_ipv4() {
        let t = IpPolicy::truncate();
        let cases = [
            // 6to4 of 203.0.113.7, from the bug report.
            ("2002:cb00:7107::1", "2002:cb00:7100::"),
            ("2002:cb00:7107:abcd:1:2:3:4", "2002:cb00:7100::"),
            // Teredo: server 65.54.227.120, client obfuscated in the last 32 bits.
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "2001:0:4136:e300::"),
            // NAT64 well-known prefix.
            ("64:ff9b::203.0.113.7", "64:ff9b::cb00:7100"),
            ("64:ff9b::cb00:71ff", "64:ff9b::cb00:7100"),
            // Mapped addresses are IPv4.
            ("::ffff:203.0.113.7", "203.0.113.0"),
            // Look-alikes are plain IPv6 (/48).
            ("2001:db8:4136:e378::1", "2001:db8:4136::"),
            ("2003:cb00:7107::1", "2003:cb00:7107::"),
            ("64:ff9b:1:cb00:7107::1", "64:ff9b:1::"),
            ("64:ff9b:0:0:1::cb00:7107", "64:ff9b::"),
        ];
        for (input, want) in cases {
            assert_eq!(truncated(&t, input), want, "{input}");
        }
    }

    #[test]
    fn embedded_ipv4_follows_custom_prefixes() {
        let cases = [
            ((16, 128), "2002:cb00:7107::1", "2002:cb00::"),
            ((0, 128), "2002:cb00:7107::1", "2002::"),
            ((0, 128), "64:ff9b::cb00:7107", "64:ff9b::"),
            (
                (8, 128),
                "2001:0:4136:e378:8000:63bf:3fff:fdd2",
                "2001:0:4100::",
            ),
            // The whole IPv4 address kept: the rest follows the IPv6 prefix, but never cuts
            // into the IPv4 address.
            ((32, 128), "2002:cb00:7107::1", "2002:cb00:7107::1"),
            (
                (32, 64),
                "2002:cb00:7107:abcd:1::1",
                "2002:cb00:7107:abcd::",
            ),
            ((32, 16), "2002:cb00:7107::1", "2002:cb00:7107::"),
            (
                (32, 48),
                "2001:0:4136:e378:8000:63bf:3fff:fdd2",
                "2001:0:4136:e378::",
            ),
            ((40, 0), "64:ff9b::cb00:7107", "64:ff9b::cb00:7107"),
        ];
        for ((v4, v6), input, want) in cases {
            let policy = IpPolicy::truncate_to(v4, v6);
            assert_eq!(truncated(&policy, input), want, "{v4}/{v6} {input}");
        }
    }

    #[test]
    fn invisible_table_is_sorted_and_disjoint() {
        for pair in INVISIBLE.windows(2) {
            assert!(pair[0].0 <= pair[0].1 && pair[0].1 < pair[1].0, "{pair:?}");
        }
    }

    #[test]
    fn format_characters_and_separators_are_removed() {
        let policy = UserAgentPolicy::default();
        for &(first, last) in INVISIBLE {
            for c in [first, last] {
                let raw = format!("a{c}b{c}");
                assert_eq!(
                    policy.apply(&raw).as_deref(),
                    Some("ab"),
                    "{:04X}",
                    u32::from(c)
                );
            }
        }
        for c in [
            '\u{ad}',
            '\u{200b}',
            '\u{2028}',
            '\u{2029}',
            '\u{2064}',
            '\u{e0041}',
        ] {
            assert!(is_invisible(c), "{:04X}", u32::from(c));
        }
        assert_eq!(
            policy
                .apply("Mozilla\u{2028}/5.0\u{200d} (X11)\u{e0041}")
                .as_deref(),
            Some("Mozilla/5.0 (X11)")
        );
        // Neighbours of the ranges, and visible text, are kept.
        for c in [
            '\u{ac}',
            '\u{ae}',
            '\u{606}',
            '\u{200a}',
            '\u{2027}',
            '\u{2030}',
            '\u{2065}',
            '\u{e0080}',
            'é',
            '😀',
        ] {
            assert!(!is_invisible(c), "{:04X}", u32::from(c));
        }
        assert_eq!(policy.apply("a\u{200a}b").as_deref(), Some("a\u{200a}b"));
        assert_eq!(
            sanitize_user_agent("\u{feff}\u{2029}ua\u{2060}".as_bytes(), 16).as_deref(),
            Some("ua")
        );
    }

    #[test]
    fn case_fold_trims_and_folds() {
        let fold = IdentifierNormalization::default();
        assert_eq!(fold, IdentifierNormalization::CaseFold);
        assert_eq!(fold.apply("  Alice@Example.com \n"), "alice@example.com");
        assert_eq!(fold.apply("\u{3000}bob\u{a0}"), "bob");
        // Full folding, not lowercasing: ß and ẞ fold to "ss".
        assert_eq!(fold.apply("Straße"), "strasse");
        assert_eq!(fold.apply("STRAẞE"), "strasse");
        assert_eq!(fold.apply("ΌΣΟΣ"), fold.apply("όσος"));
        // Composed and decomposed accents are one identifier.
        assert_eq!(fold.apply("José"), fold.apply("JOSE\u{301}"));
        assert_eq!(fold.apply("JOSE\u{301}"), "jos\u{e9}");
        assert!(matches!(fold.apply(" alice "), Cow::Borrowed("alice")));
    }

    #[test]
    fn trim_and_exact_keep_case() {
        assert_eq!(IdentifierNormalization::Trim.apply("  Alice "), "Alice");
        assert_eq!(IdentifierNormalization::Exact.apply("  Alice "), "  Alice ");
    }

    #[test]
    fn identifier_hashes_follow_the_normalization() {
        let key = HashKey::new([7u8; 32]).unwrap();
        let hash = |id: &str, n| key.hash_identifier(id, n);
        use IdentifierNormalization::{CaseFold, Exact, Trim};
        assert_eq!(
            hash("  Alice@Example.com ", CaseFold),
            hash("alice@example.com", CaseFold)
        );
        assert_eq!(
            hash("alice@example.com", CaseFold),
            hash("alice@example.com", Exact)
        );
        assert_eq!(hash(" Alice ", Trim), hash("Alice", Exact));
        assert_ne!(hash("Alice", Trim), hash("alice", Trim));
        assert_ne!(hash(" alice", Exact), hash("alice", Exact));
        assert_ne!(hash("alice", CaseFold), hash("bob", CaseFold));
        assert!(hash("alice", CaseFold).starts_with("hmac:"));
    }
}
