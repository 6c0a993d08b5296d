//! The Pending-pod classifier on messages real clusters printed (tests/fixtures/pending_pods.json,
//! each with its source), in memory and written into the real kube-apiserver (status through
//! the status subresource, Events through the Events API: the apiserver has no kubelet and no
//! scheduler to produce them), then `explain_pending` and the metrics read back.

use std::collections::BTreeMap;

use glrunner_janitor::classify::{
    ConditionSignal, ContainerSignal, FARGATE_SCHEDULER, PendingClass, PendingPod, PodEvent,
    PodSignals, explain_pending,
};
use glrunner_janitor::conformance::PodFixtures;
use glrunner_janitor::memory::{InMemoryPods, NewPod};
use glrunner_janitor::metrics::JanitorMetrics;
use glrunner_janitor::{PodApi, PodPhase};
use jiff::Timestamp;
use serde::Deserialize;

use super::support::{kube, unique};

#[derive(Debug, Deserialize)]
struct Case {
    name: String,
    source: String,
    scheduler: String,
    #[serde(default)]
    conditions: Vec<FixtureCondition>,
    #[serde(default)]
    containers: Vec<FixtureContainer>,
    #[serde(default)]
    events: Vec<FixtureEvent>,
    expect: String,
}

#[derive(Debug, Deserialize)]
struct FixtureCondition {
    #[serde(rename = "type")]
    kind: String,
    status: String,
    reason: String,
    message: String,
}

#[derive(Debug, Deserialize)]
struct FixtureContainer {
    name: String,
    reason: String,
    message: String,
}

#[derive(Debug, Deserialize)]
struct FixtureEvent {
    #[serde(rename = "type")]
    event_type: String,
    reason: String,
    source: String,
    message: String,
}

fn cases() -> Vec<Case> {
    let text = include_str!("../fixtures/pending_pods.json");
    let cases: Vec<Case> = serde_json::from_str(text).expect("pending_pods.json parses");
    assert!(cases.len() >= 20, "{} fixtures", cases.len());
    for case in &cases {
        assert!(
            !case.source.is_empty(),
            "{}: every fixture names its source",
            case.name
        );
    }
    cases
}

fn class_of(code: &str) -> PendingClass {
    PendingClass::ALL
        .into_iter()
        .find(|c| c.code() == code)
        .unwrap_or_else(|| panic!("unknown class {code} in the fixtures"))
}

fn signals(case: &Case) -> PodSignals {
    PodSignals {
        scheduler_name: Some(case.scheduler.clone()),
        conditions: case
            .conditions
            .iter()
            .map(|c| ConditionSignal {
                kind: c.kind.clone(),
                status: c.status.clone(),
                reason: Some(c.reason.clone()),
                message: Some(c.message.clone()),
            })
            .collect(),
        containers: case
            .containers
            .iter()
            .map(|c| ContainerSignal {
                name: c.name.clone(),
                init: false,
                reason: Some(c.reason.clone()),
                message: Some(c.message.clone()),
            })
            .collect(),
        limits_not_requests: Vec::new(),
    }
}

/// Creates one Pending job pod per fixture in `ns` (job IDs from 9000), with its status and Events.
async fn seed(fx: &dyn PodFixtures, ns: &str, cases: &[Case]) -> BTreeMap<u64, PendingClass> {
    fx.create_namespace(ns).await.unwrap();
    let mut expected = BTreeMap::new();
    let base: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    for (i, case) in cases.iter().enumerate() {
        let job_id = 9000 + i as u64;
        let pod = fx
            .create_pod(
                NewPod::job(
                    ns,
                    "gitlab-runner-gitlab-runner-5fd7489954-jx682",
                    77,
                    job_id,
                )
                .with_signals(signals(case)),
            )
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        for (n, event) in case.events.iter().enumerate() {
            let event = PodEvent {
                namespace: ns.to_owned(),
                pod_name: pod.name.clone(),
                pod_uid: Some(pod.uid.clone()),
                reason: event.reason.clone(),
                message: event.message.clone(),
                source: event.source.clone(),
                event_type: event.event_type.clone(),
                count: 1,
                // In the fixture's order, a second apart: the last is the newest.
                last_seen: Some(base + jiff::SignedDuration::from_secs(n as i64)),
            };
            fx.record_event(&event).await.unwrap();
        }
        expected.insert(job_id, class_of(&case.expect));
    }
    expected
}

