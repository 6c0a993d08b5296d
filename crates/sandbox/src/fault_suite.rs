//! The fault suite: the whole flow on the sandbox world under injected faults. Every case must
//! end with the job done or a clear failure, no duplicate resource, and — after the flow's own
//! teardown or cleanup, plus a re-run where the case interrupts the flow — nothing left in AWS,
//! GitLab or Kubernetes. [`run_suite`] returns a benchmark-style summary (cases, faults
//! injected, leftovers, duplicates) that `cargo run --example fault_suite` prints for CI.
//!
//! Cases: a failure injected into each phase ([`Fault`]); AWS throttling on a share of create,
//! describe and delete calls plus a burst of 5xx (also during teardown's wait for the
//! cluster); GitLab 502s before and after GitLab acted on the runner, commit and pipeline
//! POSTs, and a 429 storm on runner creation ([`GitLabFault`]); two runs of one stack at once;
//! the Kubernetes API server unavailable in the
//! middle of the reap phase (an apiserver restart); and the flow stopped at seeded points of
//! provision, releases and teardown, then run again (what a SIGKILL and a re-run leave).
//!
//! Faults go through the capability crates' decorators (infra's `testing::Faulty`,
//! gitlab-client's `faulty::Faulty`); duplicates are read from the in-memory backends' own
//! records ([`glrunner_infra::memory::InMemoryCloud::created`],
//! [`glrunner_gitlab_client::memory::InMemoryGitLab::history`]),
//! in every case.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use glrunner_gitlab_client::faulty::{self as gitlab, Call as _, GitLabArgs, GitLabRule};
use glrunner_gitlab_client::memory::Event as GitLabEvent;
use glrunner_infra::testing::{self as infra, InfraArgs, InfraCall, InfraRule};
use glrunner_infra::{Error as InfraError, ResourceKind, StackName, StackSpec};
use serde::Serialize;

/// The GitLab calls a case can fault (re-exported from gitlab-client's decorator).
pub use glrunner_gitlab_client::faulty::GitLabCall;

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

/// Leftovers and duplicates from the world itself (not from the flow's own report).
async fn judge(
    name: &str,
    faults: u64,
    world: &SandboxWorld,
    config: &FlowConfig,
    report: &FlowReport,
    mut detail: Vec<String>,
) -> CaseResult {
    detail.extend(duplicates(world));
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
    let chaos = infra::Faulty::new(world.cloud.clone());
    if burst > 0 {
        chaos.inject(describe_burst(burst, None));
    }
    if throttle_share > 0.0 {
        chaos.inject(throttling(seed, throttle_share));
    }
    let chaos = Arc::new(chaos);
    let mut backends = world.backends();
    backends.network = chaos.clone();
    backends.cluster = chaos.clone();
    let report = run_flow(&world, &config, backends).await;
    judge(name, chaos.injected(), &world, &config, &report, Vec::new()).await
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
    let chaos = gitlab::Faulty::new(world.gitlab.clone());
    for &call in calls {
        chaos.inject(fault.rule(call).times(1));
    }
    let chaos = Arc::new(chaos);
    let mut backends = world.backends();
    backends.gitlab = chaos.clone();
    let report = run_flow(&world, &config, backends).await;
    judge(name, chaos.injected(), &world, &config, &report, Vec::new()).await
}

/// A burst of 5xx answers to the cluster's describe calls from the start of the teardown
/// phase, so it hits teardown's wait for the cluster to go: the wait polls through it (a read)
/// and the teardown leaves nothing, instead of keeping the whole network because the wait
/// failed.
async fn aws_burst_in_cleanup(jobs: u32, seed: u64) -> CaseResult {
    let name = "aws-5xx-burst-in-cleanup";
    let world = SandboxWorld::new("us-east-1", SandboxConfig::default().with_seed(seed));
    let config = config(name, jobs);
    let chaos = Arc::new(infra::Faulty::new(world.cloud.clone()));
    let mut backends = world.backends();
    backends.network = chaos.clone();
    backends.cluster = chaos.clone();
    let armed = chaos.clone();
    let progress = move |event: &FlowEvent<'_>| {
        if let FlowEvent::PhaseStarted {
            phase: Phase::Teardown,
        } = event
        {
            armed.inject(describe_burst(8, Some(ResourceKind::Cluster)));
        }
    };
    let _runners = world.start_runners();
    let report = flow::run(&config, &backends, &progress)
        .await
        .unwrap_or_else(|e| panic!("the fault suite's input is valid: {e}"));
    judge(name, chaos.injected(), &world, &config, &report, Vec::new()).await
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
    let backends = world.backends();
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
    judge(
        &name,
        u64::from(killed),
        &world,
        &config,
        &report,
        Vec::new(),
    )
    .await
}

