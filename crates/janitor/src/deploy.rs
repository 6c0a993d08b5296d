//! `reap deploy` / `reap undeploy`: the janitor's in-cluster objects (ServiceAccount, least-privilege Roles and RoleBindings, a Lease, a Deployment of the smallest Fargate size).
//!
//! The objects are k8s-openapi's typed structs, printed as YAML and applied exactly as printed
//! (server-side apply, field manager `glrunner`), so what `deploy` prints is what it creates.
//! [`JanitorInstaller`] applies and removes them: [`KubeJanitorInstaller`] on a cluster,
//! [`InMemoryJanitorInstaller`] for the sandbox, `MockJanitorInstaller` with the `mock` feature.

use std::collections::BTreeMap;

use async_trait::async_trait;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvVar, EnvVarSource, ObjectFieldSelector,
    PodSecurityContext, PodSpec, PodTemplateSpec, ResourceRequirements, SecurityContext,
    ServiceAccount,
};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::Client;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams};
use serde::Serialize;

use crate::rbac::rbac_objects;
use crate::{Error, Result};

/// The janitor's labels on every object it deploys.
pub fn labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/name".to_owned(),
            "glrunner-janitor".to_owned(),
        ),
        (
            "app.kubernetes.io/managed-by".to_owned(),
            "glrunner".to_owned(),
        ),
    ])
}

/// CPU request of the janitor's container: with its 256 MiB of memory, Fargate's smallest size
/// (0.25 vCPU, 0.5 GB: Fargate adds 256 MiB for its own components and rounds up; see
/// `glrunner_fargate`).
pub const CPU: &str = "250m";
/// Memory request (and limit) of the janitor's container.
pub const MEMORY: &str = "256Mi";

/// The janitor's metrics port in the cluster (Prometheus's own default port, 9090).
pub const DEFAULT_METRICS_PORT: u16 = 9090;

/// What to deploy.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeploySpec {
    /// The image (`<account>.dkr.ecr.<region>.amazonaws.com/glrunner-janitor:TAG`).
    pub image: String,
    /// Where the janitor runs: a namespace a Fargate profile selects (the first namespace of
    /// the runner's profile).
    pub home: String,
    /// The namespaces it reaps in.
    pub namespaces: Vec<String>,
    /// Name of the ServiceAccount, Roles, RoleBindings, Lease and Deployment.
    pub name: String,
    /// Replicas (they elect a leader on the Lease; one acts).
    pub replicas: i32,
    /// Also reap the executor's orphaned per-job Secrets (adds list/watch/delete on secrets).
    pub reap_secrets: bool,
    /// Serve the metrics on this port (`--metrics-addr 0.0.0.0:PORT`, a container port named
    /// `metrics`, and the `prometheus.io/scrape`/`port` annotations on the pod); `None`: none.
    pub metrics_port: Option<u16>,
    /// Extra arguments of `reap run` (policy flags: `--grace 5m`, ...).
    pub extra_args: Vec<String>,
}

impl DeploySpec {
    /// One replica of `image` in `home`, reaping in `namespaces`, named `glrunner-janitor`.
    pub fn new(image: impl Into<String>, home: impl Into<String>, namespaces: Vec<String>) -> Self {
        Self {
            image: image.into(),
            home: home.into(),
            namespaces,
            name: "glrunner-janitor".into(),
            replicas: 1,
            reap_secrets: false,
            metrics_port: Some(DEFAULT_METRICS_PORT),
            extra_args: Vec::new(),
        }
    }
}

/// The objects of a deployment, in apply order.
#[derive(Debug, Clone, PartialEq)]
pub struct DeployObjects {
    /// The ServiceAccount (in `home`).
    pub service_account: ServiceAccount,
    /// A Role per namespace (pods, events; secrets when enabled) and one in `home` for the Lease.
    pub roles: Vec<Role>,
    /// A RoleBinding per Role.
    pub bindings: Vec<RoleBinding>,
    /// The Lease the replicas elect a leader on.
    pub lease: Lease,
    /// The Deployment.
    pub deployment: Deployment,
}

