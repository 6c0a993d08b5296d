//! Draining a runner shard before its release is upgraded, so the upgrade aborts no job.
//!
//! Why: any values change (a token rotation too) rolls the runner manager pod, and GitLab Runner
//! takes SIGTERM as "abort all running builds" (GitLab Runner docs,
//! `commands/_index.md#signals`). The official runner image stops with SIGQUIT, which drains
//! ([`glrunner_runner_chart::stop`]), and glrunner's values bound that drain ([`GracefulStop`]).
//! But a release whose manager image glrunner cannot vouch for (a custom `image`) may stop with
//! SIGTERM. So before `helm upgrade` of such an existing release, the upgrade waits until the
//! shard runs no job pod: the pods in its job namespace labelled
//! [`JOB_POD_MANAGER_ID_LABEL`] with its runner's short token (the executor's own label, which
//! cannot be overridden), Pending or Running and not terminating. The wait is bounded; `--force`
//! upgrades at once.

use std::time::Duration;

use glrunner_janitor::{ListQuery, PodApi, PodInfo, PodPhase};
use glrunner_runner_chart::{
    GracefulStop, JOB_POD_MANAGER_ID_LABEL, ReleaseManager, ReleaseSpec, RunnerToken, SecretRef,
    StopSignal, TokenSecrets,
};
use serde::Serialize;
use tokio::time::Instant;

/// Default pause between two looks at the shard's job pods.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);

/// How an upgrade drains the shard first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainPolicy {
    /// Longest wait for the shard's job pods to end.
    pub timeout: Duration,
    /// Pause between two looks.
    pub poll_interval: Duration,
    /// Upgrade at once, whatever runs (today's behaviour before the drain existed).
    pub force: bool,
    /// Wait for the job pods even when the deployed manager stops gracefully by itself.
    pub wait_for_idle: bool,
}

impl DrainPolicy {
    /// Waits up to `timeout`, looking every [`DEFAULT_POLL_INTERVAL`].
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            poll_interval: DEFAULT_POLL_INTERVAL,
            force: false,
            wait_for_idle: false,
        }
    }
}

/// What the drain did before the upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DrainOutcome {
    /// The release did not exist yet: no job of it can run.
    NotInstalled,
    /// `--force`: upgraded at once; running jobs of a manager without graceful stop are aborted.
    Forced,
    /// The deployed manager stops gracefully (glrunner's preStop SIGQUIT, or the official
    /// image's SIGQUIT stop signal): the rolling update lets its running jobs finish while the new
    /// manager takes new ones, so there was nothing to wait for.
    GracefulStop,
    /// No job pod of the shard was running.
    Idle,
    /// Waited until the shard's last running job pod ended.
    Drained,
}

/// What [`drain_before_upgrade`] saw and did (the `drain` object of `runner install`/`upgrade`
/// JSON output). It never holds the short token.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DrainReport {
    /// The outcome.
    pub outcome: DrainOutcome,
    /// The namespace whose job pods were counted (`None` when the release was absent).
    pub job_namespace: Option<String>,
    /// The label selecting the shard's job pods (its value, the runner's short token, is omitted).
    pub label: &'static str,
    /// Job pods of the shard running when the drain began (`None` when not looked at).
    pub running_at_start: Option<usize>,
    /// Job pods still running when the upgrade went ahead.
    pub running_at_upgrade: Option<usize>,
    /// How long the drain waited, in seconds.
    pub waited_secs: f64,
    /// The deployed manager's graceful stop, when it has one.
    pub deployed_graceful_stop: Option<GracefulStop>,
    /// The deployed manager image's stop signal (`None` when the release was absent).
    pub deployed_stop_signal: Option<StopSignal>,
}

/// One look at the shard while waiting.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DrainProgress {
    /// The release (`namespace/name`).
    pub release: String,
    /// The job namespace.
    pub job_namespace: String,
    /// Job pods still running.
    pub running: usize,
    /// Seconds waited so far.
    pub waited_secs: f64,
    /// The bound, in seconds.
    pub timeout_secs: u64,
}

