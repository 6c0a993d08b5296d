//! The reaper: list job pods, gather evidence, apply the policy, delete with bounded concurrency, report.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::future::Future;
use std::num::NonZeroUsize;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use serde::Serialize;

use crate::api::{DynJobStatusSource, DynPodApi, JobStatus};
use crate::clock::{Clock, SystemClock};
use crate::cost::{CostEstimate, FargatePricing, estimate};
use crate::model::{DeleteOutcome, ListQuery, PodInfo, PodPhase, keys, validate_namespace};
use crate::policy::{Decision, Evidence, Policy, ReapReason, check_identity, decide};
use crate::{Error, Result};

/// How the reaper runs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ReaperConfig {
    /// The policy (which also holds the namespaces).
    pub policy: Policy,
    /// Decide and report, delete nothing.
    pub dry_run: bool,
    /// At most this many delete calls (and GitLab lookups) in flight.
    pub concurrency: NonZeroUsize,
    /// Page size of list calls.
    pub page_size: u32,
    /// Reap job pods whose runner-manager pod (`manager.runner.gitlab.com/name`) no longer exists
    /// in any configured namespace. Only safe when the managers run in those namespaces.
    pub check_manager: bool,
    /// Fargate prices for the cost estimate.
    pub pricing: FargatePricing,
    /// At most this many pods reaped per round (the oldest first); the rest wait for the next
    /// round (`--max-deletes`, as kube-janitor's `--delete-limit`). `None`: no cap.
    pub max_deletes: Option<NonZeroUsize>,
}

impl ReaperConfig {
    /// Default delete concurrency.
    pub const DEFAULT_CONCURRENCY: usize = 16;

    /// A configuration with defaults: not dry-run, concurrency 16, pages of 250, no manager check.
    pub fn new(policy: Policy) -> Self {
        Self {
            policy,
            dry_run: false,
            concurrency: NonZeroUsize::new(Self::DEFAULT_CONCURRENCY).unwrap_or(NonZeroUsize::MIN),
            page_size: 250,
            check_manager: false,
            pricing: FargatePricing::us_east_1(),
            max_deletes: None,
        }
    }

    /// Caps the pods reaped per round.
    #[must_use]
    pub fn with_max_deletes(mut self, max_deletes: Option<NonZeroUsize>) -> Self {
        self.max_deletes = max_deletes;
        self
    }

    /// Sets dry-run.
    #[must_use]
    pub fn with_dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Sets the delete concurrency.
    #[must_use]
    pub fn with_concurrency(mut self, concurrency: NonZeroUsize) -> Self {
        self.concurrency = concurrency;
        self
    }

    /// Enables the manager-gone check.
    #[must_use]
    pub fn with_manager_check(mut self, check: bool) -> Self {
        self.check_manager = check;
        self
    }

    /// Sets the Fargate prices.
    #[must_use]
    pub fn with_pricing(mut self, pricing: FargatePricing) -> Self {
        self.pricing = pricing;
        self
    }

    /// Sets the list page size.
    #[must_use]
    pub fn with_page_size(mut self, page_size: u32) -> Self {
        self.page_size = page_size.max(1);
        self
    }
}

/// Reaps hung job pods through a [`crate::PodApi`].
pub struct Reaper {
    api: Arc<DynPodApi>,
    jobs: Option<Arc<DynJobStatusSource>>,
    clock: Arc<dyn Clock>,
    config: ReaperConfig,
}

impl fmt::Debug for Reaper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reaper")
            .field("backend", &self.api.backend())
            .field("gitlab_check", &self.jobs.is_some())
            .field("config", &self.config)
            .finish()
    }
}

/// What was done (or would be done) to a reaped pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Dry run: would delete gracefully.
    WouldDelete,
    /// Dry run: would force-delete (grace 0).
    WouldForceDelete,
    /// Deleted: the pod is gone.
    Deleted,
    /// Deleted gracefully: the pod is Terminating.
    Terminating,
    /// The pod was already gone when we deleted it.
    AlreadyGone,
    /// A pod with the same name but another UID exists now: left alone (UID precondition).
    Replaced,
    /// The delete call failed (see the report's errors).
    Failed,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Self::WouldDelete => "would delete",
            Self::WouldForceDelete => "would force",
            Self::Deleted => "deleted",
            Self::Terminating => "terminating",
            Self::AlreadyGone => "already gone",
            Self::Replaced => "replaced",
            Self::Failed => "failed",
        }
    }
}

