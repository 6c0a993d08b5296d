//! Property tests of the policy. Which pods are job pods is not restated here: pods start from the
//! independent examples of `identity_examples` (the executor's real job pod, the chart's real
//! manager pod) and go through mutations whose effect the design fixes (remove the executor's label
//! or annotation, add the chart's labels, a controller owner, another namespace: never reaped;
//! user labels and annotations: no effect). The policy must reap exactly the pods no protective
//! mutation touched, never a pod younger than the grace, and the reaper delete exactly those.

use std::collections::{BTreeMap, BTreeSet};

use super::identity_examples;
use std::sync::Arc;
use std::time::Duration;

use glrunner_janitor::clock::ManualClock;
use glrunner_janitor::memory::InMemoryPods;
use glrunner_janitor::model::keys;
use glrunner_janitor::policy::{Evidence, PROTECTED_OWNER_KINDS, decide};
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
            signals: Default::default(),
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

/// A change to an example pod, and whether the design says it makes the pod untouchable.
#[derive(Debug, Clone)]
enum Mutation {
    RemoveJobLabel,
    RemoveJobAnnotation,
    AddChartLabels,
    AddOwner(&'static str),
    OtherNamespace,
    AddUserLabel(String, String),
    AddUserAnnotation(String, String),
    RemoveLegacyPodLabel,
}

impl Mutation {
    fn protects(&self) -> bool {
        matches!(
            self,
            Self::RemoveJobLabel
                | Self::RemoveJobAnnotation
                | Self::AddChartLabels
                | Self::AddOwner(_)
                | Self::OtherNamespace
        )
    }

    fn apply(&self, pod: &mut PodInfo) {
        match self {
            Self::RemoveJobLabel => {
                pod.labels.remove(keys::LABEL_JOB_POD);
            }
            Self::RemoveJobAnnotation => {
                pod.annotations.remove(keys::ANNOTATION_JOB_ID);
            }
            Self::AddChartLabels => pod.labels.extend(identity_examples::chart_labels()),
            Self::AddOwner(kind) => pod.owners.push(OwnerRef::controller(*kind, "owner")),
            Self::OtherNamespace => pod.namespace = "kube-system".into(),
            Self::AddUserLabel(k, v) => {
                pod.labels.insert(k.clone(), v.clone());
            }
            Self::AddUserAnnotation(k, v) => {
                pod.annotations.insert(k.clone(), v.clone());
            }
            Self::RemoveLegacyPodLabel => {
                pod.labels.remove("pod");
            }
        }
    }
}

/// Keys a user may set through `pod_labels`/`pod_annotations`: not in the executor's
/// `runner.gitlab.com` namespace (the executor drops those) and not the chart's keys.
fn user_key() -> impl Strategy<Value = String> {
    "[a-z]{1,8}(\\.[a-z]{2,6}/[a-z]{1,8})?"
        .prop_filter("not the chart's keys", |k| {
            !["app", "chart", "release", "heritage"].contains(&k.as_str())
        })
        .prop_filter("not the executor's namespace", |k| {
            !k.contains("runner.gitlab.com")
        })
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        Just(Mutation::RemoveJobLabel),
        Just(Mutation::RemoveJobAnnotation),
        Just(Mutation::AddChartLabels),
        proptest::sample::select(PROTECTED_OWNER_KINDS.to_vec()).prop_map(Mutation::AddOwner),
        Just(Mutation::OtherNamespace),
        (user_key(), "[a-z0-9]{0,12}").prop_map(|(k, v)| Mutation::AddUserLabel(k, v)),
        (user_key(), "[ -~]{0,20}").prop_map(|(k, v)| Mutation::AddUserAnnotation(k, v)),
        Just(Mutation::RemoveLegacyPodLabel),
    ]
}

