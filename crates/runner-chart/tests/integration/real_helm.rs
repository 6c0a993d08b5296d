//! `HelmCli` on Helm's real engine (PyPI helm-python-sdk behind `scripts/helm_sdk_cli.py`,
//! installed by `scripts/helm-sdk.sh install`, which prints `GLRUNNER_TEST_HELM=...`) against a
//! real kube-apiserver (`GLRUNNER_TEST_KUBECONFIG`): the release conformance suite, and a runner's
//! whole life with a job namespace, a foreign Secret, a token rotation and an uninstall.
//!
//! The official chart cannot be committed, so the tests write a small chart that follows its
//! interface for what glrunner relies on: `runners.secret` mounted through a projected volume
//! that needs both token keys, `runners.config` rendered with `tpl` into a ConfigMap, the Role
//! and RoleBinding in `runners.jobNamespace` (else the release namespace), a service account
//! with `serviceAccount.annotations`, `podAnnotations` on the manager pod, and the manager's stop:
//! `terminationGracePeriodSeconds` on the pod, `deploymentLifecycle` as the container's
//! `lifecycle`, `shutdown_timeout` into config.toml (chart 0.86.0 `templates/deployment.yaml`,
//! `templates/configmap.yaml`).
//!
//! The test apiserver has no kubelet: no pod ever becomes Ready, so the helm-compatible CLI
//! accepts `--wait` without honouring it (a real wait could only time out), except in the
//! recovery tests: there the CLI marks the release's Deployments ready after a few seconds
//! (`GLRUNNER_HELM_SDK_READY_AFTER`), so the engine's wait holds the release pending that long
//! and a helm killed in the meantime leaves it so.
//!
//! Every test runs twice, with the CLI as Helm 3 and as Helm 4 (`GLRUNNER_HELM_MAJOR`, set by a
//! wrapper script per test): it then parses exactly that major's flags (`scripts/helm_flags.json`,
//! from Helm's cobra definitions at v3.19.0 and v4.2.4) and refuses any other, as helm does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use glrunner_runner_chart::conformance::{self, Suite};
use glrunner_runner_chart::secret::{MANAGED_BY_LABEL, RELEASE_LABEL};
use glrunner_runner_chart::{
    ChartSource, ErrorKind, HelmCli, KubeTokenSecrets, ReleaseManager, ReleaseSpec, ReleaseState,
    Removal, RunnerToken, RunnerValues, SecretOutcome, TOKEN_FINGERPRINT_ANNOTATION, deploy_runner,
    remove_runner,
};
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};

const HELM_ENV: &str = "GLRUNNER_TEST_HELM";
const KUBE_ENV: &str = "GLRUNNER_TEST_KUBECONFIG";

/// The helm major the helm-compatible CLI emulates (scripts/helm_sdk_cli.py).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Major {
    Helm3,
    Helm4,
}

impl Major {
    fn number(self) -> u64 {
        match self {
            Self::Helm3 => 3,
            Self::Helm4 => 4,
        }
    }
}

/// The helm-compatible CLI in one mode: a wrapper script setting its environment.
struct RealHelm {
    _dir: tempfile::TempDir,
    program: PathBuf,
    kubeconfig: PathBuf,
}

impl RealHelm {
    fn cli(&self) -> HelmCli {
        HelmCli::builder()
            .with_program(&self.program)
            .with_kubeconfig(&self.kubeconfig)
            .build()
            .unwrap()
    }
}

/// The helm-compatible CLI as helm `major`, with `env` set for it, or `None` outside CI.
fn real_helm(test: &str, major: Major, env: &[(&str, &str)]) -> Option<RealHelm> {
    let (helm, kubeconfig) = real_parts(test)?;
    let dir = tempfile::tempdir().unwrap();
    let program = dir.path().join("helm");
    let quote = |s: &str| {
        assert!(!s.contains('\''), "{s}");
        format!("'{s}'")
    };
    let mut script = format!("#!/bin/sh\nexport GLRUNNER_HELM_MAJOR={}\n", major.number());
    for (name, value) in env {
        script.push_str(&format!("export {name}={}\n", quote(value)));
    }
    script.push_str(&format!(
        "exec {} \"$@\"\n",
        quote(&helm.display().to_string())
    ));
    std::fs::write(&program, script).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    Some(RealHelm {
        _dir: dir,
        program,
        kubeconfig,
    })
}

/// The helm-compatible CLI and the kubeconfig, or `None` (with the reason printed) outside CI.
fn real_parts(test: &str) -> Option<(PathBuf, PathBuf)> {
    let get = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    match (get(HELM_ENV), get(KUBE_ENV)) {
        (Some(helm), Some(kube)) => Some((helm, kube)),
        _ if std::env::var("CI").is_ok_and(|v| v == "true")
            || std::env::var_os("GLRUNNER_TEST_REQUIRE_SERVERS").is_some_and(|v| v == "1") =>
        {
            panic!(
                "{HELM_ENV} and {KUBE_ENV} must be set here: run ./scripts/test.sh, which installs Helm's engine (scripts/helm-sdk.sh) and starts a kube-apiserver"
            )
        }
        _ => {
            eprintln!(
                "skipping {test}: set {HELM_ENV} (`scripts/helm-sdk.sh install`) and {KUBE_ENV} (`scripts/kube-apiserver.sh start DIR`)"
            );
            None
        }
    }
}

