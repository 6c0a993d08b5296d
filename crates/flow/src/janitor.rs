//! The janitor's GitLab adapters: job statuses for its cross-check, pending jobs per shard for its metrics.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use glrunner_gitlab_client::{DynGitLabApi, GitLabApiExt, Job, JobStatus, ProjectRef};
use glrunner_janitor::metrics::PendingJobsSource;
use glrunner_runner_chart::{FleetPlan, Shard};

/// The `shard` label of pending jobs no shard's runner can take.
pub const UNMATCHED: &str = "unmatched";

/// How many pending jobs [`GitLabPendingJobs`] reads per project by default: ten pages of 100,
/// so ten requests a refresh (GitLab's own limit on `GET /projects/:id/jobs` is 600 a minute per
/// user by default, `project_jobs_api_rate_limit`, doc/api/settings.md). A GitLab.com Free
/// project holds at most 499 jobs in its active pipelines
/// (`glrunner_gitlab_client::limits::PlanLimits::max_jobs_at_once`), so it is read in full.
pub const DEFAULT_MAX_PENDING_JOBS: usize = 1_000;

/// GitLab's view of a job for the janitor's cross-check (`GET /projects/:id/jobs/:job_id`):
/// a job GitLab no longer knows is [`glrunner_janitor::JobStatus::NotFound`].
pub struct GitLabJobStatus {
    gitlab: Arc<DynGitLabApi>,
}

impl GitLabJobStatus {
    /// Asks `gitlab`.
    pub fn new(gitlab: Arc<DynGitLabApi>) -> Self {
        Self { gitlab }
    }
}

impl std::fmt::Debug for GitLabJobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitLabJobStatus").finish_non_exhaustive()
    }
}

#[async_trait]
impl glrunner_janitor::JobStatusSource for GitLabJobStatus {
    async fn job_status(
        &self,
        project_id: u64,
        job_id: u64,
    ) -> glrunner_janitor::Result<glrunner_janitor::JobStatus> {
        match self
            .gitlab
            .get_job(&ProjectRef::Id(project_id), job_id)
            .await
        {
            Ok(job) => Ok(glrunner_janitor::JobStatus::from_gitlab(
                job.status.as_str(),
            )),
            Err(glrunner_gitlab_client::Error::NotFound { .. }) => {
                Ok(glrunner_janitor::JobStatus::NotFound)
            }
            Err(e) => Err(janitor_error(
                "get job",
                format!("job {job_id} of project {project_id}"),
                e,
            )),
        }
    }
}

/// A GitLab error in the janitor's categories (throttling and refusals keep theirs).
fn janitor_error(
    action: &str,
    resource: String,
    e: glrunner_gitlab_client::Error,
) -> glrunner_janitor::Error {
    use glrunner_gitlab_client::Error as G;
    match e {
        G::Throttled { .. } => glrunner_janitor::Error::Throttled {
            action: action.to_owned(),
            resource,
        },
        G::PermissionDenied { .. } => glrunner_janitor::Error::PermissionDenied {
            action: action.to_owned(),
            resource,
            message: e.to_string(),
        },
        other => glrunner_janitor::Error::Backend {
            backend: "gitlab",
            action: action.to_owned(),
            resource,
            message: other.to_string(),
            source: None,
        },
    }
}

/// The `shard` label the janitor gives the job pods of a chart release: the chart's fullname,
/// which names the runner Deployment, whose manager pods are `<fullname>-<hash>-<suffix>` and
/// put their own name on each job pod (`manager.runner.gitlab.com/name`), from which
/// `glrunner_janitor::classify::shard` drops the hash and suffix. The official chart's
/// `gitlab-runner.fullname` (templates/_helpers.tpl): the release name when it already contains
/// the chart's name `gitlab-runner`, else `<release>-gitlab-runner`, cut to 63 characters and
/// stripped of a trailing `-` (`fullnameOverride` is not set by glrunner).
pub fn shard_label(release: &str) -> String {
    const CHART: &str = "gitlab-runner";
    let full = if release.contains(CHART) {
        release.to_owned()
    } else {
        format!("{release}-{CHART}")
    };
    let cut: String = full.chars().take(63).collect();
    cut.trim_end_matches('-').to_owned()
}

/// Which pending jobs GitLab hands to a shard's runner: its tags and whether it runs untagged jobs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardRoute {
    /// The metric's `shard` label ([`shard_label`] of the shard's release).
    pub label: String,
    /// The runner's tags.
    pub tags: BTreeSet<String>,
    /// Whether the runner takes untagged jobs (`run_untagged`).
    pub run_untagged: bool,
}