/// An executor job pod that is hung at `at(40_000)` whatever its phase (Pending for hours,
/// Running past its 2 h timeout, finished long ago, or stuck Terminating), then mutated.
fn mutated_job_pod() -> impl Strategy<Value = (PodInfo, bool)> {
    (
        0u64..1_000_000,
        phase().prop_filter("a known phase", |p| *p != PodPhase::Unknown),
        any::<bool>(),
        proptest::collection::vec(mutation(), 0..4),
    )
        .prop_map(|(job, phase, terminating, mutations)| {
            let mut pod = identity_examples::executor_job_pod(job, phase, at(0));
            pod.started_at = Some(at(60));
            if terminating {
                pod.deletion_timestamp = Some(at(600));
            }
            for m in &mutations {
                m.apply(&mut pod);
            }
            (pod, mutations.iter().any(Mutation::protects))
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn reaps_a_hung_executor_pod_exactly_when_nothing_protects_it((pod, protected) in mutated_job_pod(), ev in evidence()) {
        let policy = Policy::new([identity_examples::NS]).with_grace(Duration::from_secs(300));
        let d = decide(&pod, at(40_000), &policy, &ev);
        prop_assert_eq!(d.is_reap(), !protected, "{:?} -> {:?}", pod, d);
    }

    #[test]
    fn never_reaps_the_charts_manager_pod(
        mutations in proptest::collection::vec(
            mutation().prop_filter("keeps the chart's identity", |m| {
                !matches!(m, Mutation::OtherNamespace)
            }),
            0..4,
        ),
        executor_keys in any::<bool>(),
        phase in phase(),
        terminating in any::<bool>(),
        now in 0i64..400_000,
        ev in evidence(),
    ) {
        let mut pod = identity_examples::chart_manager_pod(at(0));
        pod.phase = phase;
        if terminating {
            pod.deletion_timestamp = Some(at(10));
        }
        if executor_keys {
            // The chart's podLabels/podAnnotations can copy the executor's keys.
            pod.labels.insert(keys::LABEL_JOB_POD.into(), "runner-x-project-1-concurrent-0".into());
            pod.annotations.insert(keys::ANNOTATION_JOB_ID.into(), "7".into());
        }
        for m in &mutations {
            m.apply(&mut pod);
        }
        let policy = Policy::new([identity_examples::NS]).with_grace(Duration::from_secs(60));
        prop_assert!(!decide(&pod, at(now), &policy, &ev).is_reap(), "{:?}", pod);
    }

    #[test]
    fn never_reaps_a_pod_younger_than_the_grace(p in pod(), ev in evidence(), now in 0i64..40_000, grace in 1u64..2_000) {
        let policy = Policy::new(["gitlab-runner"]).with_grace(Duration::from_secs(grace));
        let d = decide(&p, at(now), &policy, &ev);
        if d.is_reap() {
            prop_assert!(at(now).duration_since(p.created_at) > SignedDuration::try_from(policy.grace).unwrap());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn reaper_deletes_exactly_the_unprotected_pods_of_random_populations(
        pods in proptest::collection::vec(mutated_job_pod(), 0..60),
        managers in 0usize..3,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let clock = ManualClock::new(base());
            let store = InMemoryPods::new().with_clock(Arc::new(clock.clone()));
            let mut population: Vec<(PodInfo, bool)> = pods;
            for i in 0..managers {
                let mut m = identity_examples::chart_manager_pod(at(0));
                m.name = format!("{}-{i}", m.name);
                population.push((m, true));
            }
            let mut expected = BTreeSet::new();
            let mut protected = BTreeSet::new();
            for (p, is_protected) in &population {
                let mut new = glrunner_janitor::memory::NewPod::new(&p.namespace, &p.name)
                    .with_phase(p.phase.clone())
                    .created_at(p.created_at);
                new.labels = p.labels.clone();
                new.annotations = p.annotations.clone();
                new.owners = p.owners.clone();
                new.node_name = p.node_name.clone();
                new.started_at = p.started_at;
                // Job IDs may repeat: a repeated name is the same pod, keep the first.
                let Ok(info) = store.insert(new) else { continue };
                if let Some(d) = p.deletion_timestamp {
                    store.update(&info.namespace, &info.name, |x| x.deletion_timestamp = Some(d)).unwrap();
                }
                let key = (info.namespace.clone(), info.name.clone());
                if *is_protected { protected.insert(key); } else { expected.insert(key); }
            }
            clock.set(at(40_000));
            let policy = Policy::new([identity_examples::NS, "default"]).with_grace(Duration::from_secs(300));
            let reaper = Reaper::new(Arc::new(store.clone()), ReaperConfig::new(policy).with_manager_check(true))
                .unwrap()
                .with_clock(Arc::new(clock));
            let report = reaper.run_once().await.unwrap();
            let deleted: BTreeSet<(String, String)> = store
                .deletions()
                .into_iter()
                .map(|d| (d.key.namespace, d.key.name))
                .collect();
            assert_eq!(deleted, expected, "{report}");
            assert!(deleted.is_disjoint(&protected));
            assert!(report.errors.is_empty(), "{report}");
        });
    }
}
