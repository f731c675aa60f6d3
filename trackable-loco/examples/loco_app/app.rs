use std::path::Path;

use async_trait::async_trait;
use loco_rs::app::{AppContext, Hooks, Initializer};
use loco_rs::bgworker::Queue;
use loco_rs::boot::{BootResult, StartMode, create_app};
use loco_rs::config::Config;
use loco_rs::controller::AppRoutes;
use loco_rs::environment::Environment;
use loco_rs::task::Tasks;
use trackable_loco::{AnonymizeAuditIps, PurgeAuditTrail, TrackableInitializer};

use crate::controllers;
use crate::migration::Migrator;
use crate::models::users;

pub struct App;

#[async_trait]
impl Hooks for App {
    fn app_name() -> &'static str {
        "loco_app"
    }

    async fn boot(
        mode: StartMode,
        environment: &Environment,
        config: Config,
    ) -> loco_rs::Result<BootResult> {
        create_app::<Self, Migrator>(mode, environment, config).await
    }

    /// The configuration beside this file, wherever the example is run from.
    async fn load_config(environment: &Environment) -> loco_rs::Result<Config> {
        let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/loco_app/config");
        Config::from_folder(environment, &folder)
    }

    fn routes(_ctx: &AppContext) -> AppRoutes {
        AppRoutes::with_default_routes().add_route(controllers::auth::routes())
    }

    async fn initializers(_ctx: &AppContext) -> loco_rs::Result<Vec<Box<dyn Initializer>>> {
        Ok(vec![Box::new(TrackableInitializer::new())])
    }

    async fn connect_workers(_ctx: &AppContext, _queue: &Queue) -> loco_rs::Result<()> {
        Ok(())
    }

    fn register_tasks(tasks: &mut Tasks) {
        tasks.register(PurgeAuditTrail::<users::Model>::new());
        tasks.register(AnonymizeAuditIps::<users::Model>::new());
    }

    async fn truncate(_ctx: &AppContext) -> loco_rs::Result<()> {
        Ok(())
    }

    async fn seed(_ctx: &AppContext, _base: &Path) -> loco_rs::Result<()> {
        Ok(())
    }
}