/// One pod the policy chose to reap.
#[derive(Debug, Clone, Serialize)]
pub struct ReapedPod {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID the delete was conditioned on.
    pub uid: String,
    /// Phase when listed.
    pub phase: PodPhase,
    /// Seconds since creation.
    pub age_secs: u64,
    /// Why.
    pub reason: ReapReason,
    /// What happened.
    pub action: Action,
    /// The Fargate cost estimate.
    pub cost: CostEstimate,
}

/// A failure on one pod or one lookup; the round went on.
#[derive(Debug, Clone, Serialize)]
pub struct PodError {
    /// The error category ([`Error::category`]).
    pub category: &'static str,
    /// The message, naming the resource and the action.
    pub message: String,
}

impl From<&Error> for PodError {
    fn from(e: &Error) -> Self {
        Self {
            category: e.category(),
            message: e.to_string(),
        }
    }
}

/// Totals of the cost estimate.
#[derive(Debug, Clone, Serialize)]
pub struct CostSummary {
    /// The prices used.
    pub pricing: FargatePricing,
    /// USD per hour the reaped pods were burning.
    pub usd_per_hour: f64,
    /// USD the reaped pods had burned.
    pub usd_burned: f64,
}

/// The result of one reaping round.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The backend (`kubernetes`, `memory`).
    pub backend: &'static str,
    /// The namespaces examined.
    pub namespaces: Vec<String>,
    /// Dry run: nothing was deleted.
    pub dry_run: bool,
    /// When the round started (the policy's `now`).
    pub started_at: Timestamp,
    /// How long the round took, in milliseconds.
    pub elapsed_ms: u64,
    /// Pods listed (carrying the job-pod label).
    pub considered: usize,
    /// Pods kept, by reason code.
    pub kept: BTreeMap<&'static str, usize>,
    /// Pods reaped, by reason code.
    pub reaped_by_reason: BTreeMap<&'static str, usize>,
    /// Every pod reaped, with what happened and its cost.
    pub reaped: Vec<ReapedPod>,
    /// Failures that did not stop the round.
    pub errors: Vec<PodError>,
    /// Cost totals over the reaped pods.
    pub cost: CostSummary,
    /// Pods that qualified but were left for a later round: over `--max-deletes`, or (in a
    /// controller) while this replica did not hold the leader Lease.
    #[serde(skip_serializing_if = "is_zero")]
    pub deferred: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Report {
    /// Pods actually deleted or set Terminating by this round.
    pub fn deleted(&self) -> usize {
        self.reaped
            .iter()
            .filter(|p| matches!(p.action, Action::Deleted | Action::Terminating))
            .count()
    }
}

fn short_age(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86_400 => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d{:02}h", secs / 86_400, secs % 86_400 / 3600),
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "janitor ({}): {} job pod(s) considered in {} in {} ms{}",
            self.backend,
            self.considered,
            self.namespaces.join(", "),
            self.elapsed_ms,
            if self.dry_run {
                " — DRY RUN, nothing deleted"
            } else {
                ""
            }
        )?;
        if !self.kept.is_empty() {
            writeln!(f, "kept:")?;
            for (reason, n) in &self.kept {
                writeln!(f, "  {reason:<28} {n:>5}")?;
            }
        }
        if self.reaped.is_empty() {
            writeln!(f, "reaped: none")?;
        } else {
            writeln!(f, "reaped:")?;
            for (reason, n) in &self.reaped_by_reason {
                writeln!(f, "  {reason:<28} {n:>5}")?;
            }
            writeln!(f)?;
            writeln!(
                f,
                "{:<13} {:<16} {:<55} {:<9} {:<19} {:>6} {:<17} {:>7} {:>8}",
                "ACTION",
                "NAMESPACE",
                "NAME",
                "PHASE",
                "REASON",
                "AGE",
                "FARGATE SIZE",
                "$/HOUR",
                "$ BURNED"
            )?;
            for p in &self.reaped {
                writeln!(
                    f,
                    "{:<13} {:<16} {:<55} {:<9} {:<19} {:>6} {:<17} {:>7.4} {:>8.4}",
                    p.action.as_str(),
                    p.namespace,
                    p.name,
                    p.phase.as_str(),
                    p.reason.code(),
                    short_age(p.age_secs),
                    p.cost.size.to_string(),
                    p.cost.usd_per_hour,
                    p.cost.usd_burned,
                )?;
            }
        }
        writeln!(
            f,
            "cost: reaped pods were burning ${:.4}/hour and had burned ${:.4} (Fargate {} prices: ${}/vCPU-h, ${}/GB-h)",
            self.cost.usd_per_hour,
            self.cost.usd_burned,
            self.cost.pricing.region,
            self.cost.pricing.vcpu_hour_usd,
            self.cost.pricing.gb_hour_usd
        )?;
        if self.deferred > 0 {
            writeln!(
                f,
                "deferred: {} qualifying pod(s) left for the next round (--max-deletes)",
                self.deferred
            )?;
        }
        if !self.errors.is_empty() {
            writeln!(f, "errors ({}):", self.errors.len())?;
            for e in &self.errors {
                writeln!(f, "  [{}] {}", e.category, e.message)?;
            }
        }
        Ok(())
    }
}

