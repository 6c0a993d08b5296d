//! Phase 6, load test: wait until every shard's runner has contacted GitLab, then commit the
//! CI file and run exactly the pipeline that is watched, to the end, sampling the job pods
//! that are Pending meanwhile ([`crate::pending`]).

use std::time::Duration;

use glrunner_gitlab_client::limits::PlanLimits;
use glrunner_gitlab_client::loadtest::{self, LoadTestRun, RunningPipelines};
use glrunner_gitlab_client::runners::{wait_until_contacted_since, wait_until_online};
use glrunner_gitlab_client::watch::WatchEvent;
use glrunner_gitlab_client::{Project, ProjectRef, WatchOutcome};

use super::{Error, FlowEvent, LoadTestSummary, Phase, Run, at};
use crate::pending::PendingSampler;

/// How long the runners may take to contact GitLab once their releases are deployed: the
/// manager pod's Fargate start (about a minute) plus registration, with room to spare.
const RUNNERS_ONLINE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// How often GitLab is asked meanwhile.
const RUNNERS_ONLINE_POLL: Duration = Duration::from_secs(5);
/// How many lines of a manager pod's log a runner that never came online is explained with.
const MANAGER_LOG_LINES: i64 = 20;

impl Run<'_> {
    /// The GitLab runners of the plan's shards, as `(release, runner id)`: from the runners
    /// phase, else found by description.
    async fn shard_runners(&mut self, project: &Project) -> Result<Vec<(String, u64)>, Error> {
        if !self.runners.is_empty() {
            return Ok(self
                .runners
                .iter()
                .map(|r| (r.release.clone(), r.runner_id))
                .collect());
        }
        let plan = self.plan()?;
        let listed = self
            .backends
            .gitlab
            .list_runners(&ProjectRef::Id(project.id))
            .await
            .map_err(at(Phase::LoadTest))?;
        Ok(plan
            .shards
            .iter()
            .filter_map(|s| {
                let description = self.config.ownership().runner_description(&s.release);
                listed
                    .iter()
                    .find(|r| r.description.as_deref() == Some(description.as_str()))
                    .map(|r| (s.release.clone(), r.id))
            })
            .collect())
    }

    /// The last lines of the manager pods' logs of the releases whose runners are not online,
    /// read through the Kubernetes API (chart label `release=<name>`); empty when unreadable.
    async fn manager_logs(&mut self, releases: &[&str]) -> String {
        let Ok(clients) = self.clients(Phase::LoadTest).await else {
            return String::new();
        };
        let namespace = self.config.spec.cluster.runner_namespace.clone();
        let mut shown = String::new();
        for release in releases {
            let selector = format!("release={release}");
            match clients
                .checks
                .log_tail(&namespace, &selector, MANAGER_LOG_LINES)
                .await
            {
                Ok(tails) if tails.is_empty() => shown.push_str(&format!(
                    "\nno manager pod of release {release} in {namespace}"
                )),
                Ok(tails) => {
                    for (pod, text) in tails {
                        shown.push_str(&format!(
                            "\nlast lines of {namespace}/{pod} (release {release}):\n{text}"
                        ));
                    }
                }
                Err(e) => shown.push_str(&format!(
                    "\nthe manager log of release {release} cannot be read: {e}"
                )),
            }
        }
        shown
    }

    /// Waits for the runners, then commits the CI file (with `[skip ci]`; its `workflow: rules`
    /// run only API pipelines), creates one pipeline and watches it to the end.
    pub(super) async fn load_test(&mut self) -> Result<String, Error> {
        let phase = Phase::LoadTest;
        let plan = self.plan()?;
        let project = self.project(false).await?;
        let gitlab = self.backends.gitlab.clone();

        // A deployed release does not mean a registered runner: the chart's readiness probe
        // passes before registration, and a bad token only shows later.
        let shard_runners = self.shard_runners(&project).await?;
        if !shard_runners.is_empty() {
            let runner_ids: Vec<u64> = shard_runners.iter().map(|(_, id)| *id).collect();
            // GitLab calls a runner online for two hours after its last contact, so a reused
            // runner whose manager is gone passes "online": require a contact since this run
            // deployed its releases (without a releases phase in this run: online).
            let deployed_at = self.releases_deployed_at;
            let waited = match deployed_at {
                Some(since) => {
                    wait_until_contacted_since(
                        gitlab.as_ref(),
                        &runner_ids,
                        since,
                        RUNNERS_ONLINE_TIMEOUT,
                        RUNNERS_ONLINE_POLL,
                        &mut |_| {},
                    )
                    .await
                }
                None => {
                    wait_until_online(
                        gitlab.as_ref(),
                        &runner_ids,
                        RUNNERS_ONLINE_TIMEOUT,
                        RUNNERS_ONLINE_POLL,
                        &mut |_| {},
                    )
                    .await
                }
            };
            match waited {
                Ok(online) if deployed_at.is_some() => self.step(
                    phase,
                    format!(
                        "{} runner(s) online, contacted since the deploy",
                        online.len()
                    ),
                ),
                Ok(online) => self.step(phase, format!("{} runner(s) online", online.len())),
                Err(e) => {
                    let releases: Vec<&str> = e
                        .not_online
                        .iter()
                        .filter_map(|(id, _)| {
                            shard_runners
                                .iter()
                                .find(|(_, r)| r == id)
                                .map(|(release, _)| release.as_str())
                        })
                        .collect();
                    let logs = self.manager_logs(&releases).await;
                    return Err(Error::phase(
                        phase,
                        format!("{e}; the pipeline was not started{logs}"),
                    ));
                }
            }
        }

        let spec = self.config.load_test_spec(&plan);
        if spec.cache_megabytes.is_some() && !self.config.fleet_has_cache {
            self.step(
                phase,
                "cache workload without a shared cache on the fleet: every restore misses (\"No URL provided\")".to_owned(),
            );
        }
        // GitLab.com limits the jobs of a project's active pipelines (500 on Free): the run
        // refuses a pipeline that reaches it before creating anything (the preflight said so).
        // A plan GitLab.com hides from this user is taken to be Free, the lowest.
        let limits = match crate::preflight::plan_limits(
            gitlab.as_ref(),
            &self.backends.gitlab_url,
            &project.path_with_namespace,
        )
        .await
        {
            Ok(limits) if limits.known => limits,
            Ok(_) => PlanLimits::gitlab_com_free(),
            Err(e) => {
                tracing::warn!(error = %e, "the namespace's CI limits cannot be read; none applied");
                PlanLimits::for_plan(None, false)
            }
        };
        // The flow's own cleanup (teardown, unless --keep) cancels a pipeline left running.
        let run = LoadTestRun::new(spec)
            .with_keep_pipeline(true)
            .with_max_active_jobs(limits.active_jobs);
        let progress = self.progress;
        let mut on_event = |event: &WatchEvent| {
            if let WatchEvent::Progress(p) = event {
                progress.event(&FlowEvent::Pipeline(p));
            }
        };
        // Beside the watch, the job pods that are Pending are sampled to learn why (the report's
        // queue time by Pending class): Kubernetes calls at a bounded rate, none to GitLab.
        let mut sampler = PendingSampler::new(
            vec![self.config.job_namespace(&self.backends.gitlab_url)],
            self.config.pending_sample_interval,
        );
        let cluster = match self.clients(phase).await {
            Ok(clients) => Some(clients),
            Err(e) => {
                tracing::warn!(error = %e, "the cluster cannot be reached; the load test's Pending job pods are not sampled");
                None
            }
        };
        // Stopped (SIGINT/SIGTERM): the pipeline is canceled (keep_on_stop is off) there.
        let stop = self.stop.clone();
        let running = RunningPipelines::default();
        let watch = loadtest::run_until(
            gitlab.as_ref(),
            &project,
            &run,
            &self.config.watch,
            &running,
            &mut on_event,
            stop.cancelled(),
        );
        let outcome = match &cluster {
            Some(clients) => {
                let sampling = sampler.run(clients.pods.as_ref(), clients.clock.as_ref());
                tokio::select! {
                    biased;
                    outcome = watch => outcome,
                    never = sampling => match never {},
                }
            }
            None => watch.await,
        };
        let report = match outcome {
            Ok(o) if o.report.outcome == WatchOutcome::Interrupted => {
                return Err(Error::stopped(
                    phase,
                    format!("{}; {}", super::STOPPED, o.cancel.describe()),
                ));
            }
            Ok(o) => o.report,
            Err(failure) => {
                self.created.pipeline = failure.pipelines.first().copied();
                return Err(Error::phase(phase, failure.error));
            }
        };
        let pipeline_id = report.pipeline_id;
        self.step(
            phase,
            format!("pipeline {pipeline_id} ran: {}", report.web_url),
        );
        let mut summary = LoadTestSummary::from_report(&report);
        if cluster.is_some() {
            summary = summary.with_pending(&report, &sampler);
        }
        let line = summary.one_line();
        self.report.load_test = Some(summary);
        self.report.load_test_report = Some(report.clone());
        if report.outcome != WatchOutcome::Finished {
            self.created.pipeline = Some(pipeline_id);
            return Err(Error::phase(
                phase,
                format!(
                    "pipeline {pipeline_id} did not finish: {:?}",
                    report.outcome
                ),
            ));
        }
        if !report.image_mismatches().is_empty() {
            return Err(Error::phase(
                phase,
                format!(
                    "pipeline {pipeline_id}: a job ran another image than its own: {}",
                    report
                        .traces
                        .as_ref()
                        .map(|t| t.describe_mismatches())
                        .unwrap_or_default()
                ),
            ));
        }
        if report.has_failures() || report.pipeline_status != "success" {
            return Err(Error::phase(
                phase,
                format!(
                    "pipeline {pipeline_id} ended {}: failures {:?}",
                    report.pipeline_status, report.failures_by_reason
                ),
            ));
        }
        Ok(line)
    }
}
