//! The fault suite: the whole flow on the sandbox world under injected faults. Every case must
//! end with the job done or a clear failure, no duplicate resource, and — after the flow's own
//! teardown or cleanup, plus a re-run where the case interrupts the flow — nothing left in AWS,
//! GitLab or Kubernetes. [`run_suite`] returns a benchmark-style summary (cases, faults
//! injected, leftovers, duplicates) that `cargo run --example fault_suite` prints for CI.
//!
//! Cases: a failure injected into each phase ([`Fault`]); AWS throttling on a share of create,
//! describe and delete calls plus a burst of 5xx (also during teardown's wait for the
//! cluster); GitLab 502s before and after GitLab acted on the runner, commit and pipeline
//! POSTs, and a 429 storm on runner creation ([`ChaosGitLab`]); two runs of one stack at once;
//! the Kubernetes API server unavailable in the
//! middle of the reap phase (an apiserver restart); and the flow stopped at seeded points of
//! provision, releases and teardown, then run again (what a SIGKILL and a re-run leave).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use glrunner_infra::{
    ClusterAccess, ClusterProvisioner, CreateRequest, Error as InfraError, NetworkProvisioner,
    Resource, ResourceKind, StackName, StackSpec,
};
use serde::Serialize;

use crate::{Fault, SandboxConfig, SandboxWorld};
use glrunner_flow::{self as flow, FlowConfig, FlowEvent, FlowReport, Phase};

/// GitLab project of every case.
pub const PROJECT: &str = "sandbox/faults";

/// One case's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    /// Case name (`phase-fault:releases`, `aws-throttling`, ...).
    pub name: String,
    /// Faults injected during the case.
    pub faults_injected: u64,
    /// `done` (every phase succeeded) or `failed: <phase>: <error>` (a clear failure).
    pub outcome: String,
    /// Resources the flow's own teardown or cleanup left behind (a finding when above 0: a second
    /// teardown, as a user would run after a clear failure, then removes them).
    pub left_by_cleanup: usize,
    /// Resources left in AWS, GitLab and Kubernetes at the end of the case.
    pub leftovers: usize,
    /// Resources that existed twice at once (two of one step key, two runners of one shard).
    pub duplicates: usize,
    /// What was left or duplicated, if anything.
    pub detail: Vec<String>,
}

impl CaseResult {
    /// A case passes when nothing is left and nothing was duplicated.
    pub fn passed(&self) -> bool {
        self.leftovers == 0 && self.duplicates == 0
    }
}

/// The suite's summary.
#[derive(Debug, Clone, Serialize)]
pub struct SuiteReport {
    /// Every case.
    pub cases: Vec<CaseResult>,
    /// Sum of the faults injected.
    pub faults_injected: u64,
    /// Sum of what the flow's own cleanups left (findings; a second teardown removed them).
    pub left_by_cleanup: usize,
    /// Sum of the leftovers (0 when the suite passes).
    pub leftovers: usize,
    /// Sum of the duplicates (0 when the suite passes).
    pub duplicates: usize,
    /// Jobs per case.
    pub jobs: u32,
    /// Seed of every random choice.
    pub seed: u64,
}

impl SuiteReport {
    /// True when every case passed.
    pub fn passed(&self) -> bool {
        self.cases.iter().all(CaseResult::passed)
    }

    /// A table, then one `name value` line per total (the benchmark summary).
    pub fn render_text(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<32} {:>6} {:>9} {:>10}  outcome",
            "case", "faults", "leftovers", "duplicates"
        );
        for c in &self.cases {
            let _ = writeln!(
                out,
                "{:<32} {:>6} {:>9} {:>10}  {}",
                c.name, c.faults_injected, c.leftovers, c.duplicates, c.outcome
            );
            for d in &c.detail {
                let _ = writeln!(out, "    {d}");
            }
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "cases {}", self.cases.len());
        let _ = writeln!(out, "faults_injected {}", self.faults_injected);
        let _ = writeln!(out, "left_by_cleanup {}", self.left_by_cleanup);
        let _ = writeln!(out, "leftovers {}", self.leftovers);
        let _ = writeln!(out, "duplicates {}", self.duplicates);
        let _ = writeln!(
            out,
            "result {}",
            if self.passed() { "pass" } else { "FAIL" }
        );
        out
    }
}