/// What a round may use beyond the policy: whether it gathers evidence, observers' extra
/// verdicts (by pod UID), and a gate asked before each delete (the controller's leadership).
#[derive(Default)]
pub(crate) struct RoundInput<'a> {
    pub(crate) gather_evidence: bool,
    pub(crate) extra: HashMap<String, ReapReason>,
    pub(crate) gate: Option<&'a (dyn Fn() -> bool + Sync)>,
}

impl RoundInput<'_> {
    fn with_evidence() -> Self {
        Self {
            gather_evidence: true,
            ..Self::default()
        }
    }
}

fn parse_id(pod: &PodInfo, key: &str) -> Option<u64> {
    pod.annotations
        .get(key)
        .or_else(|| pod.labels.get(key))
        .and_then(|v| v.trim().parse().ok())
}

impl Reaper {
    /// A reaper over `api`. Fails with [`Error::InvalidInput`] when no namespace is configured or a
    /// namespace name is invalid, or the grace is zero.
    pub fn new(api: Arc<DynPodApi>, config: ReaperConfig) -> Result<Self> {
        if config.policy.namespaces.is_empty() {
            return Err(Error::invalid(
                "namespace",
                "no namespace configured; name at least one (e.g. gitlab-runner)",
            ));
        }
        for ns in &config.policy.namespaces {
            validate_namespace(ns)?;
        }
        Ok(Self {
            api,
            jobs: None,
            clock: Arc::new(SystemClock),
            config,
        })
    }

