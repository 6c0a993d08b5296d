//! `FleetPlan`: N concurrent jobs become K runner releases, each with its own tag and `concurrent`.
//!
//! Why: one runner never splits a `parallel` job across runners, `parallel` stops at 200, and a
//! runner whose `concurrent` is below a job's `parallel` leaves jobs queued or failing. So jobs are
//! split evenly over `ceil(N / cap)` releases `<prefix>-1..K`; each release gets tag `<tag>-i` and
//! `concurrent` equal to its batch, and its batch is split into CI jobs of at most 200 `parallel`.
//! Jobs are numbered `0..N` and shard `i` takes a contiguous range, so every job is routed to
//! exactly one shard.

use std::time::Duration;

use serde::Serialize;

use crate::error::{Error, Invalid, Result};
use crate::fargate::FargateSize;
use crate::validate;
use crate::values::RunnerValues;

/// GitLab's limit on `parallel` for one CI job.
pub const MAX_PARALLEL: u32 = 200;
/// Default cap of jobs per release (what the reference workflow proved with one runner).
pub const DEFAULT_MAX_PER_RELEASE: u32 = 200;
/// Largest fleet this planner accepts.
pub const MAX_JOBS: u32 = 100_000;
/// Default expected start of a Fargate job pod (new node + image pull on an empty cache).
pub const DEFAULT_EXPECTED_POD_START: Duration = Duration::from_secs(90);
/// Above this many job pods pulling one Docker Hub image, pull rate limits are likely.
pub const DOCKER_HUB_PULL_WARNING: u32 = 100;
/// Smallest `poll_timeout` recommended on Fargate.
pub const MIN_RECOMMENDED_POLL_TIMEOUT: Duration = Duration::from_secs(300);

/// What to plan for.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct FleetRequest {
    /// Jobs that should run at the same time.
    pub jobs: u32,
    /// Release names are `<release_prefix>-<i>`.
    pub release_prefix: String,
    /// Runner tags are `<tag_prefix>-<i>`, unless [`FleetRequest::shared_tag`] is set.
    pub tag_prefix: String,
    /// One tag for every shard's runner instead of `<tag_prefix>-<i>` (the reference tutorial's
    /// `eks-fargate`): GitLab then hands any job to any of the runners, so no job is routed to
    /// one release and each release keeps [`Shard::jobs`] only as its share of `concurrent`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared_tag: Option<String>,
    /// Whether the runners also take jobs without tags (`run_untagged` of `POST /user/runners`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub run_untagged: bool,
    /// At most this many jobs per release.
    pub max_per_release: u32,
    /// How long a job pod takes to start on Fargate (serialised as seconds).
    #[serde(rename = "expected_pod_start_secs", serialize_with = "as_secs")]
    pub expected_pod_start: Duration,
    /// The job image, to warn about Docker Hub pull limits.
    pub job_image: Option<String>,
    /// Fargate size of one job pod, to check the vCPU quota.
    pub job_pod_size: Option<FargateSize>,
    /// Fargate size of one runner manager pod.
    pub manager_pod_size: Option<FargateSize>,
    /// The account's Fargate vCPU quota, when known.
    pub fargate_vcpu_quota: Option<u32>,
    /// Pods of the template whose requests land just past a Fargate size.
    pub fargate_rounding: Vec<crate::values::FargateRounding>,
}

impl FleetRequest {
    /// A request for `jobs` with defaults: releases `gitlab-runner-i`, tags `glrunner-i`, cap 200, pod start 90s.
    pub fn new(jobs: u32) -> Self {
        Self {
            jobs,
            release_prefix: "gitlab-runner".to_string(),
            tag_prefix: "glrunner".to_string(),
            shared_tag: None,
            run_untagged: false,
            max_per_release: DEFAULT_MAX_PER_RELEASE,
            expected_pod_start: DEFAULT_EXPECTED_POD_START,
            job_image: None,
            job_pod_size: None,
            manager_pod_size: None,
            fargate_vcpu_quota: None,
            fargate_rounding: Vec::new(),
        }
    }

