//! Loco tasks for retention: `cargo loco task trackable:purge`, `trackable:anonymize_ips`.

use std::marker::PhantomData;

use async_trait::async_trait;
use loco_rs::app::AppContext;
use loco_rs::task::{Task, TaskInfo, Vars};
use trackable_core::chrono::{DateTime, TimeDelta, Utc};
use trackable_core::{
    AuditTrail, IpPolicy, Trackable, anonymize_audit_ips, anonymize_sign_in_ips,
    forget_audit_user_agents, purge_audit_trail,
};

use crate::context::Trackables;
use crate::settings::RetentionSettings;

/// `cargo loco task trackable:purge [days:N] [batch:N]`: deletes the audit rows of `M` older
/// than `retention.purge_after_days` (a user's latest row stays: it carries their state),
/// then the lockout's idle gates.
///
/// ```no_run
/// # mod users { use sea_orm::entity::prelude::*;
/// # #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, trackable_core::Trackable)]
/// # #[sea_orm(table_name = "users")] #[trackable(table = "user_events")]
/// # pub struct Model { #[sea_orm(primary_key)] pub id: i32 }
/// # #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)] pub enum Relation {}
/// # impl ActiveModelBehavior for ActiveModel {} }
/// fn register_tasks(tasks: &mut loco_rs::task::Tasks) {
///     tasks.register(trackable_loco::PurgeAuditTrail::<users::Model>::new());
///     tasks.register(trackable_loco::AnonymizeAuditIps::<users::Model>::new());
/// }
/// # fn main() {}
/// ```
pub struct PurgeAuditTrail<M> {
    name: String,
    model: PhantomData<fn() -> M>,
}

/// `cargo loco task trackable:anonymize_ips [days:N] [batch:N]`, table mode: rewrites the
/// IPs of the audit rows of `M` older than `retention.anonymize_ips_after_days` under
/// `retention.anonymize_to`, and clears their user agents older than
/// `retention.forget_user_agents_after_days` when it is set.
pub struct AnonymizeAuditIps<M> {
    name: String,
    model: PhantomData<fn() -> M>,
}

/// `cargo loco task trackable:anonymize_ips [days:N] [batch:N]`, fields mode: rewrites the
/// sign-in IPs on the user rows of `M` older than `retention.anonymize_ips_after_days`
/// under `retention.anonymize_to` (`none` clears them).
pub struct AnonymizeSignInIps<M> {
    name: String,
    model: PhantomData<fn() -> M>,
}

macro_rules! named_task {
    ($task:ident, $name:literal) => {
        impl<M> $task<M> {
            /// The task, under its default name.
            pub fn new() -> Self {
                Self::named($name)
            }

            /// The task under another name: one per model when an app tracks several.
            pub fn named(name: impl Into<String>) -> Self {
                $task {
                    name: name.into(),
                    model: PhantomData,
                }
            }
        }

        impl<M> Default for $task<M> {
            fn default() -> Self {
                Self::new()
            }
        }
    };
}

named_task!(PurgeAuditTrail, "trackable:purge");
named_task!(AnonymizeAuditIps, "trackable:anonymize_ips");
named_task!(AnonymizeSignInIps, "trackable:anonymize_ips");

/// A whole number from the task's `key:value` arguments, or `default`.
fn number(vars: &Vars, key: &str, default: u32) -> loco_rs::Result<u32> {
    match vars.cli.get(key) {
        None => Ok(default),
        Some(text) => text.parse().map_err(|_| {
            loco_rs::Error::Message(format!(
                "`{key}:{text}`: {key} is a whole number of 0 or more"
            ))
        }),
    }
}

/// What every retention task starts from: the app's trackables, the batch size, and the
/// cut-off, `days:N` (or `default_days` of the settings) before the database's (or the
/// tracker's) now.
struct Run {
    trackables: Trackables,
    batch: u32,
    before: DateTime<Utc>,
}

impl Run {
    async fn new(
        ctx: &AppContext,
        vars: &Vars,
        default_days: impl FnOnce(&RetentionSettings) -> u32,
    ) -> loco_rs::Result<Self> {
        let trackables = Trackables::of(ctx)?;
        let retention = &trackables.settings().retention;
        let days = number(vars, "days", default_days(retention))?;
        let batch = number(vars, "batch", retention.batch_size)?;
        let before = Run::days_before(&trackables, ctx, days).await?;
        Ok(Run {
            trackables,
            batch,
            before,
        })
    }