/// One object as `kind namespace/name`, for listings.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ObjectId {
    /// Kind.
    pub kind: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl std::fmt::Display for ObjectId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

fn rule(group: &str, resources: &[&str], verbs: &[&str], names: Option<&str>) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![group.to_owned()]),
        resources: Some(resources.iter().map(|r| (*r).to_owned()).collect()),
        verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
        resource_names: names.map(|n| vec![n.to_owned()]),
        ..PolicyRule::default()
    }
}

/// Builds the objects; bad names are [`Error::InvalidInput`].
pub fn deploy_objects(spec: &DeploySpec) -> Result<DeployObjects> {
    if spec.image.trim().is_empty() {
        return Err(Error::invalid(
            "--image",
            "no image given; build and push the Containerfile (see README) and pass its URI",
        ));
    }
    if spec.replicas < 1 {
        return Err(Error::invalid("--replicas", "use 1 or more"));
    }
    crate::model::validate_namespace(&spec.home)?;
    // The ServiceAccount lives in `home`; the reaping Roles in every reaped namespace.
    let mut all = vec![spec.home.clone()];
    all.extend(spec.namespaces.iter().filter(|n| **n != spec.home).cloned());
    let base = rbac_objects(&all, &spec.name)?;
    let first_binding = base.bindings.first().cloned();
    let mut roles = Vec::new();
    let mut bindings = Vec::new();
    for (role, binding) in base.roles.into_iter().zip(base.bindings) {
        let ns = role.metadata.namespace.clone().unwrap_or_default();
        if !spec.namespaces.contains(&ns) {
            continue; // `home` only hosts the janitor: no pod rights there unless reaped
        }
        let mut role = role;
        let rules = role.rules.get_or_insert_with(Vec::new);
        // kube-runtime's Recorder creates an Event, and patches it on a repeat (events.rs).
        rules.push(rule(
            "events.k8s.io",
            &["events"],
            &["create", "patch"],
            None,
        ));
        if spec.reap_secrets {
            rules.push(rule("", &["secrets"], &["list", "watch", "delete"], None));
        }
        roles.push(role);
        bindings.push(binding);
    }
    let meta = |name: String| ObjectMeta {
        name: Some(name),
        namespace: Some(spec.home.clone()),
        labels: Some(labels()),
        ..ObjectMeta::default()
    };
    let lease_role_name = format!("{}-lease", spec.name);
    roles.push(Role {
        metadata: meta(lease_role_name.clone()),
        // Only its own Lease, which deploy creates: no create, no list.
        rules: Some(vec![rule(
            "coordination.k8s.io",
            &["leases"],
            &["get", "update"],
            Some(&spec.name),
        )]),
    });
    let mut lease_binding =
        first_binding.ok_or_else(|| Error::invalid("namespace", "no namespace given"))?;
    lease_binding.metadata = meta(lease_role_name.clone());
    lease_binding.role_ref.name = lease_role_name;
    bindings.push(lease_binding);

    let lease = Lease {
        metadata: meta(spec.name.clone()),
        spec: None,
    };
    let selector = BTreeMap::from([(
        "app.kubernetes.io/name".to_owned(),
        "glrunner-janitor".to_owned(),
    )]);
    let mut args = vec![
        "run".to_owned(),
        "--backend".to_owned(),
        "aws".to_owned(),
        "--in-cluster".to_owned(),
        "--lease".to_owned(),
        spec.name.clone(),
        "--lease-namespace".to_owned(),
        spec.home.clone(),
    ];
    for ns in &spec.namespaces {
        args.push("--namespace".into());
        args.push(ns.clone());
    }
    if spec.reap_secrets {
        args.push("--reap-secrets".into());
    }
    if let Some(port) = spec.metrics_port {
        args.push("--metrics-addr".into());
        args.push(format!("0.0.0.0:{port}"));
    }
    args.extend(spec.extra_args.iter().cloned());
    let quantity = |s: &str| Quantity(s.to_owned());
    let resources = BTreeMap::from([
        ("cpu".to_owned(), quantity(CPU)),
        ("memory".to_owned(), quantity(MEMORY)),
    ]);
    let deployment = Deployment {
        metadata: meta(spec.name.clone()),
        spec: DeploymentSpec {
            replicas: Some(spec.replicas),
            selector: LabelSelector {
                match_labels: Some(selector.clone()),
                ..LabelSelector::default()
            },
            strategy: Some(DeploymentStrategy {
                // The Lease keeps an old and a new replica from both acting during a rollout.
                type_: Some("RollingUpdate".into()),
                ..DeploymentStrategy::default()
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels()),
                    // The annotations a Prometheus `kubernetes_sd_configs: [{role: pod}]` job keeps
                    // with the usual relabelling (the README's scrape configuration).
                    annotations: spec.metrics_port.map(|port| {
                        BTreeMap::from([
                            ("prometheus.io/scrape".to_owned(), "true".to_owned()),
                            ("prometheus.io/port".to_owned(), port.to_string()),
                        ])
                    }),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(spec.name.clone()),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        ..PodSecurityContext::default()
                    }),
                    containers: vec![Container {
                        name: "janitor".into(),
                        image: Some(spec.image.clone()),
                        args: Some(args),
                        ports: spec.metrics_port.map(|port| {
                            vec![ContainerPort {
                                name: Some("metrics".into()),
                                container_port: i32::from(port),
                                ..ContainerPort::default()
                            }]
                        }),
                        env: Some(vec![EnvVar {
                            name: "GLRUNNER_JANITOR_IDENTITY".into(),
                            value_from: Some(EnvVarSource {
                                field_ref: Some(ObjectFieldSelector {
                                    field_path: "metadata.name".into(),
                                    ..ObjectFieldSelector::default()
                                }),
                                ..EnvVarSource::default()
                            }),
                            ..EnvVar::default()
                        }]),
                        // Requests equal to limits: Fargate sizes the pod from them.
                        resources: Some(ResourceRequirements {
                            requests: Some(resources.clone()),
                            limits: Some(resources),
                            ..ResourceRequirements::default()
                        }),
                        security_context: Some(SecurityContext {
                            allow_privilege_escalation: Some(false),
                            read_only_root_filesystem: Some(true),
                            capabilities: Some(Capabilities {
                                drop: Some(vec!["ALL".into()]),
                                ..Capabilities::default()
                            }),
                            ..SecurityContext::default()
                        }),
                        ..Container::default()
                    }],
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        },
        status: None,
    };
    Ok(DeployObjects {
        service_account: base.service_account,
        roles,
        bindings,
        lease,
        deployment,
    })
}

