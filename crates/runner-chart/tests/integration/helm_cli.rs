//! `HelmCli` against the fake helm: what only a fake can show (the commands it issues, the values
//! file's lifecycle, the token's absence from everything helm sees, error shapes, helm versions).
//! The release conformance suite runs on Helm's real engine (`real_helm.rs`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use glrunner_runner_chart::{
    ChartSource, ChartVersion, Error, ErrorKind, HelmCli, InMemoryTokenSecrets, ReleaseId,
    ReleaseManager, ReleaseSpec, ReleaseState, Removal, RunnerToken, RunnerValues,
    TOKEN_FINGERPRINT_ANNOTATION, TokenSecrets, deploy_runner, remove_runner, token_fingerprint,
};

use super::fake_helm::FakeHelm;

const TOKEN: &str = "glrt-t1_SuperSecretTokenValue_0123456789";

/// The tests here run helm in-process one at a time. Besides keeping their fake-helm output
/// apart, this matters for the log-capture test: `tracing` caches each callsite's interest
/// when it is first hit, and a first hit on another thread racing with `set_default` can
/// leave a callsite disabled for the capturing subscriber.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn helm(fake: &FakeHelm) -> HelmCli {
    HelmCli::builder()
        .with_program(fake.program())
        .with_kubeconfig(fake.kubeconfig())
        .with_context("test-ctx")
        .build()
        .expect("helm cli")
}

fn spec() -> ReleaseSpec {
    let values = RunnerValues::new("https://gitlab.example.com/")
        .with_concurrent(200)
        .with_runner_tags(["glrunner-1"]);
    ReleaseSpec::new("gitlab-runner-1", "ci", values).with_timeout(Duration::from_secs(300))
}

