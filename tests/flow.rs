//! Whole-flow tests: the full flow on the sandbox world (400 and 1000 jobs), an injected failure
//! in each phase in turn, the keep flags, phase selection and resumption, secrets hygiene, and
//! the infrastructure phases against moto (`GLRUNNER_TEST_MOTO_URL`, started by scripts/test.sh).

// Each test binary uses its part of the shared module.
#[path = "flow/byo.rs"]
mod byo;
#[path = "flow/doctor.rs"]
mod doctor;
#[path = "flow/e2e.rs"]
mod e2e;
#[path = "flow/embedder.rs"]
mod embedder;
#[path = "flow/example.rs"]
mod example;
#[path = "flow/faults.rs"]
mod faults;
#[path = "flow/pending.rs"]
mod pending;
#[path = "flow/sandbox_model.rs"]
mod sandbox_model;
#[allow(dead_code)]
#[path = "support/servers.rs"]
mod servers;
#[path = "flow/upgrade.rs"]
mod upgrade;

use std::sync::Arc;
use std::time::Duration;

use glrunner::flow::{self, FlowConfig, FlowEvent, FlowReport, Phase, PhaseStatus};
use glrunner::infra::{StackName, StackSpec};
use glrunner::janitor::DeleteOutcome;
use glrunner::sandbox::{Fault, SandboxConfig, SandboxWorld};

const PROJECT: &str = "sandbox/loadtest";

fn spec(stack: &str) -> StackSpec {
    StackSpec::new(StackName::new(stack).unwrap(), "us-east-1")
}

/// Runs the flow on a fresh sandbox world (the test runtime's clock is paused).
async fn run(
    jobs: u32,
    sandbox: SandboxConfig,
    tweak: impl FnOnce(FlowConfig) -> FlowConfig,
) -> (SandboxWorld, FlowConfig, FlowReport) {
    let world = SandboxWorld::new("us-east-1", sandbox);
    let config = tweak(FlowConfig::new(spec("flowtest"), PROJECT, jobs));
    let report = run_on(&world, &config).await;
    (world, config, report)
}

