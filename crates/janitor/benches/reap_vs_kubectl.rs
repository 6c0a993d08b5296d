//! Benchmark (not a test): the janitor against the reference one-liner on a real kube-apiserver.
//!
//! ```text
//! scripts/kube-apiserver.sh build && scripts/kube-apiserver.sh start /tmp/kube
//! GLRUNNER_TEST_KUBECONFIG=/tmp/kube/kubeconfig cargo bench -p glrunner-janitor --bench reap_vs_kubectl
//! ```
//!
//! Population (seeded afresh before each contender): N hung job pods (default 500, Pending, no
//! `spec.nodeName` so kubectl does not wait on kubelets) and 2 runner-manager pods in the runner
//! namespace (default `gitlab-runner`), name-alike `runner-...` pods without the executor's labels
//! beside them, and job pods in a foreign namespace. Contenders:
//!
//! - janitor: one `Reaper::run_once` round (what `reap --once --backend aws` runs), pending
//!   timeout and grace of 1 s so the just-created pods count as hung;
//! - reference: `kubectl get pods --all-namespaces --no-headers | awk '{if ($2 ~ "runner-*") print $2}'
//!   | xargs kubectl -n NS delete pod`.
//!
//! Both sides are timed the same way, from process start to process exit: the janitor runs as a
//! child process of this binary (re-executed with `GLRUNNER_BENCH_JANITOR_CHILD=1`), so its timer
//! includes process and runtime start, reading the kubeconfig and building the client, as the
//! reference's includes kubectl's.
//!
//! - controller: `reap run`'s [`Controller`] in this process. Three figures: the burst (the same
//!   population, already qualifying, from controller start — its one list — to the last
//!   deletion), then, with it running, qualify→delete latency of pods that qualify one by one
//!   (p50/p95, from the pod's deadline to the delete the watch reports), then the list requests
//!   it sends while idle (counted by a layer on its client; none expected).
//!
//! Every figure is printed with its ratio to the reference measured in the same run.
//!
//! The bench observes deletions through a watch of its own (no re-listing that would compete with
//! the deletes it times).
//!
//! Env: `GLRUNNER_BENCH_PODS` (500), `GLRUNNER_BENCH_NAMESPACE` (gitlab-runner),
//! `GLRUNNER_BENCH_CONCURRENCY` (the controller's delete concurrency; default the reaper's),
//! `GLRUNNER_BENCH_CONTROLLER_ONLY=1` (experiments: the controller against the one-shot janitor
//! only, no kubectl), `GLRUNNER_KUBECTL`
//! (default: the newest `kubectl.1.*` of the Google Cloud SDK, else `kubectl` on PATH).
//! The runner namespace is emptied before each contender: use a server no one else is using.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use glrunner_janitor::conformance::PodFixtures;
use glrunner_janitor::controller::{Controller, ControllerConfig};
use glrunner_janitor::k8s::KubePodApi;
use glrunner_janitor::k8s::fixtures::KubeFixtures;
use glrunner_janitor::memory::NewPod;
use glrunner_janitor::{Policy, Reaper, ReaperConfig};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams};

const FOREIGN_NS: &str = "bench-team-b";

struct Setup {
    client: kube::Client,
    fixtures: KubeFixtures,
    kubeconfig: PathBuf,
    ns: String,
    pods: u64,
}

/// name → eligible?
type Seeded = BTreeMap<(String, String), bool>;

async fn all_pods(client: &kube::Client) -> Vec<(String, String)> {
    let api: Api<Pod> = Api::all(client.clone());
    api.list(&ListParams::default())
        .await
        .expect("list all pods")
        .items
        .into_iter()
        // A Terminating pod counts as deleted: a kubelet would finish it.
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| {
            (
                p.metadata.namespace.unwrap_or_default(),
                p.metadata.name.unwrap_or_default(),
            )
        })
        .collect()
}

