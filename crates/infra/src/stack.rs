//! One-call provision and teardown of a whole stack: plan, lock the state, apply, kubeconfig.

use std::path::PathBuf;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::apply::{ApplyReport, Engine};
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::progress::{NoProgress, Progress};
use crate::provider::{ClusterProvisioner, NetworkProvisioner};
use crate::spec::{StackName, StackSpec};
use crate::state::StateFile;
use crate::teardown::TeardownReport;
use crate::wait::WaitPolicy;

/// Options shared by [`provision`] and [`teardown`].
pub struct StackOptions<'a> {
    /// Only plan (read-only calls), never create or delete.
    pub dry_run: bool,
    /// Where the state cache and kubeconfig go; `None` keeps nothing on disk.
    pub state_dir: Option<PathBuf>,
    /// Wait bounds and poll cadence.
    pub waits: WaitPolicy,
    /// Progress receiver.
    pub progress: &'a dyn Progress,
}

impl Default for StackOptions<'_> {
    fn default() -> Self {
        Self {
            dry_run: false,
            state_dir: None,
            waits: WaitPolicy::default(),
            progress: &NoProgress,
        }
    }
}

impl std::fmt::Debug for StackOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StackOptions")
            .field("dry_run", &self.dry_run)
            .field("state_dir", &self.state_dir)
            .field("waits", &self.waits)
            .finish()
    }
}

/// What [`provision`] did.
#[derive(Debug, Clone, Serialize)]
pub struct ProvisionOutcome {
    /// The plan, with each step marked `create` or `exists`.
    pub plan: Plan,
    /// The apply report; `None` on dry-run.
    pub applied: Option<ApplyReport>,
    /// The kubeconfig written for the cluster, if any.
    pub kubeconfig: Option<PathBuf>,
    /// The runner cache's bucket and IRSA role, when the stack has one (`--cache s3`).
    pub cache: Option<crate::cache::CacheOutputs>,
}

/// Validates, plans and (unless dry-run) applies a stack, then writes its kubeconfig.
///
/// Validation happens before any call. Dry-run makes only read calls (availability zones,
/// discovery). A re-run after any interruption converges: every step reuses what exists.
pub async fn provision(
    spec: &StackSpec,
    network: &dyn NetworkProvisioner,
    cluster: &dyn ClusterProvisioner,
    options: &StackOptions<'_>,
) -> Result<ProvisionOutcome> {
    provision_until(spec, network, cluster, options, &CancellationToken::new()).await
}