    /// Sets the release name prefix.
    #[must_use]
    pub fn with_release_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.release_prefix = prefix.into();
        self
    }

    /// Sets the tag prefix.
    #[must_use]
    pub fn with_tag_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.tag_prefix = prefix.into();
        self
    }

    /// Gives every shard's runner the one tag `tag` (see [`FleetRequest::shared_tag`]).
    #[must_use]
    pub fn with_shared_tag(mut self, tag: Option<String>) -> Self {
        self.shared_tag = tag;
        self
    }

    /// Lets the runners take untagged jobs too.
    #[must_use]
    pub fn with_run_untagged(mut self, yes: bool) -> Self {
        self.run_untagged = yes;
        self
    }

    /// The tag of shard `index` (1-based).
    fn tag(&self, index: u32) -> String {
        self.shared_tag
            .clone()
            .unwrap_or_else(|| format!("{}-{index}", self.tag_prefix))
    }

    /// Sets the cap per release.
    #[must_use]
    pub fn with_max_per_release(mut self, cap: u32) -> Self {
        self.max_per_release = cap;
        self
    }

    /// Sets the expected pod start.
    #[must_use]
    pub fn with_expected_pod_start(mut self, d: Duration) -> Self {
        self.expected_pod_start = d;
        self
    }

    /// Takes job image and pod sizes from runner values (the template every release will use).
    #[must_use]
    pub fn with_values(mut self, values: &RunnerValues) -> Self {
        self.job_image = Some(values.executor.image.clone());
        self.job_pod_size = values.executor.job_pod_size(0);
        // The manager as rendered for the largest shard this request can make (its size grows
        // with `concurrent`), not the template's bare `resources`.
        self.manager_pod_size = values
            .clone()
            .with_concurrent(self.max_per_release)
            .manager_pod_size();
        self.fargate_rounding = values.fargate_rounding();
        self
    }

    /// Sets the Fargate vCPU quota.
    #[must_use]
    pub fn with_fargate_vcpu_quota(mut self, quota: u32) -> Self {
        self.fargate_vcpu_quota = Some(quota);
        self
    }

    fn issues(&self) -> Vec<Invalid> {
        let mut issues = Vec::new();
        if self.jobs == 0 || self.jobs > MAX_JOBS {
            issues.push(Invalid::new(
                "jobs",
                format!("{} is outside 1..={MAX_JOBS}", self.jobs),
                "pass --jobs 1 or more",
            ));
        }
        if self.max_per_release == 0 {
            issues.push(Invalid::new(
                "max_per_release",
                "must be at least 1",
                format!("use e.g. {DEFAULT_MAX_PER_RELEASE}"),
            ));
        }
        if self.expected_pod_start.is_zero() || self.expected_pod_start > Duration::from_secs(3600)
        {
            issues.push(Invalid::new(
                "expected_pod_start",
                "must be between 1s and 1h",
                "use e.g. 90s",
            ));
        }
        if issues.is_empty() {
            let k = self.jobs.div_ceil(self.max_per_release);
            issues.extend(
                validate::release_name("release_prefix", &format!("{}-{k}", self.release_prefix))
                    .err(),
            );
            match &self.shared_tag {
                Some(tag) => issues.extend(validate::runner_tag("shared_tag", tag).err()),
                None => issues.extend(
                    validate::runner_tag("tag_prefix", &format!("{}-{k}", self.tag_prefix)).err(),
                ),
            }
        }
        issues
    }
}

/// One release of the fleet and the jobs routed to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shard {
    /// 1-based index.
    pub index: u32,
    /// Helm release name, `<prefix>-<index>`.
    pub release: String,
    /// The runner's GitLab tag, `<tag_prefix>-<index>` (every job routed here carries it), or
    /// the request's shared tag (all shards carry it).
    pub tag: String,
    /// Whether the runner takes untagged jobs too (`run_untagged`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub run_untagged: bool,
    /// First job (0-based, global) routed here; the shard takes `first_job..first_job + jobs`.
    pub first_job: u32,
    /// Jobs routed here.
    pub jobs: u32,
    /// The runner's `concurrent`: equal to `jobs`.
    pub concurrent: u32,
    /// The CI jobs for this tag: each entry is one job's `parallel` (1..=200), summing to `jobs`.
    pub parallel: Vec<u32>,
}

