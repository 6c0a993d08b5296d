//! The sandbox's timing model against the reference tutorial's published measurements, through
//! the `full_flow` binary: calibration within ±25 %, what stops the reference at 600 jobs, the
//! tuned profile against the reference, queue times that differ between jobs, and reports that
//! say their timings are a model.

use glrunner::flow::{self, FlowConfig, FlowEvent};
use glrunner::infra::{StackName, StackSpec};
use glrunner::sandbox::model::published;
use glrunner::sandbox::{RunnerProfile, SandboxConfig, SandboxWorld};
use serde_json::Value;

use super::example::full_flow;

/// `full_flow --output json --runner-profile <profile> --jobs <jobs> --hung-fraction 0`.
fn run(profile: &str, jobs: u32) -> (Value, i32) {
    run_with(profile, jobs, &[])
}

fn run_with(profile: &str, jobs: u32, extra: &[&str]) -> (Value, i32) {
    let jobs = jobs.to_string();
    let mut args = vec![
        "--output",
        "json",
        "--runner-profile",
        profile,
        "--jobs",
        &jobs,
        "--hung-fraction",
        "0",
    ];
    args.extend_from_slice(extra);
    let out = full_flow(&args, &[]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not one JSON document ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (report, out.status.code().unwrap_or(-1))
}

fn makespan(report: &Value) -> f64 {
    report["load_test"]["job_makespan_secs"]
        .as_f64()
        .unwrap_or_else(|| panic!("no makespan: {report:#}"))
}

#[test]
fn reference_profile_lands_within_25_percent_of_the_published_makespans() {
    for jobs in [200, 400] {
        let (report, code) = run("reference", jobs);
        assert_eq!(code, 0, "{report:#}");
        assert_eq!(report["load_test"]["by_status"]["success"], jobs);
        let figure = published(jobs).expect("published");
        let got = makespan(&report);
        let ratio = got / figure.makespan_secs;
        assert!(
            (0.75..=1.25).contains(&ratio),
            "{jobs} jobs: modelled {got:.0}s against the published {} ({:.0}s): ratio {ratio:.2}",
            figure.words,
            figure.makespan_secs
        );
    }
}

#[test]
fn reference_profile_at_600_jobs_says_what_stops_it() {
    // The preflight refuses it first (the last wave would wait past the 90 s poll_timeout):
    let (refused, code) = run("reference", 600);
    assert_eq!(code, 1, "{refused:#}");
    let checks = refused["preflight"]["checks"].as_array().expect("checks");
    assert!(
        checks.iter().any(|c| c["id"] == "quota.fargate-vcpu"
            && c["status"] == "fail"
            && c["found"]
                .as_str()
                .is_some_and(|f| f.contains("poll_timeout"))),
        "{refused:#}"
    );
    // past it, the model says what stops the run.
    let (report, code) = run_with("reference", 600, &["--skip-preflight"]);
    let model = &report["model"];
    let limit = model["limit"].as_str().unwrap();
    let verdict = model["verdict"].as_str().unwrap();
    // Either the model names the constraint, or it says it cannot tell.
    assert!(
        ["vcpu-quota", "launch-rate", "pickup"].contains(&limit) || verdict.contains("cannot tell"),
        "{model:#}"
    );
    // The tutorial's jobs hung beyond 400; in the model they queue for the vCPU quota (and
    // finish, or fail after poll_timeout), and the report says so.
    assert!(
        code == 0 || model["jobs_timed_out"].as_u64().unwrap() > 0,
        "{model:#}"
    );
    assert_eq!(limit, "vcpu-quota", "{verdict}");
    let quota_p95 = model["quota_wait"]["p95"].as_f64().unwrap();
    assert!(quota_p95 > 30.0, "pods queued for the quota: {model:#}");
    assert!(
        verdict.contains("cannot tell"),
        "the quota is fitted: {verdict}"
    );
}

/// Far past the quota (1,000 reference jobs: a third time out, many after Fargate found room but
/// before their pod ran), the vCPUs the model counts as held never exceed the quota: a pod that
/// times out gives its vCPUs back.
#[test]
fn vcpus_held_never_exceed_the_quota_when_jobs_time_out() {
    let out = full_flow(
        &[
            "--output",
            "json",
            "--runner-profile",
            "reference",
            "--jobs",
            "1000",
            "--hung-fraction",
            "0",
            "--skip-preflight",
        ],
        &[],
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    let model = &report["model"];
    assert!(model["jobs_timed_out"].as_u64().unwrap() > 0, "{model:#}");
    let (peak, quota) = (
        model["peak_vcpus"].as_f64().unwrap(),
        model["vcpu_quota"].as_f64().unwrap(),
    );
    assert!(
        peak <= quota,
        "peak {peak} vCPUs held of a {quota} vCPU quota"
    );
}

#[test]
fn tuned_profile_is_faster_than_the_reference_at_400_jobs() {
    let (reference, code) = run("reference", 400);
    assert_eq!(code, 0);
    let (tuned, code) = run("tuned", 400);
    assert_eq!(code, 0, "{tuned:#}");
    assert!(
        makespan(&tuned) < makespan(&reference),
        "tuned {:.0}s, reference {:.0}s",
        makespan(&tuned),
        makespan(&reference)
    );
    assert_eq!(tuned["runner_profile"], "tuned");
    assert_eq!(reference["runner_profile"], "reference");
}

#[test]
fn queue_times_differ_between_jobs() {
    for profile in ["reference", "tuned"] {
        let (report, _) = run(profile, 400);
        let p50 = report["load_test"]["queue_p50_secs"].as_f64().unwrap();
        let p95 = report["load_test"]["queue_p95_secs"].as_f64().unwrap();
        assert!(p95 > p50 + 0.5, "{profile}: queue p50 {p50}s, p95 {p95}s");
    }
}

#[test]
fn the_human_report_says_its_timings_are_a_model_and_names_the_profile() {
    let out = full_flow(&["--runner-profile", "reference", "--jobs", "200"], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("runner profile: reference"), "{stdout}");
    assert!(
        stdout.contains("comes from the sandbox's model"),
        "{stdout}"
    );
    assert!(stdout.contains("limited by"), "{stdout}");
    assert!(stdout.contains("fargate.vcpu_quota"), "{stdout}");
    assert!(
        stdout.contains("(modelled: published AWS durations)"),
        "{stdout}"
    );
}

#[test]
fn fargate_vcpu_quota_is_sandbox_only_and_checked() {
    let out = full_flow(&["--fargate-vcpu-quota", "0"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--fargate-vcpu-quota"));
    let out = full_flow(
        &[
            "--backend",
            "aws",
            "--region",
            "us-east-1",
            "--project",
            "g/p",
            "--fargate-vcpu-quota",
            "100",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sandbox only"));
}

/// The library path too: a flow run on the sandbox without the world's model report still says
/// its timings are modelled.
#[tokio::test(start_paused = true)]
async fn every_sandbox_flow_report_is_marked_as_modelled() {
    let world = SandboxWorld::new("us-east-1", SandboxConfig::default());
    let config = FlowConfig::new(
        StackSpec::new(StackName::new("modelled").unwrap(), "us-east-1"),
        "sandbox/loadtest",
        50,
    )
    .with_runner_profile(RunnerProfile::Reference);
    let _runners = world.start_runners();
    let report = flow::run(&config, &world.backends(), &|_: &FlowEvent<'_>| {})
        .await
        .unwrap();
    assert!(report.modelled.as_deref().unwrap().contains("reference"));
    assert!(report.render_text().contains("NOTE: every timing"));
    // And the model's own account lists its parameters and gives a verdict.
    let model = world.model_report(report.load_test.as_ref().and_then(|l| l.queue_p95_secs));
    assert!(model.parameters.len() >= 10 && !model.verdict.is_empty());
    assert!(model.note.contains("fitted"), "{}", model.note);
}

/// One Fargate vCPU quota on the sandbox: the account the preflight reads and the model the
/// simulated runners wait in hold the same value, the model's fitted one unless
/// `--fargate-vcpu-quota` sets both.
#[tokio::test]
async fn the_preflight_account_and_the_model_hold_one_fargate_quota() {
    use glrunner::infra::AccountInspector as _;
    for config in [
        SandboxConfig::default(),
        SandboxConfig::default().with_fargate_vcpu_quota(8.0),
    ] {
        let model_quota = config.model.fargate.vcpu_quota;
        let world = SandboxWorld::new("us-east-1", config);
        let quota = world
            .account
            .quota(
                glrunner::infra::account::FARGATE_VCPU.service_code,
                glrunner::infra::account::FARGATE_VCPU.quota_code,
            )
            .await
            .unwrap();
        assert_eq!(quota.value, model_quota);
        assert_eq!(world.config().model.fargate.vcpu_quota, model_quota);
    }
}

/// The preflight's verdict on the quota is what the model then does: at the default quota the
/// 400 jobs queue in waves (a warning) and all succeed; at 8 vCPUs, or with 1500 jobs, the
/// preflight fails, and the model run past it (`--skip-preflight`) times jobs out, leaving about
/// as many in time as the preflight said.
#[test]
fn the_sandbox_preflight_and_the_model_agree_on_the_fargate_quota() {
    let doctor = |args: &[&str]| {
        let out = super::doctor::example("doctor", args, &[]);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, stdout) = doctor(&[]);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        stdout.contains("[warn] quota.fargate-vcpu") && stdout.contains(") is 80: "),
        "{stdout}"
    );
    let (report, code) = run("tuned", 400);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["model"]["vcpu_quota"], 80.0);
    assert_eq!(report["model"]["jobs_timed_out"], 0);

    // Too small a quota for 400 jobs, and too many jobs for the default quota.
    for (args, jobs, quota) in [
        (
            &["--fargate-vcpu-quota", "8", "--jobs", "400"][..],
            400,
            8.0,
        ),
        (&["--jobs", "1500"][..], 1500, 80.0),
    ] {
        let (code, stdout) = doctor(args);
        assert_eq!(code, Some(1), "{args:?}: {stdout}");
        assert!(stdout.contains("[fail] quota.fargate-vcpu"), "{stdout}");
        let within: u64 = stdout
            .split("plan at most ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no job count in the fix: {stdout}"));
        let out = full_flow(
            &[
                args,
                &[
                    "--output",
                    "json",
                    "--hung-fraction",
                    "0",
                    "--skip-preflight",
                ],
            ]
            .concat(),
            &[],
        );
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["model"]["vcpu_quota"], quota);
        let timed_out = report["model"]["jobs_timed_out"].as_u64().unwrap();
        assert!(timed_out > 0, "{args:?}: {:#}", report["model"]);
        let succeeded = jobs - timed_out;
        // The estimate is coarse (every pod created at once): within a factor of two.
        assert!(
            succeeded <= 2 * within && within <= 2 * succeeded,
            "{args:?}: the model ran {succeeded} jobs in time, the preflight expected {within}"
        );
    }
}

/// The report states the poll timeout the runners were installed with, for both profiles: the
/// reference has the tutorial's 90 s (`KUBERNETES_POLL_TIMEOUT=90`, issue 22 item 11), which
/// the report used to give as the fleet plan's 300 s recommendation (issue 22, item 10).
#[tokio::test(start_paused = true)]
async fn the_report_states_the_poll_timeout_that_was_installed() {
    for profile in [RunnerProfile::Reference, RunnerProfile::Tuned] {
        let world = SandboxWorld::new("us-east-1", SandboxConfig::default());
        let config = FlowConfig::new(
            StackSpec::new(StackName::new("polltimeout").unwrap(), "us-east-1"),
            "sandbox/loadtest",
            400,
        )
        .with_runner_profile(profile)
        .with_keep(false, true, false);
        let _runners = world.start_runners();
        let report = flow::run(&config, &world.backends(), &|_: &FlowEvent<'_>| {})
            .await
            .unwrap();
        let installed: Vec<u64> = world
            .releases
            .runners()
            .iter()
            .map(|r| r.poll_timeout.as_secs())
            .collect();
        assert_eq!(installed.len(), 2, "{profile}: both releases kept");
        let reported = report.fleet.as_ref().unwrap().poll_timeout_secs;
        assert!(
            installed.iter().all(|&p| p == reported),
            "{profile}: reported {reported}s, installed {installed:?}"
        );
        if profile == RunnerProfile::Reference {
            assert_eq!(reported, 90);
        }
    }
}

/// `--runner-profile reference` is the tutorial's configuration (issue 22, item 11), as created
/// in GitLab, installed by Helm and committed: runners tagged `eks-fargate` that take untagged
/// jobs, `concurrent: 200`, `rbac.create: true`, pull policy `if-not-present`,
/// `poll_timeout = 90`, and a CI file of untagged `parallel: 200` jobs of
/// `public.ecr.aws/docker/library/bash` running one `echo` line.
#[tokio::test(start_paused = true)]
async fn the_reference_profile_installs_the_tutorials_configuration() {
    use glrunner::gitlab::GitLabApi as _;
    let world = SandboxWorld::new(
        "us-east-1",
        SandboxConfig::default().with_profile(RunnerProfile::Reference),
    );
    let config = FlowConfig::new(
        StackSpec::new(StackName::new("tutorial").unwrap(), "us-east-1"),
        "sandbox/loadtest",
        400,
    )
    .with_runner_profile(RunnerProfile::Reference)
    .with_keep(false, true, false);
    let _runners = world.start_runners();
    let report = flow::run(&config, &world.backends(), &|_: &FlowEvent<'_>| {})
        .await
        .unwrap();
    assert!(report.is_success(), "{}", report.render_text());
    let installed = world.releases.runners();
    assert_eq!(installed.len(), 2, "400 jobs: two releases");
    for release in &installed {
        let values = &release.values;
        assert_eq!(values.concurrent, 200);
        assert!(values.rbac.create);
        assert_eq!(values.executor.poll_timeout.as_secs(), 90);
        let toml = values.runners_config();
        assert!(
            toml.contains("pull_policy = [\"if-not-present\"]"),
            "{toml}"
        );
        assert!(toml.contains("request_concurrency = 1"), "{toml}");
    }
    let fleet = report.fleet.as_ref().unwrap();
    for shard in &fleet.shards {
        let id = shard.runner_id.expect("runner created");
        let details = world.gitlab.get_runner(id).await.unwrap();
        assert_eq!(details.tag_list, ["eks-fargate"], "{details:?}");
        assert!(details.run_untagged, "{details:?}");
    }
    let project = world
        .gitlab
        .get_project(&glrunner::gitlab::ProjectRef::Path(
            "sandbox/loadtest".into(),
        ))
        .await
        .unwrap();
    let ci = world
        .gitlab
        .file(project.id, "main", ".gitlab-ci.yml")
        .expect("the load test's CI file");
    let jobs = glrunner::gitlab::ci::expand(&ci).unwrap();
    assert_eq!(jobs.len(), 400);
    assert!(jobs.iter().all(|j| j.tags.is_empty()), "untagged: {ci}");
    assert!(
        jobs.iter()
            // The tutorial's ECR Public image, through the stack's pull-through cache.
            .all(|j| j.image.as_deref()
                == Some("123456789012.dkr.ecr.us-east-1.amazonaws.com/tutorial/ecr-public/docker/library/bash")),
        "{ci}"
    );
    assert_eq!(ci.matches("parallel: 200").count(), 2, "{ci}");
    // One `echo` line in each of the two CI jobs.
    assert_eq!(ci.matches("echo").count(), 2, "{ci}");
    assert_eq!(ci.matches("script:").count(), 2, "{ci}");
}
