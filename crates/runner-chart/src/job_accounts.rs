//! Job ServiceAccounts for IRSA: the [`ServiceAccountInstaller`] trait, which applies one
//! ServiceAccount per job role in the job namespace, annotated
//! [`ROLE_ARN_ANNOTATION`]`: <role ARN>` and labelled as glrunner's, lists them, and removes them
//! on teardown.
//!
//! Backends: [`KubeServiceAccounts`] (kube-rs, server-side apply with field manager `glrunner`,
//! deletes with a UID precondition), [`InMemoryServiceAccounts`] (the apiserver behaviour glrunner
//! relies on, each with its source), `MockServiceAccountInstaller` (feature `mock`). The
//! conformance suite is [`crate::conformance::run_service_account_suite`].
//!
//! A ServiceAccount of the same name that glrunner did not create (no [`JOB_ACCOUNT_LABEL`]) is
//! never written over nor deleted: the call fails with [`Error::Conflict`] naming it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use kube::{Api, Client};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Invalid, Result};
use crate::identity::ROLE_ARN_ANNOTATION;
use crate::secret::MANAGED_BY_LABEL;
use crate::validate;

/// The label (with [`MANAGED_BY_LABEL`]) on every job ServiceAccount glrunner applies; `list`
/// selects by both.
pub const JOB_ACCOUNT_LABEL: (&str, &str) = ("glrunner.io/component", "job-identity");

/// Field manager of the applies.
const FIELD_MANAGER: &str = "glrunner";

/// One job ServiceAccount: its name in the job namespace and the IAM role it carries.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct JobServiceAccount {
    /// The ServiceAccount's name (the `NAME` of `--job-role NAME=POLICY_ARN`).
    pub name: String,
    /// The IAM role's ARN, in [`ROLE_ARN_ANNOTATION`].
    pub role_arn: String,
}

impl JobServiceAccount {
    /// A job account from its name and role ARN.
    pub fn new(name: impl Into<String>, role_arn: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            role_arn: role_arn.into(),
        }
    }
}

/// Applies, lists and removes the job ServiceAccounts of a job namespace.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait ServiceAccountInstaller: Send + Sync {
    /// Applies one ServiceAccount per `(name, role_arn)` in `namespace` (which must exist),
    /// idempotently; returns the names applied, in order. Refuses invalid input before any call
    /// and a same-named ServiceAccount glrunner did not create.
    async fn apply(&self, namespace: &str, accounts: &[(String, String)]) -> Result<Vec<String>>;

    /// Deletes the named job ServiceAccounts of `namespace`; one that does not exist (or a
    /// namespace that does not) counts as done. Returns those that existed.
    async fn remove(&self, namespace: &str, names: &[String]) -> Result<Vec<String>>;

    /// The job ServiceAccounts glrunner applied in `namespace`, by name (none when the namespace
    /// does not exist).
    async fn list(&self, namespace: &str) -> Result<Vec<JobServiceAccount>>;
}

/// A shared installer.
pub type DynServiceAccountInstaller = Arc<dyn ServiceAccountInstaller>;

/// Checks the namespace, the names and the role ARNs; every problem names its field.
pub fn check_input(namespace: &str, accounts: &[(String, String)]) -> Result<()> {
    let mut issues: Vec<Invalid> = Vec::new();
    issues.extend(validate::namespace("executor.namespace", namespace).err());
    let mut seen = BTreeSet::new();
    for (name, arn) in accounts {
        let field = format!("--job-role {name}");
        // kubernetes pkg/apis/core/validation/validation.go: ValidateServiceAccountName =
        // NameIsDNSSubdomain (the apiserver answers 422 Invalid otherwise).
        issues.extend(validate::object_name(&field, name).err());
        if !seen.insert(name.as_str()) {
            issues.push(Invalid::new(
                &field,
                format!("{name:?} is given twice"),
                "give each job role once",
            ));
        }
        if !is_role_arn(arn) {
            issues.push(Invalid::new(
                &field,
                format!("{arn:?} is not an IAM role ARN"),
                "use the ARN of the role glrunner created for it, e.g. arn:aws:iam::123456789012:role/NAME",
            ));
        }
    }
    Error::check(issues)
}

/// `arn:<partition>:iam::<12 digits>:role/<path/name>` (IAM User Guide, "IAM ARNs").
fn is_role_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    matches!(parts.as_slice(), ["arn", partition, "iam", "", account, resource]
        if partition.starts_with("aws")
            && account.len() == 12
            && account.bytes().all(|b| b.is_ascii_digit())
            && resource.strip_prefix("role/").is_some_and(|r| !r.is_empty() && !r.ends_with('/'))
            && !arn.chars().any(char::is_whitespace))
}

fn describe(namespace: &str, name: &str) -> String {
    format!("service account {name:?} in namespace {namespace:?}")
}

