//! The whole flow on the real backends, end to end: the `full_flow` binary with `--backend aws`
//! on a cluster brought through `--kubeconfig` (the real kube-apiserver of scripts/test.sh),
//! Helm's real engine (`GLRUNNER_TEST_HELM`) with a chart written here that follows the official
//! chart's interface, and the loopback GitLab double (scripts/gitlab_double.py) whose runners come
//! online once their token Secret exists in the cluster. Every phase but provisioning runs through
//! the code users run; afterwards nothing is left: no release, no Secret, no GitLab runner.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};

pub(crate) const GITLAB_TOKEN: &str = "glpat-e2e-double-token";

/// The GitLab double on a free loopback port; killed on drop.
pub(crate) struct GitLabDouble {
    child: Child,
    pub(crate) url: String,
}

impl GitLabDouble {
    fn start(kubeconfig: &str) -> Self {
        Self::start_with(&["--kubeconfig", kubeconfig])
    }

    /// The double with its runners online at once (no cluster to watch), for tests that create
    /// no runner manager; its token is [`GITLAB_TOKEN`].
    pub(crate) fn start_without_cluster() -> Self {
        Self::start_with(&[])
    }

    fn start_with(args: &[&str]) -> Self {
        // The checkout's directory at run time: the build cache is shared between checkouts, so this
        // binary may have been built in another one.
        let script = PathBuf::from(
            std::env::var_os("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
        )
        .join("scripts/gitlab_double.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg("0")
            .args(args)
            .args(["--token", GITLAB_TOKEN])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the GitLab double");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("GLRUNNER_TEST_GITLAB_URL=")
            .unwrap_or_else(|| panic!("the double did not start: {line:?}"))
            .to_owned();
        Self { child, url }
    }

    pub(crate) fn get(&self, path: &str) -> serde_json::Value {
        let out = Command::new("curl")
            .args(["-sf", &format!("{}{path}", self.url)])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    }

    pub(crate) fn post(&self, path: &str, body: &str) {
        let status = Command::new("curl")
            .args([
                "-sf",
                "-o",
                "/dev/null",
                "-X",
                "POST",
                "-H",
                "Content-Type: application/json",
                "-d",
                body,
            ])
            .arg(format!("{}{path}", self.url))
            .status()
            .unwrap();
        assert!(status.success(), "POST {path}");
    }
}

impl Drop for GitLabDouble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A chart with the official gitlab-runner chart's interface for what glrunner relies on: the
/// token Secret (`runners.secret`) mounted through a projected volume that needs both keys, the
/// runner configuration (`runners.config`) in a ConfigMap, and the executor's Role and RoleBinding
/// in `runners.jobNamespace` (falling back to the release namespace).
fn write_chart(dir: &Path) -> PathBuf {
    let chart = dir.join("gitlab-runner");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    let files = [
        (
            "Chart.yaml",
            "apiVersion: v2\nname: gitlab-runner\nversion: 0.86.0\nappVersion: 18.9.0\n",
        ),
        (
            "templates/configmap.yaml",
            r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-gitlab-runner
  labels: {app: {{ .Release.Name }}-gitlab-runner, release: {{ .Release.Name | quote }}}
data:
  concurrent: {{ .Values.concurrent | quote }}
  config.template.toml: {{ .Values.runners.config | quote }}
"#,
        ),
        (
            "templates/role.yaml",
            r#"apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ .Release.Name }}-gitlab-runner
  namespace: {{ default .Release.Namespace .Values.runners.jobNamespace }}
rules:
- apiGroups: [""]
  resources: ["pods", "pods/exec", "pods/attach", "secrets", "configmaps"]
  verbs: ["*"]
"#,
        ),
        (
            "templates/deployment.yaml",
            r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-gitlab-runner
  labels: {app: {{ .Release.Name }}-gitlab-runner, release: {{ .Release.Name | quote }}}
spec:
  replicas: 1
  selector: {matchLabels: {app: {{ .Release.Name }}-gitlab-runner}}
  template:
    metadata:
      labels: {app: {{ .Release.Name }}-gitlab-runner, release: {{ .Release.Name | quote }}}
    spec:
      containers:
      - name: gitlab-runner
        image: registry.gitlab.com/gitlab-org/gitlab-runner:alpine-v18.9.0
        env: [{name: CI_SERVER_URL, value: {{ .Values.gitlabUrl | quote }}}]
        volumeMounts: [{name: projected-secrets, mountPath: /secrets}]
      volumes:
      - name: projected-secrets
        projected:
          sources:
          - secret:
              name: {{ required "runners.secret is required" .Values.runners.secret }}
              items:
              - {key: runner-registration-token, path: runner-registration-token}
              - {key: runner-token, path: runner-token}
"#,
        ),
    ];
    for (name, body) in files {
        std::fs::write(chart.join(name), body).unwrap();
    }
    chart
}

/// CoreDNS as the flow's check wants it: a Running `k8s-app=kube-dns` pod in kube-system. The test
/// apiserver has no scheduler or kubelet, so the phase is set through the status subresource.
async fn ensure_coredns(client: &kube::Client) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "kube-system");
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "coredns-e2e", "labels": {"k8s-app": "kube-dns"}},
        "spec": {"containers": [{"name": "coredns", "image": "coredns"}]}
    }))
    .unwrap();
    match pods.create(&PostParams::default(), &pod).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => panic!("create CoreDNS pod: {e}"),
    }
    pods.patch_status(
        "coredns-e2e",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"status": {"phase": "Running"}})),
    )
    .await
    .unwrap();
}