/// A `tracing` writer that keeps everything logged, to prove the token never is.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn install_upgrade_uninstall_issue_the_right_commands_and_the_token_is_in_none_of_them() {
    let _serial = SERIAL.lock().await;
    let logs = LogBuffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let fake = FakeHelm::new();
    let helm = helm(&fake);
    let secrets = InMemoryTokenSecrets::new();
    let token = RunnerToken::new(TOKEN).unwrap();
    let spec = spec();

    // install: Secret first, then `helm upgrade --install`.
    let deployed = deploy_runner(&secrets, &helm, &spec, &token)
        .await
        .expect("deploy");
    assert_eq!(deployed.release.state, ReleaseState::Deployed);
    assert_eq!(deployed.release.revision, 1);
    assert_eq!(deployed.release.chart_version.as_deref(), Some("0.86.0"));
    // The fake prints no `config`: nothing may be filled in from the request.
    assert_eq!(deployed.release.runner, None);
    assert_eq!(
        secrets.get(&spec.secret()).await.unwrap().unwrap().token,
        token
    );

    let calls = fake.calls();
    assert_eq!(calls.len(), 2, "{calls:#?}");
    assert_eq!(calls[0].positional(), ["version"]);
    assert!(calls[0].has("--short"));
    // No `helm repo add`: the chart comes with --repo, the user's repositories stay as they are.
    assert!(
        calls.iter().all(|c| c.positional()[0] != "repo"),
        "{calls:#?}"
    );
    let install = &calls[1];
    assert_eq!(
        install.positional(),
        ["upgrade", "gitlab-runner-1", "gitlab-runner"]
    );
    assert_eq!(install.flag("--repo"), Some("https://charts.gitlab.io"));
    for flag in [
        "--install",
        "--create-namespace",
        "--wait",
        "--reset-values",
    ] {
        assert!(install.has(flag), "{flag} missing: {:?}", install.argv);
    }
    assert_eq!(install.flag("--version"), Some("0.86.0"));
    assert_eq!(install.flag("--namespace"), Some("ci"));
    assert_eq!(install.flag("--timeout"), Some("300s"));
    assert_eq!(install.flag("--output"), Some("json"));
    assert_eq!(
        install.flag("--kubeconfig"),
        Some(fake.kubeconfig().to_str().unwrap())
    );
    assert_eq!(install.flag("--kube-context"), Some("test-ctx"));
    let (path, content, mode) = install.values.clone().expect("a values file was passed");
    assert_eq!(mode, "600", "values file mode");
    assert!(
        !path.exists(),
        "values file {} left on disk",
        path.display()
    );
    let mut expected = spec.values.clone();
    expected.pod_annotations.insert(
        TOKEN_FINGERPRINT_ANNOTATION.to_string(),
        token_fingerprint(&token),
    );
    assert_eq!(
        content,
        expected.to_yaml().unwrap(),
        "helm got exactly the typed values (plus the token fingerprint)"
    );
    assert!(content.contains("secret: gitlab-runner-token"));

    // upgrade: no --install, repo not re-added, new values.
    let mut changed = spec.clone();
    changed.values.concurrent = 150;
    let up = helm.upgrade(&changed).await.expect("upgrade");
    assert_eq!(up.revision, 2);
    let calls = fake.calls();
    assert_eq!(calls.len(), 3, "the version is asked once per client");
    let upgrade = &calls[2];
    assert_eq!(
        upgrade.positional(),
        ["upgrade", "gitlab-runner-1", "gitlab-runner"]
    );
    assert!(!upgrade.has("--install") && !upgrade.has("--create-namespace"));
    let (path, content, mode) = upgrade.values.clone().unwrap();
    assert_eq!(mode, "600");
    assert!(!path.exists());
    assert!(content.contains("concurrent: 150"));

    // status and list read helm's JSON; `helm status` strips the chart, so its version comes
    // from `helm get metadata`.
    let status = helm.status(&spec.id()).await.unwrap().expect("exists");
    assert_eq!(
        (status.revision, status.state.clone()),
        (2, ReleaseState::Deployed)
    );
    assert_eq!(status.chart_version.as_deref(), Some("0.86.0"));
    assert_eq!(status.app_version.as_deref(), Some("18.9.0"));
    let metadata = fake.calls().last().unwrap().clone();
    assert_eq!(
        metadata.positional(),
        ["get", "metadata", "gitlab-runner-1"]
    );
    let listed = helm.list(Some("ci")).await.unwrap();
    assert_eq!(listed.len(), 1);
    let list = fake.calls().last().unwrap().clone();
    assert_eq!(list.flag("--namespace"), Some("ci"));
    assert_eq!(list.flag("--max"), Some("0"));

    // uninstall, twice: idempotent; then the Secret goes too.
    let removal = remove_runner(
        &secrets,
        &helm,
        &spec.id(),
        &spec.values.secret_name,
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    assert_eq!(removal, Removal::Removed);
    let uninstall = fake.calls().last().unwrap().clone();
    assert_eq!(uninstall.positional(), ["uninstall", "gitlab-runner-1"]);
    assert_eq!(uninstall.flag("--namespace"), Some("ci"));
    assert!(uninstall.has("--wait"));
    assert_eq!(uninstall.flag("--timeout"), Some("60s"));
    assert!(secrets.get(&spec.secret()).await.unwrap().is_none());
    assert_eq!(
        helm.uninstall(&spec.id(), Duration::from_secs(60))
            .await
            .unwrap(),
        Removal::AlreadyAbsent
    );

    // The token is nowhere: argv, environment, values files, logs, Debug output.
    let seen = fake.everything_seen();
    assert!(
        !seen.contains(TOKEN) && !seen.contains("glrt-"),
        "token reached helm"
    );
    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logged.contains("running helm"),
        "logs were captured: {logged}"
    );
    assert!(
        !logged.contains(TOKEN) && !logged.contains("SuperSecret"),
        "token in logs"
    );
    let debug = format!("{spec:?} {token:?} {deployed:?} {secrets:?}");
    assert!(!debug.contains("SuperSecret"), "token in Debug output");
    // No values file of ours is left in the temp dir from these calls.
    for call in fake.calls() {
        if let Some((path, _, _)) = call.values {
            assert!(!path.exists());
        }
    }
}

#[tokio::test]
async fn a_failing_helm_reports_purpose_status_and_stderr_and_the_values_file_is_still_removed() {
    let _serial = SERIAL.lock().await;
    let fake = FakeHelm::new();
    let helm = helm(&fake);
    let spec = spec().with_chart(ChartSource::Path {
        path: "/charts/gitlab-runner".into(),
    });
    fake.fail_next("Error: INSTALLATION FAILED: boom\nsecond line of context\n");
    let e = helm.ensure(&spec).await.expect_err("helm failed");
    assert_eq!(e.kind(), ErrorKind::Command);
    let Error::Command {
        purpose,
        status,
        stderr_tail,
        program,
    } = &e
    else {
        panic!("{e:?}")
    };
    assert!(
        purpose.contains("install or upgrade helm release \"gitlab-runner-1\" in namespace \"ci\""),
        "{purpose}"
    );
    assert_eq!(status, "exit status 1");
    assert!(
        stderr_tail.contains("boom") && stderr_tail.contains("second line"),
        "{stderr_tail}"
    );
    assert!(program.ends_with("helm"));
    let calls = fake.calls();
    assert_eq!(
        calls.len(),
        2,
        "version, then the upgrade: a local chart needs no repo"
    );
    assert_eq!(
        calls[1].positional(),
        ["upgrade", "gitlab-runner-1", "/charts/gitlab-runner"]
    );
    assert_eq!(calls[1].flag("--version"), None);
    assert_eq!(calls[1].flag("--repo"), None);
    let (path, _, mode) = calls[1].values.clone().unwrap();
    assert_eq!(mode, "600");
    assert!(!path.exists(), "values file left behind after a failure");
}

