//! `reap deploy` on the real apiserver in RBAC mode: it creates exactly the objects it prints;
//! the controller, acting with a ServiceAccount token from the TokenRequest API, reaps, records
//! its Events and holds its Lease with those rights and nothing more; the in-cluster entry point
//! (kube-rs's `Config::incluster`) runs as it would in a pod; `undeploy` removes everything. And
//! the repository's Containerfile names a binary that exists.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use glrunner_janitor::conformance::PodFixtures;
use glrunner_janitor::controller::{Controller, ControllerConfig};
use glrunner_janitor::deploy::{DeploySpec, ObjectId, apply, deploy_objects, labels, remove};
use glrunner_janitor::k8s::KubePodApi;
use glrunner_janitor::k8s::fixtures::KubeFixtures;
use glrunner_janitor::lease::LeaseConfig;
use glrunner_janitor::memory::NewPod;
use glrunner_janitor::{Policy, ReaperConfig};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, DeleteParams, ListParams, PostParams};

use super::support::{PrivateApiserver, kube};

fn root() -> PathBuf {
    PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../..")
}

/// docker does not run here, so the Containerfile is tested by reading it: the binary it builds
/// (`--example NAME`) is an example target of the root package, the path it copies is its
/// entrypoint, and its default command is the subcommand the Deployment runs.
#[test]
fn the_containerfile_builds_an_example_that_exists_and_runs_reap_run() {
    let text = std::fs::read_to_string(root().join("Containerfile")).unwrap();
    let example = text
        .split_whitespace()
        .skip_while(|w| *w != "--example")
        .nth(1)
        .expect("the Containerfile builds an example");
    assert!(
        root()
            .join("examples")
            .join(format!("{example}.rs"))
            .is_file(),
        "examples/{example}.rs exists"
    );
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    assert!(
        !manifest.contains("autoexamples = false"),
        "examples are targets"
    );
    let copy = text
        .lines()
        .find(|l| l.starts_with("COPY --from=build"))
        .expect("the binary is copied into the runtime stage");
    let dest = copy.split_whitespace().last().unwrap();
    assert!(
        text.contains(&format!("ENTRYPOINT [\"{dest}\"]")),
        "the entrypoint is the copied binary: {text}"
    );
    assert!(
        text.contains("distroless/static"),
        "a static, distroless runtime"
    );
    let spec = DeploySpec::new("img", "gitlab-runner", vec!["gitlab-runner".into()]);
    let objects = deploy_objects(&spec).unwrap();
    let args = objects
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
    assert_eq!(args[0], "run");
    assert!(text.contains(r#"CMD ["run""#), "{text}");
}

async fn listed(client: &kube::Client, namespaces: &[&str]) -> Vec<ObjectId> {
    let selector: Vec<String> = labels().iter().map(|(k, v)| format!("{k}={v}")).collect();
    let lp = ListParams::default().labels(&selector.join(","));
    let mut out = Vec::new();
    macro_rules! collect {
        ($kind:ty, $name:literal, $ns:expr) => {
            let api: Api<$kind> = Api::namespaced(client.clone(), $ns);
            for o in api.list(&lp).await.unwrap().items {
                out.push(ObjectId {
                    kind: $name.into(),
                    namespace: o.metadata.namespace.clone().unwrap_or_default(),
                    name: o.metadata.name.clone().unwrap_or_default(),
                });
            }
        };
    }
    for ns in namespaces {
        collect!(ServiceAccount, "ServiceAccount", ns);
        collect!(Role, "Role", ns);
        collect!(RoleBinding, "RoleBinding", ns);
        collect!(Lease, "Lease", ns);
        collect!(Deployment, "Deployment", ns);
    }
    out.sort();
    out
}

async fn client_with_token(kubeconfig: &Path, token: &str) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    config.auth_info = kube::config::AuthInfo {
        token: Some(token.to_owned().into()),
        ..Default::default()
    };
    kube::Client::try_from(glrunner_janitor::k8s::bounded(config)).unwrap()
}

async fn sa_token(admin: &kube::Client, ns: &str, name: &str) -> String {
    let api: Api<ServiceAccount> = Api::namespaced(admin.clone(), ns);
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            // The apiserver's audience is its issuer (--service-account-issuer).
            audiences: Some(vec!["https://kubernetes.default.svc.cluster.local".into()]),
            expiration_seconds: Some(600),
            ..Default::default()
        }),
        ..Default::default()
    };
    api.create_token_request(name, &PostParams::default(), &request)
        .await
        .unwrap()
        .status
        .and_then(|s| s.token)
        .expect("the TokenRequest API issued a token")
}

