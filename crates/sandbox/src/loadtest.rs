//! A load test on the sandbox world: one GitLab runner and one runner release per shard tag, run by the world's calibrated runner simulator.
//!
//! The `loadtest` example's sandbox backend runs here, so its makespans come from the same
//! [`FleetModel`](crate::FleetModel) as `full_flow`'s: the releases are installed with the
//! runner profile's values (job pod size, `poll_timeout`, `request_concurrency`), the managers
//! start on Fargate like the flow's, and the pipeline waits until every runner contacted GitLab.

use std::time::Duration;

use glrunner_flow::{Ownership, RunnerProfile};
use glrunner_gitlab_client::ci::ShardTarget;
use glrunner_gitlab_client::runners::wait_until_online;
use glrunner_gitlab_client::{GitLabApi, GitLabApiExt, NewRunner, Project};
use glrunner_runner_chart::{ReleaseSpec, RunnerToken, RunnerValues, deploy_runner};

use super::{SANDBOX_GITLAB_URL, SandboxWorld};

/// The namespace of the load test's runner releases and job pods.
pub const LOAD_TEST_NAMESPACE: &str = "gitlab-runner";

/// How long the runners may take to contact GitLab: a manager pod's start, with room to spare
/// (the flow's load-test phase waits as long).
const ONLINE_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// Why the sandbox's load-test runners could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadTestSetupError {
    /// The in-memory GitLab refused a call (project, runner).
    #[error("sandbox GitLab: {0}")]
    GitLab(#[from] glrunner_gitlab_client::Error),
    /// A release or its token Secret could not be installed.
    #[error("sandbox runner release: {0}")]
    Release(#[from] glrunner_runner_chart::Error),
    /// A runner's manager never contacted GitLab.
    #[error("sandbox runners: {0}")]
    NotOnline(#[from] glrunner_gitlab_client::runners::NotOnline),
}

/// One shard's runner of a sandbox load test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadTestRunner {
    /// The shard's tag.
    pub tag: String,
    /// The GitLab runner.
    pub runner_id: u64,
    /// Its release (`<namespace>/<name>`).
    pub release: String,
}

impl SandboxWorld {
    /// The project `path` in the world's GitLab (created, with its group, when missing) and one
    /// runner per shard with jobs: a GitLab runner tagged with the shard's tag, its token in a
    /// Secret, and a release of [`SandboxConfig::profile`](crate::SandboxConfig)'s values with
    /// `concurrent` job slots. Returns once every runner's manager contacted GitLab, so a
    /// pipeline started then is picked up at once. Start the simulator first
    /// ([`SandboxWorld::start_runners`]).
    pub async fn prepare_load_test(
        &self,
        path: &str,
        shards: &[ShardTarget],
        concurrent: u32,
    ) -> Result<(Project, Vec<LoadTestRunner>), LoadTestSetupError> {
        if let Some((group, _)) = path.rsplit_once('/') {
            self.gitlab.add_group(group);
        }
        let project = self.gitlab.get_or_create_project(path).await?;
        let profile = self.config.profile;
        let mut runners = Vec::new();
        for (i, shard) in shards.iter().filter(|s| s.jobs > 0).enumerate() {
            let name = format!("loadtest-{}", i + 1);
            let new = NewRunner::project(
                project.id,
                format!("sandbox load test {name}"),
                vec![shard.tag.clone()],
            );
            let created = self.gitlab.create_runner_checked(&new).await?;
            let token = RunnerToken::new(created.token.expose())?;
            let values = load_test_values(profile, &shard.tag, concurrent)
                .with_secret_name(Ownership::secret_name(&name));
            let spec = ReleaseSpec::new(&name, LOAD_TEST_NAMESPACE, values);
            deploy_runner(&self.secrets, &self.releases, &spec, &token).await?;
            runners.push(LoadTestRunner {
                tag: shard.tag.clone(),
                runner_id: created.id,
                release: format!("{LOAD_TEST_NAMESPACE}/{name}"),
            });
        }
        let ids: Vec<u64> = runners.iter().map(|r| r.runner_id).collect();
        wait_until_online(
            &self.gitlab as &dyn GitLabApi,
            &ids,
            ONLINE_TIMEOUT,
            Duration::from_secs(5),
            &mut |_| {},
        )
        .await?;
        Ok((project, runners))
    }
}

/// A load-test release's values under `profile`: the profile's template and final values
/// (job pod size, `poll_timeout`, `request_concurrency`), `concurrent` job slots and `tag`.
fn load_test_values(profile: RunnerProfile, tag: &str, concurrent: u32) -> RunnerValues {
    let values = profile
        .template(RunnerValues::new(SANDBOX_GITLAB_URL).with_job_namespace(LOAD_TEST_NAMESPACE))
        .with_concurrent(concurrent.max(1))
        .with_runner_tags([tag.to_owned()]);
    profile.finalize(values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SandboxConfig;

    /// The sandbox load test's runners are the world's releases, driven by its calibrated
    /// simulator: the jobs' pods start on the modelled Fargate account (pod starts recorded),
    /// not on a fixed delay.
    #[test]
    fn load_test_runners_are_releases_the_simulator_runs() {
        let runtime = crate::runtime().unwrap();
        runtime.block_on(async {
            let world = SandboxWorld::new("us-east-1", SandboxConfig::default());
            let _simulator = world.start_runners();
            let shards = [ShardTarget::new("lt-1", 3), ShardTarget::new("lt-2", 0)];
            let (project, runners) = world
                .prepare_load_test("sandbox/lt", &shards, 10)
                .await
                .unwrap();
            assert_eq!(runners.len(), 1, "a shard without jobs gets no runner");
            assert_eq!(world.releases.runners().len(), 1);
            let details = world.gitlab.get_runner(runners[0].runner_id).await.unwrap();
            assert!(details.is_online(), "{details:?}");
            assert_eq!(details.tag_list, ["lt-1"]);
            let spec = glrunner_gitlab_client::ci::LoadTestSpec::new(shards.to_vec());
            let run = glrunner_gitlab_client::loadtest::LoadTestRun::new(spec);
            let outcome = glrunner_gitlab_client::loadtest::run(
                &world.gitlab,
                &project,
                &run,
                &glrunner_gitlab_client::watch::WatchConfig::default(),
                &glrunner_gitlab_client::loadtest::RunningPipelines::default(),
                &mut |_| {},
            )
            .await
            .unwrap();
            assert_eq!(outcome.report.by_status.get("success"), Some(&3));
            assert_eq!(world.stats().pod_starts.len(), 3, "{:?}", world.stats());
        });
    }
}