fn full_flow(args: &[&str], env: &[(&str, &str)]) -> Output {
    example("full_flow", args, env)
}

/// Runs an example binary built beside this test, with a clean environment for its targets.
fn example(name: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let deps = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let bin = deps.parent().unwrap().join("examples").join(name);
    let mut cmd = Command::new(&bin);
    cmd.args(args)
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("GITLAB_URL")
        .env_remove("CI_SERVER_URL")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("GITLAB_TOKEN", GITLAB_TOKEN);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

async fn kube_client(kubeconfig: &str) -> kube::Client {
    let config = glrunner::flow::aws::kube_config_from_file(Path::new(kubeconfig), None)
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

/// What glrunner left in the namespace: its token Secrets and helm's release records.
async fn leftovers(client: &kube::Client, namespace: &str) -> Vec<String> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    secrets
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|s| s.metadata.name)
        .filter(|n| n.contains("-runner-"))
        .collect()
}

fn flow_args<'a>(
    stack: &'a str,
    namespace: &'a str,
    kubeconfig: &'a str,
    helm: &'a str,
    chart: &'a str,
    gitlab: &'a str,
) -> Vec<&'a str> {
    vec![
        "--backend",
        "aws",
        "--region",
        "us-east-1",
        "--output",
        "json",
        "--stack",
        stack,
        "--runner-namespace",
        namespace,
        "--kubeconfig",
        kubeconfig,
        "--helm",
        helm,
        "--chart",
        chart,
        "--gitlab-url",
        gitlab,
        "--project",
        "e2e/loadtest",
        "--jobs",
        "400",
    ]
}

/// One end-to-end world: the servers, CoreDNS, the GitLab double, a chart and a fresh stack.
pub(crate) struct E2e {
    pub(crate) helm: String,
    pub(crate) kubeconfig: String,
    client: kube::Client,
    pub(crate) double: GitLabDouble,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) chart: PathBuf,
    pub(crate) stack: String,
    pub(crate) namespace: String,
}

impl E2e {
    /// `None` (skip) when the servers are not running outside CI.
    pub(crate) async fn prepare(prefix: &str) -> Option<Self> {
        let (helm, kubeconfig) = crate::servers::helm_and_kubeconfig()?;
        Some(Self::prepare_on(prefix, helm, kubeconfig).await)
    }

    /// The same world on the apiserver of `kubeconfig`.
    async fn prepare_on(prefix: &str, helm: String, kubeconfig: String) -> Self {
        let client = kube_client(&kubeconfig).await;
        ensure_coredns(&client).await;
        let double = GitLabDouble::start(&kubeconfig);
        let dir = tempfile::tempdir().unwrap();
        let chart = write_chart(dir.path());
        let stack = format!("{prefix}{}", std::process::id());
        let namespace = format!("{stack}-runners");
        Self {
            helm,
            kubeconfig,
            client,
            double,
            dir,
            chart,
            stack,
            namespace,
        }
    }

    /// `(moto URL, apiserver endpoint)`: the moto shim shows the EKS cluster of this stack (named
    /// after the stack) with the apiserver's endpoint and CA.
    fn moto_cluster_on_the_apiserver(&self) -> (String, String) {
        let moto = std::env::var("GLRUNNER_TEST_MOTO_URL").expect("./scripts/test.sh starts moto");
        let (endpoint, ca) = apiserver_endpoint(&self.kubeconfig);
        let registered = Command::new("curl")
            .args(["-sf", "-o", "/dev/null", "-X", "POST", "-d"])
            .arg(serde_json::json!({ &self.stack: {"endpoint": endpoint, "ca": ca} }).to_string())
            .arg(format!("{moto}/glrunner-shim/eks-endpoints"))
            .status()
            .unwrap();
        assert!(registered.success(), "the moto shim has no EKS auth routes");
        (moto, endpoint)
    }

