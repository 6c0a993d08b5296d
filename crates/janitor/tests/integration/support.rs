//! Shared helpers: the real API server gate and unique namespaces.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use glrunner_janitor::k8s::KubePodApi;
use glrunner_janitor::k8s::fixtures::KubeFixtures;

/// The env var naming the test kubeconfig (written by `scripts/kube-apiserver.sh start DIR`).
pub const KUBECONFIG_ENV: &str = "GLRUNNER_TEST_KUBECONFIG";

/// A connection to the real test API server.
pub struct Kube {
    pub api: KubePodApi,
    pub fixtures: KubeFixtures,
    pub client: kube::Client,
    pub kubeconfig: PathBuf,
}

/// Connects to the test API server, or returns `None` (printing why) when it is not configured.
/// With `CI=true` a missing server is a failure.
pub async fn kube(test: &str) -> Option<Kube> {
    let Some(path) = std::env::var_os(KUBECONFIG_ENV).filter(|p| !p.is_empty()) else {
        if std::env::var("CI").is_ok_and(|v| v == "true")
            || std::env::var_os("GLRUNNER_TEST_REQUIRE_SERVERS").is_some_and(|v| v == "1")
        {
            panic!("{test}: {KUBECONFIG_ENV} is not set in CI; run ./scripts/test.sh");
        }
        eprintln!(
            "skipping {test}: {KUBECONFIG_ENV} is not set; start a server with \
             `scripts/kube-apiserver.sh build && scripts/kube-apiserver.sh start /tmp/kube` and export the line it prints"
        );
        return None;
    };
    let kubeconfig = PathBuf::from(path);
    let api = KubePodApi::from_kubeconfig(Some(&kubeconfig), None)
        .await
        .expect("kubeconfig of the test server");
    let kc = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    Some(Kube {
        api,
        fixtures: KubeFixtures::new(client.clone()),
        client,
        kubeconfig,
    })
}

/// A namespace-name prefix unique to this test process and call, for isolation on a shared server.
pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "jt-{tag}-{:x}{:x}-{}",
        std::process::id() & 0xffff,
        nanos & 0xffff,
        N.fetch_add(1, Ordering::Relaxed)
    )
}