async fn run_on(world: &SandboxWorld, config: &FlowConfig) -> FlowReport {
    let _runners = world.start_runners();
    flow::run(config, &world.backends(), &|_: &FlowEvent<'_>| {})
        .await
        .expect("valid input")
}

/// Everything the issue asks of a successful run.
async fn assert_whole_flow(jobs: u32, shards: usize) {
    // An account whose vCPU quota does not bind: this test is about the flow; capacity is
    // tests/flow/sandbox_model.rs's.
    let sandbox = SandboxConfig::default().with_fargate_vcpu_quota(4000.0);
    let (world, config, report) = run(jobs, sandbox, |c| c).await;
    assert!(report.is_success(), "{}", report.render_text());
    assert!(report.phases.iter().all(|p| p.status == PhaseStatus::Done));

    // Every job finished, successfully.
    let load = report.load_test.as_ref().unwrap();
    assert_eq!(load.total_jobs, jobs as usize);
    assert_eq!(
        load.by_status.get("success"),
        Some(&(jobs as usize)),
        "{:?}",
        load.by_status
    );
    assert_eq!(world.gitlab.pending_jobs(), 0);
    assert!(
        load.job_makespan_secs.unwrap() > 30.0,
        "Fargate start latency is part of the makespan"
    );
    assert!(load.queue_p95_secs.is_some() && load.jobs_per_minute.unwrap() > 0.0);
    // No quota binds: no pod was held up, every job groups under `starting`.
    let classes: Vec<_> = load
        .queue_by_class
        .iter()
        .map(|r| (r.class, r.jobs))
        .collect();
    assert_eq!(
        classes,
        [(glrunner::janitor::PendingClass::Starting, jobs as usize)]
    );

    // The fleet sharded; no shard ever ran more than its concurrent.
    let fleet = report.fleet.as_ref().unwrap();
    assert_eq!(fleet.shards.len(), shards);
    let stats = world.stats();
    assert_eq!(stats.runners.len(), shards);
    let mut taken = 0;
    for (release, r) in &stats.runners {
        assert!(
            r.max_in_flight <= r.concurrent,
            "{release} ran {} jobs at once with concurrent {}",
            r.max_in_flight,
            r.concurrent
        );
        assert!(r.max_in_flight > 0);
        assert_eq!(r.jobs_taken, r.jobs_finished);
        taken += r.jobs_taken;
    }
    assert_eq!(taken, u64::from(jobs), "each job taken exactly once");

    // Every hung pod was reaped, and only job pods were touched.
    let reap = report.reap.as_ref().unwrap();
    assert!(stats.hung_pods > 0, "the simulator left pods hung");
    assert_eq!(reap.reaped as u64, stats.hung_pods, "{reap:?} vs {stats:?}");
    assert_eq!(reap.remaining_job_pods, 0);
    assert!(reap.usd_per_hour_avoided > 0.0);
    // The runners' own deletes leave stuck pods Terminating; the janitor's remove them.
    let deleted: Vec<_> = world
        .pods
        .deletions()
        .into_iter()
        .filter(|d| d.outcome == DeleteOutcome::Deleted)
        .collect();
    assert_eq!(deleted.len() as u64, stats.hung_pods);
    assert!(
        deleted.iter().all(|d| d.key.name.starts_with("runner-")),
        "only job pods are reaped"
    );

    // Nothing left after teardown.
    assert_eq!(report.leftovers(), Some(0));
    let left = world.leftovers(&config.spec.stack, PROJECT).await;
    assert_eq!(left.total(), 0, "{left:?}");
    assert!(world.cloud.all_resources().is_empty());

    // Provisioning includes the ~12-minute EKS creation on the virtual clock, in seconds of wall time.
    assert!(report.provisioning.as_ref().unwrap().makespan_secs >= 12.0 * 60.0);
    assert!(
        report.wall_secs < 60.0,
        "took {}s of wall time",
        report.wall_secs
    );
}

#[tokio::test(start_paused = true)]
async fn whole_flow_400_jobs() {
    assert_whole_flow(400, 2).await;
}

#[tokio::test(start_paused = true)]
async fn whole_flow_1000_jobs_shards_automatically() {
    assert_whole_flow(1000, 5).await;
}

#[tokio::test(start_paused = true)]
async fn an_injected_failure_in_each_phase_still_cleans_up() {
    let cases = [
        (Fault::Provision, Some(Phase::Provision)),
        (Fault::Project, Some(Phase::Project)),
        (Fault::Runners, Some(Phase::Runners)),
        (Fault::Releases, Some(Phase::Releases)),
        (Fault::LoadTest, Some(Phase::LoadTest)),
        (Fault::Reap, Some(Phase::Reap)),
        // A transient conflict while uninstalling: the teardown retries it.
        (Fault::Teardown, None),
    ];
    for (fault, failed) in cases {
        let (world, config, report) =
            run(400, SandboxConfig::default().with_fault(Some(fault)), |c| c).await;
        assert_eq!(
            report.failure.as_ref().map(|f| f.phase),
            failed,
            "{fault:?}: {}",
            report.render_text()
        );
        if let Some(failure) = &report.failure {
            assert!(failure.cleaned_up, "{fault:?}: {}", report.render_text());
            let later: Vec<_> = report
                .phases
                .iter()
                .filter(|p| p.phase > failure.phase)
                .collect();
            assert!(
                later.is_empty(),
                "{fault:?}: no phase runs after the failure"
            );
        }
        let teardown = report.teardown.as_ref().unwrap();
        assert!(
            teardown.errors.is_empty(),
            "{fault:?}: {:?}",
            teardown.errors
        );
        if fault == Fault::Reap {
            // The pod API fails from the start: the Pending samples fail too, the load test
            // does not, and the report says the classes are unknown instead of `starting`.
            let load = report.load_test.as_ref().unwrap();
            let sampling = load.pending_sampling.as_ref().unwrap();
            assert!(
                sampling.samples == 0 && sampling.failed_samples > 0,
                "{sampling:?}"
            );
            assert!(load.queue_by_class.is_empty());
            assert!(
                report.render_text().contains("none of"),
                "{}",
                report.render_text()
            );
        }
        if fault == Fault::LoadTest {
            assert!(
                teardown.pipeline_canceled.is_some(),
                "the running pipeline is canceled"
            );
            assert!(
                world.stats().pods_created > 0,
                "the failure hit while jobs were running"
            );
        }
        assert_eq!(teardown.leftovers.total, 0);
        let left = world.leftovers(&config.spec.stack, PROJECT).await;
        assert_eq!(left.total(), 0, "{fault:?}: {left:?}");
        assert!(world.cloud.all_resources().is_empty(), "{fault:?}");
        assert!(
            world.releases.runners().is_empty() && world.secrets.refs().is_empty(),
            "{fault:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn keep_leaves_everything_for_inspection() {
    let (world, config, report) = run(
        400,
        SandboxConfig::default().with_fault(Some(Fault::Releases)),
        |c| c.with_keep(false, false, true),
    )
    .await;
    assert_eq!(report.failure.as_ref().unwrap().phase, Phase::Releases);
    assert!(report.teardown.is_none(), "no cleanup with --keep");
    let left = world.leftovers(&config.spec.stack, PROJECT).await;
    assert_eq!(left.runners.len(), 2);
    assert_eq!(left.releases.len(), 1);
    assert!(!left.infra.is_empty());
}

#[tokio::test(start_paused = true)]
async fn keep_infra_and_keep_runners() {
    let (world, config, report) = run(400, SandboxConfig::default().with_hung_fraction(0.0), |c| {
        c.with_keep(true, false, false)
    })
    .await;
    assert!(report.is_success(), "{}", report.render_text());
    let left = world.leftovers(&config.spec.stack, PROJECT).await;
    assert!(left.releases.is_empty() && left.runners.is_empty() && left.secrets.is_empty());
    assert!(!left.infra.is_empty(), "--keep-infra keeps the stack");
    assert_eq!(report.reap.as_ref().unwrap().reaped, 0);

    let (world, config, report) = run(400, SandboxConfig::default(), |c| {
        c.with_keep(false, true, false)
    })
    .await;
    assert!(report.is_success(), "{}", report.render_text());
    let left = world.leftovers(&config.spec.stack, PROJECT).await;
    assert_eq!(
        (left.releases.len(), left.runners.len(), left.secrets.len()),
        (2, 2, 2)
    );
    assert!(
        !left.infra.is_empty(),
        "--keep-runners keeps the cluster they run in"
    );
    assert!(
        left.pods.iter().all(|p| p.contains("gitlab-runner-")),
        "only manager pods remain: {:?}",
        left.pods
    );
}

#[tokio::test(start_paused = true)]
async fn phases_are_selectable_and_a_rerun_resumes() {
    // Only the infrastructure: nothing is created in GitLab, but teardown still looks for the
    // stack's runners there (a previous run may have left some).
    let (world, config, report) = run(400, SandboxConfig::default(), |c| {
        c.with_phases([Phase::Provision, Phase::Teardown])
    })
    .await;
    assert!(report.is_success(), "{}", report.render_text());
    assert_eq!(
        report
            .phases
            .iter()
            .filter(|p| p.status == PhaseStatus::Skipped)
            .count(),
        6
    );
    assert!(report.load_test.is_none(), "no load test ran");
    assert_eq!(world.gitlab.runner_count(), 0, "no runner was created");
    assert!(
        world.gitlab.requests() > 0,
        "teardown looked for the stack's runners in GitLab"
    );
    assert_eq!(
        world.leftovers(&config.spec.stack, PROJECT).await.total(),
        0
    );

    // Up to the releases, then a full re-run on the same world: everything is found and reused.
    let world = SandboxWorld::new("us-east-1", SandboxConfig::default());
    let first = FlowConfig::new(spec("flowtest"), PROJECT, 400).with_phases([
        Phase::Provision,
        Phase::Project,
        Phase::Plan,
        Phase::Runners,
        Phase::Releases,
    ]);
    let report = run_on(&world, &first).await;
    assert!(report.is_success(), "{}", report.render_text());
    assert_eq!(world.releases.runners().len(), 2);
    let runner_ids = |r: &FlowReport| -> Vec<Option<u64>> {
        r.fleet
            .as_ref()
            .unwrap()
            .shards
            .iter()
            .map(|s| s.runner_id)
            .collect()
    };
    let first_runners = runner_ids(&report);

    let again = FlowConfig::new(spec("flowtest"), PROJECT, 400);
    let report = run_on(&world, &again).await;
    assert!(report.is_success(), "{}", report.render_text());
    let provisioning = report.provisioning.as_ref().unwrap();
    assert_eq!(provisioning.created, 0, "the stack is found by tag");
    let runners = report
        .phases
        .iter()
        .find(|p| p.phase == Phase::Runners)
        .unwrap();
    assert!(
        runners.summary.contains("0 runner(s) created, 2 reused"),
        "{}",
        runners.summary
    );
    // The same GitLab runners, so the same tokens the managers already hold (GitLab's runner
    // list carries no tags: reuse reads them from each runner's details).
    assert_eq!(runner_ids(&report), first_runners);
    assert_eq!(
        report.load_test.as_ref().unwrap().by_status.get("success"),
        Some(&400)
    );
    assert_eq!(world.leftovers(&again.spec.stack, PROJECT).await.total(), 0);
}

#[tokio::test(start_paused = true)]
async fn runs_are_reproducible() {
    let (_, _, a) = run(400, SandboxConfig::default().with_seed(7), |c| c).await;
    let (_, _, b) = run(400, SandboxConfig::default().with_seed(7), |c| c).await;
    let key = |r: &FlowReport| {
        let l = r.load_test.as_ref().unwrap();
        (
            l.job_makespan_secs,
            l.queue_p95_secs,
            r.reap.as_ref().unwrap().reaped,
            r.total_secs,
        )
    };
    assert_eq!(key(&a), key(&b));
}

#[tokio::test(start_paused = true)]
async fn tokens_never_reach_the_report_or_events() {
    let world = SandboxWorld::new("us-east-1", SandboxConfig::default());
    let config = FlowConfig::new(spec("flowtest"), PROJECT, 400);
    let events = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = events.clone();
    let _runners = world.start_runners();
    let report = flow::run(&config, &world.backends(), &move |e: &FlowEvent<'_>| {
        sink.lock().unwrap().push(format!("{e:?}"))
    })
    .await
    .unwrap();
    assert!(report.is_success());
    let json = serde_json::to_string(&report).unwrap();
    let text = format!(
        "{}{report:?}{}",
        report.render_text(),
        events.lock().unwrap().join("\n")
    );
    for haystack in [&json, &text] {
        assert!(!haystack.contains("glrt-"), "a runner token leaked");
    }
    // The report is one JSON document with the headline numbers.
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(doc["teardown"]["leftovers"]["total"], 0);
    assert!(doc["load_test"]["queue_p50_secs"].is_number());
    assert!(doc["reap"]["reaped"].as_u64().unwrap() > 0);
}

#[tokio::test(start_paused = true)]
async fn invalid_input_changes_nothing() {
    let world = SandboxWorld::new("us-east-1", SandboxConfig::default());
    for config in [
        FlowConfig::new(spec("flowtest"), PROJECT, 0),
        FlowConfig::new(spec("flowtest"), "", 400),
        FlowConfig::new(spec("flowtest"), PROJECT, 400).with_phases([]),
    ] {
        let err = flow::run(&config, &world.backends(), &|_: &FlowEvent<'_>| {})
            .await
            .unwrap_err();
        assert!(matches!(err, flow::Error::InvalidInput { .. }), "{err}");
    }
    assert!(world.cloud.mutating_calls().is_empty());
    assert_eq!(world.gitlab.requests(), 0);
}

/// The flow's infrastructure phases on the real AWS SDK against moto (GitLab and the cluster side
/// from the sandbox, which needs no running cluster).
#[tokio::test]
async fn infrastructure_phases_against_moto() {
    let Some(url) = crate::servers::moto_url() else {
        return;
    };
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(url)
        .region(aws_config::Region::new("us-east-1"))
        .test_credentials()
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(2))
        .load()
        .await;
    let world = SandboxWorld::new("us-east-1", SandboxConfig::default());
    let mut backends = world.backends();
    backends.network = Arc::new(glrunner::infra::aws::AwsNetwork::new(&sdk));
    backends.cluster = Arc::new(glrunner::infra::aws::AwsCluster::new(&sdk));
    backends.waits = glrunner::infra::WaitPolicy::fast();
    let config = FlowConfig::new(spec("flowmoto"), PROJECT, 400).with_phases([
        Phase::Provision,
        Phase::Project,
        Phase::Plan,
        Phase::Runners,
        Phase::Teardown,
    ]);
    let report = tokio::time::timeout(
        Duration::from_secs(300),
        flow::run(&config, &backends, &|_: &FlowEvent<'_>| {}),
    )
    .await
    .expect("bounded")
    .unwrap();
    assert!(report.is_success(), "{}", report.render_text());
    assert!(report.provisioning.as_ref().unwrap().created > 0);
    let teardown = report.teardown.as_ref().unwrap();
    assert!(teardown.infra_deleted > 0);
    assert_eq!(teardown.runners_deleted, 2);
    assert_eq!(teardown.leftovers.total, 0, "{teardown:?}");
}

#[tokio::test]
async fn aws_kube_config_takes_the_eks_endpoint_and_ca() {
    use base64::Engine as _;
    let der = b"certificate bytes".to_vec();
    let body = base64::engine::general_purpose::STANDARD.encode(&der);
    let pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n{}\n-----END CERTIFICATE-----\n",
        &body[..10],
        &body[10..]
    );
    let access = glrunner::infra::ClusterAccess {
        name: "flowtest".into(),
        arn: "arn:aws:eks:us-east-1:123456789012:cluster/flowtest".into(),
        endpoint: "https://ABCDEF.gr7.us-east-1.eks.amazonaws.com".into(),
        certificate_authority: base64::engine::general_purpose::STANDARD.encode(pem),
        fargate_profiles: Vec::new(),
        oidc_issuer: None,
    };
    let config = glrunner::flow::aws::kube_config(&access).await.unwrap();
    assert_eq!(
        config.cluster_url.host(),
        Some("ABCDEF.gr7.us-east-1.eks.amazonaws.com")
    );
    assert_eq!(config.root_cert, Some(vec![der]));
    assert!(
        config.auth_info.token.is_none(),
        "credentials come from the EKS token provider, per request"
    );

    let broken = glrunner::infra::ClusterAccess {
        certificate_authority: "not base64!".into(),
        ..access
    };
    assert!(
        glrunner::flow::aws::kube_config(&broken)
            .await
            .unwrap_err()
            .contains("cluster flowtest")
    );
}

#[tokio::test(start_paused = true)]
async fn cleanup_after_a_failure_honours_keep_infra() {
    let (world, config, report) = run(
        400,
        SandboxConfig::default().with_fault(Some(Fault::Releases)),
        |c| c.with_keep(true, false, false),
    )
    .await;
    assert_eq!(report.failure.as_ref().unwrap().phase, Phase::Releases);
    let left = world.leftovers(&config.spec.stack, PROJECT).await;
    assert!(
        left.releases.is_empty() && left.runners.is_empty() && left.secrets.is_empty(),
        "{left:?}"
    );
    assert!(
        !left.infra.is_empty(),
        "--keep-infra keeps the stack after a failure too"
    );
}

/// Past helm's default `list --max` of 256: 300 releases are installed (at most 4 helm
/// operations at once), all found by teardown, and none is left over.
#[tokio::test(start_paused = true)]
async fn a_fleet_of_300_releases_is_installed_found_and_torn_down() {
    let (world, config, report) = run(300, SandboxConfig::default(), |c| {
        c.with_max_per_release(1).with_phases([
            Phase::Provision,
            Phase::Project,
            Phase::Plan,
            Phase::Runners,
            Phase::Releases,
            Phase::Teardown,
        ])
    })
    .await;
    assert!(report.is_success(), "{}", report.render_text());
    let releases = report
        .phases
        .iter()
        .find(|p| p.phase == Phase::Releases)
        .unwrap();
    assert!(
        releases.summary.starts_with("300 release(s) deployed"),
        "{}",
        releases.summary
    );
    let teardown = report.teardown.as_ref().unwrap();
    assert_eq!(teardown.releases_removed, 300, "{teardown:?}");
    assert_eq!(teardown.leftovers.total, 0, "{teardown:?}");
    assert!(world.releases.runners().is_empty());
    assert_eq!(
        world.leftovers(&config.spec.stack, PROJECT).await.total(),
        0
    );
}

/// helm on `--backend aws` needs no aws CLI and gets no token: each call reads a private
/// kubeconfig (0600, in its own directory, gone after the call) whose user is an exec credential
/// plugin, the glrunner binary itself. Run as client-go runs it (the kubeconfig's command and
/// env, nothing in argv), the binary prints an ExecCredential with a fresh EKS token and its
/// expiry; kube-rs, another implementation of the plugin protocol, accepts it too.
#[cfg(unix)]
#[tokio::test]
async fn helm_gets_a_kubeconfig_whose_plugin_is_glrunner_itself_and_no_token() {
    use glrunner::runner_chart::ReleaseManager as _;
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("capture");
    std::fs::create_dir(&capture).unwrap();
    let helm = dir.path().join("helm");
    std::fs::write(
        &helm,
        format!(
            r#"#!/bin/sh
case "$*" in *version*) echo v3.16.2+g13654a5; exit 0;; esac
echo "$@" >> {c}/argv
while [ $# -gt 0 ]; do
  if [ "$1" = --kubeconfig ]; then cp "$2" {c}/kubeconfig; stat -c %a "$2" > {c}/mode; echo "$2" > {c}/path; fi
  shift
done
echo '[]'
"#,
            c = capture.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helm, std::fs::Permissions::from_mode(0o755)).unwrap();
    let access = glrunner::infra::ClusterAccess {
        name: "flowtest".into(),
        arn: "arn:aws:eks:us-east-1:123456789012:cluster/flowtest".into(),
        endpoint: "https://ABCDEF.gr7.us-east-1.eks.amazonaws.com".into(),
        certificate_authority: String::new(),
        fargate_profiles: Vec::new(),
        oidc_issuer: None,
    };
    // The plugin is a glrunner example binary, built beside this test.
    let full_flow = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/full_flow");
    let plugin = glrunner::infra::kubeconfig::ExecPlugin {
        program: full_flow.clone(),
        region: "us-east-1".into(),
        token_lifetime: glrunner::infra::kubeconfig::EKS_TOKEN_LIFETIME,
    };
    let releases = glrunner::flow::aws::TokenHelm::new(access, plugin, Some(helm));
    assert!(releases.list(None).await.unwrap().is_empty());
    let text = std::fs::read_to_string(capture.join("kubeconfig")).unwrap();
    for absent in [
        "k8s-aws-v1",
        "token:",
        "eks get-token",
        "- get-token",
        "AKID",
        "SECRET",
    ] {
        assert!(!text.contains(absent), "{absent} in {text}");
    }
    assert_eq!(
        std::fs::read_to_string(capture.join("mode"))
            .unwrap()
            .trim(),
        "600"
    );
    let used = std::fs::read_to_string(capture.join("path")).unwrap();
    let used = std::path::Path::new(used.trim());
    assert!(!used.exists(), "removed after the call");
    assert!(!used.parent().unwrap().exists(), "its directory too");
    let argv = std::fs::read_to_string(capture.join("argv")).unwrap();
    assert!(!argv.contains("k8s-aws-v1"), "{argv}");

    // Run the plugin as client-go does: the command, the entry's env over ours, no arguments.
    let kubeconfig: serde_json::Value = serde_norway::from_str(&text).unwrap();
    let exec = &kubeconfig["users"][0]["user"]["exec"];
    assert_eq!(exec["command"], full_flow.display().to_string());
    let mut command = std::process::Command::new(exec["command"].as_str().unwrap());
    command
        .env_remove("AWS_PROFILE")
        .env("AWS_ACCESS_KEY_ID", "AKIDPLUGINTEST")
        .env("AWS_SECRET_ACCESS_KEY", "plugin-test-secret")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env(
            "KUBERNETES_EXEC_INFO",
            r#"{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","spec":{"interactive":false}}"#,
        );
    for var in exec["env"].as_array().unwrap() {
        command.env(
            var["name"].as_str().unwrap(),
            var["value"].as_str().unwrap(),
        );
    }
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let credential: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("only JSON on stdout");
    assert_eq!(credential["apiVersion"], "client.authentication.k8s.io/v1");
    assert_eq!(credential["kind"], "ExecCredential");
    assert!(
        credential["status"]["token"]
            .as_str()
            .unwrap()
            .starts_with("k8s-aws-v1."),
        "{credential}"
    );
    let expires: jiff::Timestamp = credential["status"]["expirationTimestamp"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let left = expires.duration_since(jiff::Timestamp::now());
    assert!(
        left > jiff::SignedDuration::from_mins(13) && left <= jiff::SignedDuration::from_mins(14),
        "14 minutes of EKS's 15: {left:?}"
    );
    // Missing its cluster, the plugin says what is missing and prints no credential.
    let out = std::process::Command::new(&full_flow)
        .env("GLRUNNER_EXEC_CREDENTIAL", "1")
        .env_remove("GLRUNNER_EKS_CLUSTER")
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("GLRUNNER_EKS_CLUSTER"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A runner that never contacts GitLab (no manager picks its token up): the pipeline is not
/// started, and the error names the runner, what GitLab says and the last lines of its manager
/// pod's log, read through the cluster (the chart's `release=<name>` label).
#[tokio::test(start_paused = true)]
async fn an_offline_runner_is_explained_with_its_manager_log_and_no_pipeline_starts() {
    let world = SandboxWorld::new("us-east-1", SandboxConfig::default());
    let config = FlowConfig::new(spec("offline"), PROJECT, 10);
    let namespace = config.spec.cluster.runner_namespace.clone();
    world.cluster_checks.set_log(
        &namespace,
        "release=offline-runner-1",
        "offline-runner-1-gitlab-runner-5fd7489954-jx682",
        "Registering runner... succeeded\nERROR: Checking for jobs... forbidden  status=403 Forbidden\nERROR: Runner token is invalid",
    );
    // No runner simulator: nothing ever contacts GitLab.
    let report = flow::run(&config, &world.backends(), &|_: &FlowEvent<'_>| {})
        .await
        .expect("valid input");
    let failure = report
        .failure
        .as_ref()
        .expect("the runner never came online");
    assert_eq!(failure.phase, Phase::LoadTest, "{failure:?}");
    assert!(
        failure.error.contains("not contacted since"),
        "a contact since this run deployed is required, not GitLab's two-hour online: {}",
        failure.error
    );
    assert!(
        failure.error.contains("the pipeline was not started"),
        "{}",
        failure.error
    );
    assert!(
        failure.error.contains("last lines of ")
            && failure.error.contains("Runner token is invalid"),
        "the manager's log is shown: {}",
        failure.error
    );
    assert!(report.load_test.is_none(), "no pipeline ran");
}