/// Runs every case on fresh sandbox worlds. Call it on a paused tokio clock (the sandbox's
/// virtual time): the suite then takes seconds of wall time.
pub async fn run_suite(jobs: u32, seed: u64) -> SuiteReport {
    let mut cases = Vec::new();
    for fault in [
        Fault::Provision,
        Fault::Project,
        Fault::Runners,
        Fault::Releases,
        Fault::LoadTest,
        Fault::Reap,
        Fault::Teardown,
    ] {
        let name = format!("phase-fault:{}", serde_plain(&fault));
        let world = SandboxWorld::new(
            "us-east-1",
            SandboxConfig::default()
                .with_seed(seed)
                .with_fault(Some(fault)),
        );
        let config = config(&name, jobs);
        let report = run_flow(&world, &config, world.backends()).await;
        cases.push(judge(&name, 1, &world, &config, &report, Vec::new()).await);
    }
    cases.push(aws_faults("aws-throttling", jobs, seed, 0.2, 0).await);
    cases.push(aws_faults("aws-5xx-burst", jobs, seed, 0.0, 5).await);
    cases.push(aws_burst_in_cleanup(jobs, seed).await);
    use GitLabCall::{CommitFiles, CreatePipeline, CreateRunner};
    let posts = [CreateRunner, CommitFiles, CreatePipeline];
    cases.push(
        gitlab_faults(
            "gitlab-502-on-posts",
            jobs,
            seed,
            &posts,
            GitLabFault::BadGateway,
        )
        .await,
    );
    cases.push(
        gitlab_faults(
            "gitlab-502-after-posts",
            jobs,
            seed,
            &posts,
            GitLabFault::BadGatewayAfterEffect,
        )
        .await,
    );
    cases.push(
        gitlab_faults(
            "gitlab-429-storm-runners",
            jobs,
            seed,
            &[CreateRunner],
            GitLabFault::TooManyRequests,
        )
        .await,
    );
    cases.push(apiserver_restart_mid_reap(jobs, seed).await);
    let mut rng = fastrand::Rng::with_seed(seed);
    for phase in [Phase::Provision, Phase::Releases, Phase::Teardown] {
        let after = 2 + rng.u32(..3);
        cases.push(killed_then_rerun(jobs, seed, phase, after).await);
    }
    cases.push(two_runs_of_one_stack(jobs, seed, rng.u64(..30)).await);
    let report = SuiteReport {
        faults_injected: cases.iter().map(|c| c.faults_injected).sum(),
        left_by_cleanup: cases.iter().map(|c| c.left_by_cleanup).sum(),
        leftovers: cases.iter().map(|c| c.leftovers).sum(),
        duplicates: cases.iter().map(|c| c.duplicates).sum(),
        cases,
        jobs,
        seed,
    };
    tracing::info!(
        cases = report.cases.len(),
        faults = report.faults_injected,
        leftovers = report.leftovers,
        "fault suite done"
    );
    report
}

fn serde_plain(fault: &Fault) -> String {
    serde_json::to_value(fault)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{fault:?}"))
}

fn config(case: &str, jobs: u32) -> FlowConfig {
    let stack: String = case
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect::<String>()
        .trim_matches('-')
        .chars()
        .take(20)
        .collect();
    let stack = format!("f-{}", stack.trim_end_matches('-'));
    let spec = StackSpec::new(
        StackName::new(stack).expect("valid stack name"),
        "us-east-1",
    );
    FlowConfig::new(spec, PROJECT, jobs)
}