/// [`provision`] that stops when `cancel` fires: no new step starts, waits are cut short, the
/// state file keeps what was done, and [`crate::Error::Interrupted`] is returned (a re-run resumes).
pub async fn provision_until(
    spec: &StackSpec,
    network: &dyn NetworkProvisioner,
    cluster: &dyn ClusterProvisioner,
    options: &StackOptions<'_>,
    cancel: &CancellationToken,
) -> Result<ProvisionOutcome> {
    spec.validate()?;
    let state = match (&options.state_dir, options.dry_run) {
        (Some(dir), false) => Some(StateFile::open(dir, &spec.stack, &spec.region)?),
        _ => None,
    };
    let mut engine = Engine::new(network, cluster)
        .with_waits(options.waits.clone())
        .with_progress(options.progress)
        .with_tags(spec.cluster.tags.clone())
        .with_cancel(cancel.clone());
    if let Some(state) = &state {
        engine = engine.with_state(state);
    }
    let mut plan = crate::plan_stack(spec, network).await?;
    // The caller's access entry is its own (keyed by its ARN), so the plan says whether this
    // caller already has one. A dry run of a caller EKS cannot name still shows the plan.
    let caller = match cluster.caller_arn().await {
        Ok(caller) => Some(caller),
        Err(err) if options.dry_run => {
            tracing::warn!(error = %err, "cannot name the caller; its access entry step stays unnamed");
            None
        }
        Err(err) => return Err(err),
    };
    if let Some(caller) = &caller {
        plan.bind_caller(caller);
    }
    plan.mark_existing(&engine.existing(&spec.stack).await?);
    if options.dry_run {
        return Ok(ProvisionOutcome {
            plan,
            applied: None,
            kubeconfig: None,
            cache: None,
        });
    }
    let report = match engine.apply(&plan).await {
        Err(Error::UnsupportedZones {
            valid_zones,
            message,
            ..
        }) => {
            // EKS named the zones it accepts: plan again on those, remove what this stack
            // built in the others (and its route tables, whose subnets change), apply again.
            tracing::warn!(%message, ?valid_zones, "EKS refused the availability zones; planning again on the zones it accepts");
            let available: Vec<_> = network
                .availability_zones()
                .await?
                .into_iter()
                .filter(|z| valid_zones.contains(&z.name))
                .collect();
            let azs = crate::plan::choose_azs(&available, spec.network.az_count)?;
            let mut replanned = Plan::build(spec, &azs)?;
            if let Some(caller) = &caller {
                replanned.bind_caller(caller);
            }
            engine
                .prune(&spec.stack, |res| {
                    res.kind != crate::ResourceKind::RouteTable
                        && replanned.step(&res.key).is_some()
                })
                .await?;
            replanned.mark_existing(&engine.existing(&spec.stack).await?);
            let report = engine.apply(&replanned).await?;
            plan = replanned;
            report
        }
        other => other?,
    };
    let mut kubeconfig = None;
    if let (Some(dir), Some(state)) = (&options.state_dir, &state) {
        let access = cluster.cluster_access(&spec.cluster.name).await?;
        let path = dir.join(format!("{}.kubeconfig", spec.stack));
        // The aws CLI in the kubeconfig's exec entry should use the profile glrunner used.
        let profile = std::env::var("AWS_PROFILE").ok();
        crate::kubeconfig::write(&path, &access, &spec.region, profile.as_deref())?;
        state.set_kubeconfig(&path)?;
        kubeconfig = Some(path);
    }
    Ok(ProvisionOutcome {
        cache: crate::cache::outputs(spec, &report),
        plan,
        applied: Some(report),
        kubeconfig,
    })
}

/// Tears a stack down by tag (the state file is not needed), or on dry-run lists what would go.
pub async fn teardown(
    stack: &StackName,
    region: &str,
    network: &dyn NetworkProvisioner,
    cluster: &dyn ClusterProvisioner,
    options: &StackOptions<'_>,
) -> Result<TeardownReport> {
    teardown_until(
        stack,
        region,
        network,
        cluster,
        options,
        &CancellationToken::new(),
    )
    .await
}

/// [`teardown`] that stops when `cancel` fires: deletions in flight finish, no other starts, the
/// state file forgets what was deleted, and [`crate::Error::Interrupted`] is returned (a re-run
/// continues).
pub async fn teardown_until(
    stack: &StackName,
    region: &str,
    network: &dyn NetworkProvisioner,
    cluster: &dyn ClusterProvisioner,
    options: &StackOptions<'_>,
    cancel: &CancellationToken,
) -> Result<TeardownReport> {
    let engine = Engine::new(network, cluster)
        .with_waits(options.waits.clone())
        .with_progress(options.progress)
        .with_cancel(cancel.clone());
    if options.dry_run {
        return engine.teardown_plan(stack).await;
    }
    let state = match &options.state_dir {
        Some(dir) => Some(StateFile::open(dir, stack, region)?),
        None => None,
    };
    let engine = match &state {
        Some(state) => engine.with_state(state),
        None => engine,
    };
    let report = engine.teardown(stack).await?;
    if let Some(dir) = &options.state_dir {
        let _ = std::fs::remove_file(dir.join(format!("{stack}.kubeconfig")));
    }
    Ok(report)
}