/// Why the drain stopped the upgrade.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DrainError {
    /// The shard still ran job pods when the bound ran out. Nothing was changed.
    #[error(
        "{running} job pod(s) of {release} still running in namespace {namespace:?} after {waited_secs:.0}s \
         (--drain-timeout); nothing was changed. Upgrading now would abort them: the deployed manager runs an \
         image glrunner does not know to stop with SIGQUIT, and no graceful stop of glrunner's (a SIGTERM \
         aborts running builds). Wait for the jobs, raise --drain-timeout, or pass \
         --force to upgrade at once"
    )]
    StillRunning {
        /// The release (`namespace/name`).
        release: String,
        /// The job namespace.
        namespace: String,
        /// Job pods still running.
        running: usize,
        /// Seconds waited.
        waited_secs: f64,
    },
    /// Reading the release failed.
    #[error(transparent)]
    Release(#[from] glrunner_runner_chart::Error),
    /// Listing the job pods failed.
    #[error("list the job pods of {release}: {source}")]
    Pods {
        /// The release.
        release: String,
        /// The cause.
        #[source]
        source: glrunner_janitor::Error,
    },
}

/// Whether a job pod still runs a job: Pending (starting) or Running, and not terminating.
pub fn is_running_job(pod: &PodInfo) -> bool {
    matches!(pod.phase, PodPhase::Pending | PodPhase::Running) && !pod.is_terminating()
}