async fn empty(client: &kube::Client, ns: &str) {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let _ = api
        .delete_collection(
            &DeleteParams::default().grace_period(0),
            &ListParams::default(),
        )
        .await;
}

async fn seed(s: &Setup) -> Seeded {
    for ns in [s.ns.as_str(), FOREIGN_NS] {
        s.fixtures.create_namespace(ns).await.expect("namespace");
        empty(&s.client, ns).await;
    }
    let mut specs: Vec<(NewPod, bool)> = Vec::new();
    for job in 0..s.pods {
        specs.push((
            NewPod::job(&s.ns, "gitlab-runner-5fd7489954-jx682", 4242, job),
            true,
        ));
    }
    for suffix in ["jx682", "q7w2e"] {
        // Unbound, so the reference's kubectl does not wait forever for a kubelet.
        let mut manager = NewPod::manager(&s.ns, "gitlab-runner", suffix);
        manager.node_name = None;
        specs.push((manager, false));
    }
    for i in 0..3 {
        specs.push((
            NewPod::new(&s.ns, format!("runner-docs-preview-{i}")),
            false,
        ));
    }
    for job in 0..20 {
        specs.push((
            NewPod::job(FOREIGN_NS, "their-runner", 77, 10_000 + job),
            false,
        ));
    }
    let fx = &s.fixtures;
    let created: Vec<_> = futures::stream::iter(specs)
        .map(|(spec, eligible)| async move {
            let pod = fx.create_pod(spec).await.expect("create pod");
            ((pod.namespace, pod.name), eligible)
        })
        .buffer_unordered(32)
        .collect()
        .await;
    created.into_iter().collect()
}

struct Outcome {
    seconds: f64,
    reaped: usize,
    missed: usize,
    wrong: usize,
    note: String,
}

async fn score(s: &Setup, seeded: &Seeded, seconds: f64, note: String) -> Outcome {
    let left: std::collections::BTreeSet<_> = all_pods(&s.client).await.into_iter().collect();
    let mut o = Outcome {
        seconds,
        reaped: 0,
        missed: 0,
        wrong: 0,
        note,
    };
    for (key, eligible) in seeded {
        match (left.contains(key), eligible) {
            (false, true) => o.reaped += 1,
            (true, true) => o.missed += 1,
            (false, false) => o.wrong += 1,
            (true, false) => {}
        }
    }
    o
}

/// The env var that makes this binary a janitor child process (one round, then exit).
const CHILD_ENV: &str = "GLRUNNER_BENCH_JANITOR_CHILD";

/// The janitor as a process of its own, as `reap --once --backend aws` runs: start, read the
/// kubeconfig, build the client, one round. Prints the number of failed deletes.
async fn janitor_child(kubeconfig: PathBuf, ns: String) {
    let api = KubePodApi::from_kubeconfig(Some(&kubeconfig), None)
        .await
        .expect("kubeconfig");
    let policy = Policy::new([ns])
        .with_pending_timeout(Duration::from_secs(1))
        .with_grace(Duration::from_secs(1));
    let reaper = Reaper::new(Arc::new(api), ReaperConfig::new(policy)).expect("reaper");
    let report = reaper.run_once().await.expect("janitor round");
    println!("{}", report.errors.len());
}

async fn janitor(s: &Setup) -> Outcome {
    let seeded = seed(s).await;
    tokio::time::sleep(Duration::from_millis(2500)).await; // older than pending timeout + grace
    // Timed like the reference: from process start (runtime, kubeconfig, client setup included)
    // to process exit.
    let t = Instant::now();
    let out = tokio::process::Command::new(std::env::current_exe().expect("own path"))
        .env(CHILD_ENV, "1")
        .env("GLRUNNER_TEST_KUBECONFIG", &s.kubeconfig)
        .env("GLRUNNER_BENCH_NAMESPACE", &s.ns)
        .output()
        .await
        .expect("run the janitor child process");
    let secs = t.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "janitor child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let errors = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    score(s, &seeded, secs, format!("{errors} errors, own process")).await
}

