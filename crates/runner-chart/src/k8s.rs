//! `KubeTokenSecrets`: the [`TokenSecrets`] backend on kube-rs (create, compare, replace with optimistic locking).

use std::collections::BTreeMap;
use std::path::Path;

use async_trait::async_trait;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

use crate::error::{Error, Result};
use crate::secret::{
    MANAGED_BY_LABEL, REGISTRATION_TOKEN_KEY, RUNNER_TOKEN_KEY, RunnerToken, SecretOutcome,
    SecretRef, StoredTokenSecret, TokenSecrets,
};

/// Attempts at a create/replace race before giving up with [`Error::Conflict`].
const MAX_ATTEMPTS: usize = 4;

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
        let options = KubeConfigOptions {
            context: context.map(str::to_string),
            ..KubeConfigOptions::default()
        };
        let backend =
            |action: &str, source: Box<dyn std::error::Error + Send + Sync>| Error::Backend {
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
        let client =
            Client::try_from(config).map_err(|e| backend("build a client from", Box::new(e)))?;
        Ok(Self { client })
    }

    async fn ensure_namespace(&self, ns: &str) -> Result<()> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let resource = format!("namespace {ns:?}");
        if api
            .get_opt(ns)
            .await
            .map_err(|e| map_kube(e, &resource, "read"))?
            .is_some()
        {
            return Ok(());
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
                Ok(())
            }
            Err(e) => match map_kube(e, &resource, "create") {
                Error::AlreadyExists { .. } => Ok(()),
                other => Err(other),
            },
        }
    }
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

fn is_current(existing: &Secret, token: &RunnerToken) -> bool {
    let data_ok =
        existing.data.as_ref() == Some(&desired_data(token)) && existing.string_data.is_none();
    let labelled = existing
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_BY_LABEL.0))
        .is_some_and(|v| v == MANAGED_BY_LABEL.1);
    let type_ok = existing.type_.as_deref().is_none_or(|t| t == "Opaque");
    data_ok && labelled && type_ok
}

/// Maps a kube error to a category, naming the resource and the action.
fn map_kube(e: kube::Error, resource: &str, action: &str) -> Error {
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
        self.ensure_namespace(&secret.namespace).await?;
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &secret.namespace);
        let resource = secret.describe();
        for attempt in 1..=MAX_ATTEMPTS {
            let existing = api
                .get_opt(&secret.name)
                .await
                .map_err(|e| map_kube(e, &resource, "read"))?;
            match existing {
                None => {
                    let new = Secret {
                        metadata: ObjectMeta {
                            name: Some(secret.name.clone()),
                            namespace: Some(secret.namespace.clone()),
                            labels: Some(BTreeMap::from([(
                                MANAGED_BY_LABEL.0.to_string(),
                                MANAGED_BY_LABEL.1.to_string(),
                            )])),
                            ..ObjectMeta::default()
                        },
                        type_: Some("Opaque".to_string()),
                        data: Some(desired_data(token)),
                        ..Secret::default()
                    };
                    match api.create(&PostParams::default(), &new).await {
                        Ok(_) => {
                            tracing::info!(secret = %secret, "created runner token secret");
                            return Ok(SecretOutcome::Created);
                        }
                        Err(e) => match map_kube(e, &resource, "create") {
                            Error::AlreadyExists { .. } if attempt < MAX_ATTEMPTS => continue,
                            other => return Err(other),
                        },
                    }
                }
                Some(current) if is_current(&current, token) => {
                    tracing::info!(secret = %secret, "runner token secret already current");
                    return Ok(SecretOutcome::Unchanged);
                }
                Some(mut current) => {
                    if current.type_.as_deref().is_some_and(|t| t != "Opaque") {
                        return Err(Error::Conflict {
                            resource,
                            action: "update".into(),
                            detail: format!(
                                "it has type {:?}, not Opaque; delete it or choose another runners.secret",
                                current.type_
                            ),
                        });
                    }
                    current.data = Some(desired_data(token));
                    current.string_data = None;
                    current
                        .metadata
                        .labels
                        .get_or_insert_with(BTreeMap::new)
                        .insert(
                            MANAGED_BY_LABEL.0.to_string(),
                            MANAGED_BY_LABEL.1.to_string(),
                        );
                    // resourceVersion from the read makes this an optimistic, race-safe replace.
                    match api
                        .replace(&secret.name, &PostParams::default(), &current)
                        .await
                    {
                        Ok(_) => {
                            tracing::info!(secret = %secret, "updated runner token secret");
                            return Ok(SecretOutcome::Updated);
                        }
                        Err(e) => match map_kube(e, &resource, "update") {
                            Error::Conflict { .. } | Error::NotFound { .. }
                                if attempt < MAX_ATTEMPTS =>
                            {
                                continue;
                            }
                            other => return Err(other),
                        },
                    }
                }
            }
        }
        Err(Error::Conflict {
            resource,
            action: "create or update".into(),
            detail: format!("still racing after {MAX_ATTEMPTS} attempts"),
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
        match api.delete(&secret.name, &DeleteParams::default()).await {
            Ok(_) => {
                tracing::info!(secret = %secret, "deleted runner token secret");
                Ok(true)
            }
            Err(e) => match map_kube(e, &secret.describe(), "delete") {
                Error::NotFound { .. } => Ok(false),
                other => Err(other),
            },
        }
    }
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
        assert!(is_current(&s, &token));
        assert!(!is_current(&s, &RunnerToken::new("glrt-other").unwrap()));
        s.data
            .as_mut()
            .unwrap()
            .insert("extra".into(), ByteString(vec![1]));
        assert!(!is_current(&s, &token));
        s.data = Some(desired_data(&token));
        s.metadata.labels = None;
        assert!(!is_current(&s, &token));
    }
}
