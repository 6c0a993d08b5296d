//! Which cluster the flow runs on (its own, or one the user brings) and the checks made before
//! anything is installed there: Fargate coverage, RBAC (`SelfSubjectAccessReview`), CoreDNS.

use std::collections::BTreeSet;
use std::sync::Mutex;

use async_trait::async_trait;
use glrunner_infra::FargateProfileSelectors;
use serde::Serialize;

/// What the connector is given to reach the cluster.
#[derive(Debug, Clone, Copy)]
pub enum ClusterTarget<'a> {
    /// An EKS cluster: endpoint and CA from the EKS API, tokens from glrunner's generator.
    Eks(&'a glrunner_infra::ClusterAccess),
    /// A kubeconfig file and optional context.
    Kubeconfig {
        /// The file.
        path: &'a std::path::Path,
        /// The context.
        context: Option<&'a str>,
    },
}

/// One permission a runner release (or the janitor) needs in a namespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Permission {
    /// API verb (`create`, `patch`, …).
    pub verb: &'static str,
    /// API group (`""` for core).
    pub group: &'static str,
    /// Resource (`secrets`, `deployments`, …).
    pub resource: &'static str,
    /// Namespace.
    pub namespace: String,
}

impl Permission {
    fn describe(&self) -> String {
        let group = if self.group.is_empty() {
            String::new()
        } else {
            format!(".{}", self.group)
        };
        format!(
            "{} {}{} in namespace {}",
            self.verb, self.resource, group, self.namespace
        )
    }
}

/// What the objects of a runner release, its token Secret and the janitor need: the chart's
/// Deployment, ConfigMap, Secret, ServiceAccount, Role and RoleBinding in the release namespace,
/// the Role and RoleBinding in the job namespace, and pod list/delete for the janitor there.
pub fn required_permissions(release_namespace: &str, job_namespace: &str) -> Vec<Permission> {
    let mut out = BTreeSet::new();
    let p = |verb, group, resource, ns: &str| Permission {
        verb,
        group,
        resource,
        namespace: ns.to_owned(),
    };
    for verb in ["create", "get", "patch", "delete"] {
        for (group, resource) in [
            ("", "secrets"),
            ("", "configmaps"),
            ("", "serviceaccounts"),
            ("apps", "deployments"),
            ("rbac.authorization.k8s.io", "roles"),
            ("rbac.authorization.k8s.io", "rolebindings"),
        ] {
            out.insert(p(verb, group, resource, release_namespace));
        }
    }
    for verb in ["create", "get", "patch", "delete"] {
        out.insert(p(verb, "rbac.authorization.k8s.io", "roles", job_namespace));
        out.insert(p(
            verb,
            "rbac.authorization.k8s.io",
            "rolebindings",
            job_namespace,
        ));
    }
    for verb in ["list", "delete"] {
        out.insert(p(verb, "", "pods", job_namespace));
    }
    out.into_iter().collect()
}

/// Questions the flow asks the cluster: before installing anything, and to explain a failure.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait ClusterChecks: Send + Sync {
    /// Whether the caller may do `permission` (a `SelfSubjectAccessReview`).
    async fn allowed(&self, permission: &Permission) -> Result<bool, String>;
    /// How many pods matching `label_selector` in `namespace` are Running.
    async fn running_pods(&self, namespace: &str, label_selector: &str) -> Result<usize, String>;
    /// The last `lines` log lines of each pod matching `label_selector` in `namespace` (at most
    /// [`LOG_TAIL_PODS`] pods), as `(pod, text)`: what a runner manager said when its runner
    /// never came online. A pod whose log cannot be read says why in its text.
    async fn log_tail(
        &self,
        namespace: &str,
        label_selector: &str,
        lines: i64,
    ) -> Result<Vec<(String, String)>, String>;
    /// Every unfinished pod (phase neither Succeeded nor Failed) that Fargate runs, with the size
    /// EKS provisioned for it ([`glrunner_fargate::CAPACITY_PROVISIONED_ANNOTATION`]): what the
    /// cluster holds of the account's Fargate On-Demand vCPU quota. A pod without the annotation
    /// (not on Fargate, or not placed yet) holds none and is left out.
    async fn fargate_pods(&self) -> Result<Vec<FargatePod>, String>;
}

/// A pod Fargate runs, and the size EKS provisioned for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FargatePod {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its labels (to tell CoreDNS and the runner managers from other pods).
    pub labels: std::collections::BTreeMap<String, String>,
    /// The size from its `CapacityProvisioned` annotation.
    pub size: glrunner_fargate::FargateSize,
}

