//! The fleet as the lint sees it: each runner's tags, whether it takes untagged jobs, its job
//! pod's container sizes, its resource-overwrite ceilings and the AWS identity it gives jobs.

use std::collections::BTreeMap;

use glrunner_runner_chart::{ContainerResources, JobIdentity};
use serde::Serialize;

use crate::RunPlan;

/// One runner of the fleet (one release).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FleetRunner {
    /// The helm release (e.g. `glrunner-runner-1`).
    pub release: String,
    /// The runner's GitLab tags: a job runs here only when the runner has all of the job's tags.
    pub tags: Vec<String>,
    /// Whether the runner takes jobs without tags.
    pub run_untagged: bool,
    /// The build container's requests = limits.
    pub build: ContainerResources,
    /// The helper container's requests = limits.
    pub helper: ContainerResources,
    /// Each service container's requests = limits.
    pub service: ContainerResources,
    /// The `*_overwrite_max_allowed` ceilings of `[runners.kubernetes]`, by the CI variable they
    /// bound (`KUBERNETES_CPU_REQUEST` → `cpu_request_overwrite_max_allowed`): the build
    /// container's from `RunnerValues` (`executor.overwrite_max`, glrunner_runner_chart::job_disk);
    /// without one the runner ignores the `KUBERNETES_*` resource variable (gitlab-runner
    /// executors/kubernetes/overwrites.go, `evaluateMaxResourceOverwrite`: "setting allowing
    /// overrides ... is empty, disabling override").
    pub overwrite_max_allowed: BTreeMap<String, String>,
    /// Which AWS identity the runner gives its job pods: the job ServiceAccounts with IAM roles,
    /// the default one and the overwrite regex (`executor.identity`, from `--job-role`; default:
    /// none, jobs have no AWS identity).
    #[serde(skip_serializing_if = "JobIdentity::is_empty")]
    pub job_identity: JobIdentity,
}

/// The runners a CI file's jobs would meet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LintFleet {
    /// The runners, in release order.
    pub runners: Vec<FleetRunner>,
}

impl LintFleet {
    /// A fleet of the given runners.
    pub fn new(runners: Vec<FleetRunner>) -> Self {
        Self { runners }
    }

    /// The runners that take a job with `tags` (GitLab: every job tag on the runner; no tags:
    /// a runner with `run_untagged`).
    pub fn runners_for<'a>(&'a self, tags: &'a [String]) -> impl Iterator<Item = &'a FleetRunner> {
        self.runners.iter().filter(move |r| {
            if tags.is_empty() {
                r.run_untagged
            } else {
                tags.iter().all(|t| r.tags.contains(t))
            }
        })
    }

    /// Every tag some runner carries, sorted, once each.
    pub fn all_tags(&self) -> Vec<String> {
        let mut tags: Vec<String> = self.runners.iter().flat_map(|r| r.tags.clone()).collect();
        tags.sort();
        tags.dedup();
        tags
    }
}

pub(super) fn from_plan(plan: &RunPlan) -> LintFleet {
    let runners = plan
        .releases
        .iter()
        .map(|(shard, values)| FleetRunner {
            release: shard.release.clone(),
            tags: if values.runner_tags.is_empty() {
                vec![shard.tag.clone()]
            } else {
                values.runner_tags.clone()
            },
            run_untagged: shard.run_untagged,
            build: values.executor.build.clone(),
            helper: values.executor.helper.clone(),
            service: values.executor.service.clone(),
            overwrite_max_allowed: values.executor.overwrite_max.by_variable(),
            job_identity: values.executor.identity.clone(),
        })
        .collect();
    LintFleet { runners }
}
