//! Runner profiles: the reference tutorial's runner configuration and glrunner's tuned one.
//!
//! A profile changes what the flow installs (job image, job pod size, the manager's size,
//! `poll_timeout`, `request_concurrency`), so `--runner-profile reference` on `--backend aws`
//! reproduces the tutorial's setup for real, and on the sandbox the runner simulator reads the
//! installed values like a real runner would.

use std::time::Duration;

use glrunner_runner_chart::RunnerValues;
use serde::Serialize;

/// Which runner configuration the flow installs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum RunnerProfile {
    /// The reference tutorial: `bash` from Docker Hub, GitLab Runner's defaults
    /// (`request_concurrency = 1`, `poll_timeout` 180 s), a manager without resources (the
    /// smallest Fargate pod), one release of `concurrent: 200` per 200 jobs.
    Reference,
    /// glrunner: `bash` from Amazon ECR Public, request concurrency derived from `concurrent`
    /// and adaptive, the fleet plan's `poll_timeout`, glrunner's manager sizing.
    #[default]
    Tuned,
}

/// GitLab Runner's own `poll_timeout` default (common/consts.go; advanced-configuration.md).
pub const RUNNER_DEFAULT_POLL_TIMEOUT: Duration = Duration::from_secs(180);

/// Job image of the reference tutorial: `bash` from Docker Hub.
pub const REFERENCE_JOB_IMAGE: &str = "bash";

impl RunnerProfile {
    /// `reference` or `tuned`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunnerProfile::Reference => "reference",
            RunnerProfile::Tuned => "tuned",
        }
    }

    /// The load test's job image when `--image` is not given (`None`: the CI generator's
    /// default, `public.ecr.aws/docker/library/bash`).
    pub fn job_image(self) -> Option<&'static str> {
        match self {
            RunnerProfile::Reference => Some(REFERENCE_JOB_IMAGE),
            RunnerProfile::Tuned => None,
        }
    }

    /// Values every release starts from, before the fleet plan sets `concurrent`, tags and
    /// `poll_timeout`; the image is the flow's (see [`RunnerProfile::job_image`]).
    ///
    /// Both profiles size the hello-world job pod at Fargate's smallest size (0.25 vCPU /
    /// 0.5 GB: build 200m/128Mi + helper 50m/128Mi + Fargate's 256 MB), which is what a pod
    /// without requests gets (the tutorial's case) and what glrunner asks for on purpose: the
    /// account's vCPU quota counts every running pod.
    pub fn template(self, values: RunnerValues) -> RunnerValues {
        let mut values = values.with_build_resources("200m", "128Mi");
        values.executor.helper = glrunner_runner_chart::ContainerResources::new("50m", "128Mi");
        values
    }

    /// Values of one release after the fleet plan: the reference keeps GitLab Runner's defaults,
    /// `poll_timeout` 180 s (the plan raises it to its recommendation otherwise) and
    /// `request_concurrency = 1` (glrunner derives one request per 10 job slots otherwise).
    pub fn finalize(self, mut values: RunnerValues) -> RunnerValues {
        if self == RunnerProfile::Reference {
            values.executor.poll_timeout = RUNNER_DEFAULT_POLL_TIMEOUT;
            values.request_concurrency = Some(1);
        }
        values
    }
}

impl std::fmt::Display for RunnerProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_profiles_size_job_pods_at_the_smallest_fargate_size() {
        for profile in [RunnerProfile::Reference, RunnerProfile::Tuned] {
            let values = profile.template(RunnerValues::new("https://gitlab.example.com"));
            let size = values.executor.job_pod_size(0).expect("valid requests");
            assert_eq!((size.vcpu_millis, size.memory_mib), (250, 512), "{profile}");
        }
    }
}
