//! Runner profiles: the reference tutorial's runner configuration and glrunner's tuned one.
//!
//! A profile changes what the flow installs (job image, job pod size, the manager's size,
//! `poll_timeout`, `request_concurrency`, `concurrent`, pull policy), how the GitLab runners are
//! created (tags, `run_untagged`) and the load test's CI file, so `--runner-profile reference`
//! on `--backend aws` reproduces the tutorial's setup for real, and on the sandbox the runner
//! simulator reads the installed values like a real runner would.

use std::time::Duration;

use glrunner_gitlab_client::ci::{LoadTestSpec, ShardTarget};
use glrunner_runner_chart::{FleetPlan, FleetRequest, PullPolicy, RunnerValues};
use serde::Serialize;

/// Which runner configuration the flow installs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum RunnerProfile {
    /// The reference tutorial's values file and job: `concurrent: 200`, `rbac.create: true`,
    /// runners tagged `eks-fargate` that also run untagged jobs, pull policy
    /// `if-not-present`, `KUBERNETES_POLL_TIMEOUT=90` (so `poll_timeout = 90`), GitLab
    /// Runner's default `request_concurrency = 1`, a manager without resources (the smallest
    /// Fargate pod); the job `image: public.ecr.aws/docker/library/bash`, `parallel: 200`, one
    /// `echo` line, untagged. One release per 200 jobs.
    Reference,
    /// glrunner: `bash` from Amazon ECR Public, one tag per release, request concurrency
    /// derived from `concurrent` and adaptive, the fleet plan's `poll_timeout`, glrunner's
    /// manager sizing.
    #[default]
    Tuned,
}

/// GitLab Runner's own `poll_timeout` default (common/consts.go; advanced-configuration.md).
pub const RUNNER_DEFAULT_POLL_TIMEOUT: Duration = Duration::from_secs(180);

/// The reference tutorial's `poll_timeout`: its values file set `envVars:
/// KUBERNETES_POLL_TIMEOUT=90`, which the chart's `gitlab-runner register` reads into
/// `[runners.kubernetes] poll_timeout` (gitlab-runner common/config.go, `PollTimeout`,
/// env `KUBERNETES_POLL_TIMEOUT`).
pub const REFERENCE_POLL_TIMEOUT: Duration = Duration::from_secs(90);

/// Job image of the reference tutorial: Docker Hub's `bash` through Amazon ECR Public (it moved
/// there from Docker Hub after hitting Docker Hub's pull limit; its published makespans were
/// measured with this image).
pub const REFERENCE_JOB_IMAGE: &str = "public.ecr.aws/docker/library/bash";

/// The tag the reference tutorial's runners were registered with (`runners.tags`).
pub const REFERENCE_RUNNER_TAG: &str = "eks-fargate";

/// `concurrent` of the reference tutorial's values file.
pub const REFERENCE_CONCURRENT: u32 = 200;

/// The reference tutorial's job script: one `echo` line.
pub const REFERENCE_SCRIPT: &str = "echo \"Hello, World\"";

