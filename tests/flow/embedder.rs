//! An embedder's use of the library crates, with no command line: `glrunner-flow` against real
//! loopback backends (the AWS wiring built with `Environment::builder`, then `run_checked`), and
//! the sandbox flow through `glrunner-sandbox` alone. Neither path touches `glrunner::cli`.

use glrunner_flow::aws::Environment;
use glrunner_flow::{
    ClusterSource, FlowConfig, FlowEvent, Phase, PhaseStatus, PreflightGate, PreflightOptions,
};
use glrunner_gitlab_client::SecretToken;
use glrunner_infra::{StackName, StackSpec};
use glrunner_sandbox::{SandboxConfig, SandboxWorld};
use tokio_util::sync::CancellationToken;

use super::e2e::{E2e, GITLAB_TOKEN};

/// The sandbox flow as an embedder's test writes it: a world, a config, `run_checked`.
#[tokio::test(start_paused = true)]
async fn the_sandbox_flow_runs_through_glrunner_sandbox_alone() {
    let world = SandboxWorld::new(
        "us-east-1",
        SandboxConfig::default().with_hung_fraction(0.0),
    );
    let spec = StackSpec::new(StackName::new("embedded").unwrap(), "us-east-1");
    let config = FlowConfig::new(spec, glrunner_sandbox::SANDBOX_PROJECT, 200);
    let plan = world
        .preflight_plan(&config, &PreflightOptions::default())
        .unwrap();
    let report = world
        .run_checked(
            &config,
            &plan,
            PreflightGate::Check,
            &|_: &FlowEvent<'_>| {},
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert!(report.is_success(), "{}", report.render_text());
    let cost = report.cost.as_ref().expect("run_checked fills the cost");
    assert!(cost.projected.total_usd > 0.0 && cost.estimated.total_usd > 0.0);
    assert_eq!(report.leftovers(), Some(0));
    assert!(report.model.note.contains("model"), "{}", report.model.note);
}

/// A failed preflight is a typed error carrying the report, and nothing is created.
#[tokio::test(start_paused = true)]
async fn a_failed_preflight_is_a_typed_error_and_creates_nothing() {
    let world = SandboxWorld::new("us-east-1", SandboxConfig::default());
    let spec = StackSpec::new(StackName::new("overbudget").unwrap(), "us-east-1");
    let config = FlowConfig::new(spec, glrunner_sandbox::SANDBOX_PROJECT, 400);
    let options = PreflightOptions {
        budget_usd: Some(0.01),
        ..PreflightOptions::default()
    };
    let plan = world.preflight_plan(&config, &options).unwrap();
    let err = world
        .run_checked(
            &config,
            &plan,
            PreflightGate::Check,
            &|_: &FlowEvent<'_>| {},
            &CancellationToken::new(),
        )
        .await
        .unwrap_err();
    let glrunner_flow::CheckedError::Preflight(report) = err else {
        panic!("a failed budget check is CheckedError::Preflight: {err}");
    };
    assert!(report.failed(), "{}", report.render_text());
    let left = world
        .leftovers(&config.spec.stack, glrunner_sandbox::SANDBOX_PROJECT)
        .await;
    assert_eq!(left.total(), 0, "nothing was created: {left:?}");
}

/// The AWS wiring from explicit values (no environment variable, no clap): GitLab (the loopback
/// double), helm (Helm's real engine) and a cluster brought through a kubeconfig (the real
/// apiserver), then `run_checked` with the preflight gate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedder_builds_the_aws_flow_and_runs_it_checked() {
    let Some(e2e) = E2e::prepare("emb").await else {
        return;
    };
    let env = Environment::builder()
        .gitlab_url(&e2e.double.url)
        .gitlab_token(SecretToken::new(GITLAB_TOKEN))
        .helm(&e2e.helm)
        .region("us-east-1")
        .state_dir(e2e.dir.path().join("state"))
        .build()
        .unwrap();
    let backends = env.connect().await.unwrap();
    let mut spec = StackSpec::new(StackName::new(e2e.stack.clone()).unwrap(), "us-east-1");
    spec.cluster.runner_namespace = e2e.namespace.clone();
    let mut config = FlowConfig::new(spec, "e2e/loadtest", 200);
    config.cluster = ClusterSource::Kubeconfig {
        path: e2e.kubeconfig.clone().into(),
        context: None,
    };
    config.chart = glrunner_runner_chart::ChartSource::Path {
        path: e2e.chart.clone(),
    };
    let mut plan = PreflightOptions::default()
        .plan(&config, env.gitlab_url())
        .unwrap();
    plan.helm = Some(e2e.helm.clone().into());
    let clients = env.preflight_clients().await;
    let report = glrunner_flow::run_checked(
        &config,
        &backends,
        &plan,
        &clients.sources(&backends),
        PreflightGate::Check,
        &|_: &FlowEvent<'_>| {},
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert!(report.is_success(), "{}", report.render_text());
    let provision = report.phases.iter().find(|p| p.phase == Phase::Provision);
    assert_eq!(provision.map(|p| p.status), Some(PhaseStatus::Skipped));
    assert!(report.cost.is_some(), "run_checked fills the cost");
    assert_eq!(report.leftovers(), Some(0));
    assert_eq!(e2e.double.get("/double/state")["runners"], 0);
}

/// A failed phase keeps the category of the capability error behind it: an embedder tells a
/// missing permission from a throttled call without reading the message.
#[tokio::test(start_paused = true)]
async fn a_failed_phase_keeps_its_source_error_s_category() {
    let world = SandboxWorld::new(
        "us-east-1",
        SandboxConfig::default().with_fault(Some(glrunner_sandbox::Fault::Provision)),
    );
    let spec = StackSpec::new(StackName::new("category").unwrap(), "us-east-1");
    let config = FlowConfig::new(spec, glrunner_sandbox::SANDBOX_PROJECT, 50);
    let report = world
        .run_flow(&config, &|_: &FlowEvent<'_>| {})
        .await
        .unwrap();
    let failure = report
        .failure
        .as_ref()
        .expect("the injected fault fails provisioning");
    assert_eq!(failure.phase, Phase::Provision);
    assert_eq!(
        failure.category,
        glrunner_flow::Category::PermissionDenied,
        "{}",
        failure.error
    );
}

/// `--janitor in-cluster` on the sandbox: the releases phase applies the janitor's objects (the
/// same `reap deploy` prints) into the runner namespace, and teardown removes every one.
#[tokio::test(start_paused = true)]
async fn an_in_cluster_janitor_is_installed_after_the_releases_and_removed_by_teardown() {
    let world = SandboxWorld::new(
        "us-east-1",
        SandboxConfig::default().with_hung_fraction(0.0),
    );
    let spec = StackSpec::new(StackName::new("janitor").unwrap(), "us-east-1");
    let image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/glrunner-janitor:1";
    let config = FlowConfig::new(spec, glrunner_sandbox::SANDBOX_PROJECT, 50).with_janitor(
        glrunner_flow::JanitorMode::InCluster {
            image: image.into(),
        },
    );
    let plan = world
        .preflight_plan(&config, &PreflightOptions::default())
        .unwrap();
    let expected = config
        .janitor_objects(glrunner_sandbox::SANDBOX_GITLAB_URL, plan.poll_timeout)
        .unwrap()
        .expect("in-cluster objects");
    let steps = std::sync::Mutex::new(Vec::new());
    let installed = std::sync::Mutex::new(None);
    let report = world
        .run_checked(
            &config,
            &plan,
            PreflightGate::Check,
            &|e: &FlowEvent<'_>| match e {
                FlowEvent::Step { phase, message } => {
                    steps.lock().unwrap().push((*phase, message.clone()));
                }
                // What exists while the load test runs: the janitor is in.
                FlowEvent::PhaseStarted {
                    phase: Phase::LoadTest,
                } => *installed.lock().unwrap() = Some(world.janitor.objects()),
                _ => {}
            },
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert!(report.is_success(), "{}", report.render_text());
    let installed = installed.into_inner().unwrap().expect("the load test ran");
    assert_eq!(
        installed.keys().cloned().collect::<Vec<_>>(),
        {
            let mut ids = expected.ids();
            ids.sort();
            ids
        },
        "exactly the printed objects"
    );
    let deployment = installed
        .iter()
        .find(|(id, _)| id.kind == "Deployment")
        .unwrap();
    assert_eq!(deployment.1, image);
    assert!(world.janitor.objects().is_empty(), "teardown removed it");
    let steps = steps.into_inner().unwrap();
    let applied = steps
        .iter()
        .filter(|(p, m)| *p == Phase::Releases && m.starts_with("janitor: applied"))
        .count();
    let deleted = steps
        .iter()
        .filter(|(p, m)| *p == Phase::Teardown && m.starts_with("janitor: deleted"))
        .count();
    assert_eq!(
        (applied, deleted),
        (expected.ids().len(), expected.ids().len())
    );
    assert_eq!(report.leftovers(), Some(0));
    // The janitor reaps with the runners' own poll timeout.
    let args = expected
        .deployment
        .spec
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .args
        .clone()
        .unwrap();
    let timeout = format!("{}s", plan.poll_timeout.as_secs());
    assert!(
        args.windows(2)
            .any(|w| w[0] == "--pending-timeout" && w[1] == timeout),
        "{args:?} ({timeout})"
    );
}

/// Runs `config` checked on `world` and returns the successful report with what the cluster held
/// when the load test began: the job ServiceAccounts in `namespace` and the installed runners.
async fn run_to_the_load_test(
    world: &SandboxWorld,
    config: &FlowConfig,
    namespace: &str,
) -> (
    glrunner_sandbox::SandboxReport,
    Vec<glrunner_runner_chart::JobServiceAccount>,
    Vec<glrunner_runner_chart::InstalledRunner>,
) {
    let plan = world
        .preflight_plan(config, &PreflightOptions::default())
        .unwrap();
    let during = std::sync::Mutex::new(None);
    let report = world
        .run_checked(
            config,
            &plan,
            PreflightGate::Check,
            &|e: &FlowEvent<'_>| {
                if let FlowEvent::PhaseStarted {
                    phase: Phase::LoadTest,
                } = e
                {
                    *during.lock().unwrap() = Some((
                        world.job_accounts.accounts(namespace),
                        world.releases.runners(),
                    ));
                }
            },
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert!(report.is_success(), "{}", report.render_text());
    let (accounts, runners) = during.into_inner().unwrap().expect("the load test ran");
    (report, accounts, runners)
}

/// Job identity through IRSA on the sandbox (#25): the releases phase applies one job
/// ServiceAccount per job role, annotated with its role, in the job namespace before any job
/// runs; every release's executor admits exactly those accounts; teardown removes them. Bad job
/// roles are refused before anything is created.
#[tokio::test(start_paused = true)]
async fn job_service_accounts_are_applied_with_the_releases_and_removed_by_teardown() {
    use glrunner_runner_chart::ServiceAccountInstaller as _;
    let world = SandboxWorld::new(
        "us-east-1",
        SandboxConfig::default().with_hung_fraction(0.0),
    );
    let spec = StackSpec::new(StackName::new("irsa").unwrap(), "us-east-1");
    let namespace = spec.cluster.runner_namespace.clone();
    let mut config = FlowConfig::new(spec, glrunner_sandbox::SANDBOX_PROJECT, 30);
    let accounts = vec![
        (
            "deploy".to_owned(),
            "arn:aws:iam::123456789012:role/irsa-job-deploy".to_owned(),
        ),
        (
            "read-only".to_owned(),
            "arn:aws:iam::123456789012:role/irsa-job-read-only".to_owned(),
        ),
    ];

    // Refused before any call: a role ARN that is none, a name the apiserver refuses.
    for bad in [
        vec![("deploy".to_owned(), "arn:aws:iam::123:policy/x".to_owned())],
        vec![("Deploy_Role".to_owned(), accounts[0].1.clone())],
    ] {
        config.job_accounts = bad;
        let err = config
            .validate(glrunner_sandbox::SANDBOX_GITLAB_URL)
            .unwrap_err();
        assert!(err.to_string().contains("--job-role"), "{err}");
    }

    config.job_accounts = accounts.clone();
    let (report, listed, runners) = run_to_the_load_test(&world, &config, &namespace).await;
    assert_eq!(
        listed
            .iter()
            .map(|a| (a.name.clone(), a.role_arn.clone()))
            .collect::<Vec<_>>(),
        accounts
    );
    assert!(!runners.is_empty());
    for runner in &runners {
        let identity = &runner.values.executor.identity;
        assert_eq!(identity.accounts, ["deploy", "read-only"]);
        assert_eq!(identity.service_account, None);
        assert_eq!(
            identity.overwrite_allowed.as_deref(),
            Some(r"^(deploy|read\-only)$")
        );
    }
    assert!(
        world
            .job_accounts
            .list(&namespace)
            .await
            .unwrap()
            .is_empty(),
        "teardown removed them"
    );
    assert_eq!(report.leftovers(), Some(0));
}

/// What the stack makes reaches the runners on the sandbox (#24, #25): with `--job-role`, the
/// default image cache and the default S3 cache, the flow learns the caller's account and gives
/// the job ServiceAccount the role provisioning made, every manager the cache bucket and the
/// cache role through one ServiceAccount the first release creates, and the job and helper
/// images their pull-through cache paths; the report lists each image's path.
#[tokio::test(start_paused = true)]
async fn the_stacks_job_roles_caches_and_image_paths_reach_the_runners() {
    let world = SandboxWorld::new(
        "us-east-1",
        SandboxConfig::default().with_hung_fraction(0.0),
    );
    let mut spec = StackSpec::new(StackName::new("outs").unwrap(), "us-east-1");
    spec.job_roles = glrunner_infra::job_roles::group([(
        "deploy".to_owned(),
        "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess".to_owned(),
    )]);
    let namespace = spec.cluster.runner_namespace.clone();
    let config =
        FlowConfig::new(spec, glrunner_sandbox::SANDBOX_PROJECT, 30).with_max_per_release(10);
    let (report, accounts, mut runners) = run_to_the_load_test(&world, &config, &namespace).await;
    assert_eq!(
        accounts
            .iter()
            .map(|a| (a.name.as_str(), a.role_arn.as_str()))
            .collect::<Vec<_>>(),
        [(
            "deploy",
            "arn:aws:iam::123456789012:role/outs-us-east-1-job-deploy"
        )]
    );
    runners.sort_by(|a, b| a.id.name.cmp(&b.id.name));
    assert_eq!(runners.len(), 3);
    let registry = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
    for (i, runner) in runners.iter().enumerate() {
        let values = &runner.values;
        assert_eq!(
            values.executor.identity.service_account.as_deref(),
            Some("deploy")
        );
        let account = &values.service_account;
        assert_eq!(account.name.as_deref(), Some("glrunner-manager"));
        assert_eq!(
            account
                .annotations
                .get(glrunner_runner_chart::ROLE_ARN_ANNOTATION)
                .map(String::as_str),
            Some("arn:aws:iam::123456789012:role/outs-us-east-1-runner-cache")
        );
        assert_eq!(account.shared, i > 0, "only the first release creates it");
        let toml = values.runners_config();
        assert!(
            toml.contains("BucketName = \"outs-123456789012-us-east-1-cache\""),
            "{toml}"
        );
        assert!(
            values
                .executor
                .image
                .starts_with(&format!("{registry}/outs/")),
            "{}",
            values.executor.image
        );
        assert_eq!(
            values.executor.helper_image.as_deref(),
            Some(
                format!("{registry}/outs/ecr-public/gitlab/gitlab-runner-helper:x86_64-v18.9.0")
                    .as_str()
            )
        );
    }
    let fleet = report.fleet.as_ref().unwrap();
    assert!(
        fleet
            .image_paths
            .iter()
            .all(|p| matches!(p, glrunner_flow::image_cache::ImagePath::Cache { .. })),
        "{:?}",
        fleet.image_paths
    );
    assert_eq!(report.leftovers(), Some(0));
}