impl Shard {
    /// Whether global job `job` is routed here.
    pub fn contains(&self, job: u32) -> bool {
        job >= self.first_job && job - self.first_job < self.jobs
    }
}

/// Something worth knowing before running the plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
#[non_exhaustive]
pub enum FleetWarning {
    /// The job image comes from Docker Hub and many fresh Fargate nodes will pull it at once.
    DockerHubImage {
        /// The image.
        image: String,
        /// Pulls at once.
        pulls: u32,
    },
    /// A pod's requests land just past a Fargate size: a slightly lower request halves its cost.
    FargateRounding(crate::values::FargateRounding),
    /// The fleet needs more Fargate vCPUs than the account's quota.
    FargateVcpuQuota {
        /// vCPUs the fleet needs at peak (job pods + runner managers).
        needed: f64,
        /// The quota.
        quota: u32,
    },
}

impl std::fmt::Display for FleetWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::DockerHubImage { image, pulls } => write!(
                f,
                "job image {image:?} comes from Docker Hub and {pulls} Fargate pods will each pull it on an empty cache; \
                 Docker Hub pull rate limits will fail jobs: mirror it (e.g. public.ecr.aws/docker/library/...) or use a private registry"
            ),
            Self::FargateRounding(r) => write!(f, "{r}"),
            Self::FargateVcpuQuota { needed, quota } => write!(
                f,
                "the fleet needs {needed} Fargate vCPUs at peak but the account quota is {quota}; pods beyond it stay Pending \
                 until poll_timeout: request a quota increase or plan fewer jobs"
            ),
        }
    }
}

/// The plan: shards, the recommended `poll_timeout`, and warnings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetPlan {
    /// N.
    pub total_jobs: u32,
    /// K shards, in index order.
    pub shards: Vec<Shard>,
    /// Recommended `poll_timeout` for every release (serialised as seconds).
    #[serde(rename = "recommended_poll_timeout_secs", serialize_with = "as_secs")]
    pub recommended_poll_timeout: Duration,
    /// Warnings.
    pub warnings: Vec<FleetWarning>,
}

impl FleetPlan {
    /// Plans `request`; the error lists every invalid field.
    pub fn new(request: &FleetRequest) -> Result<Self> {
        Error::check(request.issues())?;
        let n = request.jobs;
        let k = n.div_ceil(request.max_per_release);
        let (base, extra) = (n / k, n % k);
        let mut shards = Vec::with_capacity(k as usize);
        let mut first_job = 0;
        for i in 0..k {
            let jobs = base + u32::from(i < extra);
            shards.push(Shard {
                index: i + 1,
                release: format!("{}-{}", request.release_prefix, i + 1),
                tag: request.tag(i + 1),
                run_untagged: request.run_untagged,
                first_job,
                jobs,
                concurrent: jobs,
                parallel: split_even(jobs, MAX_PARALLEL),
            });
            first_job += jobs;
        }
        let recommended_poll_timeout = recommend_poll_timeout(request.expected_pod_start);
        let mut warnings = Vec::new();
        if let Some(image) = &request.job_image
            && is_docker_hub(image)
            && n > DOCKER_HUB_PULL_WARNING
        {
            warnings.push(FleetWarning::DockerHubImage {
                image: image.clone(),
                pulls: n,
            });
        }
        warnings.extend(
            request
                .fargate_rounding
                .iter()
                .cloned()
                .map(FleetWarning::FargateRounding),
        );
        if let (Some(quota), Some(job)) = (request.fargate_vcpu_quota, request.job_pod_size) {
            let managers = request.manager_pod_size.map_or(0.25, |m| m.vcpus()) * f64::from(k);
            let needed = job.vcpus() * f64::from(n) + managers;
            if needed > f64::from(quota) {
                warnings.push(FleetWarning::FargateVcpuQuota { needed, quota });
            }
        }
        for w in &warnings {
            tracing::debug!(warning = %w, "fleet plan warning");
        }
        Ok(Self {
            total_jobs: n,
            shards,
            recommended_poll_timeout,
            warnings,
        })
    }