    /// Runs the `full_flow` binary against this world.
    fn run(&self) -> Output {
        self.run_with(&[])
    }

    /// [`E2e::run`] with `extra` flags.
    fn run_with(&self, extra: &[&str]) -> Output {
        let state = self.dir.path().join("state");
        let mut args = flow_args(
            &self.stack,
            &self.namespace,
            &self.kubeconfig,
            &self.helm,
            self.chart.to_str().unwrap(),
            &self.double.url,
        );
        args.extend(["--state-dir", state.to_str().unwrap()]);
        args.extend_from_slice(extra);
        full_flow(&args, &[])
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]

async fn full_flow_on_the_real_backends_with_a_brought_cluster_leaves_nothing() {
    let Some(e2e) = E2e::prepare("e2e").await else {
        return;
    };
    let (client, double, namespace) = (&e2e.client, &e2e.double, &e2e.namespace);
    // With the janitor in the cluster too: kube-rs applies its objects after the releases and
    // teardown removes them (the apiserver runs no controller-manager, so its Deployment starts
    // no pod here; `reap deploy`'s own tests run its entry point in-cluster).
    let out = e2e.run_with(&[
        "--janitor",
        "in-cluster",
        "--janitor-image",
        "registry.example/glrunner-janitor:e2e",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON report");
    assert!(report["failure"].is_null(), "{report}");
    assert!(
        report["cluster"]
            .as_str()
            .unwrap()
            .contains("brought by the user"),
        "{report}"
    );
    let releases = report["phases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["phase"] == "releases")
        .unwrap();
    assert!(
        releases["summary"]
            .as_str()
            .unwrap()
            .contains("janitor in-cluster (7 objects)"),
        "{releases}"
    );
    let janitor: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), namespace);
    assert!(
        janitor.get_opt("glrunner-janitor").await.unwrap().is_none(),
        "teardown removed the janitor"
    );
    let phases = report["phases"].as_array().unwrap();
    assert_eq!(phases[0]["phase"], "provision");
    assert_eq!(phases[0]["status"], "skipped");
    for p in &phases[1..] {
        assert_eq!(p["status"], "done", "{p}");
    }
    assert_eq!(report["load_test"]["total_jobs"], 400, "{report}");
    assert_eq!(report["load_test"]["by_status"]["success"], 400, "{report}");
    assert_eq!(report["fleet"]["shards"].as_array().unwrap().len(), 2);
    assert_eq!(report["teardown"]["leftovers"]["total"], 0);
    assert_eq!(report["teardown"]["infra_deleted"], 0);

    let state_of_gitlab = double.get("/double/state");
    assert_eq!(
        state_of_gitlab["pipelines"], 1,
        "exactly one pipeline: {state_of_gitlab}"
    );
    assert_eq!(state_of_gitlab["pipelines_by_source"]["api"], 1);
    assert_eq!(
        state_of_gitlab["runners"], 0,
        "runners deleted: {state_of_gitlab}"
    );
    assert_eq!(state_of_gitlab["jobs"]["success"], 400);
    assert!(
        leftovers(client, namespace).await.is_empty(),
        "no Secret or release record left in {namespace}"
    );
    assert!(!stderr.contains("glrt-"), "no runner token in the output");
}

/// A fault in each phase that talks to a real backend: the flow fails in that phase with a clear
/// error, cleans up what it created, and leaves nothing in GitLab or the cluster. (The reap phase
/// reads the apiserver, which cannot be told to fail one call; `tests/flow/faults.rs` covers it on
/// the in-memory pod API.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_in_each_phase_fails_clearly_and_leaves_nothing() {
    // (phase, GitLab faults `{"METHOD path-regex": [status, count, skip]}`, break the chart)
    let cases: [(&str, &str, bool); 4] = [
        // GitLab cannot create the project (more 500s than the client retries).
        ("project", r#"{"POST /api/v4/projects": [500, 100]}"#, false),
        // The first runner is created, then every further creation fails.
        (
            "runners",
            r#"{"POST /api/v4/user/runners": [500, 100, 1]}"#,
            false,
        ),
        // Helm cannot render the chart.
        ("releases", "{}", true),
        // GitLab refuses to create the pipeline (a POST is never repeated blindly).
        (
            "load-test",
            r#"{"POST /api/v4/projects/[0-9]+/pipeline": [500, 100]}"#,
            false,
        ),
    ];
    for (phase, faults, break_chart) in cases {
        let Some(e2e) = E2e::prepare(&format!("e2f{}", &phase[..1])).await else {
            return;
        };
        let (client, double, namespace) = (&e2e.client, &e2e.double, &e2e.namespace);
        double.post("/double/faults", faults);
        if break_chart {
            std::fs::write(
                e2e.chart.join("templates/broken.yaml"),
                "{{ fail \"injected: this chart cannot be rendered\" }}\n",
            )
            .unwrap();
        }
        let out = e2e.run();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{phase}: {stderr}");
        let report: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("one JSON report");
        assert_eq!(report["failure"]["phase"], phase, "{report}");
        assert!(
            !report["failure"]["error"]
                .as_str()
                .unwrap_or_default()
                .is_empty(),
            "{phase}: the error says what failed: {report}"
        );
        assert_eq!(report["failure"]["cleaned_up"], true, "{phase}: {report}");
        let state_of_gitlab = double.get("/double/state");
        assert_eq!(state_of_gitlab["runners"], 0, "{phase}: {state_of_gitlab}");
        assert_eq!(
            state_of_gitlab["active_pipelines"], 0,
            "{phase}: {state_of_gitlab}"
        );
        assert!(
            leftovers(client, namespace).await.is_empty(),
            "{phase}: nothing left in {namespace}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitlab_answers_lost_after_the_runner_commit_and_pipeline_posts_duplicate_nothing() {
    let Some(e2e) = E2e::prepare("e2g").await else {
        return;
    };
    let (client, double, namespace) = (&e2e.client, &e2e.double, &e2e.namespace);
    // GitLab acts on each POST once, then a proxy answers 502: the runner, the load test's
    // commit and its pipeline exist, their answers are lost. The flow checks before sending
    // any of them again.
    double.post(
        "/double/faults",
        r#"{"POST /api/v4/user/runners": [502, 1, 0, "after"],
            "POST /api/v4/projects/[^/]+/repository/commits": [502, 1, 0, "after"],
            "POST /api/v4/projects/[^/]+/pipeline": [502, 1, 0, "after"]}"#,
    );
    let out = e2e.run();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stderr}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON report");
    assert!(report["failure"].is_null(), "{report}");
    assert_eq!(report["load_test"]["by_status"]["success"], 400, "{report}");
    let state_of_gitlab = double.get("/double/state");
    assert_eq!(
        state_of_gitlab["pipelines"], 1,
        "the lost pipeline was found, not started twice: {state_of_gitlab}"
    );
    assert_eq!(state_of_gitlab["runners"], 0, "{state_of_gitlab}");
    assert_eq!(state_of_gitlab["jobs"]["success"], 400, "{state_of_gitlab}");
    assert!(leftovers(client, namespace).await.is_empty());
}

/// SIGKILL of `full_flow` (nothing saved, no cleanup) at seeded random points of the runners,
/// releases and teardown phases, then a re-run: it reuses or replaces what the killed run
/// made, and ends with no release, no token Secret and no GitLab runner left, and no
/// pipeline running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_flow_killed_at_random_points_then_rerun_leaves_nothing() {
    let Some(e2e) = E2e::prepare("e2k").await else {
        return;
    };
    let (client, double, namespace) = (&e2e.client, &e2e.double, &e2e.namespace);
    let seed: u64 = std::env::var("GLRUNNER_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(13);
    let mut rng = fastrand::Rng::with_seed(seed);
    let points = [
        "step:runners:runner",
        "step:releases:release",
        "phase-done:releases",
        "step:teardown:uninstalled",
        "step:teardown:deleted GitLab runner",
    ];
    let point = points[rng.usize(..points.len())];
    eprintln!("seed {seed}: killing full_flow at {point}");
    let state = e2e.dir.path().join("state");
    let mut args = flow_args(
        &e2e.stack,
        namespace,
        &e2e.kubeconfig,
        &e2e.helm,
        e2e.chart.to_str().unwrap(),
        &double.url,
    );
    args.extend(["--state-dir", state.to_str().unwrap()]);
    let bin = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join("full_flow");
    let mut child = Command::new(&bin)
        .args(&args)
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("GITLAB_URL")
        .env_remove("CI_SERVER_URL")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("GITLAB_TOKEN", GITLAB_TOKEN)
        .env("GLRUNNER_TEST_HOLD_AT", point)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut seen = Vec::new();
    let held = {
        use std::io::BufRead;
        let mut held = false;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            held = line.contains("holding at ");
            seen.push(line);
            if held {
                break;
            }
        }
        held
    };
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(held, "never held at {point}:\n{}", seen.join("\n"));
    assert_eq!(status.code(), None, "killed by SIGKILL");

    let out = e2e.run();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON report");
    assert_eq!(report["load_test"]["by_status"]["success"], 400, "{report}");
    let state_of_gitlab = double.get("/double/state");
    assert_eq!(state_of_gitlab["runners"], 0, "{state_of_gitlab}");
    assert_eq!(state_of_gitlab["active_pipelines"], 0, "{state_of_gitlab}");
    assert!(
        leftovers(client, namespace).await.is_empty(),
        "no Secret or release record left in {namespace}"
    );
}
/// The kube-apiserver's endpoint and base64 CA, from the kubeconfig scripts/kube-apiserver.sh wrote.
fn apiserver_endpoint(kubeconfig: &str) -> (String, String) {
    let text = std::fs::read_to_string(kubeconfig).unwrap();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("{name} in {kubeconfig}"))
    };
    let ca = std::fs::read(field("certificate-authority:")).unwrap();
    use base64::Engine as _;
    (
        field("server:"),
        base64::engine::general_purpose::STANDARD.encode(ca),
    )
}

