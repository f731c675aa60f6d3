//! What the integration keeps in Loco's shared store, and the initializer that puts it there.

use std::sync::Arc;

use async_trait::async_trait;
use loco_rs::app::{AppContext, Initializer};
use trackable_core::{ClientConfig, Lockout, Tracker};

use crate::settings::{Settings, SettingsError};

/// The tracker, the lockout and the settings of an app, kept in Loco's shared store
/// (`ctx.shared_store`) by [`TrackableInitializer`]; [`Tracking`](crate::Tracking) and the
/// tasks read it there.
#[derive(Clone)]
pub struct Trackables {
    tracker: Tracker,
    lockout: Lockout,
    client: Arc<ClientConfig>,
    settings: Arc<Settings>,
}

impl Trackables {
    /// Built from `settings`.
    ///
    /// # Errors
    ///
    /// A [`SettingsError`] when a key is missing or too short.
    pub fn new(settings: Settings) -> Result<Self, SettingsError> {
        Ok(Trackables {
            tracker: settings.tracker()?,
            lockout: settings.lockout(),
            client: Arc::new(settings.client_config()),
            settings: Arc::new(settings),
        })
    }

    /// The app's, from the shared store; when it holds none (a task run by `cargo loco task`,
    /// which boots no initializer), built from the configuration and stored.
    ///
    /// # Errors
    ///
    /// `loco_rs::Error::Message` naming the field of `initializers.trackable` at fault.
    pub fn of(ctx: &AppContext) -> loco_rs::Result<Self> {
        if let Some(found) = ctx.shared_store.get::<Trackables>() {
            return Ok(found);
        }
        let built = Trackables::from_config(ctx)?;
        ctx.shared_store.insert(built.clone());
        Ok(built)
    }

    /// Built from `initializers.trackable` of the app's configuration.
    fn from_config(ctx: &AppContext) -> Result<Self, SettingsError> {
        Settings::from_config(&ctx.config).and_then(Trackables::new)
    }

    /// The tracker.
    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    /// The lockout.
    pub fn lockout(&self) -> &Lockout {
        &self.lockout
    }

    /// How the extractors read the user agent.
    pub fn client_config(&self) -> &ClientConfig {
        &self.client
    }

    /// The settings it was built from.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Replaces the tracker, to add what a configuration file cannot hold (a hook on new
    /// IPs, a clock).
    #[must_use]
    pub fn map_tracker(mut self, f: impl FnOnce(Tracker) -> Tracker) -> Self {
        self.tracker = f(self.tracker);
        self
    }

    /// Replaces the lockout.
    #[must_use]
    pub fn map_lockout(mut self, f: impl FnOnce(Lockout) -> Lockout) -> Self {
        self.lockout = f(self.lockout);
        self
    }
}

type Configure = dyn Fn(Trackables) -> Trackables + Send + Sync;

/// A Loco initializer that reads `initializers.trackable` at boot (a bad setting stops the
/// boot with the field's name) and places the [`Trackables`] in the app context.
///
/// ```no_run
/// # use loco_rs::app::{AppContext, Initializer};
/// async fn initializers(_ctx: &AppContext) -> loco_rs::Result<Vec<Box<dyn Initializer>>> {
///     Ok(vec![Box::new(trackable_loco::TrackableInitializer::new())])
/// }
/// ```
#[derive(Clone, Default)]
pub struct TrackableInitializer {
    configure: Option<Arc<Configure>>,
}

impl TrackableInitializer {
    /// Reads the configuration alone.
    pub fn new() -> Self {
        TrackableInitializer::default()
    }

    /// Then applies `f`: `|t| t.map_tracker(|tracker| tracker.on_new_ip(hook))`.
    ///
    /// Tasks run by `cargo loco task` boot no initializer and build from the configuration
    /// alone; what `f` adds matters to requests (hooks, clocks), not to retention.
    #[must_use]
    pub fn configure(f: impl Fn(Trackables) -> Trackables + Send + Sync + 'static) -> Self {
        TrackableInitializer {
            configure: Some(Arc::new(f)),
        }
    }
}

#[async_trait]
impl Initializer for TrackableInitializer {
    fn name(&self) -> String {
        "trackable".to_string()
    }

    async fn before_run(&self, ctx: &AppContext) -> loco_rs::Result<()> {
        let mut trackables = Trackables::from_config(ctx)?;
        if let Some(configure) = &self.configure {
            trackables = configure(trackables);
        }
        ctx.shared_store.insert(trackables);
        Ok(())
    }
}
