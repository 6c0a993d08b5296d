//! RBAC for running the janitor in-cluster: a namespace-scoped ServiceAccount, Role and RoleBinding.

use crate::Result;
use crate::model::validate_namespace;

/// The verbs the janitor needs on pods, and nothing more.
pub const POD_VERBS: &[&str] = &["get", "list", "watch", "delete"];

/// Renders a multi-document YAML manifest: a ServiceAccount `name` in the first namespace and, in
/// every namespace, a Role (pods: get, list, watch, delete) and a RoleBinding to that account.
/// Apply it with `kubectl apply -f -`; the janitor then runs as a CronJob with `serviceAccountName: name`.
pub fn rbac_manifest(namespaces: &[String], name: &str) -> Result<String> {
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
    let labels = "    app.kubernetes.io/name: glrunner-janitor\n    app.kubernetes.io/managed-by: glrunner\n";
    let verbs = POD_VERBS
        .iter()
        .map(|v| format!("\"{v}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let mut out = format!(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: {name}\n  namespace: {home}\n  labels:\n{labels}"
    );
    for ns in namespaces {
        out.push_str(&format!(
            "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: {name}\n  namespace: {ns}\n  \
             labels:\n{labels}rules:\n  - apiGroups: [\"\"]\n    resources: [\"pods\"]\n    verbs: [{verbs}]\n\
             ---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: {name}\n  \
             namespace: {ns}\n  labels:\n{labels}roleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: Role\n  \
             name: {name}\nsubjects:\n  - kind: ServiceAccount\n    name: {name}\n    namespace: {home}\n"
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_has_one_role_and_binding_per_namespace() {
        let y =
            rbac_manifest(&["gitlab-runner".into(), "jobs".into()], "glrunner-janitor").unwrap();
        let kinds = |k: &str| y.lines().filter(|l| *l == format!("kind: {k}")).count();
        assert_eq!(kinds("ServiceAccount"), 1);
        assert_eq!(kinds("Role"), 2);
        assert_eq!(kinds("RoleBinding"), 2);
        assert!(y.contains("verbs: [\"get\", \"list\", \"watch\", \"delete\"]"));
        assert!(y.contains("namespace: jobs"));
        assert!(!y.contains("ClusterRole"));
        assert!(rbac_manifest(&[], "x").is_err());
        assert!(rbac_manifest(&["Bad_NS".into()], "x").is_err());
    }
}