fn id(kind: &str, meta: &ObjectMeta) -> ObjectId {
    ObjectId {
        kind: kind.into(),
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
    }
}

impl DeployObjects {
    /// Every object, as `kind namespace/name`, in apply order.
    pub fn ids(&self) -> Vec<ObjectId> {
        let mut out = vec![id("ServiceAccount", &self.service_account.metadata)];
        out.extend(self.roles.iter().map(|r| id("Role", &r.metadata)));
        out.extend(self.bindings.iter().map(|b| id("RoleBinding", &b.metadata)));
        out.push(id("Lease", &self.lease.metadata));
        out.push(id("Deployment", &self.deployment.metadata));
        out
    }

    /// The objects as one multi-document YAML manifest, in apply order.
    pub fn manifest(&self) -> Result<String> {
        let yaml = |doc: std::result::Result<String, serde_norway::Error>| {
            doc.map_err(|e| Error::Backend {
                backend: "yaml",
                action: "render deploy manifest".into(),
                resource: "glrunner-janitor".into(),
                message: e.to_string(),
                source: Some(Box::new(e)),
            })
        };
        let mut docs = vec![yaml(serde_norway::to_string(&self.service_account))?];
        for r in &self.roles {
            docs.push(yaml(serde_norway::to_string(r))?);
        }
        for b in &self.bindings {
            docs.push(yaml(serde_norway::to_string(b))?);
        }
        docs.push(yaml(serde_norway::to_string(&self.lease))?);
        docs.push(yaml(serde_norway::to_string(&self.deployment))?);
        Ok(docs.join("---\n"))
    }
}