/// A namespace prefix unique to this test run.
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{}",
        std::process::id() % 100_000,
        nanos % 100_000
    )
}

const CHART_YAML: &str = "apiVersion: v2
name: gitlab-runner
version: 0.86.0
appVersion: 18.9.0
description: test chart following the official gitlab-runner chart's interface
";

const VALUES_YAML: &str = "concurrent: 10
checkInterval: 3
shutdown_timeout: 0
terminationGracePeriodSeconds: 3600
deploymentLifecycle: {}
rbac:
  create: false
  clusterWideAccess: false
  rules: []
  generatedServiceAccountName: \"\"
  serviceAccountAnnotations: {}
serviceAccount:
  name: \"\"
  annotations: {}
podAnnotations: {}
podLabels: {}
deploymentAnnotations: {}
resources: {}
envVars: []
runners:
  config: |
    [[runners]]
      [runners.kubernetes]
        namespace = \"{{.Release.Namespace}}\"
        image = \"alpine\"
";

const HELPERS: &str = r#"{{- define "gitlab-runner.fullname" -}}
{{- if contains "gitlab-runner" .Release.Name -}}{{ .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else -}}{{ printf "%s-gitlab-runner" .Release.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- end -}}
{{- define "gitlab-runner.labels" -}}
app: {{ include "gitlab-runner.fullname" . }}
chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
release: {{ .Release.Name | quote }}
heritage: {{ .Release.Service | quote }}
{{- end -}}
{{- define "gitlab-runner.secret" -}}{{ default (include "gitlab-runner.fullname" .) .Values.runners.secret }}{{- end -}}
{{- define "gitlab-runner.serviceAccountName" -}}
{{- if or .Values.serviceAccount.create .Values.serviceAccount.name -}}
{{- .Values.serviceAccount.name | default (include "gitlab-runner.fullname" .) | quote -}}
{{- else if .Values.rbac.create -}}
{{- default (include "gitlab-runner.fullname" .) .Values.rbac.generatedServiceAccountName | quote -}}
{{- else -}}
"{{- .Values.rbac.serviceAccountName -}}"
{{- end -}}
{{- end -}}
"#;

const CONFIGMAP: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "gitlab-runner.fullname" . }}
  labels:
    {{- include "gitlab-runner.labels" . | nindent 4 }}
data:
  concurrent: {{ .Values.concurrent | quote }}
  check-interval: {{ .Values.checkInterval | quote }}
  config.toml: |
    shutdown_timeout = {{ .Values.shutdown_timeout }}
    concurrent = {{ .Values.concurrent }}
  config.template.toml: {{ tpl .Values.runners.config . | quote }}
"#;

const DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "gitlab-runner.fullname" . }}
  labels:
    {{- include "gitlab-runner.labels" . | nindent 4 }}
  {{- with .Values.deploymentAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  replicas: 1
  selector:
    matchLabels:
      app: {{ include "gitlab-runner.fullname" . }}
  template:
    metadata:
      labels:
        {{- include "gitlab-runner.labels" . | nindent 8 }}
        {{- with .Values.podLabels }}{{ toYaml . | nindent 8 }}{{ end }}
      annotations:
        checksum/configmap: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
        {{- with .Values.podAnnotations }}{{ toYaml . | nindent 8 }}{{ end }}
    spec:
      serviceAccountName: {{ include "gitlab-runner.serviceAccountName" . }}
      terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
      containers:
      - name: {{ include "gitlab-runner.fullname" . }}
        image: registry.gitlab.com/gitlab-org/gitlab-runner:alpine-v{{ .Chart.AppVersion }}
        command: ["/usr/bin/dumb-init", "--", "/bin/bash", "/configmaps/entrypoint"]
        {{- if .Values.deploymentLifecycle }}
        lifecycle: {{ toYaml .Values.deploymentLifecycle | nindent 10 }}
        {{- end }}
        env:
        - name: CI_SERVER_URL
          value: {{ .Values.gitlabUrl | quote }}
        {{- range .Values.envVars }}
        - name: {{ .name }}
          value: {{ .value | quote }}
        {{- end }}
        resources:
          {{- toYaml .Values.resources | nindent 10 }}
        volumeMounts:
        - name: projected-secrets
          mountPath: /secrets
        - name: configmaps
          mountPath: /configmaps
      volumes:
      - name: configmaps
        configMap:
          name: {{ include "gitlab-runner.fullname" . }}
      - name: projected-secrets
        projected:
          sources:
          - secret:
              name: {{ include "gitlab-runner.secret" . }}
              items:
              - key: runner-registration-token
                path: runner-registration-token
              - key: runner-token
                path: runner-token
"#;

const RBAC: &str = r#"{{- if .Values.rbac.create }}
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ include "gitlab-runner.fullname" . }}
  namespace: {{ default .Release.Namespace .Values.runners.jobNamespace | quote }}
  labels:
    {{- include "gitlab-runner.labels" . | nindent 4 }}
