//! Independent examples of what is and is not a job pod: pods exactly as GitLab Runner's
//! Kubernetes executor and the gitlab-runner Helm chart create them, taken from their sources,
//! not from the janitor's own identity rule.
//!
//! Sources (gitlab-org/gitlab-runner at d79f3e7b89abceace75e2425bfe92b84ea059933):
//! - job pod labels: `executors/kubernetes/kubernetes.go` `buildLabels()` (line 2426), values from
//!   `kubernetes_test.go` case "sets default runner labels on the pod" (line 4954);
//! - job pod annotations: `buildPodAnnotations()` (line 2489), `kubernetes_test.go` case
//!   "default pod annotations" (line 5020): `job.runner.gitlab.com/{id,url,sha,before_sha,ref,name,timeout}`,
//!   `project.runner.gitlab.com/id`, timeout `2h0m0s`;
//! - user `pod_labels` outside `runner.gitlab.com` are added beside them (case "expands variables for
//!   pod labels", line 4870: `test`, `another`, `var`); the legacy `pod` label "may be removed";
//! - a real job pod and runner-manager pod listing (chart 0.76.0, `kubectl get pods --show-labels`)
//!   and the chart's labels (gitlab-org/charts/gitlab-runner `templates/deployment.yaml`,
//!   `_helpers.tpl`: `app`, `chart=gitlab-runner-<version>`, `release`, `heritage=Helm`), as
//!   recorded in shared/reference/gitlab.md.

use std::collections::BTreeMap;

use glrunner_janitor::{OwnerRef, PodInfo, PodPhase, PodRequests};
use jiff::Timestamp;