fn apply_error(object: &ObjectId, action: &str, e: kube::Error) -> Error {
    let resource = format!("{} {}/{}", object.kind, object.namespace, object.name);
    crate::k8s::forbidden_or_backend(action, &resource, e)
}

async fn apply_one<K>(client: &Client, object: &K, kind: &str) -> Result<ObjectId>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let meta = object.meta();
    let oid = id(kind, meta);
    let api: Api<K> = Api::namespaced(client.clone(), &oid.namespace);
    api.patch(
        &oid.name,
        &PatchParams::apply("glrunner").force(),
        &Patch::Apply(object),
    )
    .await
    .map_err(|e| apply_error(&oid, "apply", e))?;
    Ok(oid)
}

/// Applies every object (server-side apply); returns what it applied, in order.
pub async fn apply(client: &Client, objects: &DeployObjects) -> Result<Vec<ObjectId>> {
    let mut done = vec![apply_one(client, &objects.service_account, "ServiceAccount").await?];
    for r in &objects.roles {
        done.push(apply_one(client, r, "Role").await?);
    }
    for b in &objects.bindings {
        done.push(apply_one(client, b, "RoleBinding").await?);
    }
    done.push(apply_one(client, &objects.lease, "Lease").await?);
    done.push(apply_one(client, &objects.deployment, "Deployment").await?);
    Ok(done)
}

/// The API of `oid`'s kind: the one dispatch on the kinds `reap deploy` creates, shared by the
/// deletes and the existence checks (kube-rs's dynamic API, typed by each kind's own resource).
fn api_of(client: &Client, oid: &ObjectId) -> Result<Api<DynamicObject>> {
    let resource = match oid.kind.as_str() {
        "Deployment" => ApiResource::erase::<Deployment>(&()),
        "Lease" => ApiResource::erase::<Lease>(&()),
        "RoleBinding" => ApiResource::erase::<RoleBinding>(&()),
        "Role" => ApiResource::erase::<Role>(&()),
        "ServiceAccount" => ApiResource::erase::<ServiceAccount>(&()),
        other => {
            return Err(Error::invalid(
                "object kind",
                format!("{other} is not an object `reap deploy` creates"),
            ));
        }
    };
    Ok(Api::namespaced_with(
        client.clone(),
        &oid.namespace,
        &resource,
    ))
}

async fn delete_one(client: &Client, oid: &ObjectId) -> Result<bool> {
    match api_of(client, oid)?
        .delete(&oid.name, &DeleteParams::background())
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(apply_error(oid, "delete", e)),
    }
}

async fn exists(client: &Client, oid: &ObjectId) -> Result<bool> {
    api_of(client, oid)?
        .get_metadata_opt(&oid.name)
        .await
        .map(|m| m.is_some())
        .map_err(|e| apply_error(oid, "get", e))
}

/// Deletes every object `objects` names, the Deployment first (NotFound counts as done);
/// returns those that existed.
pub async fn remove(client: &Client, objects: &DeployObjects) -> Result<Vec<ObjectId>> {
    remove_ids(client, &objects.ids()).await
}

/// Deletes the objects `ids` names (in apply order), in reverse: the Deployment first, so no
/// replica acts while its rights go. NotFound counts as done; returns those that existed.
pub async fn remove_ids(client: &Client, ids: &[ObjectId]) -> Result<Vec<ObjectId>> {
    let mut gone = Vec::new();
    for oid in ids.iter().rev() {
        if delete_one(client, oid).await? {
            gone.push(oid.clone());
        }
    }
    Ok(gone)
}