rules:
{{- if .Values.rbac.rules }}
{{ toYaml .Values.rbac.rules }}
{{- else }}
- apiGroups: [""]
  resources: ["*"]
  verbs: ["*"]
{{- end }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ include "gitlab-runner.fullname" . }}
  namespace: {{ default .Release.Namespace .Values.runners.jobNamespace | quote }}
  labels:
    {{- include "gitlab-runner.labels" . | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{ include "gitlab-runner.fullname" . }}
subjects:
- kind: ServiceAccount
  name: {{ include "gitlab-runner.serviceAccountName" . }}
  namespace: {{ .Release.Namespace | quote }}
{{- end }}
"#;

// The official chart 0.86.0's condition, name and annotations (gitlab-runner-0.86.0.tgz,
// templates/service-account.yaml:1-2 and _helpers.tpl `gitlab-runner.serviceAccountName`): a
// ServiceAccount when serviceAccount.create is true, or rbac.create is true and
// serviceAccount.create is unset; an explicit false renders none.
const SERVICE_ACCOUNT: &str = r#"{{- if or .Values.serviceAccount.create (and .Values.rbac.create (kindIs "invalid" .Values.serviceAccount.create)) -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "gitlab-runner.serviceAccountName" . }}
  labels:
    {{- include "gitlab-runner.labels" . | nindent 4 }}
  {{- with (merge .Values.serviceAccount.annotations .Values.rbac.serviceAccountAnnotations) }}
  annotations:
    {{- range $key, $value := . }}
    {{ $key }}: {{ tpl $value $ | quote }}
    {{- end }}
  {{- end }}
{{- end }}
"#;

/// Writes the test chart into `dir` and returns its path.
fn write_test_chart(dir: &Path) -> PathBuf {
    let chart = dir.join("gitlab-runner");
    let templates = chart.join("templates");
    std::fs::create_dir_all(&templates).expect("chart dir");
    for (path, text) in [
        (chart.join("Chart.yaml"), CHART_YAML),
        (chart.join("values.yaml"), VALUES_YAML),
        (templates.join("_helpers.tpl"), HELPERS),
        (templates.join("configmap.yaml"), CONFIGMAP),
        (templates.join("deployment.yaml"), DEPLOYMENT),
        (templates.join("rbac.yaml"), RBAC),
        (templates.join("service-account.yaml"), SERVICE_ACCOUNT),
    ] {
        std::fs::write(path, text).expect("chart file");
    }
    chart
}

async fn kube_client(kubeconfig: &Path) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("kube config");
    kube::Client::try_from(config).expect("kube client")
}

/// What the tests of rendered values share: Helm 4's real engine, the test chart, the token
/// Secrets and a client of the apiserver.
struct RenderEnv {
    real: RealHelm,
    _dir: tempfile::TempDir,
    chart: PathBuf,
    helm: HelmCli,
    secrets: KubeTokenSecrets,
    client: kube::Client,
}

async fn render_env(test: &str) -> Option<RenderEnv> {
    let real = real_helm(test, Major::Helm4, &[])?;
    let dir = tempfile::tempdir().unwrap();
    let chart = write_test_chart(dir.path());
    let helm = real.cli();
    let secrets = KubeTokenSecrets::connect(Some(&real.kubeconfig), None)
        .await
        .unwrap();
    let client = kube_client(&real.kubeconfig).await;
    Some(RenderEnv {
        real,
        _dir: dir,
        chart,
        helm,
        secrets,
        client,
    })
}

/// The runner's config template as the release's ConfigMap holds it, parsed.
async fn config_template(client: &kube::Client, namespace: &str, release: &str) -> toml::Value {
    let config = Api::<ConfigMap>::namespaced(client.clone(), namespace)
        .get(release)
        .await
        .unwrap();
    toml::from_str(&config.data.unwrap()["config.template.toml"]).unwrap()
}

async fn delete_namespaces(client: &kube::Client, namespaces: &[String]) {
    let api = Api::<Namespace>::all(client.clone());
    for ns in namespaces {
        let _ = api.delete(ns, &DeleteParams::default()).await;
    }
}

#[tokio::test]
async fn release_conformance_on_helms_real_engine_as_helm_3() {
    release_conformance(Major::Helm3).await;
}

