//! Conformance suites every `ReleaseManager` and `TokenSecrets` backend must pass.
//!
//! Not API-stable. Each case creates and deletes the releases and Secrets it names, in the
//! namespaces it is given; give each run its own namespaces. Cases panic on failure.

use std::time::Duration;

use crate::error::ErrorKind;
use crate::release::{ChartSource, ReleaseId, ReleaseManager, ReleaseSpec, ReleaseState, Removal};
use crate::secret::{RunnerToken, SecretOutcome, SecretRef, TokenSecrets};
use crate::values::RunnerValues;

/// Values used by the cases: a valid runner with concurrent 20 and tag `conformance`.
pub fn test_values() -> RunnerValues {
    RunnerValues::new("https://gitlab.example.com/")
        .with_concurrent(20)
        .with_runner_tags(["conformance"])
}

/// A spec named `name` in `namespace` with [`test_values`] and a 5-minute bound.
pub fn test_spec(namespace: &str, name: &str) -> ReleaseSpec {
    ReleaseSpec::new(name, namespace, test_values()).with_timeout(Duration::from_secs(300))
}

/// Where the cases take their chart from, and the recovery cases' timing.
#[derive(Debug, Clone)]
pub struct Suite {
    /// The chart every case installs (a chart directory on a real engine without network).
    pub chart: ChartSource,
    /// How long the recovery cases let an install or upgrade run before they kill it (drop its
    /// future: [`crate::HelmCli`] kills the helm process). The backend's wait must last longer.
    pub kill_after: Duration,
    /// The timeout of the recovery cases' specs: longer than the backend's wait, so that
    /// operations that are not killed succeed; a killed one is cleared once pending this long.
    pub pending_timeout: Duration,
}

impl Default for Suite {
    /// The default chart; timing for the in-memory backend's default [`crate::Timing`] (an
    /// install takes 45 s, an upgrade 30 s).
    fn default() -> Self {
        Self {
            chart: ChartSource::default(),
            kill_after: Duration::from_secs(10),
            pending_timeout: Duration::from_secs(120),
        }
    }
}

impl Suite {
    fn spec(&self, namespace: &str, name: &str) -> ReleaseSpec {
        test_spec(namespace, name).with_chart(self.chart.clone())
    }
}

/// Runs every release case with the default chart, each in `<prefix>-<case>` namespaces.
pub async fn run_release_suite(rm: &dyn ReleaseManager, prefix: &str) {
    run_release_suite_with(rm, prefix, &Suite::default()).await;
}

/// Runs every release case with `suite`'s chart, each in `<prefix>-<case>` namespaces.
pub async fn run_release_suite_with(rm: &dyn ReleaseManager, prefix: &str, suite: &Suite) {
    ensure_installs_then_is_idempotent(rm, suite, &format!("{prefix}-idem")).await;
    upgrade_of_missing_release_is_not_found(rm, suite, &format!("{prefix}-upg-missing")).await;
    upgrade_applies_new_values(rm, suite, &format!("{prefix}-upg")).await;
    uninstall_is_idempotent(rm, suite, &format!("{prefix}-uninst")).await;
    status_of_missing_release_is_none(rm, &format!("{prefix}-missing")).await;
    list_is_scoped_by_namespace(
        rm,
        suite,
        &format!("{prefix}-list-a"),
        &format!("{prefix}-list-b"),
    )
    .await;
    invalid_spec_is_rejected(rm, suite, &format!("{prefix}-invalid")).await;
}