impl ShardRoute {
    /// A route labelled `label` as it is.
    pub fn new(
        label: impl Into<String>,
        tags: impl IntoIterator<Item = String>,
        run_untagged: bool,
    ) -> Self {
        Self {
            label: label.into(),
            tags: tags.into_iter().collect(),
            run_untagged,
        }
    }

    /// The route of chart release `release`, labelled as the janitor labels its job pods
    /// ([`shard_label`]).
    pub fn for_release(
        release: &str,
        tags: impl IntoIterator<Item = String>,
        run_untagged: bool,
    ) -> Self {
        Self::new(shard_label(release), tags, run_untagged)
    }

    /// The route of one planned shard: its release, its runner's one tag and `run_untagged`
    /// (the runners phase creates each runner with exactly these).
    pub fn for_shard(shard: &Shard) -> Self {
        Self::for_release(&shard.release, [shard.tag.clone()], shard.run_untagged)
    }

    /// Whether GitLab would hand a job with `job_tags` to this runner: a runner picks a job
    /// only when it holds every tag of the job, and an untagged job only when it runs untagged
    /// jobs (GitLab docs, "Control jobs that a runner can run": "the runner must have all the
    /// tags a job has"; runner `accepting_tags?`, app/models/ci/runner.rb:
    /// `(run_untagged || build.has_tags?) && (build.tag_list - tag_list).empty?`).
    pub fn takes(&self, job_tags: &[String]) -> bool {
        if job_tags.is_empty() {
            self.run_untagged
        } else {
            job_tags.iter().all(|t| self.tags.contains(t))
        }
    }
}

/// The routes of a planned fleet, one per shard ([`ShardRoute::for_shard`]).
pub fn fleet_routes(fleet: &FleetPlan) -> Vec<ShardRoute> {
    fleet.shards.iter().map(ShardRoute::for_shard).collect()
}

/// GitLab's pending jobs per shard, for the janitor's `gitlab_pending_jobs` gauge: each
/// project's pending jobs (`GET /projects/:id/jobs?scope[]=pending`, up to a bound), counted
/// under every shard whose runner could take them ([`ShardRoute::takes`]), and under
/// [`UNMATCHED`] when none can. A job that several shards can take (a shared tag) counts for
/// each of them: GitLab gives it to whichever asks first, so it is queued for all of them, and
/// the gauge's sum over shards may exceed the jobs pending. Every route's label and
/// [`UNMATCHED`] are answered, 0 included, so an alert sees a queue drain to zero.
pub struct GitLabPendingJobs {
    gitlab: Arc<DynGitLabApi>,
    projects: Vec<ProjectRef>,
    routes: Vec<ShardRoute>,
    max_jobs: usize,
}

impl std::fmt::Debug for GitLabPendingJobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitLabPendingJobs")
            .field("projects", &self.projects)
            .field("routes", &self.routes)
            .field("max_jobs", &self.max_jobs)
            .finish_non_exhaustive()
    }
}

impl GitLabPendingJobs {
    /// Counts the pending jobs of `projects` over `routes`, reading up to
    /// [`DEFAULT_MAX_PENDING_JOBS`] per project.
    pub fn new(
        gitlab: Arc<DynGitLabApi>,
        projects: Vec<ProjectRef>,
        routes: Vec<ShardRoute>,
    ) -> Self {
        Self {
            gitlab,
            projects,
            routes,
            max_jobs: DEFAULT_MAX_PENDING_JOBS,
        }
    }

    /// Counts the pending jobs of `projects` over a planned fleet's shards ([`fleet_routes`]).
    pub fn for_fleet(
        gitlab: Arc<DynGitLabApi>,
        projects: Vec<ProjectRef>,
        fleet: &FleetPlan,
    ) -> Self {
        Self::new(gitlab, projects, fleet_routes(fleet))
    }

    /// Reads at most `max_jobs` pending jobs per project (at least 1), `ceil(max_jobs / 100)`
    /// requests each; beyond it the counts are lower bounds and a warning is logged.
    #[must_use]
    pub fn with_max_jobs(mut self, max_jobs: usize) -> Self {
        self.max_jobs = max_jobs.max(1);
        self
    }

    /// The routes jobs are counted over.
    pub fn routes(&self) -> &[ShardRoute] {
        &self.routes
    }