async fn run_flow(
    world: &SandboxWorld,
    config: &FlowConfig,
    backends: flow::Backends,
) -> FlowReport {
    let _runners = world.start_runners();
    flow::run(config, &backends, &|_: &FlowEvent<'_>| {})
        .await
        .unwrap_or_else(|e| panic!("the fault suite's input is valid: {e}"))
}

/// Leftovers from the world itself (not from the flow's own report), duplicates seen during the run.
async fn judge(
    name: &str,
    faults: u64,
    world: &SandboxWorld,
    config: &FlowConfig,
    report: &FlowReport,
    mut detail: Vec<String>,
) -> CaseResult {
    let mut left = world.leftovers(&config.spec.stack, PROJECT).await;
    let left_by_cleanup = left.total();
    if left_by_cleanup > 0 {
        // As a user would after a clear failure: run the teardown phase again.
        detail.push(format!(
            "the flow's cleanup left {left_by_cleanup}: {left:?}; ran the teardown phase again"
        ));
        let again = config.clone().with_phases([Phase::Teardown]);
        let _ = flow::run(&again, &world.backends(), &|_: &FlowEvent<'_>| {}).await;
        left = world.leftovers(&config.spec.stack, PROJECT).await;
        if left.total() > 0 {
            detail.push(format!("left after the second teardown: {left:?}"));
        }
    }
    let leftovers = left.total();
    let duplicates = detail.iter().filter(|d| d.starts_with("duplicate")).count();
    let outcome = match &report.failure {
        None => "done".to_owned(),
        Some(f) => format!("failed: {}: {}", f.phase, f.error),
    };
    CaseResult {
        name: name.to_owned(),
        faults_injected: faults,
        outcome,
        left_by_cleanup,
        leftovers,
        duplicates,
        detail,
    }
}

/// AWS throttling (`ThrottlingException`/`RequestLimitExceeded` outlasting the SDK's own
/// retries) on a seeded share of create, describe and delete calls (`burst` 0), or a burst of
/// 5xx answers to the first describe calls: the job done, or a clear failure and a cleanup.
async fn aws_faults(
    name: &str,
    jobs: u32,
    seed: u64,
    throttle_share: f64,
    burst: u64,
) -> CaseResult {
    let world = SandboxWorld::new("us-east-1", SandboxConfig::default().with_seed(seed));
    let config = config(name, jobs);
    let chaos = Arc::new(ChaosCloud::new(
        world.cloud.clone(),
        seed,
        throttle_share,
        burst,
    ));
    let mut backends = world.backends();
    backends.network = chaos.clone();
    backends.cluster = chaos.clone();
    let report = run_flow(&world, &config, backends).await;
    let detail = chaos.duplicates();
    judge(name, chaos.injected(), &world, &config, &report, detail).await
}

/// GitLab faults on the given calls, once each: a 502 before or after GitLab acted on a POST
/// (runner creation, the load test's commit and pipeline), which the flow checks before sending
/// the POST again, or a 429 storm that outlasted the client's retries (a clear failure).
async fn gitlab_faults(
    name: &str,
    jobs: u32,
    seed: u64,
    calls: &[GitLabCall],
    fault: GitLabFault,
) -> CaseResult {
    let world = SandboxWorld::new("us-east-1", SandboxConfig::default().with_seed(seed));
    let config = config(name, jobs);
    let chaos = Arc::new(ChaosGitLab::new(world.gitlab.clone()));
    for &call in calls {
        chaos.inject(call, fault, 1);
    }
    let mut backends = world.backends();
    backends.gitlab = chaos.clone();
    let report = run_flow(&world, &config, backends).await;
    let detail = chaos.duplicates();
    judge(name, chaos.injected(), &world, &config, &report, detail).await
}

/// A burst of 5xx answers to the cluster's describe calls from the start of the teardown
/// phase, so it hits teardown's wait for the cluster to go: the wait polls through it (a read)
/// and the teardown leaves nothing, instead of keeping the whole network because the wait
/// failed.
async fn aws_burst_in_cleanup(jobs: u32, seed: u64) -> CaseResult {
    let name = "aws-5xx-burst-in-cleanup";
    let world = SandboxWorld::new("us-east-1", SandboxConfig::default().with_seed(seed));
    let config = config(name, jobs);
    let chaos = Arc::new(ChaosCloud::new(world.cloud.clone(), seed, 0.0, 0));
    let mut backends = world.backends();
    backends.network = chaos.clone();
    backends.cluster = chaos.clone();
    let armed = chaos.clone();
    let progress = move |event: &FlowEvent<'_>| {
        if let FlowEvent::PhaseStarted {
            phase: Phase::Teardown,
        } = event
        {
            armed.arm_burst(8, Some(ResourceKind::Cluster));
        }
    };
    let _runners = world.start_runners();
    let report = flow::run(&config, &backends, &progress)
        .await
        .unwrap_or_else(|e| panic!("the fault suite's input is valid: {e}"));
    let detail = chaos.duplicates();
    judge(name, chaos.injected(), &world, &config, &report, detail).await
}

/// The Kubernetes API server unavailable for a minute from the start of the reap phase (a
/// restart): the janitor's rounds fail, then resume; teardown still leaves nothing.
async fn apiserver_restart_mid_reap(jobs: u32, seed: u64) -> CaseResult {
    let name = "apiserver-restart-mid-reap";
    let world = SandboxWorld::new(
        "us-east-1",
        SandboxConfig::default()
            .with_seed(seed)
            .with_hung_fraction(0.1),
    );
    let config = config(name, jobs);
    let pods = world.pods.clone();
    let injected = Arc::new(AtomicU64::new(0));
    let counter = injected.clone();
    let progress = move |event: &FlowEvent<'_>| {
        if let FlowEvent::PhaseStarted { phase: Phase::Reap } = event {
            pods.fail_lists(Some(glrunner_janitor::memory::Fault::Unavailable));
            counter.fetch_add(1, Ordering::SeqCst);
            let pods = pods.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(60)).await;
                pods.fail_lists(None);
            });
        }
    };
    let _runners = world.start_runners();
    let report = flow::run(&config, &world.backends(), &progress)
        .await
        .unwrap_or_else(|e| panic!("the fault suite's input is valid: {e}"));
    judge(
        name,
        injected.load(Ordering::SeqCst),
        &world,
        &config,
        &report,
        Vec::new(),
    )
    .await
}