fn foreign(namespace: &str, name: &str, action: &str) -> Error {
    Error::Conflict {
        resource: describe(namespace, name),
        action: action.to_owned(),
        detail: format!(
            "it was not created by glrunner (no label {}={}), so it is left as it is; pick another job role name or remove it yourself",
            JOB_ACCOUNT_LABEL.0, JOB_ACCOUNT_LABEL.1
        ),
    }
}

fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY_LABEL.0.to_owned(), MANAGED_BY_LABEL.1.to_owned()),
        (
            JOB_ACCOUNT_LABEL.0.to_owned(),
            JOB_ACCOUNT_LABEL.1.to_owned(),
        ),
    ])
}

fn is_glrunners(sa: &ServiceAccount) -> bool {
    let l = sa.metadata.labels.clone().unwrap_or_default();
    labels().iter().all(|(k, v)| l.get(k) == Some(v))
}

/// [`ServiceAccountInstaller`] on a cluster through kube-rs.
#[derive(Clone)]
pub struct KubeServiceAccounts {
    client: Client,
}

impl std::fmt::Debug for KubeServiceAccounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeServiceAccounts")
            .finish_non_exhaustive()
    }
}

impl KubeServiceAccounts {
    /// Uses an existing client.
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// Connects like [`crate::KubeTokenSecrets::connect`] (an explicit kubeconfig and context,
    /// else kube-rs's standard discovery; no kube-rs retry layer).
    pub async fn connect(
        kubeconfig: Option<&std::path::Path>,
        context: Option<&str>,
    ) -> Result<Self> {
        Ok(Self {
            client: crate::k8s::connect_client(kubeconfig, context).await?,
        })
    }
}

#[async_trait]
impl ServiceAccountInstaller for KubeServiceAccounts {
    async fn apply(&self, namespace: &str, accounts: &[(String, String)]) -> Result<Vec<String>> {
        check_input(namespace, accounts)?;
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        // Every existing one is checked before the first write: a foreign account fails the call
        // with nothing applied.
        let mut versions = BTreeMap::new();
        for (name, _) in accounts {
            let resource = describe(namespace, name);
            match api
                .get_opt(name)
                .await
                .map_err(|e| crate::k8s::map_kube(e, &resource, "read"))?
            {
                Some(sa) if !is_glrunners(&sa) => return Err(foreign(namespace, name, "apply")),
                Some(sa) => {
                    versions.insert(name.clone(), sa.metadata.resource_version);
                }
                None => {}
            }
        }
        let mut applied = Vec::new();
        for (name, arn) in accounts {
            let desired = ServiceAccount {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(namespace.to_owned()),
                    labels: Some(labels()),
                    annotations: Some(BTreeMap::from([(
                        ROLE_ARN_ANNOTATION.to_owned(),
                        arn.clone(),
                    )])),
                    // The version checked above: the apply conflicts if the account was replaced
                    // (say, by a foreign one) since.
                    resource_version: versions.get(name).cloned().flatten(),
                    ..ObjectMeta::default()
                },
                ..ServiceAccount::default()
            };
            api.patch(
                name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&desired),
            )
            .await
            .map_err(|e| crate::k8s::map_kube(e, &describe(namespace, name), "apply"))?;
            tracing::info!(namespace, service_account = %name, role_arn = %arn, "applied job service account");
            applied.push(name.clone());
        }
        Ok(applied)
    }

    async fn remove(&self, namespace: &str, names: &[String]) -> Result<Vec<String>> {
        check_input(namespace, &[])?;
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        let mut removed = Vec::new();
        for name in names {
            let resource = describe(namespace, name);
            let Some(current) = api
                .get_opt(name)
                .await
                .map_err(|e| crate::k8s::map_kube(e, &resource, "read"))?
            else {
                continue;
            };
            if !is_glrunners(&current) {
                return Err(foreign(namespace, name, "delete"));
            }
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: current.metadata.uid.clone(),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match api.delete(name, &params).await {
                Ok(_) => {
                    tracing::info!(namespace, service_account = %name, "deleted job service account");
                    removed.push(name.clone());
                }
                Err(e) => match crate::k8s::map_kube(e, &resource, "delete") {
                    Error::NotFound { .. } => {}
                    other => return Err(other),
                },
            }
        }
        Ok(removed)
    }

    async fn list(&self, namespace: &str) -> Result<Vec<JobServiceAccount>> {
        check_input(namespace, &[])?;
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        let selector = labels()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let found = api
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| {
                crate::k8s::map_kube(
                    e,
                    &format!("job service accounts in namespace {namespace:?}"),
                    "list",
                )
            })?;
        let mut out: Vec<JobServiceAccount> = found
            .items
            .into_iter()
            .filter_map(|sa| {
                let name = sa.metadata.name.clone()?;
                let arn = sa
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(ROLE_ARN_ANNOTATION))
                    .cloned()
                    .unwrap_or_default();
                Some(JobServiceAccount::new(name, arn))
            })
            .collect();
        out.sort();
        Ok(out)
    }
}