impl RunnerProfile {
    /// `reference` or `tuned`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunnerProfile::Reference => "reference",
            RunnerProfile::Tuned => "tuned",
        }
    }

    /// The load test's job image when `--image` is not given (`None`: the CI generator's
    /// default, also `public.ecr.aws/docker/library/bash`).
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
    /// account's vCPU quota counts every running pod. The reference adds the tutorial's
    /// `imagePullPolicy: if-not-present` (as `pull_policy`, see [`PullPolicy`]) and its
    /// `rbac.create: true` (with glrunner's least-privilege Role rather than the chart's
    /// wildcard one: the runner uses nothing more).
    pub fn template(self, values: RunnerValues) -> RunnerValues {
        let mut values = values.with_build_resources("200m", "128Mi");
        values.executor.helper = glrunner_runner_chart::ContainerResources::new("50m", "128Mi");
        if self == RunnerProfile::Reference {
            values.executor.pull_policy = vec![PullPolicy::IfNotPresent];
            values.rbac.create = true;
        }
        values
    }

    /// The fleet request of this profile: the reference tags every runner `eks-fargate` and
    /// lets it take untagged jobs (created so through `POST /user/runners`: chart-level tags
    /// are deprecated and fail GitLab Runner 18.0), so any runner takes any of the jobs.
    pub fn fleet_request(self, request: FleetRequest) -> FleetRequest {
        match self {
            RunnerProfile::Reference => request
                .with_shared_tag(Some(REFERENCE_RUNNER_TAG.to_owned()))
                .with_run_untagged(true),
            RunnerProfile::Tuned => request,
        }
    }

    /// Values of one release after the fleet plan: the reference keeps GitLab Runner's
    /// `request_concurrency = 1` (glrunner derives one request per 10 job slots otherwise), the
    /// tutorial's `poll_timeout` of 90 s (the plan raises it to its recommendation otherwise)
    /// and its `concurrent: 200` (raised to the release's share of the jobs when that is more,
    /// as the tutorial did with `concurrent: 300` beyond 400 jobs).
    pub fn finalize(self, mut values: RunnerValues) -> RunnerValues {
        if self == RunnerProfile::Reference {
            values.executor.poll_timeout = REFERENCE_POLL_TIMEOUT;
            values.request_concurrency = Some(1);
            values.concurrent = values.concurrent.max(REFERENCE_CONCURRENT);
        }
        values
    }

    /// The load test's CI file for `fleet`: one CI job per 200 jobs of each route. The
    /// reference's jobs carry no `tags:` (its runners take untagged jobs) and run one `echo`
    /// line; glrunner's carry their shard's tag.
    pub fn load_test_spec(self, fleet: &FleetPlan) -> LoadTestSpec {
        let shards = fleet
            .routes()
            .into_iter()
            .map(|(tag, jobs)| ShardTarget::new(tag, jobs))
            .collect();
        let spec = LoadTestSpec::new(shards);
        match self {
            RunnerProfile::Reference => spec
                .untagged(true)
                .with_script(vec![REFERENCE_SCRIPT.to_owned()]),
            RunnerProfile::Tuned => spec,
        }
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

    /// The reference profile is the tutorial's values file and job (issue 22, item 11): every
    /// value that file set, as installed and as created in GitLab.
    #[test]
    fn the_reference_profile_is_the_tutorials_configuration() {
        let profile = RunnerProfile::Reference;
        let fleet = FleetPlan::new(&profile.fleet_request(FleetRequest::new(400))).unwrap();
        let template = profile.template(RunnerValues::new("https://gitlab.example.com"));
        let releases = fleet.release_values(&template).unwrap();
        assert_eq!(releases.len(), 2, "400 jobs: two releases");
        for (shard, values) in releases {
            let values = profile.finalize(values);
            assert_eq!(values.concurrent, 200);
            assert!(values.rbac.create);
            assert_eq!(values.executor.pull_policy, [PullPolicy::IfNotPresent]);
            assert_eq!(values.executor.poll_timeout, Duration::from_secs(90));
            assert_eq!(values.effective_request_concurrency(), 1);
            assert_eq!(shard.tag, "eks-fargate");
            assert!(shard.run_untagged);
            let config = values.runners_config();
            assert!(config.contains("poll_timeout = 90"), "{config}");
            assert!(
                config.contains("pull_policy = [\"if-not-present\"]"),
                "{config}"
            );
        }
        let spec = profile.load_test_spec(&fleet);
        let jobs = spec.plan().unwrap();
        assert_eq!(jobs.len(), 2, "two parallel jobs: {jobs:?}");
        for job in &jobs {
            assert_eq!(job.parallel, 200);
            assert_eq!(job.image, "public.ecr.aws/docker/library/bash");
        }
        let yaml = spec.to_yaml().unwrap();
        assert!(!yaml.contains("tags:"), "untagged jobs: {yaml}");
        assert_eq!(spec.script, [REFERENCE_SCRIPT]);
        assert!(REFERENCE_SCRIPT.starts_with("echo "));
        assert_eq!(profile.job_image(), Some(spec.image.as_str()));
    }

    #[test]
    fn the_tuned_profile_keeps_a_tag_per_release() {
        let profile = RunnerProfile::Tuned;
        let fleet = FleetPlan::new(&profile.fleet_request(FleetRequest::new(400))).unwrap();
        assert_eq!(fleet.routes().len(), 2);
        assert!(fleet.shards.iter().all(|s| !s.run_untagged));
        let yaml = profile.load_test_spec(&fleet).to_yaml().unwrap();
        assert!(yaml.contains("glrunner-2"), "{yaml}");
        let values = profile.finalize(profile.template(RunnerValues::new("https://g.example.com")));
        assert!(values.executor.pull_policy.is_empty());
        assert!(!values.runners_config().contains("pull_policy"));
    }
}
