//! The `initializers.trackable` block of a Loco configuration.

use loco_rs::config::Config;
use serde::Deserialize;
use trackable_core::chrono::TimeDelta;
use trackable_core::{ClientConfig, HashKey, IpPolicy, Lockout, Tracker, UserAgentPolicy};

/// The settings of the integration, read from the `trackable` entry of the configuration's
/// `initializers:` block, where Loco keeps the settings of initializers. Every field has a
/// default, so the block may be left out; an unknown field is an error, so a typo does not
/// quietly run on defaults.
///
/// ```yaml
/// initializers:
///   trackable:
///     ip_policy: truncate          # full (default) | truncate | hash | none
///     # ip_key: <%= get_env(name="TRACKABLE_IP_KEY") %>        # for hash: 16 bytes or more
///     # identifier_key: <%= get_env(name="TRACKABLE_ID_KEY") %> # failed logins of unknown identifiers
///     # chain_key: <%= get_env(name="TRACKABLE_CHAIN_KEY") %>   # a tamper-evident trail
///     database_clock: true         # several app servers: one clock, the database's
///     lockout:
///       threshold: 5
///       window_secs: 900
///       cool_off_secs: 900
///     retention:
///       purge_after_days: 365
///       anonymize_ips_after_days: 90
///       anonymize_to: truncate     # truncate (default) | hash | none
///       forget_user_agents_after_days: 90
///       batch_size: 100
/// ```
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Settings {
    /// What is stored of a client IP when an event is recorded.
    pub ip_policy: IpPolicyName,
    /// The secret of `ip_policy: hash` and `anonymize_to: hash`.
    pub ip_key: Option<String>,
    /// The secret under which the identifiers of failed logins for unknown users are stored.
    pub identifier_key: Option<String>,
    /// The secret of the hash chain ([`Tracker::with_chain_key`]).
    pub chain_key: Option<String>,
    /// Times come from the database's clock ([`Tracker::with_database_clock`]).
    pub database_clock: bool,
    /// The longest user agent kept, in bytes (default 512); 0 keeps none.
    pub max_user_agent_len: Option<usize>,
    /// The lockout of sign-ins.
    pub lockout: LockoutSettings,
    /// What the retention tasks keep.
    pub retention: RetentionSettings,
}

/// An [`IpPolicy`] by name.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum IpPolicyName {
    /// The whole address.
    #[default]
    Full,
    /// IPv4 /24, IPv6 /48 ([`IpPolicy::truncate`]).
    Truncate,
    /// A keyed hash under `ip_key` ([`IpPolicy::keyed_hash`]).
    Hash,
    /// No address.
    None,
}

/// The lockout of the `initializers.trackable` block ([`Lockout::new`]).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct LockoutSettings {
    /// Failures in the window that lock (default 5).
    pub threshold: u32,
    /// How far back failures count, in seconds (default 900).
    pub window_secs: u32,
    /// How long a lock lasts, in seconds (default 900).
    pub cool_off_secs: u32,
    /// Doubles the cool-off of each lock in a row up to this many seconds
    /// ([`Lockout::with_progressive_cool_off`], the period being the window).
    pub progressive_cap_secs: Option<u32>,
    /// IPs a user signed in from before are not refused for that user's failures
    /// ([`Lockout::exempt_known_ips`]).
    pub exempt_known_ips: bool,
}

impl Default for LockoutSettings {
    fn default() -> Self {
        LockoutSettings {
            threshold: 5,
            window_secs: 900,
            cool_off_secs: 900,
            progressive_cap_secs: None,
            exempt_known_ips: false,
        }
    }
}

/// What the retention tasks keep.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct RetentionSettings {
    /// Audit rows older than this are deleted by `trackable:purge` (default 365).
    pub purge_after_days: u32,
    /// IPs older than this are rewritten by `trackable:anonymize_ips` (default 90).
    pub anonymize_ips_after_days: u32,
    /// What `trackable:anonymize_ips` rewrites them to (default `truncate`; `full` is refused).
    pub anonymize_to: IpPolicyName,
    /// User agents older than this are cleared by `trackable:anonymize_ips` (table mode).
    pub forget_user_agents_after_days: Option<u32>,
    /// Rows per batch, each its own short transaction (default 100, at most 1000).
    pub batch_size: u32,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        RetentionSettings {
            purge_after_days: 365,
            anonymize_ips_after_days: 90,
            anonymize_to: IpPolicyName::Truncate,
            forget_user_agents_after_days: None,
            batch_size: 100,
        }
    }
}

/// A setting that cannot be used, with the name of the field in the configuration.
#[derive(Debug, thiserror::Error)]
#[error("initializers.trackable.{field}: {message}")]
pub struct SettingsError {
    field: &'static str,
    message: String,
}

impl SettingsError {
    fn new(field: &'static str, message: impl ToString) -> Self {
        SettingsError {
            field,
            message: message.to_string(),
        }
    }