    /// The shard job `job` (0-based) is routed to; `None` when `job >= total_jobs`.
    pub fn shard_for_job(&self, job: u32) -> Option<&Shard> {
        if job >= self.total_jobs {
            return None;
        }
        let i = self.shards.partition_point(|s| s.first_job + s.jobs <= job);
        self.shards.get(i)
    }

    /// The largest batch routed to one release.
    pub fn largest_batch(&self) -> u32 {
        self.shards.iter().map(|s| s.jobs).max().unwrap_or(0)
    }

    /// `(tag, jobs)` per tag, in shard order: what the CI generator needs to emit the jobs of
    /// each tag. Shards sharing a tag ([`FleetRequest::shared_tag`]) make one route.
    pub fn routes(&self) -> Vec<(String, u32)> {
        let mut routes: Vec<(String, u32)> = Vec::new();
        for s in &self.shards {
            match routes.iter_mut().find(|(tag, _)| *tag == s.tag) {
                Some((_, jobs)) => *jobs += s.jobs,
                None => routes.push((s.tag.clone(), s.jobs)),
            }
        }
        routes
    }

    /// Values for each shard's release from a template: `concurrent` = batch, tags = the shard's tag,
    /// `poll_timeout` raised to the recommendation if lower. Each result is validated for its batch.
    pub fn release_values(&self, template: &RunnerValues) -> Result<Vec<(Shard, RunnerValues)>> {
        self.shards
            .iter()
            .enumerate()
            .map(|(i, shard)| {
                let mut v = template
                    .clone()
                    .with_concurrent(shard.concurrent)
                    .with_runner_tags([shard.tag.clone()]);
                // A named manager ServiceAccount (the S3 cache's IRSA subject) is one object in
                // the namespace: the first release owns it, Helm refuses a second owner.
                if i > 0 {
                    v = v.with_shared_service_account();
                }
                v.executor.poll_timeout =
                    v.executor.poll_timeout.max(self.recommended_poll_timeout);
                v.validate()?;
                Ok((shard.clone(), v))
            })
            .collect()
    }
}

/// `max(300s, 3 × expected start)`, rounded up to 30s: headroom for image pulls on empty caches
/// and for Fargate's launch rate when hundreds of pods start at once.
pub fn recommend_poll_timeout(expected_pod_start: Duration) -> Duration {
    let secs = (expected_pod_start.as_secs().max(1) * 3).div_ceil(30) * 30;
    Duration::from_secs(secs).max(MIN_RECOMMENDED_POLL_TIMEOUT)
}

fn as_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

/// Splits `n` into the fewest parts of at most `cap`, as even as possible.
fn split_even(n: u32, cap: u32) -> Vec<u32> {
    let parts = n.div_ceil(cap).max(1);
    let (base, extra) = (n / parts, n % parts);
    (0..parts).map(|i| base + u32::from(i < extra)).collect()
}