/// Two runs of one stack at once (two CI jobs with separate state directories, so no local
/// lock), the second `lag_secs` later; then the whole flow. Both provisions must end without
/// error, with one stack between them.
async fn two_runs_of_one_stack(jobs: u32, seed: u64, lag_secs: u64) -> CaseResult {
    let name = "two-runs-of-one-stack";
    let world = SandboxWorld::new("us-east-1", SandboxConfig::default().with_seed(seed));
    let config = config(name, jobs);
    let backends = world.backends();
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
    let mut result = judge(name, 1, &world, &config, &report, detail).await;
    if failed {
        result.outcome = format!("failed: concurrent provision; then {}", result.outcome);
    }
    result
}

/// The world's duplicates, from the in-memory backends' own records: two resources made for
/// one plan step (EC2 ids differ; EKS and IAM reuse names, so a re-created profile is none),
/// two live runners with one description, a pipeline started on a ref while another ran there.
/// What the in-memory backends themselves did is read, whichever decorator the flow went
/// through.
fn duplicates(world: &SandboxWorld) -> Vec<String> {
    let mut ids_by_key: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    // Resources EKS makes on its own (ENIs) carry no step key.
    for res in world.cloud.created() {
        if !res.key.is_empty() && res.kind != ResourceKind::NetworkInterface {
            ids_by_key.entry(res.key).or_default().insert(res.id);
        }
    }
    let mut out: Vec<String> = ids_by_key
        .iter()
        .filter(|(_, ids)| ids.len() > 1)
        .map(|(key, ids)| format!("duplicate {key}: {ids:?}"))
        .collect();
    let mut live: BTreeMap<u64, String> = BTreeMap::new();
    let mut started_while_running: BTreeMap<String, u64> = BTreeMap::new();
    for event in world.gitlab.history() {
        match event {
            GitLabEvent::RunnerCreated {
                runner_id,
                description,
                ..
            } => {
                if live.values().any(|d| *d == description) {
                    out.push(format!(
                        "duplicate runner: two live runners described {description:?}"
                    ));
                }
                live.insert(runner_id, description);
            }
            GitLabEvent::RunnerDeleted { runner_id } => {
                live.remove(&runner_id);
            }
            // A load-test pipeline started while another one still ran on its ref.
            GitLabEvent::PipelineCreated {
                ref_name,
                source,
                unfinished_on_ref,
                ..
            } if source == "api" && !unfinished_on_ref.is_empty() => {
                *started_while_running.entry(ref_name).or_default() += 1;
            }
            _ => {}
        }
    }
    out.extend(
        started_while_running
            .iter()
            .map(|(r, n)| format!("duplicate pipelines: {n} started on ref {r} while another ran")),
    );
    out
}

/// AWS throttling (`ThrottlingException`/`RequestLimitExceeded` outlasting the SDK's own
/// retries) on a seeded `share` (0..1) of create, describe and delete calls.
fn throttling(seed: u64, share: f64) -> InfraRule {
    let rng = Mutex::new(fastrand::Rng::with_seed(seed));
    InfraRule::any(|args| InfraError::Throttled {
        action: format!("{} (injected ThrottlingException)", verb(args)),
    })
    .when(move |args| {
        matches!(
            InfraCall::of(args),
            InfraCall::Create | InfraCall::Describe | InfraCall::Delete
        ) && rng.lock().unwrap_or_else(|e| e.into_inner()).f64() < share
    })
}

/// The next `count` describe calls of `kind` (any kind when `None`) answer a 5xx that
/// outlasted the SDK's retries (armed when the teardown starts, it hits its wait for the
/// cluster).
fn describe_burst(count: u64, kind: Option<ResourceKind>) -> InfraRule {
    InfraRule::on(InfraCall::Describe, |args| InfraError::Unavailable {
        action: format!(
            "describe {}",
            args.kind().map_or_else(String::new, |k| k.to_string())
        ),
        // What the AWS backend maps a 503 that outlasted the SDK's own retries to.
        backend: "memory",
        source: "injected 503 Service Unavailable (outlasting the SDK's own retries)".into(),
    })
    .when(move |args| kind.is_none() || args.kind() == kind)
    .times(count)
}

