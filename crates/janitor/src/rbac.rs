//! RBAC for running the janitor in-cluster: a namespace-scoped ServiceAccount, Role and RoleBinding.
//!
//! The objects are k8s-openapi's typed structs ([`rbac_objects`]), serialised to YAML
//! ([`rbac_manifest`]) only at the edge, so every field name and nesting is the API's own.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::Result;
use crate::model::validate_namespace;

/// The verbs the janitor needs on pods, and nothing more.
pub const POD_VERBS: &[&str] = &["get", "list", "watch", "delete"];

/// The verbs `reap explain` (a list) and the controller (a watch of Warning Events) need on
/// core/v1 Events, reading why a Pending pod has not started.
pub const EVENT_READ_VERBS: &[&str] = &["list", "watch"];

/// The janitor's RBAC objects: one ServiceAccount, and a Role plus RoleBinding per namespace.
#[derive(Debug, Clone, PartialEq)]
pub struct RbacObjects {
    /// The ServiceAccount, in the first namespace.
    pub service_account: ServiceAccount,
    /// One Role per namespace (pods: [`POD_VERBS`]).
    pub roles: Vec<Role>,
    /// One RoleBinding per namespace, binding its Role to the ServiceAccount.
    pub bindings: Vec<RoleBinding>,
}

/// Builds the ServiceAccount `name` in the first namespace and, in every namespace, a Role (pods:
/// get, list, watch, delete) and a RoleBinding of that Role to the ServiceAccount.
pub fn rbac_objects(namespaces: &[String], name: &str) -> Result<RbacObjects> {
    let Some(home) = namespaces.first() else {
        return Err(crate::Error::invalid(
            "namespace",
            "no namespace given; name at least one (e.g. gitlab-runner)",
        ));
    };
    for ns in namespaces {
        validate_namespace(ns)?;
    }
    validate_namespace(name).map_err(|_| {
        crate::Error::invalid(
            "service account name",
            format!(
                "{name:?} must be 1-63 lowercase letters, digits and '-' (e.g. glrunner-janitor)"
            ),
        )
    })?;
    let meta = |namespace: &str| ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(namespace.to_owned()),
        labels: Some(BTreeMap::from([
            (
                "app.kubernetes.io/name".to_owned(),
                "glrunner-janitor".to_owned(),
            ),
            (
                "app.kubernetes.io/managed-by".to_owned(),
                "glrunner".to_owned(),
            ),
        ])),
        ..ObjectMeta::default()
    };
    let service_account = ServiceAccount {
        metadata: meta(home),
        ..ServiceAccount::default()
    };
    let roles = namespaces
        .iter()
        .map(|ns| Role {
            metadata: meta(ns),
            rules: Some(vec![
                PolicyRule {
                    api_groups: Some(vec![String::new()]),
                    resources: Some(vec!["pods".to_owned()]),
                    verbs: POD_VERBS.iter().map(|v| (*v).to_owned()).collect(),
                    ..PolicyRule::default()
                },
                // The classifier reads core/v1 Events (`reap explain` lists them, the controller
                // watches the Warnings; both field-selected on involvedObject.kind).
                PolicyRule {
                    api_groups: Some(vec![String::new()]),
                    resources: Some(vec!["events".to_owned()]),
                    verbs: EVENT_READ_VERBS.iter().map(|v| (*v).to_owned()).collect(),
                    ..PolicyRule::default()
                },
            ]),
        })
        .collect();
    let bindings = namespaces
        .iter()
        .map(|ns| RoleBinding {
            metadata: meta(ns),
            role_ref: RoleRef {
                api_group: Some("rbac.authorization.k8s.io".to_owned()),
                kind: "Role".to_owned(),
                name: name.to_owned(),
            },
            subjects: Some(vec![Subject {
                kind: "ServiceAccount".to_owned(),
                name: name.to_owned(),
                namespace: Some(home.clone()),
                ..Subject::default()
            }]),
        })
        .collect();
    Ok(RbacObjects {
        service_account,
        roles,
        bindings,
    })
}