#[tokio::test]
async fn release_conformance_on_helms_real_engine_as_helm_4() {
    release_conformance(Major::Helm4).await;
}

async fn release_conformance(major: Major) {
    let Some(real) = real_helm("release_conformance_on_helms_real_engine", major, &[]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let chart = write_test_chart(dir.path());
    let helm = real.cli();
    assert_eq!(
        helm.version().await.unwrap().0.major,
        major.number(),
        "the CLI answers as the helm it emulates"
    );
    let prefix = unique(&format!("glr-helm{}", major.number()));
    let suite = Suite {
        chart: ChartSource::Path { path: chart },
        ..Suite::default()
    };
    conformance::run_release_suite_with(&helm, &prefix, &suite).await;
    let client = kube_client(&real.kubeconfig).await;
    let cases = [
        "idem",
        "upg-missing",
        "upg",
        "uninst",
        "missing",
        "list-a",
        "list-b",
        "invalid",
    ];
    delete_namespaces(&client, &cases.map(|c| format!("{prefix}-{c}"))).await;
}

/// Seconds after which the CLI marks a release's Deployments ready in the recovery tests, so
/// the engine's wait holds the release pending that long (scripts/helm_sdk_cli.py).
const READY_AFTER: &str = "6";

#[tokio::test]
async fn killed_helm_operations_are_cleared_on_helms_real_engine_as_helm_3() {
    killed_operations_are_cleared(Major::Helm3).await;
}

#[tokio::test]
async fn killed_helm_operations_are_cleared_on_helms_real_engine_as_helm_4() {
    killed_operations_are_cleared(Major::Helm4).await;
}

/// The recovery cases on the real engine: helm killed (SIGKILL, as `HelmCli` drops it) 3 s into
/// a 6 s wait leaves the release pending in Helm's storage; the re-run, with a 10 s timeout,
/// waits that out and converges.
async fn killed_operations_are_cleared(major: Major) {
    let Some(real) = real_helm(
        "killed_helm_operations_are_cleared_on_helms_real_engine",
        major,
        &[("GLRUNNER_HELM_SDK_READY_AFTER", READY_AFTER)],
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let chart = write_test_chart(dir.path());
    let helm = real.cli();
    let prefix = unique(&format!("glr-kill{}", major.number()));
    let suite = Suite {
        chart: ChartSource::Path { path: chart },
        kill_after: Duration::from_secs(3),
        pending_timeout: Duration::from_secs(10),
    };
    let started = std::time::Instant::now();
    conformance::run_recovery_suite(&helm, &prefix, &suite).await;
    eprintln!(
        "recovery cases as helm {}: {:?}",
        major.number(),
        started.elapsed()
    );
    let client = kube_client(&real.kubeconfig).await;
    delete_namespaces(
        &client,
        &["kill-inst", "kill-upg"].map(|c| format!("{prefix}-{c}")),
    )
    .await;
}

/// Names of every object of kind `K` in `namespace` carrying the chart's `release` label.
async fn release_objects<K>(client: &kube::Client, namespace: &str, release: &str) -> Vec<String>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    <K as kube::Resource>::DynamicType: Default,
{
    Api::<K>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().labels(&format!("release={release}")))
        .await
        .expect("list")
        .items
        .into_iter()
        .filter_map(|o| o.meta().name.clone())
        .collect()
}

#[tokio::test]
async fn a_runner_release_with_a_job_namespace_lives_and_goes_on_helms_real_engine_as_helm_3() {
    a_runner_release_lives_and_goes(Major::Helm3).await;
}

#[tokio::test]
async fn a_runner_release_with_a_job_namespace_lives_and_goes_on_helms_real_engine_as_helm_4() {
    a_runner_release_lives_and_goes(Major::Helm4).await;
}

async fn a_runner_release_lives_and_goes(major: Major) {
    let Some(real) = real_helm(
        "a_runner_release_with_a_job_namespace_lives_and_goes_on_helms_real_engine",
        major,
        &[],
    ) else {
        return;
    };
    let kubeconfig = real.kubeconfig.clone();
    let dir = tempfile::tempdir().unwrap();
    let chart = write_test_chart(dir.path());
    let helm = real.cli();
    let secrets = KubeTokenSecrets::connect(Some(&kubeconfig), None)
        .await
        .unwrap();
    let client = kube_client(&kubeconfig).await;
    let ns = unique(&format!("glr-life{}", major.number()));
    let jobs_ns = format!("{ns}-jobs");
    let mut values = RunnerValues::new("https://gitlab.example.com/")
        .with_concurrent(200)
        .with_runner_tags(["glrunner-1"])
        .with_job_namespace(&jobs_ns)
        .with_secret_name("gitlab-runner-1-token");
    values.service_account.annotations.insert(
        "eks.amazonaws.com/role-arn".into(),
        "arn:aws:iam::123456789012:role/runner".into(),
    );
    let spec = ReleaseSpec::new("gitlab-runner-1", &ns, values)
        .with_chart(ChartSource::Path { path: chart })
        .with_timeout(Duration::from_secs(120));
    let first = RunnerToken::new("glrt-first-AAAAAAAAAAAAAAAAAAAA").unwrap();
    let second = RunnerToken::new("glrt-second-BBBBBBBBBBBBBBBBBBBB").unwrap();

    // Install: the job namespace is created and holds the executor's Role and RoleBinding.
    let deployed = deploy_runner(&secrets, &helm, &spec, &first).await.unwrap();
    assert_eq!(deployed.secret, SecretOutcome::Created);
    assert_eq!(
        (deployed.release.revision, deployed.release.state.clone()),
        (1, ReleaseState::Deployed)
    );
    let runner = deployed
        .release
        .runner
        .clone()
        .expect("helm reported the values");
    assert_eq!(runner.concurrent, 200);
    assert_eq!(runner.job_namespace.as_deref(), Some(jobs_ns.as_str()));
    assert_eq!(runner.request_concurrency, Some(20));
    assert!(
        Api::<Namespace>::all(client.clone())
            .get_opt(&jobs_ns)
            .await
            .unwrap()
            .is_some(),
        "the job namespace exists"
    );
    assert_eq!(
        release_objects::<Role>(&client, &jobs_ns, "gitlab-runner-1").await,
        ["gitlab-runner-1"],
        "the Role is in the job namespace"
    );
    assert_eq!(
        release_objects::<RoleBinding>(&client, &jobs_ns, "gitlab-runner-1").await,
        ["gitlab-runner-1"]
    );
    assert!(
        release_objects::<Role>(&client, &ns, "gitlab-runner-1")
            .await
            .is_empty()
    );
    let sa = Api::<ServiceAccount>::namespaced(client.clone(), &ns)
        .get("gitlab-runner-1")
        .await
        .expect("the chart created the service account");
    assert_eq!(
        sa.metadata.annotations.unwrap_or_default()["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::123456789012:role/runner"
    );
    let token_secret = Api::<Secret>::namespaced(client.clone(), &ns)
        .get("gitlab-runner-1-token")
        .await
        .unwrap();
    let labels = token_secret.metadata.labels.unwrap_or_default();
    assert_eq!(
        labels.get(MANAGED_BY_LABEL.0).map(String::as_str),
        Some(MANAGED_BY_LABEL.1)
    );
    assert_eq!(
        labels.get(RELEASE_LABEL).map(String::as_str),
        Some("gitlab-runner-1")
    );
    let config = Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .get("gitlab-runner-1")
        .await
        .unwrap();
    let toml = &config.data.unwrap()["config.template.toml"];
    assert!(
        toml.contains(&format!("namespace = \"{jobs_ns}\"")),
        "{toml}"
    );
    assert!(toml.contains("request_concurrency = 20"), "{toml}");

    // The graceful stop: the API server accepted the preStop hook and the grace period, and the
    // runner's config.toml has the shutdown_timeout; helm's stored values read back as graceful.
    let stop = spec.values.graceful_stop.expect("glrunner's default");
    let deployment = Api::<Deployment>::namespaced(client.clone(), &ns)
        .get("gitlab-runner-1")
        .await
        .unwrap();
    let pod_spec = deployment.spec.template.spec.unwrap();
    assert_eq!(
        pod_spec.termination_grace_period_seconds,
        Some(i64::try_from(stop.termination_grace_period().as_secs()).unwrap())
    );
    let pre_stop = pod_spec.containers[0]
        .lifecycle
        .clone()
        .and_then(|l| l.pre_stop)
        .and_then(|h| h.exec)
        .and_then(|e| e.command)
        .expect("preStop exec hook");
    assert_eq!(pre_stop, stop.pre_stop_command());
    let config_toml = Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .get("gitlab-runner-1")
        .await
        .unwrap()
        .data
        .unwrap()["config.toml"]
        .clone();
    assert!(
        config_toml.contains(&format!(
            "shutdown_timeout = {}",
            stop.shutdown_timeout.as_secs()
        )),
        "{config_toml}"
    );
    assert_eq!(runner.graceful_stop, Some(stop));

    // status shows the chart version (helm status itself strips the chart).
    let status = helm.status(&spec.id()).await.unwrap().expect("installed");
    assert_eq!(status.chart_version.as_deref(), Some("0.86.0"));
    assert_eq!(status.app_version.as_deref(), Some("18.9.0"));

    // A token rotation: revision 2, and the manager pod template changes (the pod rolls).
    let pod_annotations = |d: Deployment| {
        d.spec
            .template
            .metadata
            .and_then(|m| m.annotations)
            .unwrap_or_default()
    };
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns);
    let before = pod_annotations(deployments.get("gitlab-runner-1").await.unwrap());
    let rotated = deploy_runner(&secrets, &helm, &spec, &second)
        .await
        .unwrap();
    assert_eq!(rotated.secret, SecretOutcome::Updated);
    assert_eq!(rotated.release.revision, 2);
    let after = pod_annotations(deployments.get("gitlab-runner-1").await.unwrap());
    assert_ne!(
        before.get(TOKEN_FINGERPRINT_ANNOTATION),
        after.get(TOKEN_FINGERPRINT_ANNOTATION),
        "the rotated token rolls the manager pod"
    );

    // Uninstall leaves nothing of the release in either namespace.
    let removal = remove_runner(
        &secrets,
        &helm,
        &spec.id(),
        "gitlab-runner-1-token",
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    assert_eq!(removal, Removal::Removed);
    for namespace in [&ns, &jobs_ns] {
        assert!(
            release_objects::<Role>(&client, namespace, "gitlab-runner-1")
                .await
                .is_empty()
        );
        assert!(
            release_objects::<RoleBinding>(&client, namespace, "gitlab-runner-1")
                .await
                .is_empty()
        );
        assert!(
            release_objects::<Deployment>(&client, namespace, "gitlab-runner-1")
                .await
                .is_empty()
        );
        assert!(
            release_objects::<ConfigMap>(&client, namespace, "gitlab-runner-1")
                .await
                .is_empty()
        );
        let left: Vec<String> = Api::<Secret>::namespaced(client.clone(), namespace)
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|s| s.metadata.name)
            .filter(|n| !n.starts_with("default-token-"))
            .collect();
        assert!(left.is_empty(), "Secrets left in {namespace}: {left:?}");
    }
    assert!(helm.status(&spec.id()).await.unwrap().is_none());
    delete_namespaces(&client, &[ns, jobs_ns]).await;
}

#[tokio::test]
async fn an_install_over_a_foreign_secret_fails_and_leaves_it_as_it_was_as_helm_3() {
    an_install_over_a_foreign_secret(Major::Helm3).await;
}

#[tokio::test]
async fn an_install_over_a_foreign_secret_fails_and_leaves_it_as_it_was_as_helm_4() {
    an_install_over_a_foreign_secret(Major::Helm4).await;
}

async fn an_install_over_a_foreign_secret(major: Major) {
    let Some(real) = real_helm(
        "an_install_over_a_foreign_secret_fails_and_leaves_it_as_it_was",
        major,
        &[],
    ) else {
        return;
    };
    let kubeconfig = real.kubeconfig.clone();
    let dir = tempfile::tempdir().unwrap();
    let chart = write_test_chart(dir.path());
    let helm = real.cli();
    let secrets = KubeTokenSecrets::connect(Some(&kubeconfig), None)
        .await
        .unwrap();
    let client = kube_client(&kubeconfig).await;
    let ns = unique(&format!("glr-foreign{}", major.number()));
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some(ns.clone()),
                    ..ObjectMeta::default()
                },
                ..Namespace::default()
            },
        )
        .await
        .unwrap();
    let secret_api = Api::<Secret>::namespaced(client.clone(), &ns);
    let foreign_data = BTreeMap::from([
        ("password".to_string(), ByteString(b"hunter2".to_vec())),
        (
            "runner-token".to_string(),
            ByteString(b"someone-elses".to_vec()),
        ),
    ]);
    secret_api
        .create(
            &PostParams::default(),
            &Secret {
                metadata: ObjectMeta {
                    name: Some("shared-secret".into()),
                    ..ObjectMeta::default()
                },
                data: Some(foreign_data.clone()),
                ..Secret::default()
            },
        )
        .await
        .unwrap();
    let before = secret_api.get("shared-secret").await.unwrap();
    let spec = ReleaseSpec::new(
        "gitlab-runner-1",
        &ns,
        RunnerValues::new("https://gitlab.example.com/").with_secret_name("shared-secret"),
    )
    .with_chart(ChartSource::Path { path: chart })
    .with_timeout(Duration::from_secs(120));
    let token = RunnerToken::new("glrt-mine-CCCCCCCCCCCCCCCCCCCC").unwrap();

    let e = deploy_runner(&secrets, &helm, &spec, &token)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert!(e.to_string().contains("--secret-name"), "{e}");
    let e = remove_runner(
        &secrets,
        &helm,
        &spec.id(),
        "shared-secret",
        Duration::from_secs(60),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");

    let after = secret_api.get("shared-secret").await.unwrap();
    assert_eq!(after.data, Some(foreign_data), "data untouched");
    assert_eq!(
        after.metadata.resource_version,
        before.metadata.resource_version
    );
    assert!(
        helm.status(&spec.id()).await.unwrap().is_none(),
        "nothing installed"
    );
    delete_namespaces(&client, &[ns]).await;
}