fn verb(args: &InfraArgs<'_>) -> &'static str {
    match args {
        InfraArgs::Create { .. } => "create",
        InfraArgs::Delete { .. } => "delete",
        _ => "describe",
    }
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

impl GitLabFault {
    /// A rule on gitlab-client's decorator: every call of `call` answers this fault (narrow it
    /// with `times`, `skip` and `when`).
    pub fn rule(self, call: GitLabCall) -> GitLabRule {
        let rule = GitLabRule::on(call, move |args| self.error(args));
        match self {
            Self::BadGatewayAfterEffect => rule.after_effect(),
            _ => rule,
        }
    }

    fn error(self, args: &GitLabArgs<'_>) -> glrunner_gitlab_client::Error {
        use glrunner_gitlab_client::Error;
        let (action, resource) = named(args);
        match self {
            Self::BadGateway | Self::BadGatewayAfterEffect => Error::Backend {
                action,
                resource,
                status: Some(502),
                message: "HTTP 502: injected fault (Bad Gateway)".into(),
                source: None,
            },
            Self::TooManyRequests => Error::Throttled {
                action,
                resource,
                retry_after: Some(Duration::from_secs(60)),
                retried: true,
            },
            Self::Forbidden => Error::PermissionDenied {
                action,
                resource,
                scope: "api".into(),
                message: "HTTP 403 Forbidden: injected fault".into(),
            },
        }
    }
}

/// The action and resource an error about the call names.
fn named(args: &GitLabArgs<'_>) -> (&'static str, String) {
    match args {
        GitLabArgs::CreateRunner { new } => ("create", format!("runner {}", new.description)),
        GitLabArgs::ListRunners { project } => ("list runners of", project.to_string()),
        GitLabArgs::DeleteRunner { runner_id } => ("delete", format!("runner {runner_id}")),
        GitLabArgs::CommitFiles { project, commit } => (
            "commit to",
            format!("branch {:?} of {project}", commit.branch),
        ),
        GitLabArgs::CreatePipeline { project, new } => (
            "create",
            format!("pipeline on {:?} of {project}", new.ref_name),
        ),
        GitLabArgs::ListPipelineJobs { pipeline_id, .. } => {
            ("list jobs of", format!("pipeline {pipeline_id}"))
        }
        other => ("call", format!("{:?}", GitLabCall::of(other))),
    }
}

#[cfg(test)]
mod tests {
    use glrunner_gitlab_client::{GitLabApi, GitLabApiExt, NewPipeline, NewRunner, ProjectRef};
    use glrunner_infra::resource::{CreateRequest, ResourceTags};
    use glrunner_infra::{NetworkProvisioner, StackName};

    use super::*;

    fn world() -> SandboxWorld {
        SandboxWorld::new("us-east-1", SandboxConfig::default().with_seed(1))
    }

    #[tokio::test(start_paused = true)]
    async fn duplicates_are_read_from_the_worlds_records() {
        let world = world();
        assert!(duplicates(&world).is_empty());
        // Two VPCs made for one plan step.
        let tags = ResourceTags {
            stack: StackName::new("dup").unwrap().to_string(),
            key: "vpc".into(),
            extra: BTreeMap::new(),
        };
        let vpc = CreateRequest::Vpc {
            cidr: "10.0.0.0/16".parse().unwrap(),
        };
        for _ in 0..2 {
            NetworkProvisioner::create(&world.cloud, &vpc, &tags)
                .await
                .unwrap();
        }
        // Two live runners with one description; a third after one of them went is fine.
        let project = world.gitlab.get_or_create_project(PROJECT).await.unwrap();
        let runner = NewRunner::project(project.id, "shard-a", vec!["a".into()]);
        let first = world.gitlab.create_runner(&runner).await.unwrap();
        world.gitlab.create_runner(&runner).await.unwrap();
        world.gitlab.delete_runner(first.id).await.unwrap();
        // Two pipelines on one ref while the first is pending; one after both were canceled.
        let pref = ProjectRef::Id(project.id);
        let ci = "job:\n  tags: [a]\n  script: [echo]\n";
        world
            .gitlab
            .put_file(&pref, "load", ".gitlab-ci.yml", ci, "ci [skip ci]")
            .await
            .unwrap();
        let mut pipelines = Vec::new();
        for _ in 0..2 {
            let p = world
                .gitlab
                .create_pipeline(&pref, &NewPipeline::new("load"))
                .await
                .unwrap();
            pipelines.push(p.id);
        }
        for id in pipelines {
            world.gitlab.cancel_pipeline(&pref, id).await.unwrap();
        }
        world
            .gitlab
            .create_pipeline(&pref, &NewPipeline::new("load"))
            .await
            .unwrap();
        let found = duplicates(&world);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[0].starts_with("duplicate vpc: {\"vpc-"), "{found:?}");
        assert_eq!(
            found[1],
            "duplicate runner: two live runners described \"shard-a\""
        );
        assert_eq!(
            found[2],
            "duplicate pipelines: 1 started on ref load while another ran"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn gitlab_faults_answer_before_or_after_the_effect() {
        let world = world();
        let project = world.gitlab.get_or_create_project(PROJECT).await.unwrap();
        let chaos = gitlab::Faulty::new(world.gitlab.clone())
            .with_rule(
                GitLabFault::BadGatewayAfterEffect
                    .rule(GitLabCall::CreateRunner)
                    .times(1),
            )
            .with_rule(
                GitLabFault::BadGateway
                    .rule(GitLabCall::CreateRunner)
                    .times(1),
            );
        let runner = NewRunner::project(project.id, "shard-a", vec!["a".into()]);
        let lost = chaos.create_runner(&runner).await.unwrap_err();
        assert!(lost.to_string().contains("502"), "{lost}");
        assert_eq!(world.gitlab.runner_count(), 1, "made, answer lost");
        assert!(chaos.create_runner(&runner).await.is_err());
        assert_eq!(
            world.gitlab.runner_count(),
            1,
            "refused before GitLab acted"
        );
        chaos.create_runner(&runner).await.unwrap();
        assert_eq!(
            (chaos.injected(), chaos.calls(GitLabCall::CreateRunner)),
            (2, 3)
        );
    }
}