    /// The projects whose pending jobs are counted.
    pub fn projects(&self) -> &[ProjectRef] {
        &self.projects
    }

    /// Counts `jobs` per shard label (see [`GitLabPendingJobs`]); reads nothing.
    pub fn count<'a>(&self, jobs: impl IntoIterator<Item = &'a Job>) -> BTreeMap<String, u64> {
        let mut counts: BTreeMap<String, u64> = self
            .routes
            .iter()
            .map(|r| (r.label.clone(), 0))
            .chain([(UNMATCHED.to_owned(), 0)])
            .collect();
        for job in jobs {
            let mut matched = BTreeSet::new();
            for route in self.routes.iter().filter(|r| r.takes(&job.tag_list)) {
                // Two routes with one label (a runner given twice) count a job once.
                if matched.insert(route.label.as_str()) {
                    *counts.entry(route.label.clone()).or_default() += 1;
                }
            }
            if matched.is_empty() {
                *counts.entry(UNMATCHED.to_owned()).or_default() += 1;
            }
        }
        counts
    }
}

#[async_trait]
impl PendingJobsSource for GitLabPendingJobs {
    async fn pending_jobs(&self) -> glrunner_janitor::Result<BTreeMap<String, u64>> {
        let mut pending: Vec<Job> = Vec::new();
        for project in &self.projects {
            let read = self
                .gitlab
                .project_jobs_up_to(project, &[JobStatus::Pending], self.max_jobs)
                .await
                .map_err(|e| janitor_error("list pending jobs of", project.to_string(), e))?;
            if read.truncated {
                tracing::warn!(%project, max_jobs = self.max_jobs,
                    "more pending jobs than the bound: the per-shard counts are lower bounds");
            }
            pending.extend(read.items);
        }
        let counts = self.count(&pending);
        tracing::debug!(
            jobs = pending.len(),
            ?counts,
            "GitLab's pending jobs per shard"
        );
        Ok(counts)
    }
}

#[cfg(test)]
mod tests {
    use glrunner_gitlab_client::ci::{LoadTestSpec, ShardTarget};
    use glrunner_gitlab_client::memory::InMemoryGitLab;
    use glrunner_gitlab_client::{GitLabApi, NewPipeline, NewRunner};
    use glrunner_janitor::memory::{InMemoryPods, NewPod};
    use glrunner_runner_chart::FleetRequest;

    use super::*;

    /// Project `path` with one pipeline of `yaml`'s jobs, all pending.
    async fn seeded(gl: &InMemoryGitLab, path: &str, yaml: &str) -> ProjectRef {
        let project = gl.get_or_create_project(path).await.unwrap();
        let pref = ProjectRef::Id(project.id);
        gl.put_file(&pref, "main", ".gitlab-ci.yml", yaml, "ci [skip ci]")
            .await
            .unwrap();
        gl.create_pipeline(&pref, &NewPipeline::new("main"))
            .await
            .unwrap();
        pref
    }

    fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    #[test]
    fn labels_agree_with_the_janitors_shard_of_a_manager_pod() {
        let pods = InMemoryPods::new();
        for release in ["gitlab-runner-1", "ci-7", "glrunner-ci-runner-12", "x"] {
            let label = shard_label(release);
            // The manager pod of the chart's Deployment `<fullname>`: `<fullname>-<hash>-<suffix>`.
            let manager = format!("{label}-5fd7489954-jx682");
            let key = pods
                .insert(NewPod::job("jobs", &manager, 1, 100 + release.len() as u64))
                .unwrap();
            let pod = pods.pod(&key.namespace, &key.name).unwrap();
            assert_eq!(
                glrunner_janitor::classify::shard(&pod),
                label,
                "release {release}"
            );
        }
        assert_eq!(shard_label("ci-7"), "ci-7-gitlab-runner");
        assert_eq!(shard_label("gitlab-runner-1"), "gitlab-runner-1");
        let long = "a".repeat(50);
        assert_eq!(shard_label(&long).len(), 63);
    }

    #[test]
    fn fleet_routes_carry_each_shards_release_tag_and_untagged() {
        let fleet = FleetPlan::new(&FleetRequest::new(450).with_max_per_release(200)).unwrap();
        let routes = fleet_routes(&fleet);
        assert_eq!(routes.len(), fleet.shards.len());
        for (route, shard) in routes.iter().zip(&fleet.shards) {
            assert_eq!(route.label, shard_label(&shard.release));
            assert_eq!(route.tags, BTreeSet::from([shard.tag.clone()]));
            assert_eq!(route.run_untagged, shard.run_untagged);
        }
    }