fn check(listed: &[PendingPod], expected: &BTreeMap<u64, PendingClass>, cases: &[Case]) {
    assert_eq!(
        listed.len(),
        expected.len(),
        "every Pending job pod is explained"
    );
    for pod in listed {
        let job_id = pod.job_id.expect("job id from the annotation");
        let case = &cases[(job_id - 9000) as usize];
        assert_eq!(
            pod.class, expected[&job_id],
            "{} ({}): {} from {}",
            case.name, case.source, pod.message, pod.source
        );
        assert_eq!(pod.unrecoverable, pod.class.unrecoverable());
        assert_eq!(pod.fix, pod.class.fix());
        assert!(
            pod.job_url
                .as_deref()
                .is_some_and(|u| u.ends_with(&job_id.to_string())),
            "{pod:?}"
        );
        assert_eq!(pod.shard, "gitlab-runner-gitlab-runner");
        if pod.class != PendingClass::Starting {
            assert!(
                !pod.message.is_empty(),
                "{}: the message it came from",
                case.name
            );
        }
    }
}

#[tokio::test]
async fn fixtures_are_classified_in_memory() {
    let cases = cases();
    let pods = InMemoryPods::new();
    let ns = "explain";
    let expected = seed(&pods, ns, &cases).await;
    // A running job pod and a manager pod: never listed.
    pods.insert(NewPod::job(ns, "m", 77, 1).with_phase(PodPhase::Running))
        .unwrap();
    pods.insert(NewPod::manager(ns, "gitlab-runner", "abcde"))
        .unwrap();
    let listed = explain_pending(&pods, &[ns.to_owned()], Timestamp::now())
        .await
        .unwrap();
    check(&listed, &expected, &cases);
}

#[tokio::test]
async fn fixtures_are_classified_on_the_real_apiserver_and_the_metrics_count_them() {
    let Some(k) = kube("fixtures_are_classified_on_the_real_apiserver").await else {
        return;
    };
    let cases = cases();
    let ns = unique("explain");
    let expected = seed(&k.fixtures, &ns, &cases).await;
    let now = Timestamp::now();
    let listed = explain_pending(&k.api, std::slice::from_ref(&ns), now)
        .await
        .unwrap();
    check(&listed, &expected, &cases);
    // What the apiserver stored is what the classifier read: the scheduler name survived too.
    let pods = k
        .api
        .list_pods(&glrunner_janitor::ListQuery::job_pods(ns.clone()))
        .await
        .unwrap();
    assert!(pods.iter().all(|p| p.signals.scheduler_name.is_some()));
    assert!(
        pods.iter()
            .any(|p| p.signals.scheduler_name.as_deref() == Some(FARGATE_SCHEDULER))
    );

    let metrics = JanitorMetrics::new();
    let events = k.api.list_pod_events(&ns).await.unwrap();
    metrics.observe(&pods, &events, now);
    let text = metrics.encode();
    let mut per_class: BTreeMap<PendingClass, usize> = BTreeMap::new();
    for class in expected.values() {
        *per_class.entry(*class).or_default() += 1;
    }
    for (class, n) in per_class {
        let line = format!(
            "glrunner_janitor_pending_job_pods{{namespace=\"{ns}\",shard=\"gitlab-runner-gitlab-runner\",class=\"{}\"}} {n}",
            class.code()
        );
        assert!(text.contains(&line), "missing {line} in\n{text}");
    }
    let phase = format!(
        "glrunner_janitor_job_pods{{namespace=\"{ns}\",shard=\"gitlab-runner-gitlab-runner\",phase=\"Pending\"}} {}",
        cases.len()
    );
    assert!(text.contains(&phase), "missing {phase} in\n{text}");
}
