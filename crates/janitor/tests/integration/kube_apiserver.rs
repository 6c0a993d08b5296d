//! Against the real kube-apiserver + etcd: conformance, the full population, dry run, the UID race,
//! bad kubeconfigs and an unreachable server.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use glrunner_janitor::clock::ManualClock;
use glrunner_janitor::conformance::{self, PodFixtures};
use glrunner_janitor::k8s::KubePodApi;
use glrunner_janitor::k8s::fixtures::KubeFixtures;
use glrunner_janitor::memory::NewPod;
use glrunner_janitor::model::keys;
use glrunner_janitor::{
    Action, DeleteMode, DeleteOutcome, Error, ListQuery, PodApi, PodInfo, PodKey, PodPhase, Policy,
    Reaper, ReaperConfig, Report, Result,
};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

use super::support::{kube, unique};

#[tokio::test]
async fn conformance_on_real_apiserver() {
    let Some(k) = kube("conformance_on_real_apiserver").await else {
        return;
    };
    conformance::run_all(&k.api, &k.fixtures, &unique("conf")).await;
}

/// Every pod of a namespace as the server has it: name → (uid, terminating).
async fn server_pods(client: &kube::Client, ns: &str) -> Vec<(String, String, bool)> {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut pods: Vec<_> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| {
            (
                p.metadata.name.unwrap(),
                p.metadata.uid.unwrap(),
                p.metadata.deletion_timestamp.is_some(),
            )
        })
        .collect();
    pods.sort();
    pods
}

struct Population {
    ns: String,
    foreign_ns: String,
    /// Names the policy must reap, by reason code.
    expected_reaped: Vec<(String, &'static str)>,
    /// Names that must survive.
    survivors: Vec<String>,
    stuck: String,
    past_timeout: String,
}

fn ts_minus(now: Timestamp, secs: i64) -> Timestamp {
    now.checked_sub(SignedDuration::from_secs(secs)).unwrap()
}

/// Seeds runner-manager pods, job pods in every state, foreign and name-alike pods.
async fn seed(fx: &KubeFixtures, prefix: &str) -> Population {
    let ns = format!("{prefix}-runner");
    let foreign_ns = format!("{prefix}-other");
    fx.create_namespace(&ns).await.unwrap();
    fx.create_namespace(&foreign_ns).await.unwrap();
    let now = Timestamp::now();
    let mut expected_reaped = Vec::new();
    let mut survivors = Vec::new();
    let mut add = |pod: &PodInfo, reap: Option<&'static str>| match reap {
        Some(code) => expected_reaped.push((pod.name.clone(), code)),
        None => survivors.push(pod.name.clone()),
    };

    // Runner managers: Deployment-owned (via ReplicaSet) with chart labels; one even carries job labels.
    let m1 = fx
        .create_pod(NewPod::manager(&ns, "gitlab-runner", "jx682"))
        .await
        .unwrap();
    add(&m1, None);
    let m2 = NewPod::manager(&ns, "second", "ab12c")
        .with_label(keys::LABEL_JOB_POD, "confused")
        .with_annotation(keys::ANNOTATION_JOB_ID, "1");
    add(&fx.create_pod(m2).await.unwrap(), None);