#[tokio::test]
async fn helm_errors_map_to_categories() {
    let _serial = SERIAL.lock().await;
    let fake = FakeHelm::new();
    let helm = helm(&fake);
    let spec = spec().with_chart(ChartSource::Path {
        path: "chart".into(),
    });
    fake.fail_next(
        "Error: UPGRADE FAILED: another operation (install/upgrade/rollback) is in progress",
    );
    assert_eq!(
        helm.ensure(&spec).await.unwrap_err().kind(),
        ErrorKind::Conflict
    );
    fake.fail_next("Error: UPGRADE FAILED: timed out waiting for the condition");
    let e = helm.ensure(&spec).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert!(
        e.to_string().contains("300s") && e.to_string().contains("gitlab-runner-1"),
        "{e}"
    );
    fake.fail_next(
        "Error: list: secrets is forbidden: User \"system:anonymous\" cannot list resource",
    );
    assert_eq!(
        helm.list(None).await.unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
}

#[tokio::test]
async fn oci_charts_are_pinned_and_skip_the_repo() {
    let _serial = SERIAL.lock().await;
    let fake = FakeHelm::new();
    let helm = helm(&fake);
    let version = ChartVersion::parse("chart_version", "0.92.2").unwrap();
    let spec = spec().with_chart(ChartSource::Oci {
        reference: "oci://registry.example.com/charts/gitlab-runner".into(),
        version,
    });
    helm.ensure(&spec).await.unwrap();
    let calls = fake.calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(
        calls[1].positional(),
        [
            "upgrade",
            "gitlab-runner-1",
            "oci://registry.example.com/charts/gitlab-runner"
        ]
    );
    assert_eq!(calls[1].flag("--version"), Some("0.92.2"));
}

#[tokio::test]
async fn invalid_input_runs_nothing() {
    let _serial = SERIAL.lock().await;
    let fake = FakeHelm::new();
    let helm = helm(&fake);
    let mut bad = spec();
    bad.values.concurrent = 0;
    bad.values.gitlab_url = "http://gitlab.example.com".into();
    let e = helm.ensure(&bad).await.unwrap_err();
    let fields: Vec<&str> = e.issues().iter().map(|i| i.field.as_str()).collect();
    assert_eq!(fields, ["gitlab_url", "concurrent"]);
    assert!(
        helm.uninstall(&ReleaseId::new("Bad NS", "r"), Duration::from_secs(5))
            .await
            .is_err()
    );
    assert!(helm.list(Some("Bad NS")).await.is_err());
    assert!(fake.calls().is_empty(), "helm ran despite invalid input");
}

#[tokio::test]
async fn a_missing_helm_binary_says_how_to_fix_it() {
    let _serial = SERIAL.lock().await;
    let helm = HelmCli::builder()
        .with_program("/nonexistent/bin/helm")
        .build()
        .unwrap();
    let e = helm.status(&ReleaseId::new("ci", "r")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Command);
    let text = e.to_string();
    assert!(
        text.contains("did not start")
            && text.contains("GLRUNNER_HELM")
            && text.contains("read the helm CLI's version"),
        "{text}"
    );
}

#[tokio::test]
async fn list_sees_every_release_past_helms_default_of_256() {
    let _serial = SERIAL.lock().await;
    let fake = FakeHelm::new();
    fake.seed_releases("ci", 300);
    let helm = helm(&fake);
    let listed = helm.list(None).await.unwrap();
    assert_eq!(listed.len(), 300);
    assert_eq!(helm.list(Some("ci")).await.unwrap().len(), 300);
}

#[tokio::test]
async fn helm_older_than_3_8_is_refused_with_a_clear_message() {
    let _serial = SERIAL.lock().await;
    let fake = FakeHelm::new();
    fake.set_version("v3.7.2+g663a896");
    let helm = helm(&fake);
    let e = helm.status(&ReleaseId::new("ci", "r")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    let text = e.to_string();
    assert!(text.contains("3.7.2") && text.contains("3.8"), "{text}");
    assert_eq!(fake.calls().len(), 1, "only `helm version` ran");
}

#[tokio::test]
async fn helm_4_waits_with_the_watcher_and_helm_3_12_reads_the_chart_from_list() {
    let _serial = SERIAL.lock().await;
    let fake = FakeHelm::new();
    fake.set_version("v4.0.1+g1a2b3c4");
    let helm = helm(&fake);
    let spec = spec().with_chart(ChartSource::Path {
        path: "chart".into(),
    });
    helm.ensure(&spec).await.unwrap();
    let upgrade = fake.calls().last().unwrap().clone();
    assert!(upgrade.has("--wait=watcher"), "{:?}", upgrade.argv);
    assert!(!upgrade.has("--wait"), "{:?}", upgrade.argv);
    helm.uninstall(&spec.id(), Duration::from_secs(30))
        .await
        .unwrap();
    assert!(fake.calls().last().unwrap().has("--wait=watcher"));

    let old = FakeHelm::new();
    old.set_version("v3.12.3+g3a31588");
    let helm = self::helm(&old);
    helm.ensure(&spec).await.unwrap();
    let status = helm.status(&spec.id()).await.unwrap().unwrap();
    assert_eq!(status.chart_version.as_deref(), Some("0.86.0"));
    let last = old.calls().last().unwrap().clone();
    assert_eq!(
        last.positional(),
        ["list"],
        "no `get metadata` before helm 3.13"
    );
    assert_eq!(last.flag("--filter"), Some("^gitlab-runner-1$"));
}

/// Set in the child process of `a_token_in_our_environment_does_not_reach_helm`.
const CHILD_ENV: &str = "GLRUNNER_TEST_CHILD_FAKE_HELM";

#[test]
fn a_token_in_our_environment_does_not_reach_helm() {
    let _serial = SERIAL.blocking_lock();
    // The child: our environment holds the token (as the runner example's does); run helm.
    if let Some(program) = std::env::var_os(CHILD_ENV) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let helm = HelmCli::builder().with_program(program).build().unwrap();
        rt.block_on(helm.ensure(&spec().with_chart(ChartSource::Path {
            path: "chart".into(),
        })))
        .expect("ensure in child");
        return;
    }
    // The parent: re-run this very test in a child process whose environment carries the token
    // (setting variables in our own process would need `unsafe`).
    let fake = FakeHelm::new();
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "integration::helm_cli::a_token_in_our_environment_does_not_reach_helm",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, fake.program())
        .env("GLRUNNER_RUNNER_TOKEN", TOKEN)
        .env("SOME_OTHER_VAR", TOKEN)
        .output()
        .expect("spawn child test");
    assert!(
        status.status.success(),
        "child failed:\n{}\n{}",
        String::from_utf8_lossy(&status.stdout),
        String::from_utf8_lossy(&status.stderr)
    );
    let calls = fake.calls();
    assert_eq!(
        calls.len(),
        2,
        "the child ran helm twice (version, upgrade)"
    );
    assert!(
        calls[0].env.contains(CHILD_ENV),
        "the environment was recorded"
    );
    assert!(
        !fake.everything_seen().contains("SuperSecret"),
        "token reached helm's environment"
    );
}