/// The HTTP status of a namespace list on the apiserver with `token`.
async fn status_with_token(e2e: &E2e, endpoint: &str, token: &str) -> u16 {
    let header = e2e.dir.path().join("auth-header");
    std::fs::write(&header, format!("Authorization: Bearer {token}")).unwrap();
    let out = Command::new("curl")
        .args(["-sk", "-o", "/dev/null", "-w", "%{http_code}", "-H"])
        .arg(format!("@{}", header.display()))
        .arg(format!("{endpoint}/api/v1/namespaces"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).parse().unwrap()
}

/// Every phase through the code users run, provisioning included: the infrastructure on moto with
/// the strict shim (IAM and EC2 propagation, principals), the EKS cluster's endpoint pointed at the
/// real kube-apiserver, which accepts glrunner's own EKS tokens through the shim's token-review
/// webhook only for principals with an access entry (scripts/shim_eks_auth.py). Afterwards nothing
/// is left in AWS, Kubernetes or GitLab.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_flow_provisions_on_strict_moto_and_runs_on_the_real_apiserver_leaves_nothing() {
    let Some(e2e) = E2e::prepare("e2m").await else {
        return;
    };
    let (moto, endpoint) = e2e.moto_cluster_on_the_apiserver();
    // A malformed EKS token opens nothing (whether an access entry lets a principal in is shared
    // state of the one apiserver, so other tests' clusters would make a check of it racy).
    assert_eq!(
        status_with_token(&e2e, &endpoint, "k8s-aws-v1.bm90LWEtdXJs").await,
        401
    );

    let state = e2e.dir.path().join("state");
    let args = [
        "--backend",
        "aws",
        "--region",
        "us-east-1",
        "--output",
        "json",
        "--stack",
        &e2e.stack,
        "--runner-namespace",
        &e2e.namespace,
        "--helm",
        &e2e.helm,
        "--chart",
        e2e.chart.to_str().unwrap(),
        "--gitlab-url",
        &e2e.double.url,
        "--project",
        "e2e/loadtest",
        "--jobs",
        "400",
        "--state-dir",
        state.to_str().unwrap(),
        // The doctor tests set the shim's (global) quotas to fail on purpose while this runs; the
        // preflight on the shim is covered there.
        "--skip-preflight",
    ];
    let out = full_flow(
        &args,
        &[
            ("AWS_ENDPOINT_URL", moto.as_str()),
            ("AWS_ACCESS_KEY_ID", "e2e"),
            ("AWS_SECRET_ACCESS_KEY", "e2e"),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON report");
    assert!(report["failure"].is_null(), "{report}");
    for p in report["phases"].as_array().unwrap() {
        assert_eq!(p["status"], "done", "{p}");
    }
    assert_eq!(report["load_test"]["by_status"]["success"], 400, "{report}");
    assert_eq!(report["teardown"]["leftovers"]["total"], 0, "{report}");
    assert!(
        report["teardown"]["infra_deleted"].as_u64().unwrap() > 10,
        "{report}"
    );
    let state_of_gitlab = e2e.double.get("/double/state");
    assert_eq!(state_of_gitlab["pipelines"], 1, "{state_of_gitlab}");
    assert_eq!(state_of_gitlab["runners"], 0, "{state_of_gitlab}");
    assert!(leftovers(&e2e.client, &e2e.namespace).await.is_empty());

    // What AWS holds afterwards, read independently of the flow: the `teardown` example's plan
    // (discovery by the stack tag, no state file needed) deletes nothing.
    let plan = example(
        "teardown",
        &[
            "--backend",
            "aws",
            "--region",
            "us-east-1",
            "--output",
            "json",
            "--stack",
            &e2e.stack,
            "--state-dir",
            e2e.dir.path().join("fresh").to_str().unwrap(),
            "--dry-run",
        ],
        &[
            ("AWS_ENDPOINT_URL", moto.as_str()),
            ("AWS_ACCESS_KEY_ID", "e2e"),
            ("AWS_SECRET_ACCESS_KEY", "e2e"),
        ],
    );
    let text = String::from_utf8_lossy(&plan.stdout);
    assert_eq!(
        plan.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&plan.stderr)
    );
    let plan: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        plan["deleted"],
        serde_json::json!([]),
        "left in AWS: {plan}"
    );
}