    async fn days_before(
        trackables: &Trackables,
        ctx: &AppContext,
        days: u32,
    ) -> loco_rs::Result<DateTime<Utc>> {
        let now = trackables
            .tracker()
            .now_in(&ctx.db)
            .await
            .map_err(loco_rs::Error::wrap)?;
        Ok(now - TimeDelta::days(i64::from(days)))
    }

    /// The policy that old IPs are rewritten with; `None` clears them.
    fn policy(&self) -> loco_rs::Result<Option<IpPolicy>> {
        Ok(self.trackables.settings().anonymization_policy()?)
    }
}

#[async_trait]
impl<M: AuditTrail> Task for PurgeAuditTrail<M> {
    fn task(&self) -> TaskInfo {
        TaskInfo {
            name: self.name.clone(),
            detail: "delete old audit rows (days:N, batch:N; defaults from initializers.trackable.retention)".to_string(),
        }
    }

    async fn run(&self, ctx: &AppContext, vars: &Vars) -> loco_rs::Result<()> {
        let run = Run::new(ctx, vars, |r| r.purge_after_days).await?;
        let (trackables, before) = (&run.trackables, run.before);
        let deleted = purge_audit_trail::<M>(&ctx.db, before, run.batch)
            .await
            .map_err(loco_rs::Error::wrap)?;
        let gates = trackables
            .lockout()
            .forget_idle_gates::<M>(trackables.tracker(), &ctx.db)
            .await
            .map_err(loco_rs::Error::wrap)?;
        tracing::info!(target: "trackable", deleted, gates, %before, "purged the audit trail");
        println!(
            "{}: deleted {deleted} audit rows older than {before}, {gates} idle lockout gates",
            self.name
        );
        Ok(())
    }
}

#[async_trait]
impl<M: AuditTrail> Task for AnonymizeAuditIps<M> {
    fn task(&self) -> TaskInfo {
        TaskInfo {
            name: self.name.clone(),
            detail: "anonymise old IPs of the audit trail (days:N, batch:N)".to_string(),
        }
    }

    async fn run(&self, ctx: &AppContext, vars: &Vars) -> loco_rs::Result<()> {
        let run = Run::new(ctx, vars, |r| r.anonymize_ips_after_days).await?;
        let policy = run.policy()?.unwrap_or(IpPolicy::None);
        let before = run.before;
        let changed = anonymize_audit_ips::<M>(&ctx.db, before, &policy, run.batch)
            .await
            .map_err(loco_rs::Error::wrap)?;
        let mut forgotten = 0;
        if let Some(days) = run
            .trackables
            .settings()
            .retention
            .forget_user_agents_after_days
        {
            let before = Run::days_before(&run.trackables, ctx, days).await?;
            forgotten = forget_audit_user_agents::<M>(&ctx.db, before, run.batch)
                .await
                .map_err(loco_rs::Error::wrap)?;
        }
        tracing::info!(target: "trackable", changed, forgotten, %before, "anonymised the audit trail");
        println!(
            "{}: anonymised the IPs of {changed} audit rows older than {before}, cleared {forgotten} user agents",
            self.name
        );
        Ok(())
    }
}

#[async_trait]
impl<M> Task for AnonymizeSignInIps<M>
where
    M: Trackable,
    <M as sea_orm::ModelTrait>::Entity: sea_orm::EntityTrait<Model = M>,
{
    fn task(&self) -> TaskInfo {
        TaskInfo {
            name: self.name.clone(),
            detail: "anonymise old sign-in IPs on the user rows (days:N, batch:N)".to_string(),
        }
    }

    async fn run(&self, ctx: &AppContext, vars: &Vars) -> loco_rs::Result<()> {
        let run = Run::new(ctx, vars, |r| r.anonymize_ips_after_days).await?;
        let policy = run.policy()?;
        let before = run.before;
        let changed = anonymize_sign_in_ips::<M>(&ctx.db, before, policy.as_ref(), run.batch)
            .await
            .map_err(loco_rs::Error::wrap)?;
        tracing::info!(target: "trackable", changed, %before, "anonymised the sign-in IPs");
        println!(
            "{}: anonymised the sign-in IPs of {changed} users older than {before}",
            self.name
        );
        Ok(())
    }
}