/// The flow dropped at once (as SIGKILL leaves it: no cleanup, nothing saved) at the
/// `after`-th event of `phase`, then run again as a user would: the re-run finds what the
/// killed run made (by tags, runner descriptions, release names), duplicates nothing, and its
/// teardown leaves nothing.
async fn killed_then_rerun(jobs: u32, seed: u64, phase: Phase, after: u32) -> CaseResult {
    let name = format!("killed-in-{phase}-then-rerun");
    let world = SandboxWorld::new("us-east-1", SandboxConfig::default().with_seed(seed));
    let config = config(&name, jobs);
    let cloud = Arc::new(ChaosCloud::new(world.cloud.clone(), seed, 0.0, 0));
    let gitlab = Arc::new(ChaosGitLab::new(world.gitlab.clone()));
    let mut backends = world.backends();
    backends.network = cloud.clone();
    backends.cluster = cloud.clone();
    backends.gitlab = gitlab.clone();
    let kill = tokio::sync::Notify::new();
    let in_phase = std::sync::atomic::AtomicBool::new(false);
    let seen = std::sync::atomic::AtomicU32::new(0);
    let progress = |event: &FlowEvent<'_>| {
        if matches!(event, FlowEvent::PhaseStarted { phase: p } if *p == phase) {
            in_phase.store(true, Ordering::SeqCst);
        }
        if in_phase.load(Ordering::SeqCst) && seen.fetch_add(1, Ordering::SeqCst) + 1 == after {
            kill.notify_one();
        }
    };
    let _runners = world.start_runners();
    let killed = tokio::select! {
        _ = flow::run(&config, &backends, &progress) => false,
        () = kill.notified() => true,
    };
    let report = flow::run(&config, &backends, &|_: &FlowEvent<'_>| {})
        .await
        .unwrap_or_else(|e| panic!("the fault suite's input is valid: {e}"));
    let mut detail = cloud.duplicates();
    detail.extend(gitlab.duplicates());
    judge(&name, u64::from(killed), &world, &config, &report, detail).await
}

/// Two runs of one stack at once (two CI jobs with separate state directories, so no local
/// lock), the second `lag_secs` later; then the whole flow. Both provisions must end without
/// error, with one stack between them.
async fn two_runs_of_one_stack(jobs: u32, seed: u64, lag_secs: u64) -> CaseResult {
    let name = "two-runs-of-one-stack";
    let world = SandboxWorld::new("us-east-1", SandboxConfig::default().with_seed(seed));
    let config = config(name, jobs);
    let cloud = Arc::new(ChaosCloud::new(world.cloud.clone(), seed, 0.0, 0));
    let mut backends = world.backends();
    backends.network = cloud.clone();
    backends.cluster = cloud.clone();
    let provision = config.clone().with_phases([Phase::Provision]);
    let noop = |_: &FlowEvent<'_>| {};
    let (first, second) = tokio::join!(flow::run(&provision, &backends, &noop), async {
        tokio::time::sleep(Duration::from_secs(lag_secs)).await;
        flow::run(&provision, &backends, &noop).await
    });
    let mut detail = Vec::new();
    for (which, run) in [("first", first), ("second", second)] {
        match run {
            Ok(r) if r.failure.is_none() => {}
            Ok(r) => detail.push(format!("the {which} provision failed: {:?}", r.failure)),
            Err(e) => detail.push(format!("the {which} provision failed: {e}")),
        }
    }
    let report = run_flow(&world, &config, backends).await;
    let failed = !detail.is_empty();
    detail.extend(cloud.duplicates());
    let mut result = judge(name, 1, &world, &config, &report, detail).await;
    if failed {
        result.outcome = format!("failed: concurrent provision; then {}", result.outcome);
    }
    result
}

/// Infrastructure backends that throttle a seeded share of calls and answer a burst of 5xx,
/// and record every present resource's step key to catch duplicates.
pub struct ChaosCloud<B> {
    inner: B,
    rng: std::sync::Mutex<fastrand::Rng>,
    throttle_share: f64,
    burst_left: AtomicU64,
    burst_kind: std::sync::Mutex<Option<ResourceKind>>,
    injected: AtomicU64,
    seen: std::sync::Mutex<BTreeMap<String, std::collections::BTreeSet<String>>>,
}