    /// The field of `initializers.trackable` at fault, such as `ip_key`.
    pub fn field(&self) -> &'static str {
        self.field
    }
}

impl From<SettingsError> for loco_rs::Error {
    /// `loco_rs::Error::Message` with the field and the reason.
    fn from(error: SettingsError) -> Self {
        loco_rs::Error::Message(error.to_string())
    }
}

impl Settings {
    /// The settings in `config` (the defaults when it has no `initializers.trackable`).
    ///
    /// # Errors
    ///
    /// A [`SettingsError`] naming the field when the block does not parse (an unknown field,
    /// a wrong type), or when it asks for what cannot be built (`hash` without a key, a key
    /// shorter than 16 bytes, a zero threshold).
    pub fn from_config(config: &Config) -> Result<Self, SettingsError> {
        let Some(value) = config
            .initializers
            .as_ref()
            .and_then(|i| i.get("trackable"))
        else {
            return Ok(Settings::default());
        };
        let settings: Settings =
            serde_json::from_value(value.clone()).map_err(|error| SettingsError::new("", error))?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), SettingsError> {
        self.tracker()?;
        self.anonymization_policy()?;
        if self.lockout.threshold == 0 {
            return Err(SettingsError::new("lockout.threshold", "must be 1 or more"));
        }
        if self.lockout.window_secs == 0 || self.lockout.cool_off_secs == 0 {
            return Err(SettingsError::new(
                "lockout",
                "window_secs and cool_off_secs must be 1 or more",
            ));
        }
        if self.retention.batch_size == 0 {
            return Err(SettingsError::new(
                "retention.batch_size",
                "must be 1 or more",
            ));
        }
        Ok(())
    }

    /// The [`Tracker`] these settings describe.
    ///
    /// # Errors
    ///
    /// A [`SettingsError`] when a key is missing or too short.
    pub fn tracker(&self) -> Result<Tracker, SettingsError> {
        let mut tracker = Tracker::new().with_ip_policy(self.policy(self.ip_policy, "ip_policy")?);
        if let Some(len) = self.max_user_agent_len {
            tracker = tracker.with_user_agent_policy(if len == 0 {
                UserAgentPolicy::disabled()
            } else {
                UserAgentPolicy::max_len(len)
            });
        }
        if let Some(key) = &self.identifier_key {
            tracker = tracker.with_identifier_key(key_of("identifier_key", key)?);
        }
        if let Some(key) = &self.chain_key {
            tracker = tracker.with_chain_key(key_of("chain_key", key)?);
        }
        if self.database_clock {
            tracker = tracker.with_database_clock();
        }
        Ok(tracker)
    }

    /// The [`Lockout`] these settings describe.
    pub fn lockout(&self) -> Lockout {
        let l = &self.lockout;
        let window = TimeDelta::seconds(i64::from(l.window_secs));
        let mut lockout = Lockout::new(
            l.threshold,
            window,
            TimeDelta::seconds(i64::from(l.cool_off_secs)),
        );
        if let Some(cap) = l.progressive_cap_secs {
            lockout = lockout.with_progressive_cool_off(TimeDelta::seconds(i64::from(cap)), window);
        }
        if l.exempt_known_ips {
            lockout = lockout.exempt_known_ips();
        }
        lockout
    }

    /// How the request extractors read the user agent: cut to the same length as stored.
    pub(crate) fn client_config(&self) -> ClientConfig {
        match self.max_user_agent_len {
            Some(len) => ClientConfig::new().max_user_agent_len(len),
            None => ClientConfig::new(),
        }
    }

    /// The policy `trackable:anonymize_ips` rewrites old IPs with; `None` clears them.
    ///
    /// # Errors
    ///
    /// A [`SettingsError`] for `full` (which would anonymise nothing) or `hash` without a key.
    pub fn anonymization_policy(&self) -> Result<Option<IpPolicy>, SettingsError> {
        match self.retention.anonymize_to {
            IpPolicyName::Full => Err(SettingsError::new(
                "retention.anonymize_to",
                "`full` keeps the addresses: use truncate, hash or none",
            )),
            IpPolicyName::None => Ok(None),
            name => self.policy(name, "retention.anonymize_to").map(Some),
        }
    }

    fn policy(&self, name: IpPolicyName, field: &'static str) -> Result<IpPolicy, SettingsError> {
        Ok(match name {
            IpPolicyName::Full => IpPolicy::Full,
            IpPolicyName::Truncate => IpPolicy::truncate(),
            IpPolicyName::None => IpPolicy::None,
            IpPolicyName::Hash => {
                let Some(key) = &self.ip_key else {
                    return Err(SettingsError::new(
                        field,
                        "`hash` needs `ip_key`, a secret of 16 bytes or more",
                    ));
                };
                IpPolicy::KeyedHash {
                    key: key_of("ip_key", key)?,
                }
            }
        })
    }
}

fn key_of(field: &'static str, key: &str) -> Result<HashKey, SettingsError> {
    HashKey::new(key.as_bytes()).map_err(|error| SettingsError::new(field, error))
}