/// `ensure` installs (revision 1, deployed); `ensure` again with the same spec leaves one deployed release.
pub async fn ensure_installs_then_is_idempotent(rm: &dyn ReleaseManager, suite: &Suite, ns: &str) {
    let spec = suite.spec(ns, "runner");
    let first = rm.ensure(&spec).await.expect("first ensure");
    assert_eq!(
        (first.name.as_str(), first.namespace.as_str()),
        ("runner", ns)
    );
    assert_eq!(first.state, ReleaseState::Deployed);
    assert_eq!(first.revision, 1);
    let second = rm.ensure(&spec).await.expect("second ensure");
    assert_eq!(second.state, ReleaseState::Deployed);
    assert!(second.revision >= first.revision);
    let listed = rm.list(Some(ns)).await.expect("list");
    assert_eq!(
        listed.iter().filter(|r| r.name == "runner").count(),
        1,
        "{listed:?}"
    );
    let status = rm
        .status(&spec.id())
        .await
        .expect("status")
        .expect("release exists");
    assert_eq!(status.state, ReleaseState::Deployed);
    assert_eq!(status.revision, second.revision);
    assert!(
        status.chart_version.is_some(),
        "status reports the chart version: {status:?}"
    );
    let runner = status.runner.expect("status reports the release's values");
    assert_eq!(runner.concurrent, 20);
    assert_eq!(runner.tags, ["conformance"]);
    rm.uninstall(&spec.id(), Duration::from_secs(60))
        .await
        .expect("cleanup");
}

/// `upgrade` of a release that does not exist is [`ErrorKind::NotFound`] and installs nothing.
pub async fn upgrade_of_missing_release_is_not_found(
    rm: &dyn ReleaseManager,
    suite: &Suite,
    ns: &str,
) {
    let spec = suite.spec(ns, "ghost");
    let e = rm
        .upgrade(&spec)
        .await
        .expect_err("upgrade of a missing release");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains("ghost"), "{e}");
    assert!(rm.status(&spec.id()).await.expect("status").is_none());
}

/// `upgrade` of an existing release applies the new values and bumps the revision.
pub async fn upgrade_applies_new_values(rm: &dyn ReleaseManager, suite: &Suite, ns: &str) {
    let spec = suite.spec(ns, "runner");
    let first = rm.ensure(&spec).await.expect("install");
    let mut changed = spec.clone();
    changed.values.concurrent = 40;
    let up = rm.upgrade(&changed).await.expect("upgrade");
    assert_eq!(up.state, ReleaseState::Deployed);
    assert!(up.revision > first.revision);
    let runner = up.runner.expect("the upgrade reports the new values");
    assert_eq!(runner.concurrent, 40);
    assert_eq!(runner.tags, ["conformance"]);
    let status = rm
        .status(&spec.id())
        .await
        .expect("status")
        .expect("release exists");
    assert_eq!(status.revision, up.revision);
    assert_eq!(status.runner.expect("values").concurrent, 40);
    rm.uninstall(&spec.id(), Duration::from_secs(60))
        .await
        .expect("cleanup");
}

/// `uninstall` removes the release; a second `uninstall` reports it was already absent.
pub async fn uninstall_is_idempotent(rm: &dyn ReleaseManager, suite: &Suite, ns: &str) {
    let spec = suite.spec(ns, "runner");
    rm.ensure(&spec).await.expect("install");
    assert_eq!(
        rm.uninstall(&spec.id(), Duration::from_secs(60))
            .await
            .expect("uninstall"),
        Removal::Removed
    );
    assert!(rm.status(&spec.id()).await.expect("status").is_none());
    assert_eq!(
        rm.uninstall(&spec.id(), Duration::from_secs(60))
            .await
            .expect("uninstall again"),
        Removal::AlreadyAbsent
    );
}

/// `status` of a release that never existed is `None`, not an error.
pub async fn status_of_missing_release_is_none(rm: &dyn ReleaseManager, ns: &str) {
    assert!(
        rm.status(&ReleaseId::new(ns, "never-installed"))
            .await
            .expect("status")
            .is_none()
    );
}

