#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

mod context;
mod extract;
mod settings;
mod tasks;

pub use context::{TrackableInitializer, Trackables};
pub use extract::{Client, SignIn, Tracking};
pub use settings::{IpPolicyName, LockoutSettings, RetentionSettings, Settings, SettingsError};
pub use tasks::{AnonymizeAuditIps, AnonymizeSignInIps, PurgeAuditTrail};

/// The core crate, whose derive and types the models and handlers use.
pub use trackable_core;