/// `--cluster NAME` on moto + the real apiserver: the stack is provisioned first (as a team's
/// existing EKS cluster would be); `full_flow` with a namespace outside every Fargate selector is
/// refused with the selectors shown before any GitLab runner exists; `runner install/uninstall`
/// and `reap` reach the same cluster through the EKS API and glrunner's own tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_brought_eks_cluster_is_found_through_the_eks_api() {
    let Some(e2e) = E2e::prepare("e2c").await else {
        return;
    };
    let (moto, _) = e2e.moto_cluster_on_the_apiserver();
    let aws_env = [
        ("AWS_ENDPOINT_URL", moto.as_str()),
        ("AWS_ACCESS_KEY_ID", "e2e"),
        ("AWS_SECRET_ACCESS_KEY", "e2e"),
    ];
    let state = e2e.dir.path().join("state");
    let state = state.to_str().unwrap();
    let stack_args = [
        "--backend",
        "aws",
        "--region",
        "us-east-1",
        "--stack",
        &e2e.stack,
        "--state-dir",
        state,
        "--output",
        "json",
    ];
    let run = |name: &str, extra: &[&str]| {
        let out = example(name, &[&stack_args[..], extra].concat(), &aws_env);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, _, stderr) = run("provision", &["--runner-namespace", &e2e.namespace]);
    assert_eq!(code, Some(0), "{stderr}");

    // A runner namespace that no Fargate profile selects: refused, nothing created anywhere.
    let (code, stdout, stderr) = run(
        "full_flow",
        &[
            "--cluster",
            &e2e.stack,
            "--runner-namespace",
            "not-on-fargate",
            "--helm",
            &e2e.helm,
            "--chart",
            e2e.chart.to_str().unwrap(),
            "--gitlab-url",
            &e2e.double.url,
            "--project",
            "e2e/loadtest",
            "--jobs",
            "10",
            "--skip-preflight",
        ],
    );
    assert_eq!(code, Some(1), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON report");
    let error = report["failure"]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("namespace not-on-fargate is not covered") && error.contains("selectors:"),
        "{report}"
    );
    assert!(
        error.contains(&format!("namespace={}", e2e.namespace)),
        "the profile's selectors are shown: {report}"
    );
    assert!(
        report["cluster"]
            .as_str()
            .unwrap()
            .contains(&format!("EKS cluster {}", e2e.stack)),
        "{report}"
    );
    let gitlab = e2e.double.get("/double/state");
    assert_eq!(
        gitlab["runners"], 0,
        "no GitLab runner was created: {gitlab}"
    );

    // `runner` on the same cluster by name: a release and its Secret in the Fargate namespace.
    let release = format!("{}-byo", e2e.stack);
    let runner = |subcommand: &str, extra: &[&str]| {
        let mut args = vec![
            "--backend",
            "aws",
            "--region",
            "us-east-1",
            "--output",
            "json",
            subcommand,
            "--cluster",
            &e2e.stack,
            "--helm",
            &e2e.helm,
            "--release",
            &release,
            "--namespace",
            &e2e.namespace,
        ];
        args.extend_from_slice(extra);
        let mut env = aws_env.to_vec();
        env.push(("GLRUNNER_RUNNER_TOKEN", "glrt-e2e-byo-cluster-token"));
        example("runner", &args, &env)
    };
    let out = runner(
        "install",
        &[
            "--gitlab-url",
            &e2e.double.url,
            "--chart",
            e2e.chart.to_str().unwrap(),
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secrets: Api<Secret> = Api::namespaced(e2e.client.clone(), &e2e.namespace);
    assert!(
        secrets
            .get_opt(&format!("{release}-token"))
            .await
            .unwrap()
            .is_some(),
        "the token Secret is in the cluster"
    );

    // `reap --cluster`: one round through the EKS API's endpoint and glrunner's tokens.
    let (code, stdout, stderr) = run(
        "reap",
        &[
            "--cluster",
            &e2e.stack,
            "--namespace",
            &e2e.namespace,
            "--once",
        ],
    );
    assert_eq!(code, Some(0), "{stderr}\n{stdout}");

    let out = runner("uninstall", &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(leftovers(&e2e.client, &e2e.namespace).await.is_empty());
    let (code, _, stderr) = run("teardown", &[]);
    assert_eq!(code, Some(0), "{stderr}");
}

/// The manager-log tail through the real apiserver: the chart's `release=<name>` label finds the
/// manager pod, and a pod that never ran (this apiserver has no kubelet: it answers an empty log)
/// says so instead of showing nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manager_log_tails_find_the_release_pods_and_say_when_a_log_is_empty() {
    use glrunner::flow::ClusterChecks as _;
    let Some((_, kubeconfig)) = crate::servers::helm_and_kubeconfig() else {
        return;
    };
    let client = kube_client(&kubeconfig).await;
    let namespace = format!("logs{}", std::process::id());
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let ns = serde_json::from_value(serde_json::json!({"metadata": {"name": namespace}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    for (name, release) in [("manager-a", "shard-1"), ("manager-b", "shard-2")] {
        let pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": {"app": format!("{release}-gitlab-runner"), "release": release}},
            "spec": {"containers": [{"name": "gitlab-runner", "image": "gitlab-runner"}]}
        }))
        .unwrap();
        pods.create(&PostParams::default(), &pod).await.unwrap();
    }
    // Fargate pods: EKS's CapacityProvisioned annotation on an unfinished pod and on a finished
    // one (this apiserver has no Fargate scheduler: the test sets the annotation EKS would).
    for (name, phase) in [("fargate-job", "Pending"), ("fargate-done", "Succeeded")] {
        let pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "annotations": {"CapacityProvisioned": "0.5vCPU 1GB"}},
            "spec": {"containers": [{"name": "build", "image": "bash"}]}
        }))
        .unwrap();
        pods.create(&PostParams::default(), &pod).await.unwrap();
        pods.patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"status": {"phase": phase}})),
        )
        .await
        .unwrap();
    }
    let checks = glrunner::flow::KubeClusterChecks::new(client.clone());
    // The conformance suite every backend of ClusterChecks passes (CoreDNS is the one
    // `ensure_coredns` marks Running).
    ensure_coredns(&client).await;
    glrunner_flow::conformance::run(
        &checks,
        &glrunner_flow::conformance::Fixture {
            namespace: namespace.clone(),
            coredns_running: true,
            fargate_pods: vec![glrunner::flow::FargatePod {
                namespace: namespace.clone(),
                name: "fargate-job".into(),
                labels: Default::default(),
                size: glrunner_fargate::FargateSize::from_capacity_provisioned("0.5vCPU 1GB")
                    .unwrap(),
            }],
            not_fargate_pods: vec![
                (namespace.clone(), "fargate-done".into()),
                (namespace.clone(), "manager-a".into()),
            ],
        },
    )
    .await;
    let tails = checks
        .log_tail(&namespace, "release=shard-1", 20)
        .await
        .unwrap();
    assert_eq!(tails.len(), 1, "{tails:?}");
    assert_eq!(tails[0].0, "manager-a");
    assert!(tails[0].1.contains("may not have started"), "{tails:?}");
    assert!(
        checks
            .log_tail(&namespace, "release=none", 20)
            .await
            .unwrap()
            .is_empty()
    );
    namespaces
        .delete(&namespace, &Default::default())
        .await
        .unwrap();
}

