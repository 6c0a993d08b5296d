//! How the simulated runner reads a release's values: its request concurrency and its
//! manager pod's Fargate size, per runner profile.

use glrunner_flow::RunnerProfile;
use glrunner_runner_chart::RunnerValues;
use serde::Serialize;

/// How many job requests one runner entry keeps in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RequestConcurrency {
    /// `request_concurrency`: the most requests in flight.
    pub max: u32,
    /// `FF_USE_ADAPTIVE_REQUEST_CONCURRENCY`: start at one and grow with the jobs taken.
    pub adaptive: bool,
}

/// The request concurrency of an installed release, read from its values like the runner reads
/// its `config.toml`: `request_concurrency` (explicit or derived from `concurrent`), adaptive
/// because glrunner always renders `FF_USE_ADAPTIVE_REQUEST_CONCURRENCY` (runner-chart values).
pub fn request_concurrency(values: &RunnerValues) -> RequestConcurrency {
    RequestConcurrency {
        max: values.effective_request_concurrency(),
        adaptive: true,
    }
}

/// Fargate millicores of a release's runner-manager pod.
///
/// The reference tutorial installed the chart with its default `resources: {}`, which Fargate
/// runs at its smallest size (0.25 vCPU). `RunnerValues` always renders a manager size (at
/// least the one `manager_resources_for` derives from `concurrent`), so the reference's manager
/// is sized here rather than in its values.
pub fn manager_millis(profile: RunnerProfile, values: &RunnerValues) -> u32 {
    if profile == RunnerProfile::Reference {
        return 250;
    }
    values.manager_pod_size().map_or(250, |s| s.vcpu_millis)
}

#[cfg(test)]
mod tests {
    use super::*;
    use glrunner_flow::REFERENCE_POLL_TIMEOUT;

    #[test]
    fn reference_keeps_the_tutorials_settings() {
        let base = RunnerValues::new("https://gitlab.example.com").with_concurrent(200);
        let reference =
            RunnerProfile::Reference.finalize(RunnerProfile::Reference.template(base.clone()));
        assert_eq!(reference.executor.poll_timeout, REFERENCE_POLL_TIMEOUT);
        assert_eq!(request_concurrency(&reference).max, 1);
        assert_eq!(manager_millis(RunnerProfile::Reference, &reference), 250);
        let tuned = RunnerProfile::Tuned.finalize(RunnerProfile::Tuned.template(base));
        assert!(tuned.executor.poll_timeout > REFERENCE_POLL_TIMEOUT);
        assert_eq!(request_concurrency(&tuned).max, 20);
        assert_eq!(manager_millis(RunnerProfile::Tuned, &tuned), 2000);
        assert_eq!(
            RunnerProfile::Reference.job_image(),
            Some("public.ecr.aws/docker/library/bash")
        );
    }
}