impl<B> std::fmt::Debug for ChaosCloud<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChaosCloud")
            .field("throttle_share", &self.throttle_share)
            .finish_non_exhaustive()
    }
}

impl<B> ChaosCloud<B> {
    /// Throttles `throttle_share` (0..1) of create/describe/delete calls; the first `burst`
    /// describe calls answer a 5xx.
    pub fn new(inner: B, seed: u64, throttle_share: f64, burst: u64) -> Self {
        Self {
            inner,
            rng: std::sync::Mutex::new(fastrand::Rng::with_seed(seed)),
            throttle_share,
            burst_left: AtomicU64::new(burst),
            burst_kind: std::sync::Mutex::new(None),
            injected: AtomicU64::new(0),
            seen: std::sync::Mutex::default(),
        }
    }

    /// From now on, the next `count` describe calls of `kind` (any kind when `None`) answer a
    /// 5xx (e.g. armed when the teardown starts, to hit its wait for the cluster).
    pub fn arm_burst(&self, count: u64, kind: Option<ResourceKind>) {
        *self.burst_kind.lock().unwrap_or_else(|e| e.into_inner()) = kind;
        self.burst_left.store(count, Ordering::SeqCst);
    }

    /// Faults injected so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::SeqCst)
    }

    /// `duplicate …` lines: step keys that two different resources carried.
    pub fn duplicates(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(_, ids)| ids.len() > 1)
            .map(|(key, ids)| format!("duplicate {key}: {ids:?}"))
            .collect()
    }

    fn throttle(&self, action: &str) -> Result<(), InfraError> {
        let roll = self.rng.lock().unwrap_or_else(|e| e.into_inner()).f64();
        if roll < self.throttle_share {
            self.injected.fetch_add(1, Ordering::SeqCst);
            return Err(InfraError::Throttled {
                action: format!("{action} (injected ThrottlingException)"),
            });
        }
        Ok(())
    }

    fn burst(&self, action: &str, kind: ResourceKind) -> Result<(), InfraError> {
        let targeted = *self.burst_kind.lock().unwrap_or_else(|e| e.into_inner());
        if targeted.is_some_and(|k| k != kind) {
            return Ok(());
        }
        if self
            .burst_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            self.injected.fetch_add(1, Ordering::SeqCst);
            // What the AWS backend maps a 503 that outlasted the SDK's own retries to.
            return Err(InfraError::Unavailable {
                action: format!("{action} {kind}"),
                backend: "memory",
                source: "injected 503 Service Unavailable (outlasting the SDK's own retries)"
                    .into(),
            });
        }
        Ok(())
    }

    fn record(&self, res: &Resource) {
        // Resources EKS makes on its own (ENIs) carry no step key; replacing a NAT gateway that
        // failed is not a duplicate either, as the old one is gone.
        if res.key.is_empty() || res.kind == ResourceKind::NetworkInterface {
            return;
        }
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(res.key.clone())
            .or_default()
            .insert(res.id.clone());
    }
}

#[async_trait]
impl<B: NetworkProvisioner> NetworkProvisioner for ChaosCloud<B> {
    async fn availability_zones(
        &self,
    ) -> glrunner_infra::Result<Vec<glrunner_infra::AvailabilityZone>> {
        self.inner.availability_zones().await
    }
    async fn discover(&self, stack: &StackName) -> glrunner_infra::Result<Vec<Resource>> {
        self.inner.discover(stack).await
    }
    async fn create(
        &self,
        request: &CreateRequest,
        tags: &glrunner_infra::resource::ResourceTags,
    ) -> glrunner_infra::Result<Resource> {
        self.throttle("create")?;
        let res = self.inner.create(request, tags).await?;
        self.record(&res);
        Ok(res)
    }
    async fn describe(
        &self,
        kind: ResourceKind,
        id: &str,
    ) -> glrunner_infra::Result<Option<Resource>> {
        self.burst("describe", kind)?;
        self.throttle("describe")?;
        NetworkProvisioner::describe(&self.inner, kind, id).await
    }
    async fn delete(&self, resource: &Resource) -> glrunner_infra::Result<()> {
        self.throttle("delete")?;
        NetworkProvisioner::delete(&self.inner, resource).await
    }
}