    let mgr = m1.name.as_str();
    // Hung Pending (the runner's poll_timeout passed long ago).
    add(
        &fx.create_pod(NewPod::job(&ns, mgr, 10, 100)).await.unwrap(),
        Some("pending_too_long"),
    );
    // Healthy Running job within its 1 h timeout.
    let healthy = NewPod::job(&ns, mgr, 10, 101)
        .with_phase(PodPhase::Running)
        .with_node("fargate-1")
        .started_at(now);
    add(&fx.create_pod(healthy).await.unwrap(), None);
    // Running past its 1 h timeout, bound to a node: graceful delete leaves it Terminating.
    let late = NewPod::job(&ns, mgr, 10, 102)
        .with_phase(PodPhase::Running)
        .with_node("fargate-2")
        .started_at(ts_minus(now, 7200));
    let late = fx.create_pod(late).await.unwrap();
    add(&late, Some("past_job_timeout"));
    // Finished pods.
    let ok = NewPod::job(&ns, mgr, 10, 103)
        .with_phase(PodPhase::Succeeded)
        .started_at(ts_minus(now, 900));
    add(&fx.create_pod(ok).await.unwrap(), Some("finished"));
    let failed = NewPod::job(&ns, mgr, 10, 104)
        .with_phase(PodPhase::Failed)
        .started_at(ts_minus(now, 900));
    add(&fx.create_pod(failed).await.unwrap(), Some("finished"));
    // Stuck Terminating: bound to a node with no kubelet, gracefully deleted already.
    let stuck = fx
        .create_pod(
            NewPod::job(&ns, mgr, 10, 105)
                .with_phase(PodPhase::Running)
                .with_node("gone-node"),
        )
        .await
        .unwrap();
    fx.start_terminating(&ns, &stuck.name).await.unwrap();
    add(&stuck, Some("stuck_terminating"));
    // Unknown phase: kept.
    let unknown = NewPod::job(&ns, mgr, 10, 106).with_phase(PodPhase::Unknown);
    add(&fx.create_pod(unknown).await.unwrap(), None);
    // Running without a timeout annotation: kept.
    let mut no_timeout = NewPod::job(&ns, mgr, 10, 107)
        .with_phase(PodPhase::Running)
        .started_at(ts_minus(now, 7200));
    no_timeout.annotations.remove(keys::ANNOTATION_JOB_TIMEOUT);
    add(&fx.create_pod(no_timeout).await.unwrap(), None);

    // Name-alikes: `runner-...` without the executor's labels, or with the label but no job annotation.
    add(
        &fx.create_pod(NewPod::new(
            &ns,
            "runner-3lj4ihzt1-project-10-concurrent-0-lookalik",
        ))
        .await
        .unwrap(),
        None,
    );
    let mut half = NewPod::job(&ns, mgr, 10, 108);
    half.annotations.remove(keys::ANNOTATION_JOB_ID);
    add(&fx.create_pod(half).await.unwrap(), None);
    // A Job-owned pod with the executor's labels.
    let owned = NewPod::job(&ns, mgr, 10, 109)
        .with_owner(glrunner_janitor::OwnerRef::controller("Job", "batch"));
    add(&fx.create_pod(owned).await.unwrap(), None);

    // Foreign namespace: hung job pods that are not ours to reap.
    for job in 200..203 {
        fx.create_pod(NewPod::job(&foreign_ns, mgr, 11, job))
            .await
            .unwrap();
    }

    Population {
        ns,
        foreign_ns,
        expected_reaped,
        survivors,
        stuck: stuck.name,
        past_timeout: late.name,
    }
}

fn reaper(api: Arc<dyn PodApi>, ns: &str, at: Timestamp, dry_run: bool) -> Reaper {
    let policy = Policy::new([ns]).with_grace(Duration::from_secs(60));
    Reaper::new(
        api,
        ReaperConfig::new(policy)
            .with_dry_run(dry_run)
            .with_page_size(3),
    )
    .unwrap()
    .with_clock(Arc::new(ManualClock::new(at)))
}

fn reaped_set(report: &Report) -> BTreeSet<(String, &'static str)> {
    report
        .reaped
        .iter()
        .map(|p| (p.name.clone(), p.reason.code()))
        .collect()
}

