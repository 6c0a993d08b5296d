//! The [`PodApi`] conformance suite, run against every backend. Not API-stable; it creates and
//! deletes pods in namespaces named `<prefix>-<case>`.
//!
//! Each case is a plain `pub async fn` taking the backend under test and a [`PodFixtures`] that can
//! create what the trait cannot (namespaces, pods with a given phase). Cases panic on failure.

use std::collections::BTreeSet;

use async_trait::async_trait;

use crate::api::PodApi;
use crate::classify::{ConditionSignal, ContainerSignal, PodEvent, PodSignals};
use crate::memory::{InMemoryPods, NewPod};
use crate::model::{DeleteMode, DeleteOutcome, ListQuery, PodInfo, PodPhase, keys};
use crate::{Error, Result};

/// Creates test objects on a backend.
#[async_trait]
pub trait PodFixtures: Send + Sync {
    /// Creates a namespace (idempotent).
    async fn create_namespace(&self, namespace: &str) -> Result<()>;
    /// Creates a pod, then sets its phase and start time if the pod asks for them.
    async fn create_pod(&self, pod: NewPod) -> Result<PodInfo>;
    /// Records an Event about a pod, as a scheduler or the kubelet would.
    async fn record_event(&self, event: &PodEvent) -> Result<()>;
}

#[async_trait]
impl PodFixtures for InMemoryPods {
    async fn create_namespace(&self, _namespace: &str) -> Result<()> {
        Ok(())
    }

    async fn create_pod(&self, pod: NewPod) -> Result<PodInfo> {
        let key = self.insert(pod)?;
        self.pod(&key.namespace, &key.name)
            .ok_or_else(|| crate::Error::NotFound {
                action: "read created pod".into(),
                resource: key.to_string(),
            })
    }

    async fn record_event(&self, event: &PodEvent) -> Result<()> {
        InMemoryPods::record_event(self, event.clone());
        Ok(())
    }
}

async fn namespace(fx: &dyn PodFixtures, prefix: &str, case: &str) -> String {
    let ns = format!("{prefix}-{case}");
    fx.create_namespace(&ns).await.expect("create namespace");
    ns
}

fn names(pods: &[PodInfo]) -> BTreeSet<String> {
    pods.iter().map(|p| p.name.clone()).collect()
}