#[async_trait]
impl<B: ClusterProvisioner> ClusterProvisioner for ChaosCloud<B> {
    async fn caller_arn(&self) -> glrunner_infra::Result<String> {
        self.inner.caller_arn().await
    }
    async fn discover(&self, stack: &StackName) -> glrunner_infra::Result<Vec<Resource>> {
        ClusterProvisioner::discover(&self.inner, stack).await
    }
    async fn create(
        &self,
        request: &CreateRequest,
        tags: &glrunner_infra::resource::ResourceTags,
    ) -> glrunner_infra::Result<Resource> {
        self.throttle("create")?;
        let res = ClusterProvisioner::create(&self.inner, request, tags).await?;
        self.record(&res);
        Ok(res)
    }
    async fn describe(
        &self,
        kind: ResourceKind,
        id: &str,
    ) -> glrunner_infra::Result<Option<Resource>> {
        self.burst("describe", kind)?;
        self.throttle("describe")?;
        ClusterProvisioner::describe(&self.inner, kind, id).await
    }
    async fn delete(&self, resource: &Resource) -> glrunner_infra::Result<()> {
        self.throttle("delete")?;
        ClusterProvisioner::delete(&self.inner, resource).await
    }
    async fn cluster_access(&self, name: &str) -> glrunner_infra::Result<ClusterAccess> {
        self.inner.cluster_access(name).await
    }
}

/// A GitLab call [`ChaosGitLab`] can fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum GitLabCall {
    /// `POST /user/runners`.
    CreateRunner,
    /// `GET /projects/:id/runners`.
    ListRunners,
    /// `DELETE /runners/:id`.
    DeleteRunner,
    /// `POST /projects/:id/repository/commits`.
    CommitFiles,
    /// `POST /projects/:id/pipeline`.
    CreatePipeline,
    /// `GET /projects/:id/pipelines/:id/jobs`.
    ListPipelineJobs,
}

/// What a faulted GitLab call answers, as the HTTP client reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum GitLabFault {
    /// HTTP 502 before GitLab acted.
    BadGateway,
    /// GitLab acted, then a proxy answered 502: the effect happened, the answer was lost.
    BadGatewayAfterEffect,
    /// A 429 storm that outlasted the client's own retries.
    TooManyRequests,
    /// HTTP 403.
    Forbidden,
}

struct GitLabRule {
    call: GitLabCall,
    fault: GitLabFault,
    left: u64,
}

/// A GitLab backend that faults chosen calls, counts every call, and records the runners and
/// pipelines that existed to catch duplicates (two live runners with one description, two
/// pipelines started on one ref).
pub struct ChaosGitLab<G> {
    inner: G,
    rules: std::sync::Mutex<Vec<GitLabRule>>,
    calls: std::sync::Mutex<BTreeMap<GitLabCall, u64>>,
    injected: AtomicU64,
    live_runners: std::sync::Mutex<BTreeMap<u64, String>>,
    duplicates: std::sync::Mutex<Vec<String>>,
    pipelines_by_ref: std::sync::Mutex<BTreeMap<String, u64>>,
}

