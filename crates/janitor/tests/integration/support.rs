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

fn script() -> PathBuf {
    // The checkout's directory at run time: the build cache is shared between checkouts, so this
    // binary may have been built in another one.
    PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../../scripts/kube-apiserver.sh")
}

/// Runs `scripts/kube-apiserver.sh COMMAND DIR [ARGS]`, panicking with its stderr on failure.
pub fn control(command: &str, dir: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("bash")
        .arg(script())
        .arg(command)
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "kube-apiserver.sh {command}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn pids(dir: &std::path::Path) -> Vec<u32> {
    std::fs::read_to_string(dir.join("pids"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Whether `pid` is still one of the servers of `dir` (its command line names the directory, so
/// a recycled pid is never taken for it).
fn alive(pid: u32, dir: &std::path::Path) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    !stat.contains(") Z ")
        && String::from_utf8_lossy(&cmdline).contains(dir.to_string_lossy().as_ref())
}

/// A private etcd + kube-apiserver in its own directory (the binaries `./scripts/test.sh`
/// builds), stopped and removed on drop — also when the test fails: every pid the script ever
/// recorded is remembered, and any still alive after `stop` is killed by its id.
pub struct PrivateApiserver {
    dir: PathBuf,
    seen: std::sync::Mutex<Vec<u32>>,
}

impl PrivateApiserver {
    /// Starts one (`--rbac` when `rbac`) under the temp dir, tagged `tag`.
    pub fn start(tag: &str, rbac: bool) -> Self {
        Self::start_with(tag, if rbac { &["--rbac"] } else { &[] })
    }

    /// Starts one with `kube-apiserver.sh start` options `args`.
    pub fn start_with(tag: &str, args: &[&str]) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "janitor-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let server = Self {
            dir,
            seen: std::sync::Mutex::new(Vec::new()),
        };
        let printed = control("start", &server.dir, args);
        server.remember();
        assert!(printed.contains("GLRUNNER_TEST_KUBECONFIG="), "{printed}");
        server
    }

    fn remember(&self) {
        let mut seen = self.seen.lock().unwrap();
        for pid in pids(&self.dir) {
            if !seen.contains(&pid) {
                seen.push(pid);
            }
        }
    }

    /// Its directory.
    pub fn path(&self) -> &std::path::Path {
        &self.dir
    }

    /// Its kubeconfig (the admin token).
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// Compacts its etcd up to the current revision (as the apiserver does every 5 minutes, and
    /// etcd's own auto-compaction): older revisions are gone, a watch from one of them gets 410.
    /// Through etcd's v3 JSON gateway (`/v3/kv/range`, `/v3/kv/compaction`, etcd 3.4 API).
    pub fn compact_etcd(&self) -> u64 {
        let port = std::fs::read_to_string(self.dir.join("etcd.port")).unwrap();
        let url = |path: &str| format!("http://127.0.0.1:{}/v3/kv/{path}", port.trim());
        let post = |path: &str, body: &str| {
            let out = std::process::Command::new("curl")
                .args(["-sf", "-X", "POST", &url(path), "-d", body])
                .output()
                .unwrap();
            assert!(out.status.success(), "etcd {path}: {out:?}");
            serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
        };
        let range = post("range", r#"{"key":"AA=="}"#);
        let revision: u64 = range["header"]["revision"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        post(
            "compaction",
            &format!(r#"{{"revision":"{revision}","physical":true}}"#),
        );
        revision
    }

    /// `stop-apiserver` or `start-apiserver` (a restart, etcd kept).
    pub fn control(&self, command: &str) -> String {
        let out = control(command, &self.dir, &[]);
        self.remember();
        out
    }
}

impl Drop for PrivateApiserver {
    fn drop(&mut self) {
        self.remember();
        let _ = std::process::Command::new("bash")
            .arg(script())
            .arg("stop")
            .arg(&self.dir)
            .output();
        // Whatever the script missed (a pid it lost track of) is ended by its recorded id.
        for pid in self.seen.lock().map(|s| s.clone()).unwrap_or_default() {
            if alive(pid, &self.dir) {
                let _ = std::process::Command::new("kill")
                    .args(["-9", &pid.to_string()])
                    .status();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