/// `list(Some(ns))` shows only that namespace; `list(None)` shows both.
pub async fn list_is_scoped_by_namespace(
    rm: &dyn ReleaseManager,
    suite: &Suite,
    ns_a: &str,
    ns_b: &str,
) {
    let a = suite.spec(ns_a, "runner-a");
    let b = suite.spec(ns_b, "runner-b");
    rm.ensure(&a).await.expect("install a");
    rm.ensure(&b).await.expect("install b");
    let only_a = rm.list(Some(ns_a)).await.expect("list a");
    assert_eq!(
        only_a.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["runner-a"]
    );
    let all = rm.list(None).await.expect("list all");
    assert!(
        all.iter().any(|r| r.id() == a.id()) && all.iter().any(|r| r.id() == b.id()),
        "{all:?}"
    );
    rm.uninstall(&a.id(), Duration::from_secs(60))
        .await
        .expect("cleanup a");
    rm.uninstall(&b.id(), Duration::from_secs(60))
        .await
        .expect("cleanup b");
}

/// Invalid specs fail with [`ErrorKind::InvalidInput`] naming the field, and nothing is installed.
pub async fn invalid_spec_is_rejected(rm: &dyn ReleaseManager, suite: &Suite, ns: &str) {
    let mut spec = suite.spec(ns, "runner");
    spec.values.concurrent = 0;
    let e = rm.ensure(&spec).await.expect_err("concurrent 0");
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.issues().iter().any(|i| i.field == "concurrent"), "{e}");
    let bad_name = suite.spec(ns, "Not_A_Name");
    let e = rm.ensure(&bad_name).await.expect_err("bad release name");
    assert!(e.issues().iter().any(|i| i.field == "release"), "{e}");
    assert!(rm.list(Some(ns)).await.expect("list").is_empty());
}

/// Runs the cases of operations killed mid-wait, in `<prefix>-<case>` namespaces. The backend's
/// install and upgrade must wait longer than `suite.kill_after` and less than
/// `suite.pending_timeout`.
pub async fn run_recovery_suite(rm: &dyn ReleaseManager, prefix: &str, suite: &Suite) {
    killed_install_is_cleared_and_the_rerun_installs(rm, suite, &format!("{prefix}-kill-inst"))
        .await;
    killed_upgrade_is_rolled_back_and_the_rerun_upgrades(rm, suite, &format!("{prefix}-kill-upg"))
        .await;
}

/// Runs `operation` until it is mid-wait — at least `suite.kill_after` has passed and the release
/// shows `state` — then drops it (kills it); `false` when it finished first. Waiting for the state,
/// not a fixed time, keeps the case honest on a loaded machine, where helm may not have written its
/// release record within `kill_after`.
async fn kill_when_pending<T>(
    rm: &dyn ReleaseManager,
    id: &ReleaseId,
    state: ReleaseState,
    suite: &Suite,
    operation: impl std::future::Future<Output = T>,
) -> bool {
    let started = tokio::time::Instant::now();
    let pending = async {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if started.elapsed() < suite.kill_after {
                continue;
            }
            if let Ok(Some(release)) = rm.status(id).await
                && release.state == state
            {
                return;
            }
        }
    };
    tokio::select! {
        _ = operation => false,
        () = pending => true,
    }
}

/// An install killed during its wait leaves the release `pending-install` (listed as such);
/// `ensure` again clears it (an uninstall) and installs afresh: revision 1, deployed.
pub async fn killed_install_is_cleared_and_the_rerun_installs(
    rm: &dyn ReleaseManager,
    suite: &Suite,
    ns: &str,
) {
    let spec = suite.spec(ns, "killed").with_timeout(suite.pending_timeout);
    assert!(
        kill_when_pending(
            rm,
            &spec.id(),
            ReleaseState::PendingInstall,
            suite,
            rm.ensure(&spec)
        )
        .await,
        "the install was still waiting when it was killed"
    );
    let left = rm
        .status(&spec.id())
        .await
        .expect("status")
        .expect("the killed install left a release");
    assert_eq!(left.state, ReleaseState::PendingInstall, "{left:?}");
    let listed = rm.list(Some(ns)).await.expect("list");
    assert!(
        listed
            .iter()
            .any(|r| r.name == "killed" && r.state == ReleaseState::PendingInstall),
        "a pending release is listed: {listed:?}"
    );
    let done = rm.ensure(&spec).await.expect("the re-run converges");
    assert_eq!(
        (done.revision, done.state.clone()),
        (1, ReleaseState::Deployed),
        "{done:?}"
    );
    rm.uninstall(&spec.id(), Duration::from_secs(60))
        .await
        .expect("cleanup");
}