/// The values render with the official chart: a namespace Role (no ClusterRole), the configured
/// `concurrent` and executor settings in the ConfigMap, the Secret referenced, no token.
/// Run with `cargo test -p glrunner-runner-chart -- --ignored values_render` where a real helm 3
/// (`GLRUNNER_HELM` or `helm` on PATH) can reach charts.gitlab.io.
#[test]
#[ignore = "needs a real helm 3 and network access to charts.gitlab.io"]
fn values_render_with_the_official_chart() {
    let helm = std::env::var_os("GLRUNNER_HELM").unwrap_or_else(|| "helm".into());
    let dir = tempfile::tempdir().unwrap();
    let values = RunnerValues::new("https://gitlab.example.com/")
        .with_concurrent(200)
        .with_runner_tags(["glrunner-1"]);
    let file = dir.path().join("values.yaml");
    std::fs::write(&file, values.to_yaml().unwrap()).unwrap();
    let run = |args: &[&std::ffi::OsStr]| {
        let out = std::process::Command::new(&helm)
            .args(args)
            .output()
            .expect("run helm");
        assert!(
            out.status.success(),
            "helm {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    run(&[
        "repo".as_ref(),
        "add".as_ref(),
        "gitlab".as_ref(),
        "https://charts.gitlab.io".as_ref(),
        "--force-update".as_ref(),
    ]);
    let rendered = run(&[
        "template".as_ref(),
        "gitlab-runner-1".as_ref(),
        "gitlab/gitlab-runner".as_ref(),
        "--version".as_ref(),
        glrunner_runner_chart::DEFAULT_CHART_VERSION.as_ref(),
        "--namespace".as_ref(),
        "ci".as_ref(),
        "--values".as_ref(),
        file.as_os_str(),
    ]);
    assert!(rendered.contains("kind: Role\n"), "no namespace Role");
    assert!(!rendered.contains("kind: ClusterRole"), "cluster-wide RBAC");
    for needle in [
        "concurrent = 200",
        "poll_timeout = 300",
        "privileged = false",
        "cpu_limit = \"250m\"",
        "gitlab-runner-token",
    ] {
        assert!(rendered.contains(needle), "{needle} not rendered");
    }
    assert!(!rendered.contains("glrt-"), "a token in the rendered chart");
}
