use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

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
        IpAddr::V4(v4) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(ipv4_prefix.min(32)))
                .unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(ipv6_prefix.min(128)))
                .unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
    }
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

    /// The keyed hash of a sign-in identifier (an email or a user name), in the format of IP
    /// hashes. A domain prefix keeps it from ever equalling the hash of an IP under the same
    /// key.
    pub(crate) fn hash_identifier(&self, identifier: &str) -> String {
        self.hash_parts(&[b"trackable identifier\0", identifier.as_bytes()])
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

/// Whether the user agent is stored, and how much of it.
///
/// The stored value has its control characters removed (tabs and line breaks
/// become spaces), as well as the bidirectional-text controls that can make
/// a log line read differently from what it holds; it is trimmed and then
/// cut at a character boundary to at most `max_len` bytes. A value left
/// empty is not stored.
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
                c if c.is_control() || is_bidi_control(c) || c == '\u{feff}' => continue,
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

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}
