//! `KubeTokenSecrets`: the [`TokenSecrets`] backend on kube-rs: the Secret is written with
//! server-side apply (field manager `glrunner`), only when it is absent or carries glrunner's
//! label, and deleted with a resourceVersion precondition after the same check.

use std::collections::BTreeMap;
use std::path::Path;

use async_trait::async_trait;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

use crate::error::{Error, Result};
use crate::secret::{
    MANAGED_BY_LABEL, Ownership, REGISTRATION_TOKEN_KEY, RELEASE_LABEL, RUNNER_TOKEN_KEY,
    RunnerToken, SecretOutcome, SecretRef, StoredTokenSecret, TokenSecrets,
};

/// Field manager of glrunner's server-side applies.
const FIELD_MANAGER: &str = "glrunner";

/// Runner token Secrets through the Kubernetes API.
#[derive(Clone)]
pub struct KubeTokenSecrets {
    client: Client,
}

impl std::fmt::Debug for KubeTokenSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeTokenSecrets").finish_non_exhaustive()
    }
}

impl KubeTokenSecrets {
    /// Uses an existing client.
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// Connects with an explicit kubeconfig file and context; `None` falls back to kube-rs's
    /// standard discovery (`KUBECONFIG`, `~/.kube/config`, in-cluster).
    pub async fn connect(kubeconfig: Option<&Path>, context: Option<&str>) -> Result<Self> {
        Ok(Self {
            client: connect_client(kubeconfig, context).await?,
        })
    }

    async fn create_namespace(&self, ns: &str) -> Result<bool> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let resource = format!("namespace {ns:?}");
        if api
            .get_opt(ns)
            .await
            .map_err(|e| map_kube(e, &resource, "read"))?
            .is_some()
        {
            return Ok(false);
        }
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(ns.to_string()),
                labels: Some(BTreeMap::from([(
                    MANAGED_BY_LABEL.0.to_string(),
                    MANAGED_BY_LABEL.1.to_string(),
                )])),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        match api.create(&PostParams::default(), &namespace).await {
            Ok(_) => {
                tracing::info!(namespace = ns, "created namespace");
                Ok(true)
            }
            Err(e) => match map_kube(e, &resource, "create") {
                Error::AlreadyExists { .. } => Ok(false),
                other => Err(other),
            },
        }
    }
}

/// A client from an explicit kubeconfig file and context; `None` falls back to kube-rs's standard
/// discovery (`KUBECONFIG`, `~/.kube/config`, in-cluster). No kube-rs retry layer ([`bounded`]).
pub(crate) async fn connect_client(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
) -> Result<Client> {
    let options = KubeConfigOptions {
        context: context.map(str::to_string),
        ..KubeConfigOptions::default()
    };
    let backend = |action: &str, source: Box<dyn std::error::Error + Send + Sync>| Error::Backend {
        backend: "kube",
        resource: match kubeconfig {
            Some(p) => format!("kubeconfig {}", p.display()),
            None => "the default kubeconfig".to_string(),
        },
        action: action.to_string(),
        source,
    };
    let config = match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path).map_err(|e| backend("read", Box::new(e)))?;
            Config::from_custom_kubeconfig(kc, &options)
                .await
                .map_err(|e| backend("load", Box::new(e)))?
        }
        None if context.is_some() => Config::from_kubeconfig(&options)
            .await
            .map_err(|e| backend("load", Box::new(e)))?,
        None => Config::infer()
            .await
            .map_err(|e| backend("infer", Box::new(e)))?,
    };
    let client = Client::try_from(bounded(config))
        .map_err(|e| backend("build a client from", Box::new(e)))?;
    Ok(client)
}

/// The data this crate stores: the token and the empty registration-token key.
fn desired_data(token: &RunnerToken) -> BTreeMap<String, ByteString> {
    BTreeMap::from([
        (
            RUNNER_TOKEN_KEY.to_string(),
            ByteString(token.expose_secret().as_bytes().to_vec()),
        ),
        (REGISTRATION_TOKEN_KEY.to_string(), ByteString(Vec::new())),
    ])
}

/// The labels glrunner puts on a token Secret.
fn desired_labels(secret: &SecretRef) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([(
        MANAGED_BY_LABEL.0.to_string(),
        MANAGED_BY_LABEL.1.to_string(),
    )]);
    if let Some(release) = &secret.release {
        labels.insert(RELEASE_LABEL.to_string(), release.clone());
    }
    labels
}

/// Whether the Secret carries glrunner's label.
fn is_managed(existing: &Secret) -> bool {
    existing
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_BY_LABEL.0))
        .is_some_and(|v| v == MANAGED_BY_LABEL.1)
}