/// Installs and removes the janitor's in-cluster objects: what `reap deploy`/`undeploy` and the
/// full flow's `--janitor in-cluster` use.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait JanitorInstaller: Send + Sync {
    /// Applies every object (idempotent: applying the same objects again changes nothing);
    /// returns what it applied, in apply order.
    async fn apply(&self, objects: &DeployObjects) -> Result<Vec<ObjectId>>;

    /// Deletes the objects `ids` names (in apply order), the Deployment first; an object that
    /// does not exist counts as done. Returns those that existed.
    async fn remove(&self, ids: &[ObjectId]) -> Result<Vec<ObjectId>>;

    /// Those of `ids` that exist now (a teardown's leftover check).
    async fn existing(&self, ids: &[ObjectId]) -> Result<Vec<ObjectId>>;
}

/// [`JanitorInstaller`] on a cluster: server-side apply, background deletes.
#[derive(Clone)]
pub struct KubeJanitorInstaller {
    client: Client,
}

impl std::fmt::Debug for KubeJanitorInstaller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeJanitorInstaller")
            .finish_non_exhaustive()
    }
}

impl KubeJanitorInstaller {
    /// Installs with `client`.
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl JanitorInstaller for KubeJanitorInstaller {
    async fn apply(&self, objects: &DeployObjects) -> Result<Vec<ObjectId>> {
        apply(&self.client, objects).await
    }

    async fn remove(&self, ids: &[ObjectId]) -> Result<Vec<ObjectId>> {
        remove_ids(&self.client, ids).await
    }

    async fn existing(&self, ids: &[ObjectId]) -> Result<Vec<ObjectId>> {
        let mut out = Vec::new();
        for oid in ids {
            if exists(&self.client, oid).await? {
                out.push(oid.clone());
            }
        }
        Ok(out)
    }
}

/// [`JanitorInstaller`] in memory: the objects applied, by id. Applying into a namespace that
/// does not exist fails as on a real apiserver (`namespaces "X" not found`, 404: the namespace
/// lifecycle admission plugin, kubernetes plugin/pkg/admission/namespace/lifecycle), so the
/// namespaces are declared first; applying twice is a no-op (server-side apply of unchanged
/// objects, Kubernetes docs "Server-Side Apply").
#[derive(Debug, Clone, Default)]
pub struct InMemoryJanitorInstaller {
    state: std::sync::Arc<std::sync::Mutex<InstallerState>>,
}

#[derive(Debug, Default)]
struct InstallerState {
    namespaces: std::collections::BTreeSet<String>,
    objects: BTreeMap<ObjectId, String>,
}

impl InMemoryJanitorInstaller {
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

    /// Declares that `namespace` exists (created by `kubectl create namespace` or a release).
    pub fn declare_namespace(&self, namespace: &str) {
        self.lock().namespaces.insert(namespace.to_owned());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, InstallerState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The objects that exist, with the image of the Deployment (other kinds: empty).
    pub fn objects(&self) -> BTreeMap<ObjectId, String> {
        self.lock().objects.clone()
    }
}

#[async_trait]
impl JanitorInstaller for InMemoryJanitorInstaller {
    async fn apply(&self, objects: &DeployObjects) -> Result<Vec<ObjectId>> {
        let ids = objects.ids();
        let mut state = self.lock();
        if let Some(missing) = ids
            .iter()
            .find(|i| !state.namespaces.contains(&i.namespace))
        {
            return Err(Error::NotFound {
                action: "apply".into(),
                resource: format!("namespaces \"{}\"", missing.namespace),
            });
        }
        let image = objects
            .deployment
            .spec
            .template
            .spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .and_then(|c| c.image.clone())
            .unwrap_or_default();
        for oid in &ids {
            let value = if oid.kind == "Deployment" {
                image.clone()
            } else {
                String::new()
            };
            state.objects.insert(oid.clone(), value);
        }
        Ok(ids)
    }

    async fn remove(&self, ids: &[ObjectId]) -> Result<Vec<ObjectId>> {
        let mut state = self.lock();
        Ok(ids
            .iter()
            .rev()
            .filter(|oid| state.objects.remove(*oid).is_some())
            .cloned()
            .collect())
    }