/// The namespace the examples live in (configured in the tests' policies).
pub const NS: &str = "gitlab-runner";

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The job pod of job `job_id` as the executor creates it (the real listing's prefix and
/// manager, the test's project fields and annotations), in phase `phase`.
pub fn executor_job_pod(job_id: u64, phase: PodPhase, created_at: Timestamp) -> PodInfo {
    let unique = "runner-3lj4ihzt1-project-69309276-concurrent-0";
    PodInfo {
        namespace: NS.to_owned(),
        name: format!(
            "{unique}-{:08x}",
            job_id.wrapping_mul(2_654_435_761) & 0xffff_ffff
        ),
        uid: format!("uid-job-{job_id}"),
        labels: map(&[
            ("pod", unique),
            ("project.runner.gitlab.com/id", "69309276"),
            ("project.runner.gitlab.com/namespace-id", "123"),
            ("project.runner.gitlab.com/name", "some-project-name"),
            ("project.runner.gitlab.com/namespace", "some-namespace"),
            (
                "project.runner.gitlab.com/root-namespace",
                "some-root-namespace",
            ),
            ("project.runner.gitlab.com/root-namespace-id", "43"),
            ("job.runner.gitlab.com/pod", unique),
            (
                "manager.runner.gitlab.com/name",
                "gitlab-runner-5fd7489954-jx682",
            ),
            ("manager.runner.gitlab.com/id-short", "3LJ4iHZt1"),
        ]),
        annotations: map(&[
            ("job.runner.gitlab.com/id", &job_id.to_string()),
            (
                "job.runner.gitlab.com/url",
                &format!("https://gitlab.com/g/p/-/jobs/{job_id}"),
            ),
            (
                "job.runner.gitlab.com/sha",
                "5b1ef1d3cc1a0bce7a3e21e7ef9d4e4b4d4c1a2b",
            ),
            (
                "job.runner.gitlab.com/before_sha",
                "0000000000000000000000000000000000000000",
            ),
            ("job.runner.gitlab.com/ref", "main"),
            ("job.runner.gitlab.com/name", "hello 1/200"),
            ("job.runner.gitlab.com/timeout", "2h0m0s"),
            ("project.runner.gitlab.com/id", "69309276"),
        ]),
        owners: Vec::new(),
        phase,
        node_name: Some("fargate-ip-10-0-1-23.ec2.internal".to_owned()),
        created_at,
        started_at: None,
        deletion_timestamp: None,
        requests: PodRequests::default(),
        signals: Default::default(),
    }
}

/// The chart's labels on a runner-manager pod (real listing, chart 0.76.0).
pub fn chart_labels() -> BTreeMap<String, String> {
    map(&[
        ("app", "gitlab-runner"),
        ("chart", "gitlab-runner-0.76.0"),
        ("heritage", "Helm"),
        ("pod-template-hash", "5fd7489954"),
        ("release", "gitlab-runner"),
    ])
}

/// The runner-manager pod as the chart's Deployment creates it (real listing).
pub fn chart_manager_pod(created_at: Timestamp) -> PodInfo {
    PodInfo {
        namespace: NS.to_owned(),
        name: "gitlab-runner-5fd7489954-jx682".to_owned(),
        uid: "uid-manager".to_owned(),
        labels: chart_labels(),
        annotations: map(&[("checksum/configmap", "0f3c"), ("checksum/secrets", "9a1b")]),
        owners: vec![OwnerRef::controller(
            "ReplicaSet",
            "gitlab-runner-5fd7489954",
        )],
        phase: PodPhase::Running,
        node_name: Some("fargate-ip-10-0-2-7.ec2.internal".to_owned()),
        created_at,
        started_at: Some(created_at),
        deletion_timestamp: None,
        requests: PodRequests::default(),
        signals: Default::default(),
    }
}

mod fixed {
    use std::time::Duration;

    use glrunner_janitor::policy::{Evidence, decide};
    use glrunner_janitor::{Decision, OwnerRef, PodPhase, Policy, ReapReason};
    use jiff::{SignedDuration, Timestamp};

    use super::*;

    fn t0() -> Timestamp {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    fn hours_later(h: i64) -> Timestamp {
        t0().checked_add(SignedDuration::from_hours(h)).unwrap()
    }

    fn policy() -> Policy {
        Policy::new([NS]).with_grace(Duration::from_secs(60))
    }

    fn verdict(pod: &PodInfo, now: Timestamp) -> Decision {
        decide(pod, now, &policy(), &Evidence::default())
    }

    #[test]
    fn the_executors_hung_job_pods_are_reaped_and_healthy_ones_kept() {
        let pending = executor_job_pod(1, PodPhase::Pending, t0());
        assert_eq!(
            verdict(&pending, hours_later(1)),
            Decision::Reap(ReapReason::PendingTooLong)
        );
        let mut running = executor_job_pod(2, PodPhase::Running, t0());
        running.started_at = Some(t0());
        // The executor's 2h0m0s timeout annotation: kept at 1 h, reaped at 3 h.
        assert!(!verdict(&running, hours_later(1)).is_reap());
        assert_eq!(
            verdict(&running, hours_later(3)),
            Decision::Reap(ReapReason::PastJobTimeout { timeout_secs: 7200 })
        );
        let done = executor_job_pod(3, PodPhase::Succeeded, t0());
        assert!(verdict(&done, hours_later(1)).is_reap());
    }

    #[test]
    fn user_pod_labels_and_the_legacy_label_gone_do_not_change_the_verdict() {
        let mut pod = executor_job_pod(4, PodPhase::Pending, t0());
        for (k, v) in [
            ("test", "label"),
            ("another", "label"),
            ("var", "sometestvar"),
        ] {
            pod.labels.insert(k.into(), v.into());
        }
        pod.labels.remove("pod");
        assert!(verdict(&pod, hours_later(1)).is_reap());
    }

    #[test]
    fn the_charts_manager_pod_is_never_reaped_even_when_it_looks_hung() {
        let manager = chart_manager_pod(t0());
        let Decision::Keep(reason) = verdict(&manager, hours_later(100)) else {
            panic!("manager pod reaped");
        };
        assert!(reason.is_identity(), "{reason:?}");
        // podLabels/podAnnotations of the chart can copy the executor's keys: still the manager.
        let mut confused = chart_manager_pod(t0());
        confused
            .labels
            .insert("job.runner.gitlab.com/pod".into(), "runner-x".into());
        confused
            .annotations
            .insert("job.runner.gitlab.com/id".into(), "1".into());
        confused.phase = PodPhase::Failed;
        assert!(!verdict(&confused, hours_later(100)).is_reap());
        // Without its ReplicaSet (orphaned), the chart's labels alone still protect it.
        confused.owners.clear();
        assert!(!verdict(&confused, hours_later(100)).is_reap());
    }

    #[test]
    fn what_the_reference_one_liner_deletes_but_is_not_a_job_pod() {
        // `kubectl get pods -A | awk '$2 ~ "runner-*"'` matches by name: these are not job pods.
        let mut lookalike = executor_job_pod(5, PodPhase::Pending, t0());
        lookalike.labels.clear();
        lookalike.annotations.clear();
        assert!(!verdict(&lookalike, hours_later(10)).is_reap());
        let mut batch = executor_job_pod(6, PodPhase::Failed, t0());
        batch.owners.push(OwnerRef::controller("Job", "nightly"));
        assert!(!verdict(&batch, hours_later(10)).is_reap());
    }
}