/// Job identity (#25): Helm's engine renders `service_account` and the anchored
/// `service_account_overwrite_allowed` through the chart's `tpl` and `quote` into the runner's
/// config template, backslashes intact (the runner reads `^(deploy|read\.only)$`, not a YAML or
/// TOML escape of it).
#[tokio::test]
async fn job_service_accounts_render_into_the_runner_config_on_helms_real_engine() {
    let Some(real) = real_helm(
        "job_service_accounts_render_into_the_runner_config_on_helms_real_engine",
        Major::Helm4,
        &[],
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let chart = write_test_chart(dir.path());
    let helm = real.cli();
    let secrets = KubeTokenSecrets::connect(Some(&real.kubeconfig), None)
        .await
        .unwrap();
    let client = kube_client(&real.kubeconfig).await;
    let ns = unique("glr-jobsa");
    let jobs_ns = format!("{ns}-jobs");
    let token = RunnerToken::new("glrt-identity-AAAAAAAAAAAAAAAAAAAA").unwrap();
    let read_config = |release: &'static str| {
        let api = Api::<ConfigMap>::namespaced(client.clone(), &ns);
        async move {
            let config = api.get(release).await.unwrap();
            let text = config.data.unwrap()["config.template.toml"].clone();
            let parsed: toml::Value = toml::from_str(&text).unwrap();
            parsed["runners"][0]["kubernetes"].clone()
        }
    };
    for (release, accounts) in [
        ("gitlab-runner-many", vec!["deploy", "read.only"]),
        ("gitlab-runner-one", vec!["deploy"]),
    ] {
        let values = RunnerValues::new("https://gitlab.example.com/")
            .with_job_namespace(&jobs_ns)
            .with_secret_name(format!("{release}-token"))
            .with_job_service_accounts(accounts);
        let spec = ReleaseSpec::new(release, &ns, values)
            .with_chart(ChartSource::Path {
                path: chart.clone(),
            })
            .with_timeout(Duration::from_secs(120));
        deploy_runner(&secrets, &helm, &spec, &token).await.unwrap();
    }
    let many = read_config("gitlab-runner-many").await;
    assert_eq!(
        many["service_account_overwrite_allowed"].as_str(),
        Some(r"^(deploy|read\.only)$")
    );
    assert!(many.get("service_account").is_none(), "{many}");
    let one = read_config("gitlab-runner-one").await;
    assert_eq!(one["service_account"].as_str(), Some("deploy"));
    assert!(
        one.get("service_account_overwrite_allowed").is_none(),
        "{one}"
    );
    delete_namespaces(&client, &[ns, jobs_ns]).await;
}