fn code(e: kube::Error) -> u16 {
    match e {
        kube::Error::Api(s) => s.code,
        other => panic!("not an API error: {other}"),
    }
}

async fn wait_gone(client: &kube::Client, ns: &str, name: &str, within: Duration) -> bool {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let end = Instant::now() + within;
    while Instant::now() < end {
        if api.get_opt(name).await.unwrap().is_none() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

fn hung(ns: &str, job: u64) -> NewPod {
    let mut pod = NewPod::job(ns, "gitlab-runner-5fd7489954-jx682", 9, job);
    pod.node_name = None;
    pod
}

fn policy(ns: &str) -> ReaperConfig {
    ReaperConfig::new(
        Policy::new([ns])
            .with_pending_timeout(Duration::from_secs(1))
            .with_grace(Duration::from_secs(1)),
    )
}

const CHILD_ENV: &str = "GLRUNNER_TEST_IN_CLUSTER_CHILD";

/// The in-cluster child (see the test below): kube-rs's in-cluster config from the mounted
/// ServiceAccount files and KUBERNETES_SERVICE_HOST/PORT, then the controller until the named
/// pod is gone. Does nothing unless started by that test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_cluster_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (ns, pod) = spec.split_once('/').unwrap();
    let api = KubePodApi::in_cluster().expect("in-cluster configuration");
    let client = api.kube_client();
    let controller = Controller::new(
        client.clone(),
        policy(ns),
        ControllerConfig::new("in-cluster-child").with_lease(Some(LeaseConfig::new(
            ns,
            "glrunner-janitor",
            "in-cluster-child",
        ))),
    )
    .unwrap();
    let (ns2, pod2) = (ns.to_owned(), pod.to_owned());
    let probe = client.clone();
    let summary = controller
        .run(async move {
            assert!(wait_gone(&probe, &ns2, &pod2, Duration::from_secs(30)).await);
        })
        .await
        .unwrap();
    assert_eq!(summary.deleted, 1, "{summary:?}");
    assert_eq!(summary.events_failed, 0, "{summary:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_creates_what_it_prints_and_the_janitor_runs_with_those_rights_only() {
    let Some(_shared) = kube("deploy_rbac").await else {
        return;
    };
    let private = PrivateApiserver::start("deploy", true);
    let kubeconfig = private.kubeconfig();
    let kc = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
    let admin = kube::Client::try_from(
        kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .unwrap(),
    )
    .unwrap();
    let fixtures = KubeFixtures::new(admin.clone());
    let (runner, foreign) = ("gitlab-runner", "team-b");
    for ns in [runner, foreign] {
        fixtures.create_namespace(ns).await.unwrap();
    }
    let spec = DeploySpec::new(
        "1.dkr.ecr.us-east-1.amazonaws.com/glrunner-janitor:1",
        runner,
        vec![runner.into()],
    );
    let objects = deploy_objects(&spec).unwrap();
    let applied = apply(&admin, &objects).await.unwrap();
    let mut printed = objects.ids();
    assert_eq!(applied, printed, "applied in the printed order");
    printed.sort();
    assert_eq!(
        listed(&admin, &[runner, foreign]).await,
        printed,
        "exactly the printed objects"
    );

    // The janitor as its ServiceAccount, with a token from the TokenRequest API (what the
    // kubelet projects into the pod).
    let token = sa_token(&admin, runner, &spec.name).await;
    let as_janitor = client_with_token(&kubeconfig, &token).await;
    let pod = fixtures.create_pod(hung(runner, 1)).await.unwrap();
    let controller = Controller::new(
        as_janitor.clone(),
        policy(runner),
        ControllerConfig::new("replica-1").with_lease(Some(LeaseConfig::new(
            runner,
            &spec.name,
            "replica-1",
        ))),
    )
    .unwrap();
    let probe = admin.clone();
    let pod_name = pod.name.clone();
    let summary = controller
        .run(async move {
            assert!(wait_gone(&probe, runner, &pod_name, Duration::from_secs(30)).await);
        })
        .await
        .unwrap();
    assert_eq!(
        (summary.deleted, summary.errors, summary.events_failed),
        (1, 0, 0),
        "{summary:?}"
    );
    assert!(summary.leaderships >= 1, "{summary:?}");
    let events: Api<Event> = Api::namespaced(admin.clone(), runner);
    assert!(
        events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .any(|e| {
                e.regarding.as_ref().and_then(|r| r.uid.as_deref()) == Some(pod.uid.as_str())
            }),
        "the Event was recorded with the Role's rights"
    );

    // Nothing beyond the Role.
    let pods_elsewhere: Api<Pod> = Api::namespaced(as_janitor.clone(), foreign);
    assert_eq!(
        code(
            pods_elsewhere
                .list(&ListParams::default())
                .await
                .unwrap_err()
        ),
        403
    );
    let secrets: Api<Secret> = Api::namespaced(as_janitor.clone(), runner);
    assert_eq!(
        code(secrets.list(&ListParams::default()).await.unwrap_err()),
        403
    );
    let leases: Api<Lease> = Api::namespaced(as_janitor.clone(), runner);
    let other = Lease {
        metadata: kube::api::ObjectMeta {
            name: Some("someone-else".into()),
            ..Default::default()
        },
        spec: None,
    };
    assert_eq!(
        code(
            leases
                .create(&PostParams::default(), &other)
                .await
                .unwrap_err()
        ),
        403
    );
    let deployments: Api<Deployment> = Api::namespaced(as_janitor.clone(), runner);
    assert_eq!(
        code(
            deployments
                .delete(&spec.name, &DeleteParams::default())
                .await
                .unwrap_err()
        ),
        403
    );
    let all_pods: Api<Pod> = Api::all(as_janitor.clone());
    assert_eq!(
        code(all_pods.list(&ListParams::default()).await.unwrap_err()),
        403
    );

    // The in-cluster entry point, as in a pod: the token, CA and namespace at
    // /var/run/secrets/kubernetes.io/serviceaccount (a private mount namespace, so the host's
    // /run is untouched) and KUBERNETES_SERVICE_HOST/PORT.
    let sa_dir = private.path().join("sa");
    std::fs::create_dir_all(&sa_dir).unwrap();
    std::fs::write(
        sa_dir.join("token"),
        sa_token(&admin, runner, &spec.name).await,
    )
    .unwrap();
    std::fs::copy(
        private.path().join("certs/apiserver.crt"),
        sa_dir.join("ca.crt"),
    )
    .unwrap();
    std::fs::write(sa_dir.join("namespace"), runner).unwrap();
    let second = fixtures.create_pod(hung(runner, 2)).await.unwrap();
    let port = std::fs::read_to_string(private.path().join("apiserver.port")).unwrap();
    let script = format!(
        "mount -t tmpfs glrunner-test /run && mkdir -p /run/secrets/kubernetes.io/serviceaccount && \
         cp {dir}/token {dir}/ca.crt {dir}/namespace /run/secrets/kubernetes.io/serviceaccount/ && \
         exec \"$0\" --exact integration::deploy::in_cluster_child --nocapture",
        dir = sa_dir.display()
    );
    let status = tokio::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .arg(std::env::current_exe().unwrap())
        .env(CHILD_ENV, format!("{runner}/{}", second.name))
        .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        .env("KUBERNETES_SERVICE_PORT", port.trim())
        .env_remove("GLRUNNER_TEST_KUBECONFIG")
        .status()
        .await
        .expect("unshare (util-linux) runs the child in its own mount namespace");
    assert!(
        status.success(),
        "the in-cluster child reaped its pod: {status}"
    );
    assert!(wait_gone(&admin, runner, &second.name, Duration::from_secs(1)).await);

    // undeploy removes all of it.
    let removed = remove(&admin, &objects).await.unwrap();
    assert_eq!(removed.len(), printed.len());
    assert!(listed(&admin, &[runner, foreign]).await.is_empty());
}

#[tokio::test]
async fn the_kube_installer_passes_the_installer_conformance_case() {
    let Some(k) = super::support::kube("installer_conformance").await else {
        return;
    };
    let ns = super::support::unique("install");
    k.fixtures.create_namespace(&ns).await.unwrap();
    let installer = glrunner_janitor::deploy::KubeJanitorInstaller::new(k.client.clone());
    glrunner_janitor::conformance::installer_applies_idempotently_and_removes_everything(
        &installer, &ns,
    )
    .await;
}