/// A kube-apiserver of this test's own (`scripts/kube-apiserver.sh start DIR`), whose EKS token
/// webhook (the moto shim) refuses tokens older than `lifetime` seconds instead of EKS's 15
/// minutes (`--eks-token-lifetime`); stopped and removed on drop, also when the test fails.
struct ShortTokenApiserver {
    dir: PathBuf,
    kubeconfig: String,
}

impl ShortTokenApiserver {
    fn script() -> PathBuf {
        PathBuf::from(
            std::env::var_os("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
        )
        .join("scripts/kube-apiserver.sh")
    }

    fn start(moto: &str, lifetime: u64) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("glrunner-e2e-tokens-")
            .tempdir()
            .unwrap()
            .keep();
        let mut this = Self {
            dir,
            kubeconfig: String::new(),
        };
        let out = Command::new("bash")
            .arg(Self::script())
            .arg("start")
            .arg(&this.dir)
            .args(["--rbac", "--eks-webhook"])
            .arg(format!("{moto}/glrunner-shim/tokenreview"))
            .args(["--eks-token-lifetime", &lifetime.to_string()])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let kubeconfig = stdout
            .lines()
            .find_map(|l| l.strip_prefix("GLRUNNER_TEST_KUBECONFIG="))
            .unwrap_or_else(|| {
                panic!(
                    "kube-apiserver.sh start: {stdout}{}",
                    String::from_utf8_lossy(&out.stderr)
                )
            })
            .to_owned();
        this.kubeconfig = kubeconfig;
        this
    }
}