/// Images through the stack's pull-through cache (#24): Helm's engine renders the job image and
/// the helper image, as `glrunner_flow::FlowConfig` rewrites them (ECR's cache path, the
/// helper at the runner's exact tag, a digest kept), into the runner's config template.
#[tokio::test]
async fn cached_job_and_helper_images_render_into_the_runner_config_on_helms_real_engine() {
    let Some(RenderEnv {
        real: _real,
        _dir,
        chart,
        helm,
        secrets,
        client,
    }) = render_env(
        "cached_job_and_helper_images_render_into_the_runner_config_on_helms_real_engine",
    )
    .await
    else {
        return;
    };
    let ns = unique("glr-ptc");
    let registry = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
    let image = format!(
        "{registry}/glr/docker-hub/library/alpine:3.22@sha256:{}",
        "b".repeat(64)
    );
    let helper = format!("{registry}/glr/ecr-public/gitlab/gitlab-runner-helper:x86_64-v18.9.0");
    let mut values = RunnerValues::new("https://gitlab.example.com/")
        .with_secret_name("gitlab-runner-ptc-token")
        .with_image(&image);
    values.executor.helper_image = Some(helper.clone());
    let spec = ReleaseSpec::new("gitlab-runner-ptc", &ns, values)
        .with_chart(ChartSource::Path { path: chart })
        .with_timeout(Duration::from_secs(120));
    let token = RunnerToken::new("glrt-ptc-AAAAAAAAAAAAAAAAAAAAAAA").unwrap();
    deploy_runner(&secrets, &helm, &spec, &token).await.unwrap();
    let parsed = config_template(&client, &ns, "gitlab-runner-ptc").await;
    let kubernetes = &parsed["runners"][0]["kubernetes"];
    assert_eq!(kubernetes["image"].as_str(), Some(image.as_str()));
    assert_eq!(kubernetes["helper_image"].as_str(), Some(helper.as_str()));
    delete_namespaces(&client, &[ns]).await;
}