    /// Uses `clock` for the policy's `now`.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Enables the GitLab cross-check.
    #[must_use]
    pub fn with_job_status(mut self, jobs: Arc<DynJobStatusSource>) -> Self {
        self.jobs = Some(jobs);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &ReaperConfig {
        &self.config
    }

    /// One round. Fails (having deleted nothing) if any namespace cannot be listed; failures of
    /// single deletes or lookups are recorded in the report instead.
    pub async fn run_once(&self) -> Result<Report> {
        let t0 = tokio::time::Instant::now();
        let now = self.clock.now();
        let mut pods = Vec::new();
        for ns in &self.config.policy.namespaces {
            let query = ListQuery::job_pods(ns).with_page_size(self.config.page_size);
            pods.extend(self.api.list_pods(&query).await?);
        }
        Ok(self
            .round_over(pods, now, t0, RoundInput::with_evidence())
            .await)
    }

    /// The clock the policy's `now` comes from.
    pub(crate) fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Whether a round gathers evidence (a manager check or a GitLab cross-check is configured).
    pub(crate) fn gathers_evidence(&self) -> bool {
        self.config.check_manager || self.jobs.is_some()
    }

    /// One round over `pods` (listed, or a controller's store): evidence, the policy, the cap,
    /// the deletes. What [`Reaper::run_once`] does after listing.
    pub(crate) fn round_over<'a>(
        &'a self,
        pods: Vec<PodInfo>,
        now: Timestamp,
        t0: tokio::time::Instant,
        input: RoundInput<'a>,
    ) -> futures::future::BoxFuture<'a, Report> {
        // Boxed where the lifetimes are concrete, so a spawned controller's future is `Send`.
        Box::pin(self.round_inner(pods, now, t0, input))
    }

    async fn round_inner(
        &self,
        pods: Vec<PodInfo>,
        now: Timestamp,
        t0: tokio::time::Instant,
        input: RoundInput<'_>,
    ) -> Report {
        let policy = &self.config.policy;
        let mut errors = Vec::new();

        // First pass without evidence: which pods could be reaped on evidence alone.
        let first: Vec<Decision> = pods
            .iter()
            .map(|p| decide(p, now, policy, &Evidence::default()))
            .collect();
        let needs_evidence = |p: &PodInfo, d: &Decision| {
            input.gather_evidence
                && !d.is_reap()
                && check_identity(p, &policy.namespaces).is_ok()
                && !p.is_terminating()
                && now.duration_since(p.created_at)
                    > jiff::SignedDuration::try_from(policy.grace).unwrap_or_default()
        };
        let candidates: BTreeSet<usize> = (0..pods.len())
            .filter(|&i| needs_evidence(&pods[i], &first[i]))
            .collect();

        let managers = if self.config.check_manager {
            self.manager_presence(candidates.iter().map(|&i| &pods[i]), &mut errors)
                .await
        } else {
            HashMap::new()
        };
        let statuses = match &self.jobs {
            Some(jobs) => {
                self.job_statuses(
                    jobs.as_ref(),
                    candidates.iter().map(|&i| &pods[i]),
                    &mut errors,
                )
                .await
            }
            None => HashMap::new(),
        };

        let mut kept: BTreeMap<&'static str, usize> = BTreeMap::new();
        let mut targets = Vec::new();
        for (i, pod) in pods.iter().enumerate() {
            let decision = if candidates.contains(&i) {
                let evidence = Evidence {
                    manager_exists: pod
                        .labels
                        .get(keys::LABEL_MANAGER_NAME)
                        .and_then(|m| managers.get(m).copied()),
                    gitlab_status: statuses.get(&pod.uid).cloned(),
                };
                decide(pod, now, policy, &evidence)
            } else {
                first[i].clone()
            };
            let decision = match (decision, input.extra.get(&pod.uid)) {
                // An observer's verdict only on job pods the policy keeps while Pending.
                (Decision::Keep(keep), Some(extra))
                    if !keep.is_identity()
                        && pod.phase == PodPhase::Pending
                        && !pod.is_terminating() =>
                {
                    Decision::Reap(extra.clone())
                }
                (decision, _) => decision,
            };
            match decision {
                Decision::Keep(reason) => {
                    tracing::debug!(pod = %pod.qualified_name(), reason = %reason, "keep");
                    *kept.entry(reason.code()).or_default() += 1;
                }
                Decision::Reap(reason) => targets.push((pod, reason)),
            }
        }
        let mut deferred = 0;
        if let Some(cap) = self.config.max_deletes
            && targets.len() > cap.get()
        {
            // The oldest first: they have burned the longest.
            targets.sort_by_key(|(p, _)| (p.created_at, p.namespace.clone(), p.name.clone()));
            deferred = targets.len() - cap.get();
            targets.truncate(cap.get());
        }

        let (reaped, not_leading) = self.reap(targets, now, input.gate, &mut errors).await;
        deferred += not_leading;
        let mut reaped_by_reason: BTreeMap<&'static str, usize> = BTreeMap::new();
        for p in &reaped {
            *reaped_by_reason.entry(p.reason.code()).or_default() += 1;
        }
        let cost = CostSummary {
            pricing: self.config.pricing.clone(),
            usd_per_hour: reaped.iter().map(|p| p.cost.usd_per_hour).sum(),
            usd_burned: reaped.iter().map(|p| p.cost.usd_burned).sum(),
        };
        let report = Report {
            backend: self.api.backend(),
            namespaces: policy.namespaces.iter().cloned().collect(),
            dry_run: self.config.dry_run,
            started_at: now,
            elapsed_ms: u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX),
            considered: pods.len(),
            kept,
            reaped_by_reason,
            reaped,
            errors,
            cost,
            deferred,
        };
        tracing::info!(
            considered = report.considered,
            reaped = report.reaped.len(),
            deleted = report.deleted(),
            deferred = report.deferred,
            errors = report.errors.len(),
            dry_run = report.dry_run,
            "janitor round done"
        );
        report
    }

    async fn manager_presence<'a>(
        &self,
        pods: impl Iterator<Item = &'a PodInfo>,
        errors: &mut Vec<PodError>,
    ) -> HashMap<String, bool> {
        let names: BTreeSet<String> = pods
            .filter_map(|p| p.labels.get(keys::LABEL_MANAGER_NAME).cloned())
            .collect();
        let mut presence = HashMap::new();
        'names: for name in names {
            for ns in &self.config.policy.namespaces {
                match self.api.get_pod(ns, &name).await {
                    Ok(Some(_)) => {
                        presence.insert(name, true);
                        continue 'names;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        // Unknown: no verdict on this manager.
                        errors.push(PodError::from(&e));
                        continue 'names;
                    }
                }
            }
            presence.insert(name, false);
        }
        presence
    }

    async fn job_statuses<'a>(
        &self,
        jobs: &DynJobStatusSource,
        pods: impl Iterator<Item = &'a PodInfo>,
        errors: &mut Vec<PodError>,
    ) -> HashMap<String, JobStatus> {
        let lookups: Vec<(String, u64, u64)> = pods
            .filter_map(|p| {
                Some((
                    p.uid.clone(),
                    parse_id(p, keys::ANNOTATION_PROJECT_ID)?,
                    parse_id(p, keys::ANNOTATION_JOB_ID)?,
                ))
            })
            .collect();
        let results: Vec<(String, Result<JobStatus>)> = futures::stream::iter(lookups)
            .map(|(uid, project, job)| async move { (uid, jobs.job_status(project, job).await) })
            .buffer_unordered(self.config.concurrency.get())
            .collect()
            .await;
        let mut out = HashMap::new();
        for (uid, r) in results {
            match r {
                Ok(status) => {
                    out.insert(uid, status);
                }
                Err(e) => errors.push(PodError::from(&e)),
            }
        }
        out
    }

    async fn reap(
        &self,
        targets: Vec<(&PodInfo, ReapReason)>,
        now: Timestamp,
        gate: Option<&(dyn Fn() -> bool + Sync)>,
        errors: &mut Vec<PodError>,
    ) -> (Vec<ReapedPod>, usize) {
        let dry_run = self.config.dry_run;
        let api = &self.api;
        let owned: Vec<(PodInfo, ReapReason)> =
            targets.into_iter().map(|(p, r)| (p.clone(), r)).collect();
        let results: Vec<Option<(ReapedPod, Option<Error>)>> = futures::stream::iter(owned)
            .map(|(pod, reason): (PodInfo, ReapReason)| async move {
                let pod = &pod;
                // Asked right before each delete: a replica that lost the Lease stops at once.
                if gate.is_some_and(|leading| !leading()) {
                    return None;
                }
                let mode = reason.delete_mode();
                let (action, error) = if dry_run {
                    (if mode.is_force() { Action::WouldForceDelete } else { Action::WouldDelete }, None)
                } else {
                    match api.delete_pod(&pod.key(), mode).await {
                        Ok(DeleteOutcome::Deleted) => (Action::Deleted, None),
                        Ok(DeleteOutcome::Terminating) => (Action::Terminating, None),
                        Err(Error::NotFound { .. }) => (Action::AlreadyGone, None),
                        Err(Error::Conflict { .. }) => (Action::Replaced, None),
                        Err(e) => (Action::Failed, Some(e)),
                    }
                };
                tracing::debug!(pod = %pod.qualified_name(), uid = %pod.uid, reason = %reason, action = action.as_str(), "reap");
                let reaped = ReapedPod {
                    namespace: pod.namespace.clone(),
                    name: pod.name.clone(),
                    uid: pod.uid.clone(),
                    phase: pod.phase.clone(),
                    age_secs: now.duration_since(pod.created_at).as_secs().max(0).unsigned_abs(),
                    cost: estimate(pod, now, &self.config.pricing),
                    reason,
                    action,
                };
                Some((reaped, error))
            })
            .buffer_unordered(self.config.concurrency.get())
            .collect()
            .await;
        let skipped = results.iter().filter(|r| r.is_none()).count();
        let mut reaped = Vec::with_capacity(results.len());
        for (pod, error) in results.into_iter().flatten() {
            if let Some(e) = error {
                tracing::warn!(error = %e, "delete failed");
                errors.push(PodError::from(&e));
            }
            reaped.push(pod);
        }
        reaped.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        (reaped, skipped)
    }

    /// Runs rounds every `interval` (tokio time) until `shutdown` resolves (checked between rounds)
    /// or `on_round` breaks.
    /// A failed round (e.g. the API server unreachable) is handed to `on_round` and the watch goes on.
    pub async fn watch<S, F>(&self, interval: Duration, shutdown: S, mut on_round: F)
    where
        S: Future<Output = ()>,
        F: FnMut(Result<Report>) -> ControlFlow<()>,
    {
        tokio::pin!(shutdown);
        loop {
            // A round always completes (its calls are bounded), so deletes are never cut in half.
            if on_round(self.run_once().await).is_break() {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = &mut shutdown => return,
            }
        }
    }
}