impl Drop for ShortTokenApiserver {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(Self::script())
            .arg("stop")
            .arg(&self.dir)
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// EKS tokens expire while glrunner still works (issue 21, item 2). On an apiserver whose token
/// webhook accepts a token for `LIFETIME` seconds (EKS: 15 minutes; the apiserver caches a
/// review for 5 s more), with glrunner told the same lifetime: the cluster checks' kube-rs
/// client still works after its first token is refused, and `full_flow` succeeds on the cluster
/// although each of helm's `--wait`s (Helm's engine made to wait, GLRUNNER_HELM_SDK_READY_AFTER)
/// lasts well past a token's end: helm's kubeconfig runs glrunner itself as its exec credential
/// plugin, and client-go asks it again for each expired token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_waits_and_kube_clients_outlive_the_eks_token_lifetime() {
    const LIFETIME: u64 = 8;
    let Some((helm, _)) = crate::servers::helm_and_kubeconfig() else {
        return;
    };
    let moto = std::env::var("GLRUNNER_TEST_MOTO_URL").expect("./scripts/test.sh starts moto");
    let apiserver = ShortTokenApiserver::start(&moto, LIFETIME);
    let e2e = E2e::prepare_on("e2t", helm, apiserver.kubeconfig.clone()).await;
    let (moto, endpoint) = e2e.moto_cluster_on_the_apiserver();
    let lifetime = LIFETIME.to_string();
    let aws_env = [
        ("AWS_ENDPOINT_URL", moto.as_str()),
        ("AWS_ACCESS_KEY_ID", "e2e"),
        ("AWS_SECRET_ACCESS_KEY", "e2e"),
        ("GLRUNNER_EKS_TOKEN_LIFETIME_SECONDS", lifetime.as_str()),
    ];
    let state = e2e.dir.path().join("state");
    let state = state.to_str().unwrap();
    let stack_args = [
        "--backend",
        "aws",
        "--region",
        "us-east-1",
        "--stack",
        &e2e.stack,
        "--state-dir",
        state,
        "--output",
        "json",
    ];
    let out = example(
        "provision",
        &[&stack_args[..], &["--runner-namespace", &e2e.namespace]].concat(),
        &aws_env,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // kube-rs: the cluster's one client (checks, pods, Secrets), used again after the lifetime.
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(&moto)
        // Another unknown access key: the same principal in the shim as the examples' `e2e`.
        .test_credentials()
        .load()
        .await;
    let access = glrunner::flow::aws::InfraBackend::aws(&sdk)
        .cluster
        .cluster_access(&e2e.stack)
        .await
        .unwrap();
    let auth = glrunner::flow::aws::EksAuth {
        token_lifetime: std::time::Duration::from_secs(LIFETIME),
        credential_plugin: None,
    };
    let cluster = glrunner::flow::aws::EksCluster::connect(&sdk, access, &auth)
        .await
        .unwrap();
    let checks = cluster.checks();
    use glrunner::flow::ClusterChecks as _;
    let first_token = glrunner::infra::kubeconfig::EksTokenGenerator::new(&sdk)
        .unwrap()
        .token(&e2e.stack)
        .await
        .unwrap();
    assert_eq!(
        status_with_token(&e2e, &endpoint, first_token.expose()).await,
        200
    );
    checks
        .log_tail("kube-system", "release=none", 5)
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(LIFETIME + 6)).await;
    assert_eq!(
        status_with_token(&e2e, &endpoint, first_token.expose()).await,
        401,
        "the double refuses a token past its lifetime"
    );
    let later = checks.log_tail("kube-system", "release=none", 5).await;
    assert!(later.is_ok(), "the client re-signs: {later:?}");

    // helm: the whole flow on the cluster by name, each helm --wait lasting 2.5 lifetimes.
    let mut env = aws_env.to_vec();
    env.push(("GLRUNNER_HELM_SDK_READY_AFTER", "20"));
    let out = example(
        "full_flow",
        &[
            &stack_args[..],
            &[
                "--cluster",
                &e2e.stack,
                "--runner-namespace",
                &e2e.namespace,
                "--helm",
                &e2e.helm,
                "--chart",
                e2e.chart.to_str().unwrap(),
                "--gitlab-url",
                &e2e.double.url,
                "--project",
                "e2e/loadtest",
                "--jobs",
                "10",
                "--skip-preflight",
            ],
        ]
        .concat(),
        &env,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert_eq!(out.status.code(), Some(0), "{report}\n{stderr}");
    for p in report["phases"].as_array().unwrap() {
        assert!(p["status"] == "done" || p["phase"] == "provision", "{p}");
    }
    assert_eq!(report["load_test"]["by_status"]["success"], 10, "{report}");
    assert_eq!(report["teardown"]["leftovers"]["total"], 0, "{report}");
    assert!(leftovers(&e2e.client, &e2e.namespace).await.is_empty());

    let out = example("teardown", &stack_args, &aws_env);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
