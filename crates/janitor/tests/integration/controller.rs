//! The controller (`reap run`) on the real kube-apiserver: a pod that qualifies later is reaped at
//! its deadline with no re-list, each deletion records an Event, a watch that expires (410) and an
//! apiserver restart are survived, two replicas on one Lease never both delete, and `--max-deletes`
//! caps a round.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use glrunner_janitor::conformance::PodFixtures;
use glrunner_janitor::controller::{
    Controller, ControllerConfig, ControllerObserver, ControllerSummary,
};
use glrunner_janitor::k8s::fixtures::KubeFixtures;
use glrunner_janitor::lease::LeaseConfig;
use glrunner_janitor::memory::NewPod;
use glrunner_janitor::{Policy, ReapReason, ReaperConfig};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};

use super::support::{PrivateApiserver, kube, unique};

/// A controller running on a task of its own until [`Running::stop`] (the CLI stops it with a
/// CancellationToken; any future does).
struct Running {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<glrunner_janitor::Result<ControllerSummary>>,
}

impl Running {
    fn start(controller: Controller) -> Self {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            controller
                .run(async move {
                    let _ = stopped.wait_for(|v| *v).await;
                })
                .await
        });
        Self { stop, task }
    }

    /// Signals shutdown and waits for the summary; the controller must stop within 30 s.
    async fn stop(self) -> ControllerSummary {
        let _ = self.stop.send(true);
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("the controller stops on shutdown")
            .unwrap()
            .unwrap()
    }
}

/// Counts the requests a client sends: lists (GET on a collection without `watch`) and watches.
#[derive(Clone, Default)]
struct Counts {
    lists: Arc<AtomicU64>,
    watches: Arc<AtomicU64>,
    /// Rewrite the next watch request's resourceVersion to this, once (to provoke a 410).
    stale_next_watch: Arc<Mutex<Option<String>>>,
}

#[derive(Clone)]
struct CountLayer(Counts);

impl<S> tower::Layer<S> for CountLayer {
    type Service = CountService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        CountService {
            inner,
            counts: self.0.clone(),
        }
    }
}

#[derive(Clone)]
struct CountService<S> {
    inner: S,
    counts: Counts,
}

impl<S, B> tower::Service<http::Request<B>> for CountService<S>
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

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let uri = request.uri().clone();
        let query = uri.query().unwrap_or_default().to_owned();
        let is_pods = uri.path().ends_with("/pods");
        if request.method() == http::Method::GET && is_pods {
            if query.contains("watch=true") {
                self.counts.watches.fetch_add(1, Ordering::SeqCst);
                if let Some(rv) = self.counts.stale_next_watch.lock().unwrap().take() {
                    let rewritten: Vec<String> = query
                        .split('&')
                        .map(|kv| {
                            if kv.starts_with("resourceVersion=") {
                                format!("resourceVersion={rv}")
                            } else {
                                kv.to_owned()
                            }
                        })
                        .collect();
                    let new = format!("{}?{}", uri.path(), rewritten.join("&"));
                    *request.uri_mut() = new.parse().unwrap();
                }
            } else {
                self.counts.lists.fetch_add(1, Ordering::SeqCst);
            }
        }
        self.inner.call(request)
    }
}

async fn counting_client(kubeconfig: &std::path::Path, counts: &Counts) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let config = glrunner_janitor::k8s::bounded(config);
    kube::client::ClientBuilder::try_from(config)
        .unwrap()
        .with_layer(&CountLayer(counts.clone()))
        .build()
}

/// Records each reaped pod with the replica that reaped it and when.
#[derive(Default)]
struct Reaped {
    who: String,
    log: Arc<Mutex<Vec<(String, String, Instant)>>>,
}

impl ControllerObserver for Reaped {
    fn pod_reaped(&self, pod: &Pod, reason: &ReapReason) {
        let _ = reason;
        self.log.lock().unwrap().push((
            self.who.clone(),
            pod.metadata.name.clone().unwrap_or_default(),
            Instant::now(),
        ));
    }
}

fn policy(ns: &str) -> ReaperConfig {
    ReaperConfig::new(
        Policy::new([ns])
            .with_pending_timeout(Duration::from_secs(2))
            .with_grace(Duration::from_secs(1)),
    )
}

