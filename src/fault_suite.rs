//! The fault suite: the whole flow on the sandbox world under injected faults. Every case must
//! end with the job done or a clear failure, no duplicate resource, and — after the flow's own
//! teardown or cleanup, plus a re-run where the case interrupts the flow — nothing left in AWS,
//! GitLab or Kubernetes. [`run_suite`] returns a benchmark-style summary (cases, faults
//! injected, leftovers, duplicates) that `cargo run --example fault_suite` prints for CI.
//!
//! Cases: a failure injected into each phase ([`Fault`]); AWS throttling on a share of create,
//! describe and delete calls plus a burst of 5xx; the Kubernetes API server unavailable in the
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

use crate::flow::{self, FlowConfig, FlowEvent, FlowReport, Phase};
use crate::sandbox::{Fault, SandboxConfig, SandboxWorld};

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
    /// Resources left in AWS, GitLab and Kubernetes after the case's teardown.
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
    cases.push(apiserver_restart_mid_reap(jobs, seed).await);
    let report = SuiteReport {
        faults_injected: cases.iter().map(|c| c.faults_injected).sum(),
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
    let left = world.leftovers(&config.spec.stack, PROJECT).await;
    let leftovers = left.total();
    if leftovers > 0 {
        detail.push(format!("left: {left:?}"));
    }
    let duplicates = detail.iter().filter(|d| d.starts_with("duplicate")).count();
    let outcome = match &report.failure {
        None => "done".to_owned(),
        Some(f) => format!("failed: {}: {}", f.phase, f.error),
    };
    CaseResult {
        name: name.to_owned(),
        faults_injected: faults,
        outcome,
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

/// Infrastructure backends that throttle a seeded share of calls and answer a burst of 5xx,
/// and record every present resource's step key to catch duplicates.
pub struct ChaosCloud<B> {
    inner: B,
    rng: std::sync::Mutex<fastrand::Rng>,
    throttle_share: f64,
    burst_left: AtomicU64,
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
            injected: AtomicU64::new(0),
            seen: std::sync::Mutex::default(),
        }
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

    fn burst(&self, action: &str) -> Result<(), InfraError> {
        if self
            .burst_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            self.injected.fetch_add(1, Ordering::SeqCst);
            return Err(InfraError::Backend {
                action: action.to_owned(),
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
        self.burst("describe")?;
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
        self.burst("describe")?;
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