    async fn existing(&self, ids: &[ObjectId]) -> Result<Vec<ObjectId>> {
        let state = self.lock();
        Ok(ids
            .iter()
            .filter(|oid| state.objects.contains_key(*oid))
            .cloned()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_is_the_objects_and_the_pod_is_the_smallest_fargate_size() {
        let spec = DeploySpec::new(
            "1.dkr.ecr.us-east-1.amazonaws.com/glrunner-janitor:1",
            "gitlab-runner",
            vec!["gitlab-runner".into(), "jobs".into()],
        );
        let objects = deploy_objects(&spec).unwrap();
        let yaml = objects.manifest().unwrap();
        let kinds: Vec<String> = yaml
            .split("---\n")
            .map(|d| {
                let v: serde_json::Value = serde_norway::from_str(d).unwrap();
                format!(
                    "{} {}/{}",
                    v["kind"].as_str().unwrap(),
                    v["metadata"]["namespace"].as_str().unwrap(),
                    v["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect();
        let ids: Vec<String> = objects
            .ids()
            .iter()
            .map(|i| format!("{} {}/{}", i.kind, i.namespace, i.name))
            .collect();
        assert_eq!(kinds, ids);
        let container = &objects
            .deployment
            .spec
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0];
        let requests = container
            .resources
            .as_ref()
            .unwrap()
            .requests
            .as_ref()
            .unwrap();
        let cpu = glrunner_fargate::quantity::cpu_millis(&requests["cpu"].0).unwrap();
        let mem = glrunner_fargate::quantity::memory_mib(&requests["memory"].0).unwrap();
        let (cpu, mem) = glrunner_fargate::pod_requests(vec![(cpu, mem)], vec![]);
        let size = glrunner_fargate::FargateSize::for_requests(cpu, mem).unwrap();
        let smallest = glrunner_fargate::FargateSize::all().next().unwrap();
        assert_eq!(size, smallest, "{size:?}");
        // The metrics are served and announced for scraping.
        let args = container.args.as_ref().unwrap();
        assert!(
            args.windows(2)
                .any(|w| w[0] == "--metrics-addr" && w[1] == "0.0.0.0:9090"),
            "{args:?}"
        );
        assert_eq!(container.ports.as_ref().unwrap()[0].container_port, 9090);
        let annotations = objects
            .deployment
            .spec
            .template
            .metadata
            .as_ref()
            .unwrap()
            .annotations
            .as_ref()
            .unwrap();
        assert_eq!(annotations["prometheus.io/port"], "9090");
        // No cluster-scoped object, no wildcard.
        assert!(
            !yaml.contains("ClusterRole") && !yaml.contains("'*'"),
            "{yaml}"
        );
    }

    #[tokio::test]
    async fn the_in_memory_installer_passes_the_conformance_case_and_needs_its_namespace() {
        let installer = InMemoryJanitorInstaller::with_namespaces(["gitlab-runner"]);
        crate::conformance::installer_applies_idempotently_and_removes_everything(
            &installer,
            "gitlab-runner",
        )
        .await;
        let elsewhere =
            deploy_objects(&DeploySpec::new("img", "other", vec!["other".into()])).unwrap();
        let err = installer.apply(&elsewhere).await.unwrap_err();
        assert!(err.to_string().contains("other"), "{err}");
        assert!(installer.objects().is_empty(), "nothing applied on failure");
    }

    #[test]
    fn bad_input_names_the_field() {
        let mut spec = DeploySpec::new("", "gitlab-runner", vec!["gitlab-runner".into()]);
        assert!(
            deploy_objects(&spec)
                .unwrap_err()
                .to_string()
                .contains("--image")
        );
        spec.image = "img".into();
        spec.home = "Bad".into();
        assert!(
            deploy_objects(&spec)
                .unwrap_err()
                .to_string()
                .contains("namespace")
        );
    }
}