    #[test]
    fn a_runner_takes_a_job_only_with_all_its_tags_and_untagged_only_when_allowed() {
        let r = ShardRoute::new("s", ["a".to_owned(), "b".to_owned()], false);
        assert!(r.takes(&["a".into()]));
        assert!(r.takes(&["b".into(), "a".into()]));
        assert!(!r.takes(&["a".into(), "c".into()]));
        assert!(!r.takes(&[]));
        assert!(ShardRoute::new("u", [], true).takes(&[]));
        assert!(!ShardRoute::new("u", [], true).takes(&["a".into()]));
    }

    #[tokio::test]
    async fn pending_jobs_are_counted_per_shard_with_the_unmatched_apart() {
        let gl = InMemoryGitLab::default();
        let mut yaml = LoadTestSpec::new(vec![
            ShardTarget::new("shard-1", 30),
            ShardTarget::new("shard-2", 12),
            ShardTarget::new("nobody", 4),
        ])
        .to_yaml()
        .unwrap();
        yaml.push_str("untagged:\n  stage: loadtest\n  script: [echo]\n");
        yaml.push_str("both:\n  stage: loadtest\n  tags: [shard-1, extra]\n  script: [echo]\n");
        let project = seeded(&gl, "sandbox/ci", &yaml).await;
        let routes = vec![
            ShardRoute::for_release("ci-1", ["shard-1".to_owned(), "extra".to_owned()], false),
            ShardRoute::for_release("ci-2", ["shard-2".to_owned()], true),
            ShardRoute::for_release("ci-3", ["shard-3".to_owned()], false),
        ];
        let source = GitLabPendingJobs::new(Arc::new(gl.clone()), vec![project.clone()], routes);
        let got = source.pending_jobs().await.unwrap();
        assert_eq!(
            got,
            counts(&[
                ("ci-1-gitlab-runner", 31),
                ("ci-2-gitlab-runner", 13),
                ("ci-3-gitlab-runner", 0),
                (UNMATCHED, 4),
            ])
        );

        // A runner takes ten of shard-1's jobs: they are no longer pending.
        let pid = match project {
            ProjectRef::Id(id) => id,
            ProjectRef::Path(_) => unreachable!(),
        };
        let runner = gl
            .create_runner(&NewRunner::project(pid, "r1", vec!["shard-1".into()]))
            .await
            .unwrap();
        assert_eq!(gl.request_jobs(runner.id, 10).unwrap().len(), 10);
        let got = source.pending_jobs().await.unwrap();
        assert_eq!(got["ci-1-gitlab-runner"], 21);
        assert_eq!(got[UNMATCHED], 4);
    }

    #[tokio::test]
    async fn a_shared_tag_counts_for_every_shard_and_projects_add_up() {
        let gl = InMemoryGitLab::default();
        let yaml = LoadTestSpec::new(vec![ShardTarget::new("eks-fargate", 5)])
            .to_yaml()
            .unwrap();
        let a = seeded(&gl, "sandbox/a", &yaml).await;
        let b = seeded(&gl, "sandbox/b", &yaml).await;
        let routes = vec![
            ShardRoute::for_release("r-1", ["eks-fargate".to_owned()], true),
            ShardRoute::for_release("r-2", ["eks-fargate".to_owned()], true),
        ];
        let source = GitLabPendingJobs::new(Arc::new(gl), vec![a, b], routes);
        assert_eq!(
            source.pending_jobs().await.unwrap(),
            counts(&[
                ("r-1-gitlab-runner", 10),
                ("r-2-gitlab-runner", 10),
                (UNMATCHED, 0)
            ])
        );
    }

    #[tokio::test]
    async fn the_bound_caps_the_requests_a_refresh_sends() {
        let gl = InMemoryGitLab::default();
        let yaml = LoadTestSpec::new(vec![ShardTarget::new("t", 250)])
            .to_yaml()
            .unwrap();
        let project = seeded(&gl, "sandbox/big", &yaml).await;
        let routes = vec![ShardRoute::for_release("r", ["t".to_owned()], false)];
        let source =
            GitLabPendingJobs::new(Arc::new(gl.clone()), vec![project], routes).with_max_jobs(120);
        let before = gl.requests_sent();
        let got = source.pending_jobs().await.unwrap();
        assert_eq!(
            gl.requests_sent() - before,
            2,
            "two pages for a bound of 120"
        );
        assert_eq!(got["r-gitlab-runner"], 120, "a lower bound past the cap");
    }