/// The [`FargatePod`] `pod` is, when it is unfinished and carries a readable
/// `CapacityProvisioned` annotation.
pub fn fargate_pod(pod: &k8s_openapi::api::core::v1::Pod) -> Option<FargatePod> {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if matches!(phase, Some("Succeeded" | "Failed")) {
        return None;
    }
    let meta = &pod.metadata;
    let text = meta
        .annotations
        .as_ref()?
        .get(glrunner_fargate::CAPACITY_PROVISIONED_ANNOTATION)?;
    let size = glrunner_fargate::FargateSize::from_capacity_provisioned(text);
    if size.is_none() {
        tracing::warn!(pod = ?meta.name, annotation = %text, "unreadable CapacityProvisioned annotation; the pod is not counted");
    }
    Some(FargatePod {
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
        labels: meta
            .labels
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        size: size?,
    })
}

/// Pods per page when listing the cluster's Fargate pods.
const FARGATE_POD_PAGE: u32 = 500;

/// At most this many pods' logs are shown per release (a crash-looping Deployment may have more).
pub const LOG_TAIL_PODS: usize = 3;

/// The last `lines` lines of `text`.
fn last_lines(text: &str, lines: i64) -> String {
    let all: Vec<&str> = text.lines().collect();
    let keep = usize::try_from(lines).unwrap_or(0).min(all.len());
    all[all.len() - keep..].join("\n")
}

/// Whether a Fargate profile's selectors schedule pods of `namespace` (with any labels) on Fargate.
fn covers(profiles: &[FargateProfileSelectors], namespace: &str) -> bool {
    // The pods glrunner starts carry no label a selector could require.
    let no_labels = std::collections::BTreeMap::new();
    profiles
        .iter()
        .any(|p| super::fargate_selects(&p.selectors, namespace, &no_labels))
}

/// What the checks found: errors stop the flow before anything is installed; warnings are shown.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterCheckReport {
    /// Each miss, naming the namespace, verb or component and the fix.
    pub errors: Vec<String>,
    /// What could not be told.
    pub warnings: Vec<String>,
}

/// One error per namespace no Fargate profile selects (its pods would stay Pending), each showing
/// the cluster's selectors and the fix.
pub fn fargate_coverage_errors(
    profiles: &[FargateProfileSelectors],
    namespaces: &[&str],
) -> Vec<String> {
    let shown: Vec<String> = profiles
        .iter()
        .map(|p| {
            let sel: Vec<String> = p
                .selectors
                .iter()
                .map(|s| {
                    if s.labels.is_empty() {
                        format!("namespace={}", s.namespace)
                    } else {
                        let labels: Vec<String> =
                            s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                        format!("namespace={} labels {}", s.namespace, labels.join(","))
                    }
                })
                .collect();
            format!("{}: [{}]", p.name, sel.join("; "))
        })
        .collect();
    let namespaces: BTreeSet<&str> = namespaces.iter().copied().collect();
    namespaces
        .into_iter()
        .filter(|ns| !covers(profiles, ns))
        .map(|ns| {
            format!(
                "namespace {ns} is not covered by any Fargate profile selector, so its pods would stay Pending; \
                 selectors: {}; fix: add a selector for namespace {ns} (no labels) or choose a covered namespace",
                if shown.is_empty() { "none".to_owned() } else { shown.join(" | ") }
            )
        })
        .collect()
}

/// Checks Fargate coverage (when `fargate` is known: EKS), RBAC and CoreDNS.
pub async fn check_cluster(
    checks: &dyn ClusterChecks,
    fargate: Option<&[FargateProfileSelectors]>,
    release_namespace: &str,
    job_namespace: &str,
) -> ClusterCheckReport {
    let mut report = ClusterCheckReport::default();
    match fargate {
        Some(profiles) => report.errors.extend(fargate_coverage_errors(
            profiles,
            &[release_namespace, job_namespace],
        )),
        None => report.warnings.push(format!(
            "cannot tell whether namespaces {release_namespace} and {job_namespace} run on Fargate (not an EKS cluster \
             reached through the EKS API); make sure their pods can be scheduled"
        )),
    }
    for permission in required_permissions(release_namespace, job_namespace) {
        match checks.allowed(&permission).await {
            Ok(true) => {}
            Ok(false) => report.errors.push(format!(
                "not allowed to {}; fix: grant it to the caller (an access entry or a Role/RoleBinding)",
                permission.describe()
            )),
            Err(e) => {
                report
                    .errors
                    .push(format!("cannot check {}: {e}", permission.describe()));
                break;
            }
        }
    }
    match checks.running_pods("kube-system", "k8s-app=kube-dns").await {
        Ok(0) => report.errors.push(
            "CoreDNS is not running (no Running pod with k8s-app=kube-dns in kube-system): jobs could not resolve \
             the GitLab host; fix: on EKS-on-Fargate, run the coredns add-on with computeType Fargate"
                .into(),
        ),
        Ok(_) => {}
        Err(e) => report.errors.push(format!("cannot check CoreDNS: {e}")),
    }
    report
}

