//! The [`ClusterChecks`] conformance suite: what the flow relies on, run against every backend
//! (the in-memory one in this crate's tests, the kube-rs one on the real apiserver in the
//! workspace's tests). Not API-stable.

use crate::{ClusterChecks, FargatePod, Permission};

/// What the backend under test was prepared with.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// A namespace where the caller may do everything (the admin of the test cluster).
    pub namespace: String,
    /// Whether CoreDNS (`k8s-app=kube-dns` in `kube-system`) has a Running pod.
    pub coredns_running: bool,
    /// Unfinished pods with a `CapacityProvisioned` annotation: each must be listed by
    /// [`ClusterChecks::fargate_pods`] with its size.
    pub fargate_pods: Vec<FargatePod>,
    /// `(namespace, name)` of pods that must not be: finished ones (Succeeded or Failed), and
    /// ones without the annotation.
    pub not_fargate_pods: Vec<(String, String)>,
}

/// Runs every case; panics with the case's name on the first failure.
pub async fn run(checks: &dyn ClusterChecks, fixture: &Fixture) {
    an_allowed_permission_is_allowed(checks, fixture).await;
    a_selector_that_matches_nothing_counts_no_pods(checks, fixture).await;
    coredns_is_seen_as_it_is(checks, fixture).await;
    a_log_tail_of_no_pods_is_empty(checks, fixture).await;
    fargate_pods_are_the_unfinished_annotated_ones(checks, fixture).await;
}

/// The Fargate pods are the unfinished pods with a `CapacityProvisioned` annotation, each with
/// the size it names; finished pods and pods without it hold no Fargate capacity.
pub async fn fargate_pods_are_the_unfinished_annotated_ones(
    checks: &dyn ClusterChecks,
    fixture: &Fixture,
) {
    let found = checks.fargate_pods().await.expect("listing answers");
    for want in &fixture.fargate_pods {
        let got = found
            .iter()
            .find(|p| p.namespace == want.namespace && p.name == want.name);
        assert_eq!(
            got.map(|p| p.size),
            Some(want.size),
            "fargate_pods_are_the_unfinished_annotated_ones: {}/{} in {found:?}",
            want.namespace,
            want.name
        );
    }
    for (namespace, name) in &fixture.not_fargate_pods {
        assert!(
            !found
                .iter()
                .any(|p| &p.namespace == namespace && &p.name == name),
            "fargate_pods_are_the_unfinished_annotated_ones: {namespace}/{name} is listed: {found:?}"
        );
    }
}

/// A permission the caller has answers `true` (SelfSubjectAccessReview `allowed`).
pub async fn an_allowed_permission_is_allowed(checks: &dyn ClusterChecks, fixture: &Fixture) {
    for (verb, group, resource) in [("create", "", "secrets"), ("patch", "apps", "deployments")] {
        let p = Permission {
            verb,
            group,
            resource,
            namespace: fixture.namespace.clone(),
        };
        assert!(
            checks.allowed(&p).await.expect("the review answers"),
            "an_allowed_permission_is_allowed: {verb} {resource} in {}",
            fixture.namespace
        );
    }
}

/// No pod carries the label: zero Running, not an error.
pub async fn a_selector_that_matches_nothing_counts_no_pods(
    checks: &dyn ClusterChecks,
    fixture: &Fixture,
) {
    let n = checks
        .running_pods(&fixture.namespace, "glrunner.io/conformance=no-such-pod")
        .await
        .expect("listing answers");
    assert_eq!(n, 0, "a_selector_that_matches_nothing_counts_no_pods");
}

/// CoreDNS's pods are counted as Running exactly when they run.
pub async fn coredns_is_seen_as_it_is(checks: &dyn ClusterChecks, fixture: &Fixture) {
    let n = checks
        .running_pods("kube-system", "k8s-app=kube-dns")
        .await
        .expect("listing answers");
    assert_eq!(
        n > 0,
        fixture.coredns_running,
        "coredns_is_seen_as_it_is: {n} Running CoreDNS pod(s)"
    );
}

/// A selector with no pods has no log to show: an empty list, not an error.
pub async fn a_log_tail_of_no_pods_is_empty(checks: &dyn ClusterChecks, fixture: &Fixture) {
    let tails = checks
        .log_tail(&fixture.namespace, "release=glrunner-conformance-none", 20)
        .await
        .expect("listing answers");
    assert!(
        tails.is_empty(),
        "a_log_tail_of_no_pods_is_empty: {tails:?}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryClusterChecks;

    #[tokio::test]
    async fn the_in_memory_checks_conform() {
        let checks = MemoryClusterChecks::default();
        let pod = FargatePod {
            namespace: "gitlab-runner".into(),
            name: "job-1".into(),
            labels: Default::default(),
            size: glrunner_fargate::FargateSize::from_capacity_provisioned("0.5vCPU 1GB").unwrap(),
        };
        checks.add_fargate_pod(pod.clone());
        let fixture = Fixture {
            namespace: "gitlab-runner".into(),
            coredns_running: true,
            fargate_pods: vec![pod],
            not_fargate_pods: vec![("gitlab-runner".into(), "job-2".into())],
        };
        run(&checks, &fixture).await;
        checks.stop_coredns();
        coredns_is_seen_as_it_is(
            &checks,
            &Fixture {
                coredns_running: false,
                ..fixture
            },
        )
        .await;
    }
}