impl<G> std::fmt::Debug for ChaosGitLab<G> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChaosGitLab")
            .field("injected", &self.injected.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

impl<G: glrunner_gitlab_client::GitLabApi> ChaosGitLab<G> {
    /// No fault until [`ChaosGitLab::inject`].
    pub fn new(inner: G) -> Self {
        Self {
            inner,
            rules: std::sync::Mutex::default(),
            calls: std::sync::Mutex::default(),
            injected: AtomicU64::new(0),
            live_runners: std::sync::Mutex::default(),
            duplicates: std::sync::Mutex::default(),
            pipelines_by_ref: std::sync::Mutex::default(),
        }
    }

    /// The next `count` calls of `call` answer `fault`.
    pub fn inject(&self, call: GitLabCall, fault: GitLabFault, count: u64) {
        lock(&self.rules).push(GitLabRule {
            call,
            fault,
            left: count,
        });
    }

    /// Faults injected so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::SeqCst)
    }

    /// Calls of `call` so far (faulted ones included).
    pub fn calls(&self, call: GitLabCall) -> u64 {
        lock(&self.calls).get(&call).copied().unwrap_or(0)
    }

    /// `duplicate …` lines: runners that lived twice with one description, pipelines started
    /// on a ref while another one still ran there.
    pub fn duplicates(&self) -> Vec<String> {
        let mut out = lock(&self.duplicates).clone();
        out.extend(
            lock(&self.pipelines_by_ref)
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(r, n)| {
                    format!("duplicate pipelines: {n} started on ref {r} while another ran")
                }),
        );
        out
    }

    /// Counts the call; the fault to answer, if a rule matches.
    fn hit(&self, call: GitLabCall) -> Option<GitLabFault> {
        *lock(&self.calls).entry(call).or_default() += 1;
        let mut rules = lock(&self.rules);
        let rule = rules.iter_mut().find(|r| r.call == call && r.left > 0)?;
        rule.left -= 1;
        self.injected.fetch_add(1, Ordering::SeqCst);
        Some(rule.fault)
    }

    fn error(
        fault: GitLabFault,
        action: &'static str,
        resource: String,
    ) -> glrunner_gitlab_client::Error {
        use glrunner_gitlab_client::Error;
        match fault {
            GitLabFault::BadGateway | GitLabFault::BadGatewayAfterEffect => Error::Backend {
                action,
                resource,
                status: Some(502),
                message: "HTTP 502: injected fault (Bad Gateway)".into(),
                source: None,
            },
            GitLabFault::TooManyRequests => Error::Throttled {
                action,
                resource,
                retry_after: Some(Duration::from_secs(60)),
                retried: true,
            },
            GitLabFault::Forbidden => Error::PermissionDenied {
                action,
                resource,
                scope: "api".into(),
                message: "HTTP 403 Forbidden: injected fault".into(),
            },
        }
    }

    /// Runs `op` unless the fault answers before GitLab acts; after the effect, the answer is
    /// replaced by the fault's.
    async fn faulted<T, Fut>(
        &self,
        call: GitLabCall,
        action: &'static str,
        resource: impl FnOnce() -> String,
        op: impl FnOnce() -> Fut,
    ) -> glrunner_gitlab_client::Result<T>
    where
        Fut: std::future::Future<Output = glrunner_gitlab_client::Result<T>>,
    {
        match self.hit(call) {
            None => op().await,
            Some(GitLabFault::BadGatewayAfterEffect) => {
                let _effect = op().await;
                Err(Self::error(
                    GitLabFault::BadGatewayAfterEffect,
                    action,
                    resource(),
                ))
            }
            Some(fault) => Err(Self::error(fault, action, resource())),
        }
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[async_trait]
impl<G: glrunner_gitlab_client::GitLabApi> glrunner_gitlab_client::GitLabApi for ChaosGitLab<G> {
    async fn current_user(&self) -> glrunner_gitlab_client::Result<glrunner_gitlab_client::User> {
        self.inner.current_user().await
    }
    async fn version(
        &self,
    ) -> glrunner_gitlab_client::Result<glrunner_gitlab_client::ServerVersion> {
        self.inner.version().await
    }
    async fn token_info(
        &self,
    ) -> glrunner_gitlab_client::Result<glrunner_gitlab_client::TokenInfo> {
        self.inner.token_info().await
    }
    async fn member(
        &self,
        scope: &glrunner_gitlab_client::MemberScope,
        user_id: u64,
    ) -> glrunner_gitlab_client::Result<Option<glrunner_gitlab_client::Member>> {
        self.inner.member(scope, user_id).await
    }
    async fn get_namespace(
        &self,
        path: &str,
    ) -> glrunner_gitlab_client::Result<glrunner_gitlab_client::Namespace> {
        self.inner.get_namespace(path).await
    }
    async fn get_project(
        &self,
        project: &glrunner_gitlab_client::ProjectRef,
    ) -> glrunner_gitlab_client::Result<glrunner_gitlab_client::Project> {
        self.inner.get_project(project).await
    }
    async fn create_project(
        &self,
        new: &glrunner_gitlab_client::NewProject,
    ) -> glrunner_gitlab_client::Result<glrunner_gitlab_client::Project> {
        self.inner.create_project(new).await
    }
    async fn delete_project(
        &self,
        project: &glrunner_gitlab_client::ProjectRef,
    ) -> glrunner_gitlab_client::Result<()> {
        self.inner.delete_project(project).await
    }
    async fn create_runner(
        &self,
        new: &glrunner_gitlab_client::NewRunner,
    ) -> glrunner_gitlab_client::Result<glrunner_gitlab_client::CreatedRunner> {
        self.faulted(
            GitLabCall::CreateRunner,
            "create",
            || format!("runner {}", new.description),
            || async {
                let created = self.inner.create_runner(new).await?;
                let mut live = lock(&self.live_runners);
                if live.values().any(|d| *d == new.description) {
                    lock(&self.duplicates).push(format!(
                        "duplicate runner: two live runners described {:?}",
                        new.description
                    ));
                }
                live.insert(created.id, new.description.clone());
                Ok(created)
            },
        )
        .await
    }
    async fn list_runners(
        &self,
        project: &glrunner_gitlab_client::ProjectRef,
    ) -> glrunner_gitlab_client::Result<Vec<glrunner_gitlab_client::Runner>> {
        self.faulted(
            GitLabCall::ListRunners,
            "list runners of",
            || project.to_string(),
            || self.inner.list_runners(project),
        )
        .await
    }
    async fn get_runner(
        &self,
        runner_id: u64,
    ) -> glrunner_gitlab_client::Result<glrunner_gitlab_client::RunnerDetails> {
        self.inner.get_runner(runner_id).await
    }
    async fn delete_runner(&self, runner_id: u64) -> glrunner_gitlab_client::Result<()> {
        self.faulted(
            GitLabCall::DeleteRunner,
            "delete",
            || format!("runner {runner_id}"),
            || async {
                self.inner.delete_runner(runner_id).await?;
                lock(&self.live_runners).remove(&runner_id);
                Ok(())
            },
        )
        .await
    }
    async fn file_exists(
        &self,
        project: &glrunner_gitlab_client::ProjectRef,
        file_path: &str,
        ref_name: &str,
    ) -> glrunner_gitlab_client::Result<bool> {
        self.inner.file_exists(project, file_path, ref_name).await
    }
    async fn get_branch(
        &self,
        project: &glrunner_gitlab_client::ProjectRef,
        branch: &str,
    ) -> glrunner_gitlab_client::Result<glrunner_gitlab_client::Branch> {
        self.inner.get_branch(project, branch).await
    }
    async fn delete_branch(
        &self,
        project: &glrunner_gitlab_client::ProjectRef,
        branch: &str,
    ) -> glrunner_gitlab_client::Result<()> {
        self.inner.delete_branch(project, branch).await
    }
    async fn commit_files(
        &self,
        project: &glrunner_gitlab_client::ProjectRef,
        commit: &glrunner_gitlab_client::NewCommit,
    ) -> glrunner_gitlab_client::Result<glrunner_gitlab_client::Commit> {
        self.faulted(
            GitLabCall::CommitFiles,
            "commit to",
            || format!("branch {:?} of {project}", commit.branch),
            || self.inner.commit_files(project, commit),
        )
        .await
    }
    async fn create_pipeline(
        &self,
        project: &glrunner_gitlab_client::ProjectRef,
        new: &glrunner_gitlab_client::NewPipeline,
    ) -> glrunner_gitlab_client::Result<glrunner_gitlab_client::Pipeline> {
        self.faulted(
            GitLabCall::CreatePipeline,
            "create",
            || format!("pipeline on {:?} of {project}", new.ref_name),
            || async {
                // Two load-test pipelines running on one ref at once: one was started twice.
                let running = self
                    .inner
                    .list_pipelines(project, &new.ref_name)
                    .await
                    .map(|list| list.iter().filter(|p| !p.status.is_finished()).count())
                    .unwrap_or(0);
                let pipeline = self.inner.create_pipeline(project, new).await?;
                if running > 0 {
                    *lock(&self.pipelines_by_ref)
                        .entry(new.ref_name.clone())
                        .or_default() += 1;
                }
                Ok(pipeline)
            },
        )
        .await
    }
    async fn list_pipelines(
        &self,
        project: &glrunner_gitlab_client::ProjectRef,
        ref_name: &str,
    ) -> glrunner_gitlab_client::Result<Vec<glrunner_gitlab_client::Pipeline>> {
        self.inner.list_pipelines(project, ref_name).await
    }
    async fn get_pipeline(
        &self,
        project: &glrunner_gitlab_client::ProjectRef,
        pipeline_id: u64,
    ) -> glrunner_gitlab_client::Result<glrunner_gitlab_client::Pipeline> {
        self.inner.get_pipeline(project, pipeline_id).await
    }
    async fn list_pipeline_jobs(
        &self,
        project: &glrunner_gitlab_client::ProjectRef,
        pipeline_id: u64,
        query: &glrunner_gitlab_client::JobsQuery,
    ) -> glrunner_gitlab_client::Result<glrunner_gitlab_client::Page<glrunner_gitlab_client::Job>>
    {
        self.faulted(
            GitLabCall::ListPipelineJobs,
            "list jobs of",
            || format!("pipeline {pipeline_id}"),
            || self.inner.list_pipeline_jobs(project, pipeline_id, query),
        )
        .await
    }
    async fn get_job(
        &self,
        project: &glrunner_gitlab_client::ProjectRef,
        job_id: u64,
    ) -> glrunner_gitlab_client::Result<glrunner_gitlab_client::Job> {
        self.inner.get_job(project, job_id).await
    }
    async fn cancel_pipeline(
        &self,
        project: &glrunner_gitlab_client::ProjectRef,
        pipeline_id: u64,
    ) -> glrunner_gitlab_client::Result<glrunner_gitlab_client::Pipeline> {
        self.inner.cancel_pipeline(project, pipeline_id).await
    }
    fn requests_sent(&self) -> u64 {
        self.inner.requests_sent()
    }
}