fn is_current(existing: &Secret, secret: &SecretRef, token: &RunnerToken) -> bool {
    let data_ok =
        existing.data.as_ref() == Some(&desired_data(token)) && existing.string_data.is_none();
    let labels = existing.metadata.labels.clone().unwrap_or_default();
    let labels_ok = desired_labels(secret)
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v));
    let type_ok = existing.type_.as_deref().is_none_or(|t| t == "Opaque");
    data_ok && labels_ok && type_ok
}

/// Maps a kube error to a category, naming the resource and the action.
pub(crate) fn map_kube(e: kube::Error, resource: &str, action: &str) -> Error {
    let (resource, action) = (resource.to_string(), action.to_string());
    match e {
        kube::Error::Api(status) => match (status.code, status.reason.as_str()) {
            (404, _) => Error::NotFound { resource, action },
            (409, "AlreadyExists") => Error::AlreadyExists { resource, action },
            (409, _) => Error::Conflict {
                resource,
                action,
                detail: status.message.clone(),
            },
            (401 | 403, _) => Error::PermissionDenied {
                resource,
                action,
                detail: status.message.clone(),
            },
            (429, _) => Error::Throttled {
                resource,
                action,
                retry_after: None,
            },
            (504, _) | (_, "Timeout") => Error::Timeout {
                resource,
                action,
                waited: std::time::Duration::ZERO,
            },
            _ => Error::Backend {
                backend: "kube",
                resource,
                action,
                source: Box::new(kube::Error::Api(status)),
            },
        },
        other => Error::Backend {
            backend: "kube",
            resource,
            action,
            source: Box::new(other),
        },
    }
}

#[async_trait]
impl TokenSecrets for KubeTokenSecrets {
    async fn ensure(&self, secret: &SecretRef, token: &RunnerToken) -> Result<SecretOutcome> {
        secret.validate()?;
        self.create_namespace(&secret.namespace).await?;
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &secret.namespace);
        let resource = secret.describe();
        let existing = api
            .get_opt(&secret.name)
            .await
            .map_err(|e| map_kube(e, &resource, "read"))?;
        let resource_version = match &existing {
            Some(current) if !is_managed(current) => return Err(secret.foreign_error("write")),
            Some(current) if is_current(current, secret, token) => {
                tracing::info!(secret = %secret, "runner token secret already current");
                return Ok(SecretOutcome::Unchanged);
            }
            Some(current) if current.type_.as_deref().is_some_and(|t| t != "Opaque") => {
                return Err(Error::Conflict {
                    resource,
                    action: "update".into(),
                    detail: format!(
                        "it has type {:?}, not Opaque; delete it or choose another --secret-name",
                        current.type_
                    ),
                });
            }
            Some(current) => current.metadata.resource_version.clone(),
            None => None,
        };
        let desired = Secret {
            metadata: ObjectMeta {
                name: Some(secret.name.clone()),
                namespace: Some(secret.namespace.clone()),
                labels: Some(desired_labels(secret)),
                // The version we checked: the apply fails with a conflict if the Secret changed
                // (say, was replaced by a foreign one) since.
                resource_version: resource_version.clone(),
                ..ObjectMeta::default()
            },
            type_: Some("Opaque".to_string()),
            data: Some(desired_data(token)),
            ..Secret::default()
        };
        let params = PatchParams::apply(FIELD_MANAGER).force();
        api.patch(&secret.name, &params, &Patch::Apply(&desired))
            .await
            .map_err(|e| map_kube(e, &resource, "apply"))?;
        Ok(if resource_version.is_some() {
            tracing::info!(secret = %secret, "updated runner token secret");
            SecretOutcome::Updated
        } else {
            tracing::info!(secret = %secret, "created runner token secret");
            SecretOutcome::Created
        })
    }

    async fn get(&self, secret: &SecretRef) -> Result<Option<StoredTokenSecret>> {
        secret.validate()?;
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &secret.namespace);
        let resource = secret.describe();
        let Some(found) = api
            .get_opt(&secret.name)
            .await
            .map_err(|e| map_kube(e, &resource, "read"))?
        else {
            return Ok(None);
        };
        let data = found.data.clone().unwrap_or_default();
        let token_bytes = data
            .get(RUNNER_TOKEN_KEY)
            .map(|b| b.0.clone())
            .unwrap_or_default();
        let text = String::from_utf8(token_bytes).map_err(|_| {
            Error::invalid(
                format!("{resource} key {RUNNER_TOKEN_KEY}"),
                "is not UTF-8",
                "re-create the secret with glrunner",
            )
        })?;
        let token = RunnerToken::new(text)?;
        Ok(Some(StoredTokenSecret {
            token,
            registration_key_empty: data
                .get(REGISTRATION_TOKEN_KEY)
                .is_some_and(|b| b.0.is_empty()),
            managed_by_glrunner: found
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(MANAGED_BY_LABEL.0))
                .is_some_and(|v| v == MANAGED_BY_LABEL.1),
        }))
    }

    async fn delete(&self, secret: &SecretRef) -> Result<bool> {
        secret.validate()?;
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &secret.namespace);
        let resource = secret.describe();
        let Some(current) = api
            .get_opt(&secret.name)
            .await
            .map_err(|e| map_kube(e, &resource, "read"))?
        else {
            return Ok(false);
        };
        if !is_managed(&current) {
            return Err(secret.foreign_error("delete"));
        }
        // Delete exactly the Secret we checked, not one created in its place since.
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: current.metadata.uid.clone(),
                resource_version: current.metadata.resource_version.clone(),
            }),
            ..DeleteParams::default()
        };
        match api.delete(&secret.name, &params).await {
            Ok(_) => {
                tracing::info!(secret = %secret, "deleted runner token secret");
                Ok(true)
            }
            Err(e) => match map_kube(e, &resource, "delete") {
                Error::NotFound { .. } => Ok(false),
                other => Err(other),
            },
        }
    }

    async fn ownership(&self, secret: &SecretRef) -> Result<Ownership> {
        secret.validate()?;
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &secret.namespace);
        Ok(
            match api
                .get_opt(&secret.name)
                .await
                .map_err(|e| map_kube(e, &secret.describe(), "read"))?
            {
                None => Ownership::Absent,
                Some(s) if is_managed(&s) => Ownership::Glrunner,
                Some(_) => Ownership::Foreign,
            },
        )
    }

    async fn ensure_namespace(&self, namespace: &str) -> Result<bool> {
        crate::validate::namespace("namespace", namespace)
            .map_err(|i| Error::InvalidInput { issues: vec![i] })?;
        self.create_namespace(namespace).await
    }
}