/// [`ServiceAccountInstaller`] in memory, modelling the apiserver where glrunner relies on it:
///
/// - an object in a namespace that does not exist is refused with 404 `namespaces "X" not
///   found` (the NamespaceLifecycle admission plugin, kubernetes
///   `plugin/pkg/admission/namespace/lifecycle/admission.go`), so namespaces are declared first;
/// - names are DNS-1123 subdomains (`ValidateServiceAccountName`, checked before any call by
///   [`check_input`], as the real backend does);
/// - server-side apply of the same object changes nothing, of a new annotation value replaces it
///   (Kubernetes docs, "Server-Side Apply");
/// - deleting a missing object is 404, which both backends count as done;
/// - a ServiceAccount someone else created ([`InMemoryServiceAccounts::insert_foreign`]) is
///   left alone.
#[derive(Debug, Clone, Default)]
pub struct InMemoryServiceAccounts {
    state: Arc<Mutex<MemoryState>>,
}

#[derive(Debug, Default)]
struct MemoryState {
    namespaces: BTreeSet<String>,
    /// (namespace, name) → (role ARN, glrunner's).
    accounts: BTreeMap<(String, String), (String, bool)>,
}

impl InMemoryServiceAccounts {
    /// An empty cluster with `namespaces`.
    pub fn with_namespaces<I, S>(namespaces: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let this = Self::default();
        this.lock()
            .namespaces
            .extend(namespaces.into_iter().map(Into::into));
        this
    }

    /// Declares that `namespace` exists (the release created it).
    pub fn declare_namespace(&self, namespace: &str) {
        self.lock().namespaces.insert(namespace.to_owned());
    }

    /// Puts a ServiceAccount glrunner did not create (no labels) in `namespace`.
    pub fn insert_foreign(&self, namespace: &str, name: &str) {
        let mut state = self.lock();
        state.namespaces.insert(namespace.to_owned());
        state.accounts.insert(
            (namespace.to_owned(), name.to_owned()),
            (String::new(), false),
        );
    }

    /// The job ServiceAccounts glrunner applied in `namespace` now (what `list` answers),
    /// for a test's synchronous look.
    pub fn accounts(&self, namespace: &str) -> Vec<JobServiceAccount> {
        self.lock()
            .accounts
            .iter()
            .filter(|((ns, _), (_, ours))| ns == namespace && *ours)
            .map(|((_, name), (arn, _))| JobServiceAccount::new(name.clone(), arn.clone()))
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, MemoryState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl ServiceAccountInstaller for InMemoryServiceAccounts {
    async fn apply(&self, namespace: &str, accounts: &[(String, String)]) -> Result<Vec<String>> {
        check_input(namespace, accounts)?;
        let mut state = self.lock();
        if !state.namespaces.contains(namespace) {
            return Err(Error::NotFound {
                resource: format!("namespaces {namespace:?}"),
                action: "apply".into(),
            });
        }
        for (name, _) in accounts {
            if state
                .accounts
                .get(&(namespace.to_owned(), name.clone()))
                .is_some_and(|(_, ours)| !ours)
            {
                return Err(foreign(namespace, name, "apply"));
            }
        }
        for (name, arn) in accounts {
            state
                .accounts
                .insert((namespace.to_owned(), name.clone()), (arn.clone(), true));
        }
        Ok(accounts.iter().map(|(n, _)| n.clone()).collect())
    }

    async fn remove(&self, namespace: &str, names: &[String]) -> Result<Vec<String>> {
        check_input(namespace, &[])?;
        let mut state = self.lock();
        let mut removed = Vec::new();
        for name in names {
            let key = (namespace.to_owned(), name.clone());
            match state.accounts.get(&key) {
                None => {}
                Some((_, false)) => return Err(foreign(namespace, name, "delete")),
                Some((_, true)) => {
                    state.accounts.remove(&key);
                    removed.push(name.clone());
                }
            }
        }
        Ok(removed)
    }

    async fn list(&self, namespace: &str) -> Result<Vec<JobServiceAccount>> {
        check_input(namespace, &[])?;
        Ok(self.accounts(namespace))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_arns_are_checked() {
        for ok in [
            "arn:aws:iam::123456789012:role/deploy",
            "arn:aws-us-gov:iam::123456789012:role/ci/deploy",
        ] {
            assert!(is_role_arn(ok), "{ok}");
        }
        for bad in [
            "arn:aws:iam::123456789012:user/deploy",
            "arn:aws:iam::12345:role/deploy",
            "arn:aws:sts::123456789012:assumed-role/deploy/x",
            "arn:aws:iam::123456789012:role/",
            "deploy",
        ] {
            assert!(!is_role_arn(bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn in_memory_conformance() {
        let store = InMemoryServiceAccounts::with_namespaces(["ci-jobs"]);
        store.insert_foreign("ci-jobs", "theirs");
        crate::conformance::run_service_account_suite(&store, "ci-jobs", "ci-missing", "theirs")
            .await;
    }
}