/// In-memory [`ClusterChecks`]: everything allowed and CoreDNS running unless told otherwise.
#[derive(Debug, Default)]
pub struct MemoryClusterChecks {
    denied: Mutex<BTreeSet<(String, String, String)>>,
    coredns_down: Mutex<bool>,
    logs: Mutex<PodLogs>,
    fargate: Mutex<Vec<FargatePod>>,
}

/// (namespace, label selector) -> (pod, log text), for [`MemoryClusterChecks::set_log`].
type PodLogs = std::collections::BTreeMap<(String, String), Vec<(String, String)>>;

impl MemoryClusterChecks {
    /// Denies `verb` on `resource` in `namespace`.
    pub fn deny(&self, verb: &str, resource: &str, namespace: &str) {
        self.denied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((verb.into(), resource.into(), namespace.into()));
    }

    /// Makes CoreDNS not running.
    pub fn stop_coredns(&self) {
        *self.coredns_down.lock().unwrap_or_else(|e| e.into_inner()) = true;
    }

    /// Adds a pod Fargate runs (see [`ClusterChecks::fargate_pods`]).
    pub fn add_fargate_pod(&self, pod: FargatePod) {
        self.fargate
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(pod);
    }

    /// Gives the pod `pod`, matched by `label_selector` in `namespace`, the log `text`.
    pub fn set_log(&self, namespace: &str, label_selector: &str, pod: &str, text: &str) {
        self.logs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((namespace.into(), label_selector.into()))
            .or_default()
            .push((pod.into(), text.into()));
    }
}

#[async_trait]
impl ClusterChecks for MemoryClusterChecks {
    async fn allowed(&self, p: &Permission) -> Result<bool, String> {
        let denied = self.denied.lock().unwrap_or_else(|e| e.into_inner());
        Ok(!denied.contains(&(p.verb.into(), p.resource.into(), p.namespace.clone())))
    }

    async fn running_pods(&self, namespace: &str, label_selector: &str) -> Result<usize, String> {
        let down = *self.coredns_down.lock().unwrap_or_else(|e| e.into_inner());
        Ok(
            usize::from(
                namespace == "kube-system" && label_selector == "k8s-app=kube-dns" && !down,
            ) * 2,
        )
    }

    async fn log_tail(
        &self,
        namespace: &str,
        label_selector: &str,
        lines: i64,
    ) -> Result<Vec<(String, String)>, String> {
        let logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        Ok(logs
            .get(&(namespace.to_owned(), label_selector.to_owned()))
            .into_iter()
            .flatten()
            .take(LOG_TAIL_PODS)
            .map(|(pod, text)| (pod.clone(), last_lines(text, lines)))
            .collect())
    }

    async fn fargate_pods(&self) -> Result<Vec<FargatePod>, String> {
        Ok(self
            .fargate
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone())
    }
}

/// [`ClusterChecks`] through the Kubernetes API (kube-rs).
#[derive(Clone)]
pub struct KubeClusterChecks {
    client: kube::Client,
}

impl std::fmt::Debug for KubeClusterChecks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeClusterChecks").finish_non_exhaustive()
    }
}