/// An upgrade killed during its wait leaves the release `pending-upgrade`; `ensure` with the
/// new values again rolls it back to the deployed revision (revision 3) and upgrades
/// (revision 4, the new values).
pub async fn killed_upgrade_is_rolled_back_and_the_rerun_upgrades(
    rm: &dyn ReleaseManager,
    suite: &Suite,
    ns: &str,
) {
    let spec = suite.spec(ns, "killed").with_timeout(suite.pending_timeout);
    let first = rm.ensure(&spec).await.expect("install");
    assert_eq!(first.revision, 1);
    let mut changed = spec.clone();
    changed.values.concurrent = 40;
    assert!(
        kill_when_pending(
            rm,
            &spec.id(),
            ReleaseState::PendingUpgrade,
            suite,
            rm.upgrade(&changed)
        )
        .await,
        "the upgrade was still waiting when it was killed"
    );
    let left = rm
        .status(&spec.id())
        .await
        .expect("status")
        .expect("release");
    assert_eq!(
        (left.revision, left.state.clone()),
        (2, ReleaseState::PendingUpgrade),
        "{left:?}"
    );
    let done = rm.ensure(&changed).await.expect("the re-run converges");
    assert_eq!(
        (done.revision, done.state.clone()),
        (4, ReleaseState::Deployed),
        "rolled back (3), then upgraded (4): {done:?}"
    );
    assert_eq!(done.runner.expect("values").concurrent, 40);
    rm.uninstall(&spec.id(), Duration::from_secs(60))
        .await
        .expect("cleanup");
}

/// Runs every Secret case in `<prefix>-<case>` namespaces.
pub async fn run_secret_suite(store: &dyn TokenSecrets, prefix: &str) {
    secret_created_updated_deleted(store, &format!("{prefix}-secret")).await;
    invalid_secret_ref_is_rejected(store).await;
}

/// The Secret is created with the token and an empty registration key, left unchanged when
/// current, updated on a new token, and deleted idempotently.
pub async fn secret_created_updated_deleted(store: &dyn TokenSecrets, ns: &str) {
    let secret = SecretRef::new(ns, "gitlab-runner-token");
    let first = RunnerToken::new("glrt-conformance-first-0123456789").expect("token");
    let second = RunnerToken::new("glrt-conformance-second-9876543210").expect("token");
    assert!(store.get(&secret).await.expect("get missing").is_none());
    assert_eq!(
        store.ensure(&secret, &first).await.expect("create"),
        SecretOutcome::Created
    );
    let stored = store.get(&secret).await.expect("get").expect("exists");
    assert_eq!(stored.token, first);
    assert!(
        stored.registration_key_empty,
        "runner-registration-token must be present and empty"
    );
    assert!(stored.managed_by_glrunner);
    assert_eq!(
        store.ensure(&secret, &first).await.expect("ensure again"),
        SecretOutcome::Unchanged
    );
    assert_eq!(
        store.ensure(&secret, &second).await.expect("update"),
        SecretOutcome::Updated
    );
    let stored = store.get(&secret).await.expect("get").expect("exists");
    assert_eq!(stored.token, second);
    assert!(stored.registration_key_empty);
    assert!(store.delete(&secret).await.expect("delete"));
    assert!(!store.delete(&secret).await.expect("delete again"));
    assert!(store.get(&secret).await.expect("get deleted").is_none());
}