#[tokio::test]
async fn reaps_exactly_the_eligible_pods_and_dry_run_deletes_nothing() {
    let Some(k) = kube("reaps_exactly_the_eligible_pods").await else {
        return;
    };
    let pop = seed(&k.fixtures, &unique("pop")).await;
    let api: Arc<dyn PodApi> = Arc::new(
        KubePodApi::from_kubeconfig(Some(&k.kubeconfig), None)
            .await
            .unwrap(),
    );
    let later = Timestamp::now()
        .checked_add(SignedDuration::from_secs(600))
        .unwrap();
    let expected: BTreeSet<_> = pop.expected_reaped.iter().cloned().collect();

    // Dry run: the same verdicts, nothing changes on the server.
    let before = server_pods(&k.client, &pop.ns).await;
    let foreign_before = server_pods(&k.client, &pop.foreign_ns).await;
    let dry = reaper(api.clone(), &pop.ns, later, true)
        .run_once()
        .await
        .unwrap();
    assert_eq!(reaped_set(&dry), expected, "{dry}");
    assert!(
        dry.reaped
            .iter()
            .all(|p| matches!(p.action, Action::WouldDelete | Action::WouldForceDelete))
    );
    assert_eq!(dry.deleted(), 0);
    assert_eq!(
        server_pods(&k.client, &pop.ns).await,
        before,
        "dry run changed nothing"
    );

    // The real round.
    let report = reaper(api.clone(), &pop.ns, later, false)
        .run_once()
        .await
        .unwrap();
    assert_eq!(reaped_set(&report), expected, "{report}");
    assert!(report.errors.is_empty(), "{report}");
    let action = |name: &str| {
        report
            .reaped
            .iter()
            .find(|p| p.name == name)
            .unwrap()
            .action
    };
    assert_eq!(
        action(&pop.stuck),
        Action::Deleted,
        "stuck Terminating pod force-deleted"
    );
    assert_eq!(
        action(&pop.past_timeout),
        Action::Terminating,
        "bound pod goes Terminating"
    );
    assert!(
        report.kept.contains_key("chart_labels") || report.kept.contains_key("owned_by_controller")
    );
    assert!(
        report.cost.usd_per_hour > 0.0,
        "bound reaped pods burn money: {report}"
    );

    let after = server_pods(&k.client, &pop.ns).await;
    let left: BTreeSet<String> = after.iter().map(|p| p.0.clone()).collect();
    let mut want: BTreeSet<String> = pop.survivors.iter().cloned().collect();
    want.insert(pop.past_timeout.clone()); // Terminating, waiting for a kubelet that never comes
    assert_eq!(left, want);
    // Survivors are the very same pods (same UIDs), untouched.
    for (name, uid, terminating) in &before {
        if pop.survivors.contains(name) {
            assert!(
                after.contains(&(name.clone(), uid.clone(), *terminating)),
                "{name} untouched"
            );
        }
    }
    assert_eq!(
        server_pods(&k.client, &pop.foreign_ns).await,
        foreign_before,
        "foreign namespace untouched"
    );

    // An hour later the Terminating pod is stuck: force-deleted.
    let much_later = later.checked_add(SignedDuration::from_secs(3600)).unwrap();
    let second = reaper(api, &pop.ns, much_later, false)
        .run_once()
        .await
        .unwrap();
    let stuck: Vec<_> = second
        .reaped
        .iter()
        .filter(|p| p.reason.code() == "stuck_terminating")
        .collect();
    assert_eq!(stuck.len(), 1, "{second}");
    assert_eq!(stuck[0].name, pop.past_timeout);
    assert_eq!(stuck[0].action, Action::Deleted);
    assert!(
        server_pods(&k.client, &pop.ns)
            .await
            .iter()
            .all(|p| p.0 != pop.past_timeout)
    );
}

/// Deletes and recreates the pod under the same name right before forwarding the first delete.
struct RacingApi {
    inner: KubePodApi,
    fixtures: KubeFixtures,
    recreate: NewPod,
    raced: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl PodApi for RacingApi {
    fn backend(&self) -> &'static str {
        "racing"
    }
    async fn list_pods(&self, q: &ListQuery) -> Result<Vec<PodInfo>> {
        self.inner.list_pods(q).await
    }
    async fn get_pod(&self, ns: &str, name: &str) -> Result<Option<PodInfo>> {
        self.inner.get_pod(ns, name).await
    }
    async fn delete_pod(&self, key: &PodKey, mode: DeleteMode) -> Result<DeleteOutcome> {
        if !self.raced.swap(true, std::sync::atomic::Ordering::SeqCst) {
            self.inner
                .delete_pod(key, DeleteMode::force())
                .await
                .unwrap();
            self.fixtures
                .create_pod(self.recreate.clone())
                .await
                .unwrap();
        }
        self.inner.delete_pod(key, mode).await
    }
}