/// Lists select by label on the server and never cross namespaces; a missing namespace lists empty.
pub async fn list_selects_by_label_within_namespace(
    api: &dyn PodApi,
    fx: &dyn PodFixtures,
    prefix: &str,
) {
    let a = namespace(fx, prefix, "lbl-a").await;
    let b = namespace(fx, prefix, "lbl-b").await;
    let job = fx
        .create_pod(NewPod::job(&a, "mgr", 7, 1001))
        .await
        .unwrap();
    fx.create_pod(NewPod::new(&a, "runner-lookalike-0"))
        .await
        .unwrap();
    fx.create_pod(NewPod::job(&b, "mgr", 7, 1002))
        .await
        .unwrap();

    let listed = api.list_pods(&ListQuery::job_pods(&a)).await.unwrap();
    assert_eq!(names(&listed), BTreeSet::from([job.name.clone()]));
    let got = &listed[0];
    assert_eq!(got.namespace, a);
    assert!(!got.uid.is_empty());
    assert_eq!(got.uid, job.uid);
    assert_eq!(
        got.annotations
            .get(keys::ANNOTATION_JOB_ID)
            .map(String::as_str),
        Some("1001")
    );
    assert_eq!(
        got.labels.get(keys::LABEL_MANAGER_NAME).map(String::as_str),
        Some("mgr")
    );

    let all = api
        .list_pods(&ListQuery {
            namespace: a.clone(),
            label_selector: None,
            page_size: 50,
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    let none = api
        .list_pods(&ListQuery::job_pods(format!("{prefix}-missing")))
        .await
        .unwrap();
    assert!(none.is_empty());
}

/// Lists follow pagination to the end.
pub async fn list_follows_pagination(api: &dyn PodApi, fx: &dyn PodFixtures, prefix: &str) {
    let ns = namespace(fx, prefix, "page").await;
    for i in 0..7 {
        fx.create_pod(NewPod::job(&ns, "mgr", 8, 2000 + i))
            .await
            .unwrap();
    }
    let listed = api
        .list_pods(&ListQuery::job_pods(&ns).with_page_size(2))
        .await
        .unwrap();
    assert_eq!(listed.len(), 7);
    assert_eq!(names(&listed).len(), 7, "no duplicates across pages");
}

/// Phase, node, start time and requests round-trip.
pub async fn fields_round_trip(api: &dyn PodApi, fx: &dyn PodFixtures, prefix: &str) {
    let ns = namespace(fx, prefix, "fields").await;
    let started: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    let pod = NewPod::job(&ns, "mgr", 9, 3001)
        .with_phase(PodPhase::Running)
        .with_node("fake-node-1")
        .started_at(started)
        .with_requests(500, 768);
    fx.create_pod(pod).await.unwrap();
    let listed = api.list_pods(&ListQuery::job_pods(&ns)).await.unwrap();
    assert_eq!(listed.len(), 1);
    let p = &listed[0];
    assert_eq!(p.phase, PodPhase::Running);
    assert_eq!(p.node_name.as_deref(), Some("fake-node-1"));
    assert_eq!(p.started_at, Some(started));
    assert_eq!((p.requests.cpu_millis, p.requests.memory_mib), (500, 768));
    assert!(p.deletion_timestamp.is_none());
}

/// `get_pod` finds a pod and answers `None` for a missing one.
pub async fn get_found_and_missing(api: &dyn PodApi, fx: &dyn PodFixtures, prefix: &str) {
    let ns = namespace(fx, prefix, "get").await;
    let pod = fx.create_pod(NewPod::new(&ns, "present")).await.unwrap();
    assert_eq!(
        api.get_pod(&ns, "present").await.unwrap().map(|p| p.uid),
        Some(pod.uid)
    );
    assert!(api.get_pod(&ns, "absent").await.unwrap().is_none());
}

/// Deleting an unbound pod removes it at once; deleting it again is NotFound.
pub async fn delete_unbound_is_immediate(api: &dyn PodApi, fx: &dyn PodFixtures, prefix: &str) {
    let ns = namespace(fx, prefix, "del").await;
    let pod = fx
        .create_pod(NewPod::job(&ns, "mgr", 1, 4001))
        .await
        .unwrap();
    assert_eq!(
        api.delete_pod(&pod.key(), DeleteMode::graceful(None))
            .await
            .unwrap(),
        DeleteOutcome::Deleted
    );
    assert!(api.get_pod(&ns, &pod.name).await.unwrap().is_none());
    let again = api
        .delete_pod(&pod.key(), DeleteMode::graceful(None))
        .await
        .unwrap_err();
    assert!(matches!(again, Error::NotFound { .. }), "{again:?}");
    assert!(again.to_string().contains(&pod.name), "{again}");
}

/// A pod deleted and recreated under the same name is protected by the UID precondition.
pub async fn delete_with_stale_uid_conflicts(api: &dyn PodApi, fx: &dyn PodFixtures, prefix: &str) {
    let ns = namespace(fx, prefix, "uid").await;
    let old = fx
        .create_pod(NewPod::job(&ns, "mgr", 1, 5001))
        .await
        .unwrap();
    api.delete_pod(&old.key(), DeleteMode::force())
        .await
        .unwrap();
    let new = fx
        .create_pod(NewPod::job(&ns, "mgr", 1, 5001))
        .await
        .unwrap();
    assert_eq!(old.name, new.name);
    assert_ne!(old.uid, new.uid);
    let err = api
        .delete_pod(&old.key(), DeleteMode::force())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    assert!(err.to_string().contains("delete pod"), "{err}");
    let still = api
        .get_pod(&ns, &new.name)
        .await
        .unwrap()
        .expect("recreated pod survives");
    assert_eq!(still.uid, new.uid);
}

/// A bound pod goes Terminating on a graceful delete and stays (no kubelet); a force delete removes it.
pub async fn bound_pod_terminates_then_force_deletes(
    api: &dyn PodApi,
    fx: &dyn PodFixtures,
    prefix: &str,
) {
    let ns = namespace(fx, prefix, "term").await;
    let pod = fx
        .create_pod(NewPod::job(&ns, "mgr", 1, 6001).with_node("fake-node-1"))
        .await
        .unwrap();
    let outcome = api
        .delete_pod(&pod.key(), DeleteMode::graceful(Some(30)))
        .await
        .unwrap();
    assert_eq!(outcome, DeleteOutcome::Terminating);
    let terminating = api
        .get_pod(&ns, &pod.name)
        .await
        .unwrap()
        .expect("still there");
    assert!(terminating.deletion_timestamp.is_some());
    let listed = api.list_pods(&ListQuery::job_pods(&ns)).await.unwrap();
    assert!(listed[0].is_terminating());
    assert_eq!(
        api.delete_pod(&pod.key(), DeleteMode::force())
            .await
            .unwrap(),
        DeleteOutcome::Deleted
    );
    assert!(api.get_pod(&ns, &pod.name).await.unwrap().is_none());
}

/// A bound pod that already Succeeded or Failed is deleted at once by a graceful delete (the API
/// server's pod strategy sets the grace to 0 for terminated pods), so it never shows Terminating.
pub async fn finished_bound_pod_is_deleted_at_once(
    api: &dyn PodApi,
    fx: &dyn PodFixtures,
    prefix: &str,
) {
    let ns = namespace(fx, prefix, "done").await;
    for (job, phase) in [(6101, PodPhase::Succeeded), (6102, PodPhase::Failed)] {
        let pod = fx
            .create_pod(
                NewPod::job(&ns, "mgr", 1, job)
                    .with_node("fake-node-1")
                    .with_phase(phase.clone()),
            )
            .await
            .unwrap();
        assert_eq!(pod.phase, phase);
        let outcome = api
            .delete_pod(&pod.key(), DeleteMode::graceful(Some(30)))
            .await
            .unwrap();
        assert_eq!(outcome, DeleteOutcome::Deleted, "{phase} pod");
        assert!(
            api.get_pod(&ns, &pod.name).await.unwrap().is_none(),
            "{phase} pod gone at once"
        );
    }
}

/// Runs every case.
pub async fn run_all(api: &dyn PodApi, fx: &dyn PodFixtures, prefix: &str) {
    list_selects_by_label_within_namespace(api, fx, prefix).await;
    list_follows_pagination(api, fx, prefix).await;
    fields_round_trip(api, fx, prefix).await;
    get_found_and_missing(api, fx, prefix).await;
    delete_unbound_is_immediate(api, fx, prefix).await;
    delete_with_stale_uid_conflicts(api, fx, prefix).await;
    bound_pod_terminates_then_force_deletes(api, fx, prefix).await;
    finished_bound_pod_is_deleted_at_once(api, fx, prefix).await;
    signals_and_events_round_trip(api, fx, prefix).await;
}

/// A pod's conditions and container states (set through the status subresource) and the Events
/// about it read back as they were written; Events stay in their namespace and name their pod.
pub async fn signals_and_events_round_trip(api: &dyn PodApi, fx: &dyn PodFixtures, prefix: &str) {
    let ns = namespace(fx, prefix, "signals").await;
    let other = namespace(fx, prefix, "signals-other").await;
    let signals = PodSignals {
        scheduler_name: Some("fargate-scheduler".into()),
        conditions: vec![ConditionSignal {
            kind: "PodScheduled".into(),
            status: "False".into(),
            reason: Some("Unschedulable".into()),
            message: Some(
                "Pod not supported on Fargate: invalid SecurityContext fields: Privileged".into(),
            ),
        }],
        containers: vec![ContainerSignal {
            name: "build".into(),
            init: false,
            reason: Some("ErrImagePull".into()),
            message: Some("rpc error: code = Unknown desc = not found".into()),
        }],
        limits_not_requests: Vec::new(),
    };
    let pod = fx
        .create_pod(NewPod::job(&ns, "mgr", 7, 4242).with_signals(signals.clone()))
        .await
        .expect("create pod with signals");
    let read = api.get_pod(&ns, &pod.name).await.unwrap().expect("pod");
    assert_eq!(read.signals, signals, "signals read back");
    let event = PodEvent {
        namespace: ns.clone(),
        pod_name: pod.name.clone(),
        pod_uid: Some(pod.uid.clone()),
        reason: "FailedScheduling".into(),
        message: "Pod not supported on Fargate: invalid SecurityContext fields: Privileged".into(),
        source: "fargate-scheduler".into(),
        event_type: "Warning".into(),
        count: 1,
        last_seen: Some("2026-01-01T00:00:00Z".parse().unwrap()),
    };
    fx.record_event(&event).await.expect("record event");
    let events = api.list_pod_events(&ns).await.unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    let got = &events[0];
    assert!(got.is_about(&pod), "{got:?}");
    assert_eq!(
        (
            got.reason.as_str(),
            got.source.as_str(),
            got.event_type.as_str(),
            got.message.as_str()
        ),
        (
            "FailedScheduling",
            "fargate-scheduler",
            "Warning",
            event.message.as_str()
        )
    );
    assert_eq!(got.last_seen, event.last_seen);
    assert!(api.list_pod_events(&other).await.unwrap().is_empty());
    assert!(
        api.list_pod_events(&format!("{prefix}-no-such-ns"))
            .await
            .unwrap()
            .is_empty()
    );
}

/// The [`crate::deploy::JanitorInstaller`] contract, on a backend whose namespace `home`
/// exists: apply creates every object and is idempotent, `existing` sees them, remove deletes
/// them all (the Deployment first) and a second remove finds nothing.
pub async fn installer_applies_idempotently_and_removes_everything(
    installer: &dyn crate::deploy::JanitorInstaller,
    home: &str,
) {
    use crate::deploy::{DeploySpec, deploy_objects};
    let objects = deploy_objects(&DeploySpec::new(
        "registry.example/glrunner-janitor:conformance",
        home,
        vec![home.to_owned()],
    ))
    .expect("objects");
    let ids = objects.ids();
    assert_eq!(
        installer.existing(&ids).await.expect("existing"),
        Vec::new(),
        "nothing before apply"
    );
    assert_eq!(installer.apply(&objects).await.expect("apply"), ids);
    assert_eq!(
        installer.apply(&objects).await.expect("apply again"),
        ids,
        "idempotent"
    );
    assert_eq!(installer.existing(&ids).await.expect("existing"), ids);
    let removed = installer.remove(&ids).await.expect("remove");
    let mut reversed = ids.clone();
    reversed.reverse();
    assert_eq!(removed, reversed, "every object, the Deployment first");
    assert_eq!(
        installer.existing(&ids).await.expect("existing"),
        Vec::new()
    );
    assert_eq!(
        installer.remove(&ids).await.expect("remove again"),
        Vec::new(),
        "a second remove finds nothing and does not fail"
    );
}