/// A hung Pending job pod (unbound, so the apiserver deletes it at once).
fn hung(ns: &str, job: u64) -> NewPod {
    let mut pod = NewPod::job(ns, "gitlab-runner-5fd7489954-jx682", 7, job);
    pod.node_name = None;
    pod
}

async fn wait_gone(client: &kube::Client, ns: &str, names: &[String], within: Duration) -> bool {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let end = Instant::now() + within;
    while Instant::now() < end {
        let left = api.list(&ListParams::default()).await.unwrap();
        if !left
            .items
            .iter()
            .any(|p| names.contains(p.metadata.name.as_ref().unwrap()))
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_that_qualifies_later_is_reaped_at_its_deadline_without_a_relist_and_gets_an_event() {
    let Some(k) = kube("controller_deadline").await else {
        return;
    };
    let ns = unique("ctl");
    k.fixtures.create_namespace(&ns).await.unwrap();
    let counts = Counts::default();
    let client = counting_client(&k.kubeconfig, &counts).await;
    let controller =
        Controller::new(client, policy(&ns), ControllerConfig::new("ctl-test")).unwrap();
    let running = Running::start(controller);
    // Let the initial list and watch start, then create the pod: it qualifies 3 s later.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pod = k.fixtures.create_pod(hung(&ns, 1)).await.unwrap();
    let healthy = k
        .fixtures
        .create_pod(
            NewPod::job(&ns, "gitlab-runner-5fd7489954-jx682", 7, 2)
                .with_phase(glrunner_janitor::PodPhase::Running),
        )
        .await
        .unwrap();
    assert!(
        wait_gone(
            &k.client,
            &ns,
            std::slice::from_ref(&pod.name),
            Duration::from_secs(20)
        )
        .await,
        "the hung pod was reaped"
    );
    // The deadline is 2 s after the (whole-second) creationTimestamp; the bound from
    // qualifying to deletion is 5 s (a generous bound on a shared, loaded machine).
    let after_creation = jiff::Timestamp::now().duration_since(pod.created_at);
    assert!(
        after_creation < jiff::SignedDuration::from_secs(2 + 5 + 1),
        "deleted {after_creation:?} after creation: not at its deadline"
    );
    let lists_at_delete = counts.lists.load(Ordering::SeqCst);
    // Idle: nothing qualifies any more; the controller must not list again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let summary = running.stop().await;
    assert_eq!(summary.deleted, 1, "{summary:?}");
    assert_eq!(
        (lists_at_delete, counts.lists.load(Ordering::SeqCst)),
        (1, 1),
        "one initial list, none after: {summary:?}"
    );
    // One list of job pods and one of Warning Events (the classifier's watch).
    assert_eq!(summary.lists, 2, "{summary:?}");
    assert!(counts.watches.load(Ordering::SeqCst) >= 1);
    let left: Api<Pod> = Api::namespaced(k.client.clone(), &ns);
    assert!(
        left.get_opt(&healthy.name).await.unwrap().is_some(),
        "the healthy pod stays"
    );

    // The deletion's Event, on the pod, naming the rule.
    let events: Api<Event> = Api::namespaced(k.client.clone(), &ns);
    let events = events.list(&ListParams::default()).await.unwrap().items;
    let ours: Vec<&Event> = events
        .iter()
        .filter(|e| {
            e.regarding
                .as_ref()
                .is_some_and(|r| r.uid.as_deref() == Some(pod.uid.as_str()))
        })
        .collect();
    assert_eq!(ours.len(), 1, "{events:?}");
    let e = ours[0];
    assert_eq!(e.reason.as_deref(), Some("ReapedPendingTooLong"));
    assert_eq!(e.reporting_controller.as_deref(), Some("glrunner-janitor"));
    assert_eq!(e.reporting_instance.as_deref(), Some("ctl-test"));
    assert!(
        e.note
            .as_deref()
            .unwrap_or_default()
            .contains("rule pending_too_long"),
        "{e:?}"
    );
    assert_eq!(summary.events_recorded, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_that_expires_with_410_relists_and_goes_on_reaping() {
    let Some(_shared) = kube("controller_410").await else {
        return;
    };
    // A private apiserver whose pod watches read etcd directly (no watch cache, whose window
    // only grows on a busy server): once etcd is compacted, a watch from an older revision gets
    // the real 410 Gone ("required revision has been compacted"), as after a long disconnection.
    let private = PrivateApiserver::start_with(
        "ctl-410",
        &["--apiserver-flag", "--watch-cache-sizes=pods#0"],
    );
    let admin = counting_client(&private.kubeconfig(), &Counts::default()).await;
    let fixtures = KubeFixtures::new(admin.clone());
    let ns = "gone-ctl";
    fixtures.create_namespace(ns).await.unwrap();
    let compacted = private.compact_etcd();
    assert!(compacted > 2);
    let counts = Counts::default();
    // The controller's first watch resumes from revision 2, compacted away above.
    *counts.stale_next_watch.lock().unwrap() = Some("2".into());
    let client = counting_client(&private.kubeconfig(), &counts).await;
    let controller = Controller::new(client, policy(ns), ControllerConfig::new("ctl-410")).unwrap();
    let running = Running::start(controller);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pod = fixtures.create_pod(hung(ns, 3)).await.unwrap();
    let gone = wait_gone(
        &admin,
        ns,
        std::slice::from_ref(&pod.name),
        Duration::from_secs(30),
    )
    .await;
    let summary = running.stop().await;
    assert!(gone, "reaped after the 410: {summary:?}");
    assert!(
        summary.watch_errors >= 1,
        "the 410 reached the watcher: {summary:?}"
    );
    assert_eq!(
        summary.lists, 3,
        "the initial lists (pods, Warning Events) and one of pods after the 410: {summary:?}"
    );
    assert_eq!(counts.lists.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apiserver_restart_is_survived_and_a_pod_that_qualifies_after_it_is_reaped() {
    let Some(_shared) = kube("controller_restart").await else {
        return;
    };
    let private = PrivateApiserver::start("ctl-restart", false);
    let kubeconfig = private.kubeconfig();
    let counts = Counts::default();
    let client = counting_client(&kubeconfig, &counts).await;
    let admin = counting_client(&kubeconfig, &Counts::default()).await;
    let fixtures = KubeFixtures::new(admin.clone());
    let ns = "restart-ctl";
    fixtures.create_namespace(ns).await.unwrap();
    let controller =
        Controller::new(client, policy(ns), ControllerConfig::new("ctl-restart")).unwrap();
    let running = Running::start(controller);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = fixtures.create_pod(hung(ns, 4)).await.unwrap();
    assert!(
        wait_gone(
            &admin,
            ns,
            std::slice::from_ref(&before.name),
            Duration::from_secs(20)
        )
        .await
    );

    private.control("stop-apiserver");
    tokio::time::sleep(Duration::from_secs(2)).await;
    private.control("start-apiserver");
    let after = fixtures.create_pod(hung(ns, 5)).await.unwrap();
    let gone = wait_gone(
        &admin,
        ns,
        std::slice::from_ref(&after.name),
        Duration::from_secs(60),
    )
    .await;
    let summary = running.stop().await;
    assert!(gone, "reaped after the restart: {summary:?}");
    assert_eq!(summary.deleted, 2, "{summary:?}");
    assert!(
        summary.watch_errors >= 1,
        "the restart broke the watch: {summary:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_lease_never_both_delete_and_the_other_takes_over() {
    let Some(k) = kube("controller_lease").await else {
        return;
    };
    let ns = unique("lease");
    k.fixtures.create_namespace(&ns).await.unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let lease = |who: &str| {
        LeaseConfig::new(&ns, "glrunner-janitor", who)
            .with_timings(
                Duration::from_secs(3),
                Duration::from_secs(2),
                Duration::from_millis(300),
            )
            .unwrap()
    };
    let mut replicas = Vec::new();
    for who in ["replica-a", "replica-b"] {
        let counts = Counts::default();
        let client = counting_client(&k.kubeconfig, &counts).await;
        let observer: Arc<dyn ControllerObserver> = Arc::new(Reaped {
            who: who.into(),
            log: log.clone(),
        });
        let controller = Controller::new(
            client,
            policy(&ns),
            ControllerConfig::new(who).with_lease(Some(lease(who))),
        )
        .unwrap()
        .with_observers([observer]);
        replicas.push(Running::start(controller));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut first = Vec::new();
    for job in 10..16 {
        first.push(k.fixtures.create_pod(hung(&ns, job)).await.unwrap().name);
    }
    assert!(wait_gone(&k.client, &ns, &first, Duration::from_secs(30)).await);
    let leader = {
        let log = log.lock().unwrap();
        let who: std::collections::BTreeSet<&str> =
            log.iter().map(|(w, _, _)| w.as_str()).collect();
        assert_eq!(who.len(), 1, "one replica deleted: {log:?}");
        assert_eq!(log.len(), first.len(), "each pod deleted once: {log:?}");
        log[0].0.clone()
    };
    // Stop the leader: it gives the Lease up and the other replica takes over.
    let (index, other) = if leader == "replica-a" {
        (0, "replica-b")
    } else {
        (1, "replica-a")
    };
    let leader_summary = replicas.remove(index).stop().await;
    let stopped_at = Instant::now();
    let mut second = Vec::new();
    for job in 20..23 {
        second.push(k.fixtures.create_pod(hung(&ns, job)).await.unwrap().name);
    }
    assert!(wait_gone(&k.client, &ns, &second, Duration::from_secs(30)).await);
    let other_summary = replicas.remove(0).stop().await;
    let log = log.lock().unwrap();
    let by_other: Vec<_> = log.iter().filter(|(w, _, _)| w == other).collect();
    assert_eq!(by_other.len(), second.len(), "{log:?}");
    assert!(
        by_other.iter().all(|(_, _, at)| *at > stopped_at),
        "{log:?}"
    );
    assert_eq!(leader_summary.deleted, first.len());
    assert_eq!(other_summary.deleted, second.len());
    assert!(other_summary.leaderships >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_deletes_caps_each_round_and_the_rest_follow_in_later_rounds() {
    let Some(k) = kube("controller_cap").await else {
        return;
    };
    let ns = unique("cap");
    k.fixtures.create_namespace(&ns).await.unwrap();
    let mut names = Vec::new();
    for job in 30..35 {
        names.push(k.fixtures.create_pod(hung(&ns, job)).await.unwrap().name);
    }
    tokio::time::sleep(Duration::from_secs(4)).await; // all qualify before the controller starts
    let client = counting_client(&k.kubeconfig, &Counts::default()).await;
    let config = policy(&ns).with_max_deletes(std::num::NonZeroUsize::new(2));
    let controller = Controller::new(
        client,
        config,
        ControllerConfig::new("ctl-cap").with_capped_round_pause(Duration::from_millis(500)),
    )
    .unwrap();
    let running = Running::start(controller);
    let gone = wait_gone(&k.client, &ns, &names, Duration::from_secs(30)).await;
    let summary = running.stop().await;
    assert!(gone, "{summary:?}");
    assert_eq!(summary.deleted, 5, "{summary:?}");
    // 5 pods at 2 per round: at least three rounds, and 3 + 1 deferrals on the way.
    assert!(summary.rounds >= 3, "{summary:?}");
    assert!(summary.deferred >= 4, "{summary:?}");
}

/// A Pending job pod on the Fargate scheduler with one Warning Event from it.
async fn refused(k: &super::support::Kube, ns: &str, job: u64, message: &str) -> (String, String) {
    use glrunner_janitor::classify::{FARGATE_SCHEDULER, PodEvent, PodSignals};
    let pod = k
        .fixtures
        .create_pod(hung(ns, job).with_signals(PodSignals {
            scheduler_name: Some(FARGATE_SCHEDULER.into()),
            ..PodSignals::default()
        }))
        .await
        .unwrap();
    k.fixtures
        .record_event(&PodEvent {
            namespace: ns.to_owned(),
            pod_name: pod.name.clone(),
            pod_uid: Some(pod.uid.clone()),
            reason: "FailedScheduling".into(),
            // Messages as real clusters printed them: tests/fixtures/pending_pods.json.
            message: message.into(),
            source: FARGATE_SCHEDULER.into(),
            event_type: "Warning".into(),
            count: 1,
            last_seen: Some(jiff::Timestamp::now()),
        })
        .await
        .unwrap();
    (pod.name, pod.uid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_pods_are_explained_by_event_and_metric_and_an_unrecoverable_one_is_reaped_at_once()
{
    use glrunner_janitor::metrics::JanitorMetrics;
    let Some(k) = kube("controller_explain").await else {
        return;
    };
    let ns = unique("why");
    k.fixtures.create_namespace(&ns).await.unwrap();
    let counts = Counts::default();
    let client = counting_client(&k.kubeconfig, &counts).await;
    // The policy alone would keep both pods for 10 minutes.
    let config = ReaperConfig::new(
        Policy::new([ns.as_str()])
            .with_pending_timeout(Duration::from_secs(600))
            .with_grace(Duration::from_secs(1)),
    );
    let metrics = Arc::new(JanitorMetrics::new());
    let controller = Controller::new(
        client,
        config,
        ControllerConfig::new("ctl-why").with_reap_unrecoverable(true),
    )
    .unwrap()
    .with_observers([metrics.clone() as Arc<dyn ControllerObserver>]);
    let running = Running::start(controller);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let created = Instant::now();
    let (privileged, privileged_uid) = refused(
        &k,
        &ns,
        40,
        "Pod not supported on Fargate: invalid SecurityContext fields: Privileged",
    )
    .await;
    let (waiting, waiting_uid) = refused(
        &k,
        &ns,
        41,
        "Fargate capacity is unavailable at this time. Please try again later or in a different availability zone",
    )
    .await;
    let gone = wait_gone(
        &k.client,
        &ns,
        std::slice::from_ref(&privileged),
        Duration::from_secs(20),
    )
    .await;
    let reaped_after = created.elapsed();
    // The recoverable one waits: give the controller time to (wrongly) act on it too.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let text = metrics.encode();
    let summary = running.stop().await;
    assert!(gone, "the refused pod was reaped: {summary:?}");
    assert!(
        reaped_after < Duration::from_secs(10),
        "at once, not at the 600 s pending timeout: {reaped_after:?}"
    );
    let pods: Api<Pod> = Api::namespaced(k.client.clone(), &ns);
    assert!(
        pods.get_opt(&waiting).await.unwrap().is_some(),
        "capacity recovers: the pod stays"
    );
    assert_eq!(summary.deleted, 1, "{summary:?}");
    assert_eq!(summary.unrecoverable_reaped, 1, "{summary:?}");
    assert_eq!(summary.class_events_recorded, 2, "{summary:?}");
    assert_eq!(
        counts.lists.load(Ordering::SeqCst),
        1,
        "one list of pods, the rest watched"
    );

    // The class of each pod on an Event, and the deletion's Event naming the class as its rule.
    let events: Api<Event> = Api::namespaced(k.client.clone(), &ns);
    let events = events.list(&ListParams::default()).await.unwrap().items;
    // The janitor's own Events (the scheduler's Warning, written above, is there too).
    let about = |uid: &str| -> Vec<(String, String)> {
        events
            .iter()
            .filter(|e| e.reporting_controller.as_deref() == Some("glrunner-janitor"))
            .filter(|e| {
                e.regarding
                    .as_ref()
                    .is_some_and(|r| r.uid.as_deref() == Some(uid))
            })
            .map(|e| {
                (
                    e.reason.clone().unwrap_or_default(),
                    e.note.clone().unwrap_or_default(),
                )
            })
            .collect()
    };
    let mut on_privileged = about(&privileged_uid);
    on_privileged.sort();
    assert_eq!(on_privileged.len(), 2, "{on_privileged:?}");
    assert_eq!(on_privileged[0].0, "PendingFargatePrivileged");
    assert!(on_privileged[0].1.contains("Fix: "), "{on_privileged:?}");
    assert_eq!(on_privileged[1].0, "ReapedUnrecoverable");
    assert!(
        on_privileged[1].1.contains("rule unrecoverable"),
        "{on_privileged:?}"
    );
    let on_waiting = about(&waiting_uid);
    assert_eq!(
        on_waiting
            .iter()
            .map(|(r, _)| r.as_str())
            .collect::<Vec<_>>(),
        ["PendingFargateCapacity"],
        "one class Event, however many rounds: {on_waiting:?}"
    );

    // The metrics: the waiting pod by its class, the reaped one by its reason.
    let shard = "gitlab-runner";
    for line in [
        format!(
            "glrunner_janitor_pending_job_pods{{namespace=\"{ns}\",shard=\"{shard}\",class=\"fargate_capacity\"}} 1"
        ),
        format!(
            "glrunner_janitor_pods_reaped_total{{namespace=\"{ns}\",shard=\"{shard}\",reason=\"unrecoverable\"}} 1"
        ),
    ] {
        assert!(text.contains(&line), "missing {line} in\n{text}");
    }
}

/// An executor-shaped per-job registry Secret (gitlab-runner `executors/kubernetes`
/// `setupCredentials`: type `kubernetes.io/dockercfg`, key `.dockercfg`, no labels).
fn executor_secret(
    ns: &str,
    name: &str,
    owner: Option<(&str, &str)>,
) -> k8s_openapi::api::core::v1::Secret {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
    k8s_openapi::api::core::v1::Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            owner_references: owner.map(|(pod, uid)| {
                vec![OwnerReference {
                    api_version: "v1".into(),
                    kind: "Pod".into(),
                    name: pod.into(),
                    uid: uid.into(),
                    ..OwnerReference::default()
                }]
            }),
            ..ObjectMeta::default()
        },
        type_: Some(glrunner_janitor::secrets::EXECUTOR_SECRET_TYPE.into()),
        string_data: Some([(".dockercfg".to_owned(), "{}".to_owned())].into()),
        ..k8s_openapi::api::core::v1::Secret::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphaned_executor_secrets_are_reaped_and_nothing_else() {
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::PostParams;
    let Some(k) = kube("controller_secrets").await else {
        return;
    };
    let ns = unique("sec");
    k.fixtures.create_namespace(&ns).await.unwrap();
    // A Running job pod whose Secret must stay, and a pod that owned a Secret and is gone (the
    // apiserver has no garbage collector here: the Secret outlives it, as when GC lags).
    let alive = k
        .fixtures
        .create_pod(
            NewPod::job(&ns, "gitlab-runner-5fd7489954-jx682", 7, 60)
                .with_phase(glrunner_janitor::PodPhase::Running),
        )
        .await
        .unwrap();
    let gone = k.fixtures.create_pod(hung(&ns, 61)).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(k.client.clone(), &ns);
    pods.delete(&gone.name, &kube::api::DeleteParams::default())
        .await
        .unwrap();
    let secrets: Api<Secret> = Api::namespaced(k.client.clone(), &ns);
    let name = |n: &str| format!("runner-t3st-project-7-concurrent-0-{n}");
    let cases = [
        (
            name("keep0001"),
            Some((alive.name.as_str(), alive.uid.as_str())),
        ),
        (
            name("gone0001"),
            Some((gone.name.as_str(), gone.uid.as_str())),
        ),
        (name("noowner1"), None),
    ];
    for (n, owner) in &cases {
        secrets
            .create(&PostParams::default(), &executor_secret(&ns, n, *owner))
            .await
            .unwrap();
    }
    // Not the executor's: another name shape of the same type, and the right shape of another type.
    secrets
        .create(
            &PostParams::default(),
            &executor_secret(&ns, "registry-credentials", None),
        )
        .await
        .unwrap();
    let mut opaque = executor_secret(&ns, &name("opaque01"), None);
    opaque.type_ = Some("Opaque".into());
    secrets
        .create(&PostParams::default(), &opaque)
        .await
        .unwrap();
    // The unowned Secret qualifies after pending timeout (2 s) + grace (1 s); the other at once.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let client = counting_client(&k.kubeconfig, &Counts::default()).await;
    let controller = Controller::new(
        client,
        policy(&ns),
        ControllerConfig::new("ctl-secrets").with_secrets(true),
    )
    .unwrap();
    let running = Running::start(controller);
    let end = Instant::now() + Duration::from_secs(20);
    let left = loop {
        let left: Vec<String> = secrets
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|s| s.metadata.name)
            .collect();
        if !left.contains(&name("gone0001")) && !left.contains(&name("noowner1")) {
            break left;
        }
        assert!(Instant::now() < end, "orphans still there: {left:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // A moment more, for a wrong delete to show.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let summary = running.stop().await;
    assert_eq!(summary.secrets_deleted, 2, "{summary:?}");
    let left: std::collections::BTreeSet<String> = secrets
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|s| s.metadata.name)
        .filter(|n| left.contains(n))
        .collect();
    for kept in [
        name("keep0001"),
        "registry-credentials".into(),
        name("opaque01"),
    ] {
        assert!(left.contains(&kept), "{kept} must stay: {left:?}");
    }
}