#[tokio::test]
async fn pod_recreated_between_list_and_delete_is_not_deleted() {
    let Some(k) = kube("pod_recreated_between_list_and_delete").await else {
        return;
    };
    let ns = format!("{}-race", unique("uid"));
    k.fixtures.create_namespace(&ns).await.unwrap();
    let spec = NewPod::job(&ns, "mgr", 1, 77);
    let old = k.fixtures.create_pod(spec.clone()).await.unwrap();
    let api = RacingApi {
        inner: KubePodApi::from_kubeconfig(Some(&k.kubeconfig), None)
            .await
            .unwrap(),
        fixtures: k.fixtures.clone(),
        recreate: spec,
        raced: Default::default(),
    };
    let later = Timestamp::now()
        .checked_add(SignedDuration::from_secs(3600))
        .unwrap();
    let report = reaper(Arc::new(api), &ns, later, false)
        .run_once()
        .await
        .unwrap();
    assert_eq!(report.reaped.len(), 1, "{report}");
    assert_eq!(report.reaped[0].action, Action::Replaced, "{report}");
    assert!(report.errors.is_empty(), "{report}");
    let left = server_pods(&k.client, &ns).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].0, old.name);
    assert_ne!(left[0].1, old.uid, "the new incarnation survived");
}

#[tokio::test]
async fn kubeconfig_without_the_named_context_is_invalid_input() {
    let Some(k) = kube("kubeconfig_without_the_named_context").await else {
        return;
    };
    let err = KubePodApi::from_kubeconfig(Some(&k.kubeconfig), Some("no-such-context"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("no-such-context") && text.contains("glrunner-test"),
        "{text}"
    );
}

#[tokio::test]
async fn unreachable_api_server_fails_the_round_and_deletes_nothing() {
    // No real server needed: a kubeconfig pointing at a closed loopback port.
    let dir = std::env::temp_dir().join(format!("janitor-unreachable-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:{port}\n    \
             insecure-skip-tls-verify: true\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\n\
             current-context: c\nusers:\n- name: u\n  user:\n    token: t\n"
        ),
    )
    .unwrap();
    let api = KubePodApi::from_kubeconfig(Some(&path), None)
        .await
        .unwrap();
    let reaper = Reaper::new(
        Arc::new(api),
        ReaperConfig::new(Policy::new(["gitlab-runner"])),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let err = reaper.run_once().await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "bounded: {:?}",
        started.elapsed()
    );
    let text = err.to_string();
    assert!(
        text.contains("list") && text.contains("gitlab-runner"),
        "{text}"
    );
    assert!(
        matches!(err, Error::Backend { .. } | Error::Timeout { .. }),
        "{err:?}"
    );
    std::fs::remove_dir_all(dir).ok();
}

/// Hands out the test server's token (valid for an hour) on the first call and `later` after
/// that, counting how often it was asked.
struct CountingTokens {
    token: String,
    later: String,
    calls: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl glrunner_janitor::k8s::TokenProvider for CountingTokens {
    async fn token(&self) -> Result<glrunner_janitor::k8s::BearerToken> {
        let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let hour = Timestamp::now()
            .checked_add(SignedDuration::from_secs(3600))
            .unwrap();
        let token = if n == 0 { &self.token } else { &self.later };
        Ok(glrunner_janitor::k8s::BearerToken::new(
            token.clone(),
            Some(hour),
        ))
    }
}

#[tokio::test]
async fn every_call_uses_the_token_the_provider_hands_out_now() {
    let Some(k) = kube("every_call_uses_the_token_the_provider_hands_out_now").await else {
        return;
    };
    let text = std::fs::read_to_string(&k.kubeconfig).unwrap();
    let token = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("token:"))
        .expect("token in kubeconfig")
        .trim();
    let kc = kube::config::Kubeconfig::read_from(&k.kubeconfig).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    config.auth_info.token = None;
    // The provider (e.g. the EKS token cache) decides when a token changes; here the second
    // token is one the server rejects, though the first was still valid for an hour.
    let tokens = Arc::new(CountingTokens {
        token: token.to_owned(),
        later: "revoked-token".to_owned(),
        calls: Default::default(),
    });
    let api = KubePodApi::with_token_provider(config, tokens.clone()).unwrap();
    let ns = format!("{}-tok", unique("tok"));
    k.fixtures.create_namespace(&ns).await.unwrap();
    assert!(
        api.list_pods(&ListQuery::job_pods(&ns))
            .await
            .unwrap()
            .is_empty()
    );
    let err = api.get_pod(&ns, "nope").await.unwrap_err();
    assert!(matches!(err, Error::PermissionDenied { .. }), "{err:?}");
    assert_eq!(tokens.calls.load(std::sync::atomic::Ordering::SeqCst), 2);
}