    /// The same counts through the real HTTP client against the GitLab double's REST routes.
    #[tokio::test]
    async fn pending_jobs_over_http_through_the_real_client() {
        const TOKEN: &str = "glpat-pending-jobs-1";
        let gl = InMemoryGitLab::default();
        let yaml = LoadTestSpec::new(vec![
            ShardTarget::new("shard-1", 130),
            ShardTarget::new("other", 2),
        ])
        .to_yaml()
        .unwrap();
        seeded(&gl, "sandbox/http", &yaml).await;
        let server = glrunner_gitlab_client::testing::serve(gl, TOKEN).await;
        let http = glrunner_gitlab_client::HttpGitLab::builder()
            .with_url(server.uri())
            .with_token(glrunner_gitlab_client::SecretToken::new(TOKEN))
            .build()
            .unwrap();
        let source = GitLabPendingJobs::new(
            Arc::new(http),
            vec![ProjectRef::parse("sandbox/http").unwrap()],
            vec![ShardRoute::for_release(
                "gitlab-runner-1",
                ["shard-1".to_owned()],
                false,
            )],
        );
        assert_eq!(
            source.pending_jobs().await.unwrap(),
            counts(&[("gitlab-runner-1", 130), (UNMATCHED, 2)])
        );
    }

    #[tokio::test]
    async fn gitlab_errors_keep_their_category() {
        use glrunner_gitlab_client::MockGitLabApi;
        let mut mock = MockGitLabApi::new();
        let calls = std::sync::atomic::AtomicUsize::new(0);
        mock.expect_list_project_jobs().returning(move |p, _| {
            let resource = p.to_string();
            Err(
                match calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                    0 => glrunner_gitlab_client::Error::Throttled {
                        action: "list jobs of",
                        resource,
                        retry_after: None,
                        retried: true,
                    },
                    1 => glrunner_gitlab_client::Error::PermissionDenied {
                        action: "list jobs of",
                        resource,
                        scope: "read_api".into(),
                        message: "403 Forbidden".into(),
                    },
                    _ => glrunner_gitlab_client::Error::NotFound {
                        action: "list jobs of",
                        resource,
                    },
                },
            )
        });
        let source = GitLabPendingJobs::new(
            Arc::new(mock),
            vec![ProjectRef::Id(7)],
            vec![ShardRoute::new("s", ["t".to_owned()], false)],
        );
        let e = source.pending_jobs().await.unwrap_err();
        assert!(
            matches!(e, glrunner_janitor::Error::Throttled { .. }),
            "{e}"
        );
        let e = source.pending_jobs().await.unwrap_err();
        assert!(
            matches!(&e, glrunner_janitor::Error::PermissionDenied { message, .. } if message.contains("read_api")),
            "{e}"
        );
        let e = source.pending_jobs().await.unwrap_err();
        assert!(
            matches!(&e, glrunner_janitor::Error::Backend { backend: "gitlab", resource, .. } if resource == "project 7"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn job_status_reads_gitlab_and_a_missing_job_is_not_found() {
        use glrunner_janitor::JobStatusSource;
        let gl = InMemoryGitLab::default();
        let yaml = LoadTestSpec::new(vec![ShardTarget::new("t", 1)])
            .to_yaml()
            .unwrap();
        let project = seeded(&gl, "sandbox/status", &yaml).await;
        let pid = match project {
            ProjectRef::Id(id) => id,
            ProjectRef::Path(_) => unreachable!(),
        };
        let job = gl
            .project_jobs_up_to(&project, &[], 10)
            .await
            .unwrap()
            .items[0]
            .id;
        let source = GitLabJobStatus::new(Arc::new(gl.clone()));
        assert_eq!(
            source.job_status(pid, job).await.unwrap(),
            glrunner_janitor::JobStatus::Queued
        );
        gl.force_job_status(job, JobStatus::Success).unwrap();
        assert_eq!(
            source.job_status(pid, job).await.unwrap(),
            glrunner_janitor::JobStatus::Success
        );
        assert_eq!(
            source.job_status(pid, job + 1000).await.unwrap(),
            glrunner_janitor::JobStatus::NotFound
        );
    }
}