/// Invalid namespaces and names fail with [`ErrorKind::InvalidInput`] before any request.
pub async fn invalid_secret_ref_is_rejected(store: &dyn TokenSecrets) {
    let token = RunnerToken::new("glrt-conformance-x").expect("token");
    let e = store
        .ensure(&SecretRef::new("Bad NS", "x"), &token)
        .await
        .expect_err("bad namespace");
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.issues().iter().any(|i| i.field == "namespace"), "{e}");
    assert!(!format!("{e} {e:?}").contains("glrt-conformance-x"));
}

/// The [`crate::ServiceAccountInstaller`] contract, in `namespace` (which exists and holds a
/// ServiceAccount `foreign` that glrunner did not create), with `missing` a namespace that does
/// not exist. Leaves no job account behind.
pub async fn run_service_account_suite(
    installer: &dyn crate::job_accounts::ServiceAccountInstaller,
    namespace: &str,
    missing: &str,
    foreign: &str,
) {
    use crate::job_accounts::JobServiceAccount;
    let arn = |name: &str| format!("arn:aws:iam::123456789012:role/glrunner-conformance-{name}");
    let pairs = |list: &[(&str, String)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(n, a)| ((*n).to_owned(), a.clone()))
            .collect()
    };
    assert!(installer.list(namespace).await.expect("list").is_empty());

    // Applied with the role annotation, then idempotent, then updated in place.
    let accounts = pairs(&[("deploy", arn("deploy")), ("read.only", arn("read"))]);
    assert_eq!(
        installer.apply(namespace, &accounts).await.expect("apply"),
        ["deploy", "read.only"]
    );
    let expected = vec![
        JobServiceAccount::new("deploy", arn("deploy")),
        JobServiceAccount::new("read.only", arn("read")),
    ];
    assert_eq!(installer.list(namespace).await.expect("list"), expected);
    installer
        .apply(namespace, &accounts)
        .await
        .expect("apply again");
    assert_eq!(installer.list(namespace).await.expect("list"), expected);
    installer
        .apply(namespace, &pairs(&[("deploy", arn("deploy-2"))]))
        .await
        .expect("apply a new role");
    assert_eq!(
        installer.list(namespace).await.expect("list")[0],
        JobServiceAccount::new("deploy", arn("deploy-2"))
    );

    // Refused: a missing namespace (404), invalid input (before any call), a foreign account.
    let e = installer
        .apply(missing, &pairs(&[("deploy", arn("deploy"))]))
        .await
        .expect_err("missing namespace");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains(missing), "{e}");
    assert!(installer.list(missing).await.expect("list").is_empty());
    for (name, role) in [
        ("Bad_Name", arn("x")),
        ("fine", "arn:aws:iam::123456789012:user/x".to_owned()),
    ] {
        let e = installer
            .apply(namespace, &pairs(&[("other", arn("other")), (name, role)]))
            .await
            .expect_err("invalid input");
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert!(
            e.issues()
                .iter()
                .any(|i| i.field == format!("--job-role {name}")),
            "{e}"
        );
    }
    let e = installer
        .apply(
            namespace,
            &pairs(&[("other", arn("other")), (foreign, arn("x"))]),
        )
        .await
        .expect_err("a foreign account");
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert!(e.to_string().contains(foreign), "{e}");
    let e = installer
        .remove(namespace, &[foreign.to_owned()])
        .await
        .expect_err("a foreign account is not deleted");
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert_eq!(
        installer.list(namespace).await.expect("list").len(),
        2,
        "nothing applied by the refused calls"
    );

    // Removed; missing ones (and a missing namespace) count as done.
    let names = ["deploy", "read.only", "never-applied"].map(str::to_owned);
    assert_eq!(
        installer.remove(namespace, &names).await.expect("remove"),
        ["deploy", "read.only"]
    );
    assert!(installer.list(namespace).await.expect("list").is_empty());
    assert!(
        installer
            .remove(namespace, &names)
            .await
            .expect("remove again")
            .is_empty()
    );
    assert!(
        installer
            .remove(missing, &names)
            .await
            .expect("remove in a missing namespace")
            .is_empty()
    );
}
