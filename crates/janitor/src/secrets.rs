//! The executor's per-job Secrets (registry credentials) whose job pod is gone: which to delete.
//!
//! GitLab Runner's Kubernetes executor (gitlab-org/gitlab-runner#4184, "Kubernetes executor does
//! not clean up secrets"; mirror gitlabhq/gitlab-runner at d79f3e7, `executors/kubernetes/kubernetes.go`):
//!
//! - `setupCredentials` creates one Secret per job when the job has registry credentials:
//!   type `kubernetes.io/dockercfg` (`api.SecretTypeDockercfg`), one key `.dockercfg`, **no
//!   labels**, named `generateNameForK8sResources(Build.ProjectUniqueName())`, i.e.
//!   `runner-<runner short token>-project-<project id>-concurrent-<n>-<8 chars of [a-z0-9]>`
//!   (`common/build.go` `ProjectUniqueName`; `k8sResourcesNameSuffixLength = 8`, `chars`), cut
//!   to 63 characters;
//! - after creating the pod, `setOwnerReferencesForResources` sets the Secret's
//!   `ownerReferences` to that pod (`apiVersion: v1, kind: Pod`, name, uid), so the garbage
//!   collector deletes it with the pod;
//! - `cleanupResources` deletes it explicitly only when it has no owner reference.
//!
//! So a Secret is left behind when the runner died between creating it and setting the owner
//! (no owner reference, no cleanup), or when garbage collection has not run for its owner. This
//! module reaps exactly those: the executor's name shape **and** type, owner references that are
//! only Pods none of which exists, or none at all past the pending timeout + grace; never a
//! Secret any pod still names in `imagePullSecrets`, never one outside the namespaces.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use crate::policy::Policy;

/// The Secret type the executor gives its per-job registry credentials.
pub const EXECUTOR_SECRET_TYPE: &str = "kubernetes.io/dockercfg";

/// The field selector that lists only that type (secrets support `type` as a field selector).
pub fn field_selector() -> String {
    format!("type={EXECUTOR_SECRET_TYPE}")
}

/// Whether `name` has the executor's shape:
/// `runner-<token>-project-<digits>-concurrent-<digits>-<8 of [a-z0-9]>`.
pub fn is_executor_secret_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("runner-") else {
        return false;
    };
    let Some((head, suffix)) = rest.rsplit_once('-') else {
        return false;
    };
    if suffix.len() != 8
        || !suffix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return false;
    }
    let Some((head, concurrent)) = head.rsplit_once("-concurrent-") else {
        return false;
    };
    let Some((token, project)) = head.rsplit_once("-project-") else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    !token.is_empty() && digits(project) && digits(concurrent)
}

/// The verdict on one Secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", content = "why", rename_all = "snake_case")]
pub enum SecretDecision {
    /// Leave it (why, as a short code).
    Keep(&'static str),
    /// Delete it (why, as a short code: `owner_pod_gone`, `orphaned_without_owner`).
    Reap(&'static str),
}

/// What the Secret decision needs to know about the pods.
#[derive(Debug, Default, Clone)]
pub struct PodsView {
    /// UIDs of the job pods that exist.
    pub uids: HashSet<String>,
    /// `(namespace, name)` of every Secret some existing pod names in `imagePullSecrets`.
    pub pull_secrets: BTreeSet<(String, String)>,
}

/// Decides on the Secret with metadata `meta` (already listed by [`field_selector`]) at `now`.
pub fn decide_secret(
    meta: &ObjectMeta,
    now: Timestamp,
    policy: &Policy,
    pods: &PodsView,
) -> SecretDecision {
    let (Some(ns), Some(name)) = (meta.namespace.as_deref(), meta.name.as_deref()) else {
        return SecretDecision::Keep("incomplete_metadata");
    };
    if !policy.namespaces.contains(ns) {
        return SecretDecision::Keep("outside_namespaces");
    }
    if !is_executor_secret_name(name) {
        return SecretDecision::Keep("not_executor_name");
    }
    if meta.deletion_timestamp.is_some() {
        return SecretDecision::Keep("terminating");
    }
    if pods
        .pull_secrets
        .contains(&(ns.to_owned(), name.to_owned()))
    {
        return SecretDecision::Keep("used_by_pod");
    }
    let Some(created) = meta.creation_timestamp.as_ref().map(|t| t.0) else {
        return SecretDecision::Keep("incomplete_metadata");
    };
    let age: Duration = now
        .duration_since(created)
        .try_into()
        .unwrap_or(Duration::ZERO);
    let owners = meta.owner_references.as_deref().unwrap_or_default();
    if owners.is_empty() {
        // The executor sets the owner right after creating the pod; a Secret still without one
        // after the pod could have waited out the pending timeout lost its runner.
        return if age > policy.pending_timeout.saturating_add(policy.grace) {
            SecretDecision::Reap("orphaned_without_owner")
        } else {
            SecretDecision::Keep("no_owner_yet")
        };
    }
    if owners
        .iter()
        .any(|o| o.kind != "Pod" || o.api_version != "v1")
    {
        return SecretDecision::Keep("owned_by_other_kind");
    }
    if owners.iter().any(|o| pods.uids.contains(&o.uid)) {
        return SecretDecision::Keep("owner_pod_exists");
    }
    // Past the grace, so the watch has surely delivered an owner pod created with it.
    if age > policy.grace {
        SecretDecision::Reap("owner_pod_gone")
    } else {
        SecretDecision::Keep("within_grace")
    }
}

/// When [`decide_secret`]'s verdict changes with time alone (`None`: only an event can change it).
pub fn secret_deadline(
    meta: &ObjectMeta,
    now: Timestamp,
    policy: &Policy,
    pods: &PodsView,
) -> Option<Timestamp> {
    if decide_secret(meta, now, policy, pods) == SecretDecision::Keep("within_grace")
        || decide_secret(meta, now, policy, pods) == SecretDecision::Keep("no_owner_yet")
    {
        let created = meta.creation_timestamp.as_ref()?.0;
        let wait = if meta
            .owner_references
            .as_deref()
            .unwrap_or_default()
            .is_empty()
        {
            policy.pending_timeout.saturating_add(policy.grace)
        } else {
            policy.grace
        };
        let wait = jiff::SignedDuration::try_from(wait).ok()?;
        return created
            .checked_add(wait)
            .ok()?
            .checked_add(jiff::SignedDuration::from_millis(1))
            .ok();
    }
    None
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};

    use super::*;

    const NAME: &str = "runner-t3st-tok-project-42-concurrent-0-a1b2c3d4";

    fn meta(name: &str, created: &str, owners: Vec<OwnerReference>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some("gitlab-runner".into()),
            creation_timestamp: Some(Time(created.parse().unwrap())),
            owner_references: (!owners.is_empty()).then_some(owners),
            ..ObjectMeta::default()
        }
    }