/// Renders [`rbac_objects`] as a multi-document YAML manifest (ServiceAccount, then per namespace
/// its Role and RoleBinding). Apply it with `kubectl apply -f -`; the janitor then runs as a
/// CronJob with `serviceAccountName: name`.
pub fn rbac_manifest(namespaces: &[String], name: &str) -> Result<String> {
    let objects = rbac_objects(namespaces, name)?;
    let yaml = |doc: std::result::Result<String, serde_norway::Error>| {
        doc.map_err(|e| crate::Error::Backend {
            backend: "yaml",
            action: "render RBAC manifest".into(),
            resource: format!("service account {name}"),
            message: e.to_string(),
            source: Some(Box::new(e)),
        })
    };
    // k8s-openapi's serialisers write each object's `apiVersion` and `kind` themselves.
    let mut docs = vec![yaml(serde_norway::to_string(&objects.service_account))?];
    for (role, binding) in objects.roles.iter().zip(&objects.bindings) {
        docs.push(yaml(serde_norway::to_string(role))?);
        docs.push(yaml(serde_norway::to_string(binding))?);
    }
    Ok(docs.join("---\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_documents_parse_back_into_the_typed_objects() {
        let namespaces = ["gitlab-runner".to_owned(), "jobs".to_owned()];
        let objects = rbac_objects(&namespaces, "glrunner-janitor").unwrap();
        let yaml = rbac_manifest(&namespaces, "glrunner-janitor").unwrap();
        let docs: Vec<serde_json::Value> = yaml
            .split("---\n")
            .map(|d| serde_norway::from_str(d).unwrap())
            .collect();
        let kinds: Vec<(&str, &str, &str)> = docs
            .iter()
            .map(|d| {
                (
                    d["apiVersion"].as_str().unwrap(),
                    d["kind"].as_str().unwrap(),
                    d["metadata"]["namespace"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            kinds,
            [
                ("v1", "ServiceAccount", "gitlab-runner"),
                ("rbac.authorization.k8s.io/v1", "Role", "gitlab-runner"),
                (
                    "rbac.authorization.k8s.io/v1",
                    "RoleBinding",
                    "gitlab-runner"
                ),
                ("rbac.authorization.k8s.io/v1", "Role", "jobs"),
                ("rbac.authorization.k8s.io/v1", "RoleBinding", "jobs"),
            ]
        );
        // Every document deserialises into k8s-openapi's type and equals the typed object.
        let role: Role = serde_json::from_value(docs[3].clone()).unwrap();
        assert_eq!(role, objects.roles[1]);
        let binding: RoleBinding = serde_json::from_value(docs[4].clone()).unwrap();
        assert_eq!(binding, objects.bindings[1]);
        let rules = role.rules.as_ref().unwrap();
        let rule = &rules[0];
        assert_eq!(rule.verbs, POD_VERBS);
        assert_eq!(rule.api_groups.as_deref(), Some(&[String::new()][..]));
        // Events: list only (reading, never writing or watching).
        assert_eq!(rules.len(), 2);
        assert_eq!(
            rules[1].resources.as_deref(),
            Some(&["events".to_owned()][..])
        );
        assert_eq!(rules[1].verbs, EVENT_READ_VERBS);
        let subject = &binding.subjects.as_ref().unwrap()[0];
        assert_eq!(
            (subject.kind.as_str(), subject.namespace.as_deref()),
            ("ServiceAccount", Some("gitlab-runner"))
        );
        assert!(!yaml.contains("ClusterRole"));
    }

    #[test]
    fn bad_names_are_invalid_input() {
        assert!(rbac_manifest(&[], "x").is_err());
        assert!(rbac_manifest(&["Bad_NS".into()], "x").is_err());
        let err = rbac_manifest(&["ns".into()], "Bad Name").unwrap_err();
        assert!(err.to_string().contains("service account name"), "{err}");
    }
}