/// Whether an image reference resolves to Docker Hub (no registry host, or docker.io).
pub fn is_docker_hub(image: &str) -> bool {
    match image.split_once('/') {
        None => true,
        Some((first, _)) => {
            let is_host = first.contains('.') || first.contains(':') || first == "localhost";
            !is_host
                || matches!(
                    first,
                    "docker.io" | "index.docker.io" | "registry-1.docker.io"
                )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_hundred_jobs_make_two_releases_of_two_hundred() {
        let plan = FleetPlan::new(&FleetRequest::new(400)).unwrap();
        assert_eq!(plan.shards.len(), 2);
        assert_eq!(
            plan.routes(),
            vec![
                ("glrunner-1".to_string(), 200),
                ("glrunner-2".to_string(), 200)
            ]
        );
        assert_eq!(plan.shards[1].release, "gitlab-runner-2");
        assert_eq!(plan.shards[1].first_job, 200);
        assert_eq!(plan.shards[0].parallel, [200]);
    }

    /// The reference tutorial's fleet: every runner tagged `eks-fargate` and taking untagged
    /// jobs, so the load test's jobs make one route whatever the number of releases.
    #[test]
    fn a_shared_tag_tags_every_shard_and_makes_one_route() {
        let plan = FleetPlan::new(
            &FleetRequest::new(400)
                .with_shared_tag(Some("eks-fargate".into()))
                .with_run_untagged(true),
        )
        .unwrap();
        assert_eq!(plan.shards.len(), 2);
        for shard in &plan.shards {
            assert_eq!(shard.tag, "eks-fargate");
            assert!(shard.run_untagged);
        }
        assert_eq!(plan.routes(), vec![("eks-fargate".to_string(), 400)]);
        let json = serde_json::to_value(&plan).unwrap();
        assert_eq!(json["shards"][1]["run_untagged"], true);
        // Without: one tag per shard, and no `run_untagged` key in the plan's JSON.
        let plan = FleetPlan::new(&FleetRequest::new(400)).unwrap();
        assert_eq!(plan.routes().len(), 2);
        let json = serde_json::to_value(&plan).unwrap();
        assert!(json["shards"][0].get("run_untagged").is_none(), "{json}");
        let e =
            FleetPlan::new(&FleetRequest::new(10).with_shared_tag(Some("a,b".into()))).unwrap_err();
        assert_eq!(e.issues()[0].field, "shared_tag");
    }

    #[test]
    fn uneven_and_capped() {
        let plan = FleetPlan::new(&FleetRequest::new(450)).unwrap();
        assert_eq!(
            plan.shards.iter().map(|s| s.jobs).collect::<Vec<_>>(),
            [150, 150, 150]
        );
        let plan = FleetPlan::new(&FleetRequest::new(1001).with_max_per_release(500)).unwrap();
        assert_eq!(
            plan.shards.iter().map(|s| s.jobs).collect::<Vec<_>>(),
            [334, 334, 333]
        );
        assert_eq!(plan.shards[0].parallel, [167, 167]);
        assert_eq!(plan.largest_batch(), 334);
        assert_eq!(plan.shard_for_job(333).unwrap().index, 1);
        assert_eq!(plan.shard_for_job(334).unwrap().index, 2);
        assert_eq!(plan.shard_for_job(1000).unwrap().index, 3);
        assert!(plan.shard_for_job(1001).is_none());
    }

    #[test]
    fn json_shape() {
        let plan = FleetPlan::new(&FleetRequest::new(250)).unwrap();
        let json = serde_json::to_value(&plan).unwrap();
        assert_eq!(json["recommended_poll_timeout_secs"], 300);
        assert_eq!(json["shards"][1]["tag"], "glrunner-2");
        assert_eq!(json["shards"][1]["jobs"], 125);
    }

    #[test]
    fn a_job_pod_just_past_a_fargate_size_is_warned_with_the_request_that_fits() {
        // --cpu 1 plus the 250m helper is 1.25 vCPU: billed as 2 vCPU / 4 GB.
        let values = RunnerValues::new("https://gitlab.com/").with_build_resources("1", "512Mi");
        let plan = FleetPlan::new(&FleetRequest::new(10).with_values(&values)).unwrap();
        let rounding: Vec<_> = plan
            .warnings
            .iter()
            .filter_map(|w| match w {
                FleetWarning::FargateRounding(r) => Some(r),
                _ => None,
            })
            .collect();
        assert_eq!(rounding.len(), 1, "{:?}", plan.warnings);
        assert_eq!(rounding[0].pod, "job");
        assert_eq!(rounding[0].field, "executor.build.cpu");
        assert_eq!(rounding[0].fits, "750m");
        let text = plan.warnings[0].to_string();
        assert!(
            text.contains("2 vCPU / 4 GB") && text.contains("1 vCPU / 2 GB"),
            "{text}"
        );
        let json = serde_json::to_value(&plan.warnings[0]).unwrap();
        assert_eq!(json["kind"], "fargate_rounding");
        assert_eq!(json["excess"], 250);

        // The defaults (250m + 250m, 512Mi + 256Mi) sit inside 0.5 vCPU / 1 GB: no warning.
        let values = RunnerValues::new("https://gitlab.com/");
        let plan = FleetPlan::new(&FleetRequest::new(10).with_values(&values)).unwrap();
        assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);

        // Memory: 1792Mi + 256Mi helper + 256Mi overhead is 2.25 GB, billed as 3 GB.
        let values =
            RunnerValues::new("https://gitlab.com/").with_build_resources("500m", "1792Mi");
        let found = values.fargate_rounding();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].field, "executor.build.memory");
        assert_eq!(found[0].fits, "1536Mi");
    }

    #[test]
    fn poll_timeout_recommendation() {
        assert_eq!(
            recommend_poll_timeout(Duration::from_secs(60)),
            Duration::from_secs(300)
        );
        assert_eq!(
            recommend_poll_timeout(Duration::from_secs(130)),
            Duration::from_secs(390)
        );
    }

    #[test]
    fn warnings() {
        assert!(is_docker_hub("alpine"));
        assert!(is_docker_hub("library/alpine:3"));
        assert!(is_docker_hub("docker.io/library/alpine"));
        assert!(!is_docker_hub("public.ecr.aws/docker/library/alpine:3.22"));
        assert!(!is_docker_hub("localhost:5000/x"));
        let values = RunnerValues::new("https://g.example.com").with_image("alpine:3.22");
        let plan = FleetPlan::new(
            &FleetRequest::new(400)
                .with_values(&values)
                .with_fargate_vcpu_quota(100),
        )
        .unwrap();
        assert_eq!(plan.warnings.len(), 2, "{:?}", plan.warnings);
        // 400 job pods of 0.5 vCPU, and two managers sized as rendered for `concurrent: 200`
        // (2 vCPU each, `manager_resources_for`), not at the template's bare `resources`.
        assert!(
            matches!(plan.warnings[1], FleetWarning::FargateVcpuQuota { needed, quota: 100 } if needed == 204.0),
            "{:?}",
            plan.warnings
        );
        let plan = FleetPlan::new(&FleetRequest::new(50).with_values(&values)).unwrap();
        assert!(plan.warnings.is_empty());
    }

    #[test]
    fn invalid_requests_name_fields() {
        let e = FleetPlan::new(&FleetRequest::new(0).with_max_per_release(0)).unwrap_err();
        let fields: Vec<&str> = e.issues().iter().map(|i| i.field.as_str()).collect();
        assert_eq!(fields, ["jobs", "max_per_release"]);
        let e = FleetPlan::new(&FleetRequest::new(10).with_release_prefix("Bad")).unwrap_err();
        assert_eq!(e.issues()[0].field, "release_prefix");
    }

    #[test]
    fn release_values_follow_shards() {
        let plan = FleetPlan::new(&FleetRequest::new(300)).unwrap();
        let template =
            RunnerValues::new("https://g.example.com").with_poll_timeout(Duration::from_secs(60));
        let values = plan.release_values(&template).unwrap();
        assert_eq!(values.len(), 2);
        for (shard, v) in &values {
            assert_eq!(v.concurrent, shard.jobs);
            assert_eq!(v.runner_tags, std::slice::from_ref(&shard.tag));
            assert_eq!(v.executor.poll_timeout, plan.recommended_poll_timeout);
            v.validate_for(shard.jobs, DEFAULT_EXPECTED_POD_START)
                .unwrap();
        }
    }
}