    fn pod_owner(uid: &str) -> OwnerReference {
        OwnerReference {
            api_version: "v1".into(),
            kind: "Pod".into(),
            name: "runner-t3st-tok-project-42-concurrent-0-zzzz9999".into(),
            uid: uid.into(),
            ..OwnerReference::default()
        }
    }

    fn policy() -> Policy {
        Policy::new(["gitlab-runner"])
            .with_grace(Duration::from_secs(60))
            .with_pending_timeout(Duration::from_secs(180))
    }

    #[test]
    fn the_executor_name_shape() {
        assert!(is_executor_secret_name(NAME));
        assert!(is_executor_secret_name(
            "runner-abc-project-1-concurrent-12-00000000"
        ));
        for other in [
            "runner-token",
            "gitlab-runner",
            "runner-abc-project-1-concurrent-0-A1B2C3D4",
            "runner-abc-project-1-concurrent-0-a1b2c3d",
            "runner-abc-project-x-concurrent-0-a1b2c3d4",
            "runner-abc-concurrent-0-a1b2c3d4",
            "my-runner-abc-project-1-concurrent-0-a1b2c3d4",
            "runner--project-1-concurrent-0-a1b2c3d4",
        ] {
            assert!(!is_executor_secret_name(other), "{other}");
        }
    }

    #[test]
    fn reaped_only_when_its_pod_is_gone_or_it_never_got_one() {
        let now: Timestamp = "2026-01-01T01:00:00Z".parse().unwrap();
        let old = "2026-01-01T00:00:00Z";
        let fresh = "2026-01-01T00:59:30Z";
        let live = PodsView {
            uids: HashSet::from(["live".to_owned()]),
            ..PodsView::default()
        };
        let p = policy();
        let d = |m: &ObjectMeta, v: &PodsView| decide_secret(m, now, &p, v);
        assert_eq!(
            d(&meta(NAME, old, vec![pod_owner("gone")]), &live),
            SecretDecision::Reap("owner_pod_gone")
        );
        assert_eq!(
            d(&meta(NAME, old, vec![pod_owner("live")]), &live),
            SecretDecision::Keep("owner_pod_exists")
        );
        assert_eq!(
            d(&meta(NAME, fresh, vec![pod_owner("gone")]), &live),
            SecretDecision::Keep("within_grace")
        );
        assert_eq!(
            d(&meta(NAME, old, vec![]), &live),
            SecretDecision::Reap("orphaned_without_owner")
        );
        assert_eq!(
            d(&meta(NAME, fresh, vec![]), &live),
            SecretDecision::Keep("no_owner_yet")
        );
        let mut rs = pod_owner("gone");
        rs.kind = "ReplicaSet".into();
        rs.api_version = "apps/v1".into();
        assert_eq!(
            d(&meta(NAME, old, vec![rs]), &live),
            SecretDecision::Keep("owned_by_other_kind")
        );
        assert_eq!(
            d(&meta("gitlab-runner-token", old, vec![]), &live),
            SecretDecision::Keep("not_executor_name")
        );
        let used = PodsView {
            pull_secrets: BTreeSet::from([("gitlab-runner".to_owned(), NAME.to_owned())]),
            ..PodsView::default()
        };
        assert_eq!(
            d(&meta(NAME, old, vec![]), &used),
            SecretDecision::Keep("used_by_pod")
        );
        let mut foreign = meta(NAME, old, vec![]);
        foreign.namespace = Some("team-b".into());
        assert_eq!(
            d(&foreign, &live),
            SecretDecision::Keep("outside_namespaces")
        );
        // The deadline is where the verdict flips.
        let m = meta(NAME, fresh, vec![pod_owner("gone")]);
        let at = secret_deadline(&m, now, &p, &live).unwrap();
        assert_eq!(
            decide_secret(&m, at, &p, &live),
            SecretDecision::Reap("owner_pod_gone")
        );
    }
}