fn kubectl() -> String {
    if let Ok(k) = std::env::var("GLRUNNER_KUBECTL") {
        return k;
    }
    let sdk = "/usr/lib/google-cloud-sdk/bin";
    let mut pinned: Vec<String> = std::fs::read_dir(sdk)
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with("kubectl.1."))
                .collect()
        })
        .unwrap_or_default();
    pinned.sort_by_key(|n| {
        n.trim_start_matches("kubectl.1.")
            .parse::<u32>()
            .unwrap_or(0)
    });
    pinned
        .pop()
        .map(|n| format!("{sdk}/{n}"))
        .unwrap_or_else(|| "kubectl".into())
}

async fn reference(s: &Setup) -> Outcome {
    let seeded = seed(s).await;
    let k = kubectl();
    let script = format!(
        "{k} get pods --all-namespaces --no-headers | awk '{{if ($2 ~ \"runner-*\") print $2}}' | xargs {k} -n {} delete pod",
        s.ns
    );
    let t = Instant::now();
    let out = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&script)
        .env("KUBECONFIG", &s.kubeconfig)
        .output()
        .await
        .expect("run the reference one-liner");
    let secs = t.elapsed().as_secs_f64();
    let note = format!("{k}, exit {}", out.status.code().unwrap_or(-1));
    score(s, &seeded, secs, note).await
}

/// Counts the list requests (GET on the pods collection without `watch=true`) of a client.
#[derive(Clone)]
struct ListCounter(Arc<std::sync::atomic::AtomicU64>);

impl<S> tower::Layer<S> for ListCounter {
    type Service = ListCounting<S>;
    fn layer(&self, inner: S) -> Self::Service {
        ListCounting {
            inner,
            lists: self.0.clone(),
        }
    }
}

#[derive(Clone)]
struct ListCounting<S> {
    inner: S,
    lists: Arc<std::sync::atomic::AtomicU64>,
}

impl<S, B> tower::Service<http::Request<B>> for ListCounting<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;
    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }
    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let uri = request.uri();
        if request.method() == http::Method::GET
            && uri.path().ends_with("/pods")
            && !uri.query().unwrap_or_default().contains("watch=true")
        {
            self.lists.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        self.inner.call(request)
    }
}

struct ControllerFigures {
    burst_seconds: f64,
    burst_reaped: usize,
    p50: f64,
    p95: f64,
    latency_pods: usize,
    idle_lists: u64,
    idle_seconds: u64,
    wrong: usize,
}

/// Deletions as a watch on the namespace reports them: name → when (monotonic and wall clock).
/// The bench observes with a watch, not by re-listing, so it adds no list load of its own to the
/// apiserver it measures (a list of 1,000 pods every few milliseconds competes with the deletes).
type Deletions = Arc<std::sync::Mutex<BTreeMap<String, (Instant, jiff::Timestamp)>>>;

/// Starts recording the deletions in `ns`; resolves once the watch has its initial list.
async fn watch_deletions(
    client: &kube::Client,
    ns: &str,
) -> (Deletions, tokio::task::JoinHandle<()>) {
    use kube::runtime::watcher;
    let deletions: Deletions = Arc::default();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let log = deletions.clone();
    let task = tokio::spawn(async move {
        let mut ready = Some(ready_tx);
        let mut stream = std::pin::pin!(watcher::watcher(api, watcher::Config::default()));
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::InitDone) => {
                    if let Some(tx) = ready.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(watcher::Event::Delete(pod)) => {
                    if let Some(name) = pod.metadata.name {
                        log.lock()
                            .unwrap()
                            .entry(name)
                            .or_insert((Instant::now(), jiff::Timestamp::now()));
                    }
                }
                // A pod set Terminating counts as deleted, as `all_pods` counts it.
                Ok(watcher::Event::Apply(pod)) if pod.metadata.deletion_timestamp.is_some() => {
                    if let Some(name) = pod.metadata.name {
                        log.lock()
                            .unwrap()
                            .entry(name)
                            .or_insert((Instant::now(), jiff::Timestamp::now()));
                    }
                }
                _ => {}
            }
        }
    });
    let _ = ready_rx.await;
    (deletions, task)
}