/// Bounds every Secret call of a client built from `config`: no kube-rs retry layer (it retries
/// 429/503/504 up to 15 times with delays growing to minutes, under a caller that promised a
/// bounded install); a throttled call fails with [`Error::Throttled`] and the caller decides.
fn bounded(mut config: Config) -> Config {
    config.default_retry = false;
    config
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn api(code: u16, reason: &str) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status {
            code,
            reason: reason.into(),
            message: "m".into(),
            ..Default::default()
        }))
    }

    #[test]
    fn secret_clients_are_built_without_kube_rs_retry_layer() {
        let config = Config::new("https://127.0.0.1:6443".parse().unwrap());
        assert!(config.default_retry, "kube-rs retries by default");
        assert!(!bounded(config).default_retry);
    }

    #[test]
    fn kube_errors_map_to_categories_naming_resource_and_action() {
        let cases = [
            (404, "NotFound", ErrorKind::NotFound),
            (409, "AlreadyExists", ErrorKind::AlreadyExists),
            (409, "Conflict", ErrorKind::Conflict),
            (403, "Forbidden", ErrorKind::PermissionDenied),
            (401, "Unauthorized", ErrorKind::PermissionDenied),
            (429, "TooManyRequests", ErrorKind::Throttled),
            (504, "Timeout", ErrorKind::Timeout),
            (500, "InternalError", ErrorKind::Backend),
        ];
        for (code, reason, kind) in cases {
            let e = map_kube(
                api(code, reason),
                "secret \"s\" in namespace \"n\"",
                "update",
            );
            assert_eq!(e.kind(), kind, "{code} {reason}");
            assert!(
                e.to_string().contains("secret \"s\" in namespace \"n\""),
                "{e}"
            );
        }
    }

    #[test]
    fn currency_check_requires_exact_data_and_label() {
        let token = RunnerToken::new("glrt-abc").unwrap();
        let r = SecretRef::new("ci", "s");
        let mut s = Secret {
            metadata: ObjectMeta {
                labels: Some(BTreeMap::from([(
                    MANAGED_BY_LABEL.0.to_string(),
                    MANAGED_BY_LABEL.1.to_string(),
                )])),
                ..ObjectMeta::default()
            },
            type_: Some("Opaque".into()),
            data: Some(desired_data(&token)),
            ..Secret::default()
        };
        assert!(is_current(&s, &r, &token));
        assert!(!is_current(
            &s,
            &r,
            &RunnerToken::new("glrt-other").unwrap()
        ));
        assert!(
            !is_current(&s, &r.clone().for_release("runner-1"), &token),
            "the release label is missing"
        );
        s.data
            .as_mut()
            .unwrap()
            .insert("extra".into(), ByteString(vec![1]));
        assert!(!is_current(&s, &r, &token));
        s.data = Some(desired_data(&token));
        s.metadata.labels = None;
        assert!(!is_current(&s, &r, &token));
        assert!(!is_managed(&s));
    }
}