/// Before `spec`'s release is upgraded: when it exists and its deployed manager would abort
/// running jobs, waits (bounded by `policy.timeout`, reporting each look to `progress`) until
/// the shard runs no job pod. `token` is the token the upgrade installs; the shard's pods carry
/// the short token of the one in the deployed release's Secret, which is read first.
pub async fn drain_before_upgrade(
    releases: &dyn ReleaseManager,
    secrets: &dyn TokenSecrets,
    pods: &dyn PodApi,
    spec: &ReleaseSpec,
    token: &RunnerToken,
    policy: &DrainPolicy,
    progress: &(dyn Fn(&DrainProgress) + Send + Sync),
) -> Result<DrainReport, DrainError> {
    let id = spec.id();
    let Some(status) = releases.status(&id).await? else {
        return Ok(DrainReport {
            outcome: DrainOutcome::NotInstalled,
            job_namespace: None,
            label: JOB_POD_MANAGER_ID_LABEL,
            running_at_start: None,
            running_at_upgrade: None,
            waited_secs: 0.0,
            deployed_graceful_stop: None,
            deployed_stop_signal: None,
        });
    };
    let deployed = status.runner.as_ref();
    let job_namespace = deployed
        .and_then(|r| r.job_namespace.clone())
        .unwrap_or_else(|| spec.namespace.clone());
    let secret_name = deployed
        .and_then(|r| r.secret_name.clone())
        .unwrap_or_else(|| spec.values.secret_name.clone());
    let secret = SecretRef::new(&spec.namespace, secret_name).for_release(&spec.name);
    // The deployed token's short id (a rotation installs a new one; running pods have the old).
    let short_id = match secrets.get(&secret).await {
        Ok(Some(stored)) => stored.token.short_id(),
        _ => token.short_id(),
    };
    let graceful = deployed.and_then(|r| r.graceful_stop);
    let stop_signal = deployed.map(|r| r.stop_signal);
    // Without a summary (values glrunner cannot read) nothing vouches for a graceful stop.
    let stops_gracefully = deployed.is_some_and(|r| r.stops_gracefully());
    let query = ListQuery {
        namespace: job_namespace.clone(),
        label_selector: Some(format!("{JOB_POD_MANAGER_ID_LABEL}={short_id}")),
        page_size: 250,
    };
    let release = id.to_string();
    let count = || async {
        pods.list_pods(&query)
            .await
            .map(|found| found.iter().filter(|p| is_running_job(p)).count())
            .map_err(|source| DrainError::Pods {
                release: release.clone(),
                source,
            })
    };
    let report = |outcome, start, now, waited: f64| DrainReport {
        outcome,
        job_namespace: Some(job_namespace.clone()),
        label: JOB_POD_MANAGER_ID_LABEL,
        running_at_start: start,
        running_at_upgrade: now,
        waited_secs: waited,
        deployed_graceful_stop: graceful,
        deployed_stop_signal: stop_signal,
    };
    if policy.force {
        // Informative only: --force must not fail on an unreachable API server.
        let running = count().await.ok();
        tracing::warn!(release = %release, running = ?running, graceful = stops_gracefully, "--force: upgrading without draining the shard first");
        return Ok(report(DrainOutcome::Forced, running, running, 0.0));
    }
    let started = Instant::now();
    let first = count().await?;
    if stops_gracefully && !policy.wait_for_idle {
        tracing::info!(release = %release, running = first, "the deployed manager stops gracefully; no wait before the upgrade");
        return Ok(report(
            DrainOutcome::GracefulStop,
            Some(first),
            Some(first),
            0.0,
        ));
    }
    let mut running = first;
    loop {
        let waited = started.elapsed();
        if running == 0 {
            let outcome = if first == 0 {
                DrainOutcome::Idle
            } else {
                DrainOutcome::Drained
            };
            return Ok(report(outcome, Some(first), Some(0), waited.as_secs_f64()));
        }
        progress(&DrainProgress {
            release: release.clone(),
            job_namespace: job_namespace.clone(),
            running,
            waited_secs: waited.as_secs_f64(),
            timeout_secs: policy.timeout.as_secs(),
        });
        if waited >= policy.timeout {
            return Err(DrainError::StillRunning {
                release,
                namespace: job_namespace,
                running,
                waited_secs: waited.as_secs_f64(),
            });
        }
        let remaining = policy.timeout - waited;
        tokio::time::sleep(policy.poll_interval.min(remaining)).await;
        running = count().await?;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use glrunner_janitor::memory::{InMemoryPods, NewPod};
    use glrunner_runner_chart::{
        InMemoryReleases, InMemoryTokenSecrets, ManagerImage, RunnerValues, Timing, deploy_runner,
    };

    use super::*;

    const TOKEN: &str = "glrt-3LJ4iHZt1restOfTheToken";

    /// A manager image whose stop signal glrunner cannot know (taken as SIGTERM).
    fn custom_image() -> Option<ManagerImage> {
        Some(ManagerImage {
            registry: "123456789012.dkr.ecr.us-east-1.amazonaws.com".into(),
            image: "ci/runner".into(),
            tag: Some("v1".into()),
        })
    }

    /// A deployed release with `graceful` (glrunner's hook or none) and, without it, a custom
    /// manager image, so nothing drains it by itself.
    async fn installed(
        graceful: Option<GracefulStop>,
    ) -> (InMemoryReleases, InMemoryTokenSecrets, ReleaseSpec) {
        let image = if graceful.is_none() {
            custom_image()
        } else {
            None
        };
        installed_with(graceful, image).await
    }

    async fn installed_with(
        graceful: Option<GracefulStop>,
        image: Option<ManagerImage>,
    ) -> (InMemoryReleases, InMemoryTokenSecrets, ReleaseSpec) {
        let secrets = InMemoryTokenSecrets::new();
        let releases = InMemoryReleases::new()
            .with_timing(Timing::instant())
            .with_secrets(secrets.clone());
        let spec = ReleaseSpec::new(
            "runner-1",
            "ci",
            RunnerValues::new("https://gitlab.example.com/")
                .with_secret_name("runner-1-token")
                .with_graceful_stop(graceful)
                .with_manager_image(image),
        );
        deploy_runner(
            &secrets,
            &releases,
            &spec,
            &RunnerToken::new(TOKEN).unwrap(),
        )
        .await
        .unwrap();
        (releases, secrets, spec)
    }

    fn job_pod(name: &str, short: &str) -> NewPod {
        NewPod::new("ci", name)
            .with_label(JOB_POD_MANAGER_ID_LABEL, short)
            .with_phase(PodPhase::Running)
            .with_node("fargate-1")
    }

    #[tokio::test(start_paused = true)]
    async fn waits_for_the_shards_job_pods_and_counts_only_its_own() {
        let (releases, secrets, spec) = installed(None).await;
        let pods = InMemoryPods::new();
        pods.insert(job_pod("mine-1", "3LJ4iHZt1")).unwrap();
        pods.insert(job_pod("mine-2", "3LJ4iHZt1")).unwrap();
        pods.insert(job_pod("other-shard", "xxxxxxxxx")).unwrap();
        pods.insert(job_pod("done", "3LJ4iHZt1").with_phase(PodPhase::Succeeded))
            .unwrap();
        // The jobs end 20 s and 40 s from now.
        let ender = {
            let pods = pods.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(20)).await;
                pods.remove("ci", "mine-1");
                tokio::time::sleep(Duration::from_secs(20)).await;
                pods.remove("ci", "mine-2");
            })
        };
        let seen = Mutex::new(Vec::new());
        // A rotation: the upgrade brings a new token, the pods carry the deployed one's.
        let new_token = RunnerToken::new("glrt-NEWTOKEN0000000000").unwrap();
        let report = drain_before_upgrade(
            &releases,
            &secrets,
            &pods,
            &spec,
            &new_token,
            &DrainPolicy::new(Duration::from_secs(600)),
            &|p: &DrainProgress| seen.lock().unwrap().push(p.running),
        )
        .await
        .unwrap();
        ender.await.unwrap();
        assert_eq!(report.outcome, DrainOutcome::Drained);
        assert_eq!(report.running_at_start, Some(2));
        assert_eq!(report.running_at_upgrade, Some(0));
        assert!(report.waited_secs >= 40.0, "{}", report.waited_secs);
        let seen = seen.into_inner().unwrap();
        assert_eq!(seen.first(), Some(&2));
        assert!(seen.contains(&1), "{seen:?}");
        let json = serde_json::to_string(&report).unwrap();
        assert!(
            !json.contains("3LJ4iHZt1"),
            "no short token in the output: {json}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_job_pods_are_looked_for_in_the_deployed_job_namespace() {
        let secrets = InMemoryTokenSecrets::new();
        let releases = InMemoryReleases::new()
            .with_timing(Timing::instant())
            .with_secrets(secrets.clone());
        let spec = ReleaseSpec::new(
            "runner-1",
            "ci",
            RunnerValues::new("https://gitlab.example.com/")
                .with_secret_name("runner-1-token")
                .with_job_namespace("ci-jobs")
                .with_graceful_stop(None)
                .with_manager_image(custom_image()),
        );
        let token = RunnerToken::new(TOKEN).unwrap();
        deploy_runner(&secrets, &releases, &spec, &token)
            .await
            .unwrap();
        let pods = InMemoryPods::new();
        // A pod with the label in the release namespace is not one of this shard's jobs.
        pods.insert(job_pod("elsewhere", "3LJ4iHZt1")).unwrap();
        let policy = DrainPolicy::new(Duration::from_secs(30));
        let report = drain_before_upgrade(
            &releases,
            &secrets,
            &pods,
            &spec,
            &token,
            &policy,
            &|_: &DrainProgress| {},
        )
        .await
        .unwrap();
        assert_eq!(report.outcome, DrainOutcome::Idle);
        assert_eq!(report.job_namespace.as_deref(), Some("ci-jobs"));
        let mut in_jobs_ns = job_pod("job-1", "3LJ4iHZt1");
        in_jobs_ns.namespace = "ci-jobs".into();
        pods.insert(in_jobs_ns).unwrap();
        let e = drain_before_upgrade(
            &releases,
            &secrets,
            &pods,
            &spec,
            &token,
            &policy,
            &|_: &DrainProgress| {},
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("\"ci-jobs\""), "{e}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_shard_that_does_not_drain_stops_the_upgrade_and_force_goes_ahead() {
        let (releases, secrets, spec) = installed(None).await;
        let pods = InMemoryPods::new();
        pods.insert(job_pod("stuck-job", "3LJ4iHZt1")).unwrap();
        let token = RunnerToken::new(TOKEN).unwrap();
        let e = drain_before_upgrade(
            &releases,
            &secrets,
            &pods,
            &spec,
            &token,
            &DrainPolicy::new(Duration::from_secs(30)),
            &|_: &DrainProgress| {},
        )
        .await
        .unwrap_err();
        assert!(
            matches!(e, DrainError::StillRunning { running: 1, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("--force"), "{e}");
        let forced = drain_before_upgrade(
            &releases,
            &secrets,
            &pods,
            &spec,
            &token,
            &DrainPolicy {
                force: true,
                ..DrainPolicy::new(Duration::from_secs(30))
            },
            &|_: &DrainProgress| {},
        )
        .await
        .unwrap();
        assert_eq!(forced.outcome, DrainOutcome::Forced);
        assert_eq!(forced.running_at_upgrade, Some(1));
    }

    /// The official image stops with SIGQUIT (gitlab-runner `dockerfiles/runner/alpine/Dockerfile`
    /// `STOPSIGNAL SIGQUIT`): a release with the chart's defaults drains by itself, so the
    /// upgrade waits for nothing (it waited up to an hour before).
    #[tokio::test(start_paused = true)]
    async fn a_chart_default_release_of_the_official_image_needs_no_wait() {
        let (releases, secrets, spec) = installed_with(None, None).await;
        let pods = InMemoryPods::new();
        pods.insert(job_pod("long-job", "3LJ4iHZt1")).unwrap();
        let started = Instant::now();
        let report = drain_before_upgrade(
            &releases,
            &secrets,
            &pods,
            &spec,
            &RunnerToken::new(TOKEN).unwrap(),
            &DrainPolicy::new(Duration::from_secs(3600)),
            &|_: &DrainProgress| {},
        )
        .await
        .unwrap();
        assert_eq!(report.outcome, DrainOutcome::GracefulStop);
        assert_eq!(report.deployed_graceful_stop, None);
        assert_eq!(report.deployed_stop_signal, Some(StopSignal::Sigquit));
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_deployed_graceful_stop_needs_no_wait_and_an_absent_release_none_at_all() {
        let (releases, secrets, spec) = installed(Some(GracefulStop::default())).await;
        let pods = InMemoryPods::new();
        pods.insert(job_pod("running", "3LJ4iHZt1")).unwrap();
        let token = RunnerToken::new(TOKEN).unwrap();
        let policy = DrainPolicy::new(Duration::from_secs(30));
        let report = drain_before_upgrade(
            &releases,
            &secrets,
            &pods,
            &spec,
            &token,
            &policy,
            &|_: &DrainProgress| {},
        )
        .await
        .unwrap();
        assert_eq!(report.outcome, DrainOutcome::GracefulStop);
        assert_eq!(report.deployed_graceful_stop, Some(GracefulStop::default()));
        // --wait-for-idle waits anyway.
        let e = drain_before_upgrade(
            &releases,
            &secrets,
            &pods,
            &spec,
            &token,
            &DrainPolicy {
                wait_for_idle: true,
                ..policy
            },
            &|_: &DrainProgress| {},
        )
        .await
        .unwrap_err();
        assert!(matches!(e, DrainError::StillRunning { .. }));
        let absent = ReleaseSpec::new(
            "runner-2",
            "ci",
            RunnerValues::new("https://gitlab.example.com/"),
        );
        let report = drain_before_upgrade(
            &releases,
            &secrets,
            &pods,
            &absent,
            &token,
            &policy,
            &|_: &DrainProgress| {},
        )
        .await
        .unwrap();
        assert_eq!(report.outcome, DrainOutcome::NotInstalled);
    }
}