impl KubeClusterChecks {
    /// Checks through `client`.
    pub fn new(client: kube::Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl ClusterChecks for KubeClusterChecks {
    async fn allowed(&self, p: &Permission) -> Result<bool, String> {
        use k8s_openapi::api::authorization::v1::{
            ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
        };
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(p.verb.into()),
                    group: Some(p.group.into()),
                    resource: Some(p.resource.into()),
                    namespace: Some(p.namespace.clone()),
                    ..ResourceAttributes::default()
                }),
                ..SelfSubjectAccessReviewSpec::default()
            },
            ..SelfSubjectAccessReview::default()
        };
        let api: kube::Api<SelfSubjectAccessReview> = kube::Api::all(self.client.clone());
        let answer = api
            .create(&kube::api::PostParams::default(), &review)
            .await
            .map_err(|e| format!("SelfSubjectAccessReview: {e}"))?;
        Ok(answer.status.is_some_and(|s| s.allowed))
    }

    async fn running_pods(&self, namespace: &str, label_selector: &str) -> Result<usize, String> {
        use k8s_openapi::api::core::v1::Pod;
        let api: kube::Api<Pod> = kube::Api::namespaced(self.client.clone(), namespace);
        let pods = api
            .list(&kube::api::ListParams::default().labels(label_selector))
            .await
            .map_err(|e| format!("list pods {label_selector} in {namespace}: {e}"))?;
        Ok(pods
            .items
            .iter()
            .filter(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.phase.as_deref())
                    .is_some_and(|ph| ph == "Running")
            })
            .count())
    }

    async fn log_tail(
        &self,
        namespace: &str,
        label_selector: &str,
        lines: i64,
    ) -> Result<Vec<(String, String)>, String> {
        use k8s_openapi::api::core::v1::Pod;
        let api: kube::Api<Pod> = kube::Api::namespaced(self.client.clone(), namespace);
        let pods = api
            .list(&kube::api::ListParams::default().labels(label_selector))
            .await
            .map_err(|e| format!("list pods {label_selector} in {namespace}: {e}"))?;
        let params = kube::api::LogParams {
            tail_lines: Some(lines),
            ..kube::api::LogParams::default()
        };
        let mut tails = Vec::new();
        for name in pods
            .items
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .take(LOG_TAIL_PODS)
        {
            let text = match api.logs(&name, &params).await {
                Ok(text) if text.trim().is_empty() => {
                    "(its log is empty: the container may not have started)".to_owned()
                }
                Ok(text) => last_lines(&text, lines),
                Err(e) => format!("(its log cannot be read: {e})"),
            };
            tails.push((name, text));
        }
        Ok(tails)
    }

    async fn fargate_pods(&self) -> Result<Vec<FargatePod>, String> {
        use k8s_openapi::api::core::v1::Pod;
        let api: kube::Api<Pod> = kube::Api::all(self.client.clone());
        // Pod field selectors support status.phase (the apiserver's pod fields); finished pods
        // hold no Fargate capacity.
        let mut params = kube::api::ListParams::default()
            .fields("status.phase!=Succeeded,status.phase!=Failed")
            .limit(FARGATE_POD_PAGE);
        let mut found = Vec::new();
        loop {
            let page = api
                .list(&params)
                .await
                .map_err(|e| format!("list pods in every namespace: {e}"))?;
            found.extend(page.items.iter().filter_map(fargate_pod));
            match page.metadata.continue_ {
                Some(token) if !token.is_empty() => params = params.continue_token(&token),
                _ => break,
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use glrunner_infra::FargateSelector;

    fn profile(namespaces: &[&str]) -> FargateProfileSelectors {
        FargateProfileSelectors {
            name: "ci".into(),
            selectors: namespaces
                .iter()
                .map(|n| FargateSelector {
                    namespace: (*n).into(),
                    labels: Default::default(),
                })
                .collect(),
        }
    }

    #[tokio::test]
    async fn a_job_namespace_outside_every_selector_is_refused_with_the_selectors_shown() {
        let checks = MemoryClusterChecks::default();
        let profiles = [profile(&["gitlab-runner", "kube-system"])];
        let report = check_cluster(&checks, Some(&profiles), "gitlab-runner", "ci-jobs").await;
        assert_eq!(report.errors.len(), 1, "{report:?}");
        assert!(report.errors[0].contains("namespace ci-jobs"));
        assert!(report.errors[0].contains("ci: [namespace=gitlab-runner; namespace=kube-system]"));
        let ok = check_cluster(&checks, Some(&profiles), "gitlab-runner", "gitlab-runner").await;
        assert!(ok.errors.is_empty(), "{ok:?}");
    }

    #[tokio::test]
    async fn a_selector_with_labels_does_not_cover_the_namespace() {
        let checks = MemoryClusterChecks::default();
        let mut p = profile(&["ci"]);
        p.selectors[0].labels.insert("team".into(), "a".into());
        let report = check_cluster(&checks, Some(&[p]), "ci", "ci").await;
        assert_eq!(report.errors.len(), 1, "{report:?}");
    }

    #[tokio::test]
    async fn denied_verbs_and_missing_coredns_are_named() {
        let checks = MemoryClusterChecks::default();
        checks.deny("patch", "deployments", "gitlab-runner");
        checks.stop_coredns();
        let report = check_cluster(&checks, None, "gitlab-runner", "jobs").await;
        assert_eq!(report.warnings.len(), 1);
        assert!(
            report
                .errors
                .iter()
                .any(|e| e.contains("patch deployments.apps in namespace gitlab-runner")),
            "{report:?}"
        );
        assert!(report.errors.iter().any(|e| e.contains("CoreDNS")));
        assert_eq!(report.errors.len(), 2);
    }
}