/// Job disk (#25): Helm's engine renders the build container's `ephemeral_storage_request` =
/// `_limit` and the CPU, memory and storage overwrite ceilings into the runner's config template,
/// under the keys GitLab Runner reads (`common/config.go`, `KubernetesConfig`'s `toml:` tags).
#[tokio::test]
async fn job_disk_and_overwrite_ceilings_render_into_the_runner_config_on_helms_real_engine() {
    let Some(RenderEnv {
        real: _real,
        _dir,
        chart,
        helm,
        secrets,
        client,
    }) = render_env(
        "job_disk_and_overwrite_ceilings_render_into_the_runner_config_on_helms_real_engine",
    )
    .await
    else {
        return;
    };
    let ns = unique("glr-disk");
    let token = RunnerToken::new("glrt-jobdisk-AAAAAAAAAAAAAAAAAAAAA").unwrap();
    let values = RunnerValues::new("https://gitlab.example.com/")
        .with_secret_name("gitlab-runner-disk-token")
        .with_ephemeral_storage(Some(glrunner_runner_chart::EphemeralStorage::new("30Gi")))
        .with_overwrite_ceilings(glrunner_runner_chart::OverwriteCeilings::equal(
            Some("2"),
            Some("4Gi"),
            Some("60Gi"),
        ));
    let spec = ReleaseSpec::new("gitlab-runner-disk", &ns, values)
        .with_chart(ChartSource::Path { path: chart })
        .with_timeout(Duration::from_secs(120));
    deploy_runner(&secrets, &helm, &spec, &token).await.unwrap();
    let parsed = config_template(&client, &ns, "gitlab-runner-disk").await;
    let k = &parsed["runners"][0]["kubernetes"];
    for (key, want) in [
        ("ephemeral_storage_request", "30Gi"),
        ("ephemeral_storage_limit", "30Gi"),
        ("cpu_request_overwrite_max_allowed", "2"),
        ("cpu_limit_overwrite_max_allowed", "2"),
        ("memory_request_overwrite_max_allowed", "4Gi"),
        ("memory_limit_overwrite_max_allowed", "4Gi"),
        ("ephemeral_storage_request_overwrite_max_allowed", "60Gi"),
        ("ephemeral_storage_limit_overwrite_max_allowed", "60Gi"),
    ] {
        assert_eq!(k[key].as_str(), Some(want), "{key} in {k}");
    }
    delete_namespaces(&client, &[ns]).await;
}