async fn controller(s: &Setup) -> ControllerFigures {
    let seeded = seed(s).await;
    let (deletions, watch_task) = watch_deletions(&s.client, &s.ns).await;
    tokio::time::sleep(Duration::from_millis(2500)).await; // every job pod qualifies
    let lists = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let kc = kube::config::Kubeconfig::read_from(&s.kubeconfig).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("config");
    let client = kube::client::ClientBuilder::try_from(glrunner_janitor::k8s::bounded(config))
        .expect("client")
        .with_layer(&ListCounter(lists.clone()))
        .build();
    let policy = Policy::new([s.ns.clone()])
        .with_pending_timeout(Duration::from_secs(1))
        .with_grace(Duration::from_secs(1));
    let mut reaper = ReaperConfig::new(policy);
    if let Some(n) = std::env::var("GLRUNNER_BENCH_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .and_then(std::num::NonZeroUsize::new)
    {
        reaper = reaper.with_concurrency(n);
    }
    let controller = Controller::new(
        client,
        reaper,
        ControllerConfig::new("bench").with_events(false),
    )
    .expect("controller");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let t = Instant::now();
    let task = tokio::spawn(async move {
        controller
            .run(async move {
                let _ = stop_rx.await;
            })
            .await
    });
    let eligible: Vec<String> = seeded
        .iter()
        .filter(|(_, e)| **e)
        .map(|((_, n), _)| n.clone())
        .collect();
    let burst_end = loop {
        let last = {
            let log = deletions.lock().unwrap();
            eligible
                .iter()
                .map(|n| log.get(n).map(|(at, _)| *at))
                .collect::<Option<Vec<_>>>()
                .and_then(|ats| ats.into_iter().max())
        };
        if let Some(last) = last {
            break last;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let burst_seconds = burst_end.duration_since(t).as_secs_f64();
    let left: std::collections::BTreeSet<_> = all_pods(&s.client).await.into_iter().collect();
    let wrong = seeded
        .iter()
        .filter(|(k, e)| !**e && !left.contains(*k))
        .count();

    // Latency: pods created one by one while it runs; each qualifies 2 s after its server-side
    // creationTimestamp (whole seconds) and is timed until the watch reports it deleted.
    let latency_pods = 40;
    let mut deadlines = BTreeMap::new();
    for job in 0..latency_pods {
        let mut spec = NewPod::job(&s.ns, "gitlab-runner-5fd7489954-jx682", 4343, 50_000 + job);
        spec.node_name = None;
        let pod = s.fixtures.create_pod(spec).await.expect("create");
        deadlines.insert(
            pod.name,
            pod.created_at + jiff::SignedDuration::from_millis(2001),
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let end = Instant::now() + Duration::from_secs(60);
    let latencies = loop {
        let found: Option<Vec<f64>> = {
            let log = deletions.lock().unwrap();
            deadlines
                .iter()
                .map(|(name, deadline)| {
                    log.get(name)
                        .map(|(_, at)| at.duration_since(*deadline).as_secs_f64().max(0.0))
                })
                .collect()
        };
        if let Some(found) = found {
            break found;
        }
        assert!(
            Instant::now() < end,
            "latency pods not all reaped within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut latencies = latencies;
    latencies.sort_by(f64::total_cmp);
    let pct = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
    let (p50, p95) = (pct(0.5), pct(0.95));

    // Idle: nothing qualifies; count its list requests.
    let idle_seconds = 10;
    let before = lists.load(std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(idle_seconds)).await;
    let idle_lists = lists.load(std::sync::atomic::Ordering::SeqCst) - before;
    let _ = stop_tx.send(());
    let summary = task.await.expect("join").expect("controller run");
    watch_task.abort();
    ControllerFigures {
        burst_seconds,
        burst_reaped: summary.deleted.min(eligible.len()),
        p50,
        p95,
        latency_pods: latencies.len(),
        idle_lists,
        idle_seconds,
        wrong,
    }
}

#[tokio::main]
async fn main() {
    let Some(path) = std::env::var_os("GLRUNNER_TEST_KUBECONFIG").filter(|p| !p.is_empty()) else {
        eprintln!(
            "reap_vs_kubectl: GLRUNNER_TEST_KUBECONFIG is not set; start a server with \
             scripts/kube-apiserver.sh start DIR and export the line it prints"
        );
        return;
    };
    let kubeconfig = PathBuf::from(path);
    let ns = std::env::var("GLRUNNER_BENCH_NAMESPACE").unwrap_or_else(|_| "gitlab-runner".into());
    if std::env::var_os(CHILD_ENV).is_some() {
        return janitor_child(kubeconfig, ns).await;
    }
    let kc = kube::config::Kubeconfig::read_from(&kubeconfig).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("config");
    let client = kube::Client::try_from(config).expect("client");
    let s = Setup {
        fixtures: KubeFixtures::new(client.clone()),
        client,
        kubeconfig,
        ns,
        pods: std::env::var("GLRUNNER_BENCH_PODS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(500),
    };
    println!(
        "population: {} hung job pods + 2 runner managers + 3 name-alikes in {}, 20 job pods in {FOREIGN_NS}",
        s.pods, s.ns
    );
    let j = janitor(&s).await;
    if std::env::var_os("GLRUNNER_BENCH_CONTROLLER_ONLY").is_some() {
        // For experiments (e.g. GLRUNNER_BENCH_CONCURRENCY): the one-shot janitor is the baseline.
        let c = controller(&s).await;
        for ns in [s.ns.as_str(), FOREIGN_NS] {
            empty(&s.client, ns).await;
        }
        println!(
            "janitor (reap --once, own process) {:.2} s; controller burst {:.2} s = {:.2}x the one-shot's time; p50 {:.2} s, p95 {:.2} s; {} idle list(s)",
            j.seconds,
            c.burst_seconds,
            c.burst_seconds / j.seconds.max(1e-9),
            c.p50,
            c.p95,
            c.idle_lists
        );
        return;
    }
    let r = reference(&s).await;
    let c = controller(&s).await;
    for ns in [s.ns.as_str(), FOREIGN_NS] {
        empty(&s.client, ns).await;
    }
    println!();
    println!(
        "{:<34} {:>10} {:>8} {:>8} {:>16}  note",
        "contender", "wall (s)", "reaped", "missed", "wrongly deleted"
    );
    for (name, o) in [
        ("janitor (reap --once)", &j),
        ("reference kubectl|awk|xargs", &r),
    ] {
        println!(
            "{name:<34} {:>10.2} {:>8} {:>8} {:>16}  {}",
            o.seconds, o.reaped, o.missed, o.wrong, o.note
        );
    }
    println!();
    println!(
        "both timers: process start to exit (process start, kubeconfig and client setup included)"
    );
    println!(
        "janitor is {:.1}x faster; wrongly deleted: janitor {} vs reference {}",
        r.seconds / j.seconds.max(1e-9),
        j.wrong,
        r.wrong
    );
    println!();
    println!(
        "controller (reap run): {} qualifying pods deleted in {:.2} s from start (one list) = {:.1}x the reference's rate; {} wrongly deleted",
        c.burst_reaped,
        c.burst_seconds,
        r.seconds / c.burst_seconds.max(1e-9),
        c.wrong
    );
    println!(
        "controller: qualify -> delete over {} pods: p50 {:.2} s, p95 {:.2} s (bound 5 s; the reference has none: it runs when a human runs it)",
        c.latency_pods, c.p50, c.p95
    );
    println!(
        "controller: {} list request(s) in {} s idle (one initial list at start, then watches only)",
        c.idle_lists, c.idle_seconds
    );
}
