//! The keyed hash chain of an audit trail: what each row's `mac` covers, in a canonical
//! encoding.
//!
//! Each row's `mac` is HMAC-SHA256, under the tracker's chain key, of the previous row's
//! `mac` and the row's content: the user (as a keyed digest, so that a trail moved to the
//! archive under a pseudonym still verifies), `seq`, `action`, `sign_in_count`, the three
//! times, the details (`method`, `reason`, `session_seq`, `session_digest`, `device`), and
//! `client_digest`, a keyed digest of the row's IPs and user agent taken when the
//! row was written. Anonymising or removing the IPs and user agent later leaves
//! `client_digest`, and so the chain, as it was.
//!
//! Every field is written as a tag byte (0: NULL, 1: a value), a 4-byte big-endian length and
//! its bytes; times as their microseconds since 1970 in decimal. Nothing in one field can be
//! read as part of another.

use chrono::{DateTime, Utc};

use crate::client::HashKey;

/// The version of the encoding, first in every MAC input.
const DOMAIN: &[u8] = b"trackable chain v1";

/// The columns of a chained row that its `mac` covers or is: what verification reads, and
/// what the archive keeps.
pub(crate) const LINK_COLUMNS: [&str; 13] = [
    "seq",
    "action",
    "sign_in_count",
    "current_sign_in_at",
    "last_sign_in_at",
    "inserted_at",
    "client_digest",
    "mac",
    "method",
    "reason",
    "session_seq",
    "session_digest",
    "device",
];

/// What a row's `mac` covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Link<'a> {
    /// [`subject`] of the user.
    pub(crate) subject: &'a str,
    pub(crate) seq: i64,
    pub(crate) action: &'a str,
    pub(crate) sign_in_count: i64,
    pub(crate) current_sign_in_at: Option<DateTime<Utc>>,
    pub(crate) last_sign_in_at: Option<DateTime<Utc>>,
    pub(crate) inserted_at: DateTime<Utc>,
    pub(crate) client_digest: Option<&'a str>,
    pub(crate) method: Option<&'a str>,
    pub(crate) reason: Option<&'a str>,
    pub(crate) session_seq: Option<i64>,
    pub(crate) session_digest: Option<&'a str>,
    pub(crate) device: Option<&'a str>,
}

struct Encoder(Vec<u8>);

impl Encoder {
    fn field(&mut self, value: Option<&[u8]>) -> &mut Self {
        match value {
            None => self.0.push(0),
            Some(bytes) => {
                self.0.push(1);
                let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
                self.0.extend_from_slice(&len.to_be_bytes());
                self.0.extend_from_slice(bytes);
            }
        }
        self
    }

    fn text(&mut self, value: Option<&str>) -> &mut Self {
        self.field(value.map(str::as_bytes))
    }

    fn number(&mut self, value: i64) -> &mut Self {
        self.text(Some(&value.to_string()))
    }

    fn time(&mut self, value: Option<DateTime<Utc>>) -> &mut Self {
        let micros = value.map(|at| at.timestamp_micros().to_string());
        self.text(micros.as_deref())
    }
}

/// The keyed digest of a user's key (its text form), which stands for the user in the chain.
pub(crate) fn subject(key: &HashKey, user_id: &str) -> String {
    let mut e = Encoder(DOMAIN.to_vec());
    e.text(Some("subject")).text(Some(user_id));
    key.mac_hex(&e.0)
}

/// The keyed digest of a row's IPs and user agent.
pub(crate) fn client_digest(
    key: &HashKey,
    remote_ip: Option<&str>,
    current_sign_in_ip: Option<&str>,
    last_sign_in_ip: Option<&str>,
    user_agent: Option<&str>,
) -> String {
    let mut e = Encoder(DOMAIN.to_vec());
    e.text(Some("client"))
        .text(remote_ip)
        .text(current_sign_in_ip)
        .text(last_sign_in_ip)
        .text(user_agent);
    key.mac_hex(&e.0)
}

/// The `mac` of a row with content `link` after a row whose `mac` is `previous` (`None` for
/// a user's first chained row, or after a purge with nothing to continue from).
pub(crate) fn mac(key: &HashKey, link: &Link<'_>, previous: Option<&str>) -> String {
    let mut e = Encoder(DOMAIN.to_vec());
    e.text(Some("row"))
        .text(previous)
        .text(Some(link.subject))
        .number(link.seq)
        .text(Some(link.action))
        .number(link.sign_in_count)
        .time(link.current_sign_in_at)
        .time(link.last_sign_in_at)
        .time(Some(link.inserted_at))
        .text(link.client_digest)
        .text(link.method)
        .text(link.reason)
        .text(link.session_seq.map(|seq| seq.to_string()).as_deref())
        .text(link.session_digest)
        .text(link.device);
    key.mac_hex(&e.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(seq: i64) -> Link<'static> {
        Link {
            subject: "s",
            seq,
            action: "login",
            sign_in_count: 1,
            current_sign_in_at: None,
            last_sign_in_at: None,
            inserted_at: DateTime::from_timestamp_micros(1).unwrap_or_default(),
            client_digest: Some("c"),
            method: None,
            reason: None,
            session_seq: None,
            session_digest: None,
            device: None,
        }
    }

    #[test]
    fn every_field_and_the_previous_mac_change_the_mac() {
        let key = HashKey::new([1; 32]).unwrap();
        let base = mac(&key, &link(1), None);
        assert_eq!(base.len(), 64);
        assert_ne!(base, mac(&key, &link(2), None));
        assert_ne!(base, mac(&key, &link(1), Some("")));
        let mut other = link(1);
        other.client_digest = None;
        assert_ne!(base, mac(&key, &other, None));
        let other_key = HashKey::new([2; 32]).unwrap();
        assert_ne!(base, mac(&other_key, &link(1), None));
    }

    #[test]
    fn fields_cannot_run_into_each_other() {
        let key = HashKey::new([1; 32]).unwrap();
        let a = client_digest(&key, Some("1"), Some("23"), None, None);
        let b = client_digest(&key, Some("12"), Some("3"), None, None);
        assert_ne!(a, b);
    }
}
