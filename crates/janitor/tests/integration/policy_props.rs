//! Property tests of the policy over random pod populations: it never reaps a pod that is not a job
//! pod, never a pod younger than the grace, and the reaper deletes only what the policy reaps.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use glrunner_janitor::clock::ManualClock;
use glrunner_janitor::memory::InMemoryPods;
use glrunner_janitor::model::keys;
use glrunner_janitor::policy::{Evidence, PROTECTED_OWNER_KINDS, check_identity, decide};
use glrunner_janitor::{
    JobStatus, OwnerRef, PodInfo, PodPhase, PodRequests, Policy, Reaper, ReaperConfig,
};
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;

const NAMESPACES: [&str; 3] = ["gitlab-runner", "default", "kube-system"];

fn base() -> Timestamp {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

fn at(secs: i64) -> Timestamp {
    base().checked_add(SignedDuration::from_secs(secs)).unwrap()
}

fn phase() -> impl Strategy<Value = PodPhase> {
    prop_oneof![
        Just(PodPhase::Pending),
        Just(PodPhase::Running),
        Just(PodPhase::Succeeded),
        Just(PodPhase::Failed),
        Just(PodPhase::Unknown),
    ]
}

fn owner() -> impl Strategy<Value = Option<OwnerRef>> {
    let kinds: Vec<&str> = PROTECTED_OWNER_KINDS
        .iter()
        .copied()
        .chain(["Node", "Workflow"])
        .collect();
    proptest::option::of(
        (proptest::sample::select(kinds), any::<bool>()).prop_map(|(k, c)| OwnerRef {
            kind: k.to_owned(),
            name: "owner".into(),
            controller: c,
        }),
    )
}

prop_compose! {
    fn pod()(
        ns in proptest::sample::select(NAMESPACES.to_vec()),
        idx in 0u32..1000,
        job_label in any::<bool>(),
        job_annotation in any::<bool>(),
        chart in proptest::option::of(proptest::sample::select(vec!["gitlab-runner-0.86.0", "gitlab-runner-0.92.2", "other-1.0"])),
        app_release in any::<bool>(),
        manager in proptest::option::of(proptest::sample::select(vec!["m1", "m2"])),
        timeout in proptest::option::of(proptest::sample::select(vec!["1h0m0s", "10m", "2h3m0.5s", "garbage", "0"])),
        owner in owner(),
        phase in phase(),
        node in any::<bool>(),
        created in 0i64..20_000,
        started_after in proptest::option::of(0i64..5_000),
        deleted_after in proptest::option::of(0i64..20_000),
    ) -> PodInfo {
        let mut labels = BTreeMap::new();
        let mut annotations = BTreeMap::new();
        if job_label { labels.insert(keys::LABEL_JOB_POD.to_owned(), "runner-x-project-1-concurrent-0".to_owned()); }
        if job_annotation { annotations.insert(keys::ANNOTATION_JOB_ID.to_owned(), idx.to_string()); }
        if let Some(c) = chart { labels.insert("chart".into(), c.into()); }
        if app_release {
            labels.insert("app".into(), "gitlab-runner".into());
            labels.insert("release".into(), "gitlab-runner".into());
        }
        if let Some(m) = manager { labels.insert(keys::LABEL_MANAGER_NAME.into(), m.into()); }
        if let Some(t) = timeout { annotations.insert(keys::ANNOTATION_JOB_TIMEOUT.into(), t.into()); }
        PodInfo {
            namespace: ns.to_owned(),
            name: format!("runner-x-project-1-concurrent-0-{idx:08}"),
            uid: format!("uid-{idx}"),
            labels,
            annotations,
            owners: owner.into_iter().collect(),
            phase,
            node_name: node.then(|| "fargate-node".to_owned()),
            created_at: at(created),
            started_at: started_after.map(|s| at(created + s)),
            deletion_timestamp: deleted_after.map(|d| at(created + d)),
            requests: PodRequests::default(),
        }
    }
}

fn evidence() -> impl Strategy<Value = Evidence> {
    (
        proptest::option::of(any::<bool>()),
        proptest::option::of(proptest::sample::select(vec![
            JobStatus::Running,
            JobStatus::Success,
            JobStatus::Failed,
            JobStatus::Canceled,
            JobStatus::NotFound,
            JobStatus::Queued,
        ])),
    )
        .prop_map(|(manager_exists, gitlab_status)| Evidence {
            manager_exists,
            gitlab_status,
        })
}

fn is_job_pod(p: &PodInfo, namespaces: &BTreeSet<String>) -> bool {
    namespaces.contains(&p.namespace)
        && p.labels.contains_key(keys::LABEL_JOB_POD)
        && p.annotations.contains_key(keys::ANNOTATION_JOB_ID)
        && !p
            .owners
            .iter()
            .any(|o| o.controller || PROTECTED_OWNER_KINDS.contains(&o.kind.as_str()))
        && !p
            .labels
            .get("chart")
            .is_some_and(|c| c.starts_with("gitlab-runner"))
        && !(p.labels.contains_key("app") && p.labels.contains_key("release"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn never_reaps_a_non_job_pod(p in pod(), ev in evidence(), now in 0i64..40_000, grace in 1u64..2_000) {
        let policy = Policy::new(["gitlab-runner"]).with_grace(Duration::from_secs(grace));
        let d = decide(&p, at(now), &policy, &ev);
        if d.is_reap() {
            prop_assert!(is_job_pod(&p, &policy.namespaces), "reaped a non-job pod: {p:?} -> {d:?}");
            prop_assert!(check_identity(&p, &policy.namespaces).is_ok());
            // Never a pod younger than the grace.
            prop_assert!(at(now).duration_since(p.created_at) > SignedDuration::try_from(policy.grace).unwrap());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn reaper_deletes_only_job_pods_of_random_populations(pods in proptest::collection::vec(pod(), 0..60), now in 0i64..40_000) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let clock = ManualClock::new(base());
            let store = InMemoryPods::new().with_clock(Arc::new(clock.clone()));
            let mut by_name = BTreeMap::new();
            for p in &pods {
                let mut new = glrunner_janitor::memory::NewPod::new(&p.namespace, &p.name).with_phase(p.phase.clone()).created_at(p.created_at);
                new.labels = p.labels.clone();
                new.annotations = p.annotations.clone();
                new.owners = p.owners.clone();
                new.node_name = p.node_name.clone();
                new.started_at = p.started_at;
                if let Ok(info) = store.insert(new) {
                    if let Some(d) = p.deletion_timestamp {
                        store.update(&info.namespace, &info.name, |x| x.deletion_timestamp = Some(d)).unwrap();
                    }
                    by_name.insert((info.namespace.clone(), info.name.clone()), store.pod(&info.namespace, &info.name).unwrap());
                }
            }
            clock.set(at(now));
            let policy = Policy::new(["gitlab-runner", "default"]).with_grace(Duration::from_secs(60));
            let namespaces = policy.namespaces.clone();
            let reaper = Reaper::new(Arc::new(store.clone()), ReaperConfig::new(policy).with_manager_check(true))
                .unwrap()
                .with_clock(Arc::new(clock));
            let report = reaper.run_once().await.unwrap();
            for d in store.deletions() {
                let p = &by_name[&(d.key.namespace.clone(), d.key.name.clone())];
                assert!(is_job_pod(p, &namespaces), "deleted a non-job pod: {p:?}");
            }
            assert!(report.reaped.len() <= by_name.values().filter(|p| is_job_pod(p, &namespaces)).count());
        });
    }
}