/// The S3 cache through IRSA (#25): two releases of one fleet name the same manager
/// ServiceAccount (the cache role's one subject); Helm's engine renders it, annotated with the
/// role, for the first release only, so the second install is not refused for owning it twice,
/// and both managers run as it with `[runners.cache]` type s3, IAM, in their config template.
#[tokio::test]
async fn two_releases_share_the_cache_service_account_on_helms_real_engine() {
    let Some(RenderEnv {
        real: _real,
        _dir,
        chart,
        helm,
        secrets,
        client,
    }) = render_env("two_releases_share_the_cache_service_account_on_helms_real_engine").await
    else {
        return;
    };
    let ns = unique("glr-s3c");
    let role = "arn:aws:iam::123456789012:role/ci-us-east-1-runner-cache";
    let first = RunnerValues::new("https://gitlab.example.com/").with_s3_cache(
        glrunner_runner_chart::cache::S3Cache {
            bucket: "ci-123456789012-us-east-1-cache".into(),
            region: "us-east-1".into(),
        },
        role,
        "glrunner-manager",
    );
    let second = first.clone().with_shared_service_account();
    for (i, values) in [first, second].into_iter().enumerate() {
        let name = format!("gitlab-runner-s3c-{i}");
        let spec = ReleaseSpec::new(&name, &ns, values.with_secret_name(format!("{name}-token")))
            .with_chart(ChartSource::Path {
                path: chart.clone(),
            })
            .with_timeout(Duration::from_secs(120));
        let token = RunnerToken::new(format!("glrt-s3c{i}-AAAAAAAAAAAAAAAAAAAAAA")).unwrap();
        deploy_runner(&secrets, &helm, &spec, &token).await.unwrap();
        let parsed = config_template(&client, &ns, &name).await;
        let cache = &parsed["runners"][0]["cache"];
        assert_eq!(cache["Type"].as_str(), Some("s3"), "{parsed}");
        assert_eq!(cache["s3"]["AuthenticationType"].as_str(), Some("iam"));
        let deployment = Api::<Deployment>::namespaced(client.clone(), &ns)
            .get(&name)
            .await
            .unwrap();
        let pod = deployment.spec.template.spec.unwrap();
        assert_eq!(
            pod.service_account_name.as_deref(),
            Some("glrunner-manager")
        );
    }
    let account = Api::<ServiceAccount>::namespaced(client.clone(), &ns)
        .get("glrunner-manager")
        .await
        .unwrap();
    let annotations = account.metadata.annotations.unwrap_or_default();
    assert_eq!(
        annotations
            .get(glrunner_runner_chart::ROLE_ARN_ANNOTATION)
            .map(String::as_str),
        Some(role)
    );
    assert_eq!(
        annotations
            .get("meta.helm.sh/release-name")
            .map(String::as_str),
        Some("gitlab-runner-s3c-0"),
        "the first release owns it"
    );
    delete_namespaces(&client, &[ns]).await;
}
