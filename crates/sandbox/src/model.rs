//! The timing model of the runner simulator: what decides a Kubernetes-executor fleet's makespan on EKS Fargate, each parameter with its source.
//!
//! A job's life in the model, in order (every step on tokio's clock):
//!
//! 1. **Pickup.** Every `check_interval` the runner manager feeds each of its runner entries to
//!    its workers; a worker asks GitLab for one job (`POST /api/v4/jobs/request`), which costs
//!    one request round trip. When a job comes back the runner entry is requeued at once, so the
//!    next request starts without waiting for the next `check_interval`; at most
//!    `request_concurrency` requests of one entry are in flight, and a request that finds no job
//!    ends the chain until the next feed. GitLab sets `started_at` (the end of queue time) here.
//! 2. **Preparing the Kubernetes executor**: the runner's API calls before the pod exists.
//! 3. **Fargate launch**: the pod waits for room under the account's vCPU quota (first come, first
//!    served), then for a token of the account's launch-rate bucket; then a Fargate node is
//!    provisioned and registered, the pod is set up, and the helper and job images are pulled
//!    onto the empty node (pull time by registry and image size).
//! 4. **Waiting for the pod**: the runner polls the pod every `poll_interval` and fails the job
//!    ("timed out waiting for pod to start") when it is not running `poll_timeout` after creation.
//! 5. **The script**: get sources, `step_script` and cleanup, each through the helper; then the
//!    runner reports the job to GitLab and deletes the pod, whose vCPUs return to the quota
//!    shortly after.
//!
//! `check_interval`, `concurrent`, `poll_interval`, `poll_timeout`, the job pod's size and the
//! job image, and `request_concurrency` come from the installed release's values and the
//! pipeline's jobs, as they would on a real cluster (see [`super::profile::request_concurrency`]).
//! Everything else is a
//! [`FleetModel`] parameter below, and [`FleetModel::parameters`] lists each with its
//! [`Basis`] and source, so a report can say which numbers are documented, which were measured
//! by someone, and which were fitted to the reference tutorial's published makespans.
//!
//! Not modelled: the runner manager's own CPU (no published measurement ties its size to job
//! pick-up), GitLab's long polling (a held request is released as soon as jobs are queued for
//! the runner, so a load test that starts from an idle runner loses at most one
//! `check_interval`), Docker Hub's pull rate limit (the tutorial moved its job image to Amazon
//! ECR Public after hitting it, and measured there), the Kubernetes API server's own limits,
//! and the job pull policy: a Fargate pod runs on a node of its own whose image cache starts
//! empty ("each new node starts with an empty image cache", shared/reference/gitlab.md; AWS
//! EKS Fargate considerations: one pod per node), so `if-not-present` (the reference's) pulls
//! exactly as `always` does.

use std::time::Duration;

use serde::Serialize;

/// Where a model parameter's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Basis {
    /// Stated in documentation or source code.
    Documented,
    /// A measurement someone published.
    Measured,
    /// Chosen so the reference profile reproduces the tutorial's published makespans.
    Fitted,
    /// An estimate with no published figure behind it.
    Assumed,
}

impl Basis {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Basis::Documented => "documented",
            Basis::Measured => "measured",
            Basis::Fitted => "fitted",
            Basis::Assumed => "assumed",
        }
    }
}

/// One parameter of the model, for reports and the sensitivity table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Parameter {
    /// Stable name (`fargate.vcpu_quota`), also the key of [`FleetModel::scaled`].
    pub name: &'static str,
    /// The value, with its unit.
    pub value: String,
    /// Where it comes from.
    pub basis: Basis,
    /// The document, issue or measurement behind it.
    pub source: &'static str,
}

/// A duration drawn uniformly from `low..=high`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Spread {
    /// Lower bound.
    pub low: Duration,
    /// Upper bound.
    pub high: Duration,
}

impl Spread {
    /// Uniform over `low..=high` (swapped when given in the wrong order).
    pub fn between(low: Duration, high: Duration) -> Self {
        Self {
            low: low.min(high),
            high: low.max(high),
        }
    }

    /// Uniform over `low_secs..=high_secs`.
    pub fn secs(low_secs: f64, high_secs: f64) -> Self {
        Self::between(
            Duration::from_secs_f64(low_secs.max(0.0)),
            Duration::from_secs_f64(high_secs.max(0.0)),
        )
    }

    /// One draw.
    pub fn sample(&self, rng: &mut fastrand::Rng) -> Duration {
        self.low + (self.high - self.low).mul_f64(rng.f64())
    }

    fn scaled(self, factor: f64) -> Self {
        Self::between(self.low.mul_f64(factor), self.high.mul_f64(factor))
    }

    fn describe(&self) -> String {
        format!(
            "{:.2}–{:.2} s",
            self.low.as_secs_f64(),
            self.high.as_secs_f64()
        )
    }
}

/// How fast one registry serves an image to a fresh Fargate node.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RegistryTiming {
    /// Token, manifest and redirects before the first layer byte.
    pub latency: Duration,
    /// Layer download throughput, MB/s.
    pub megabytes_per_second: f64,
}

impl RegistryTiming {
    fn pull(&self, megabytes: f64) -> Duration {
        self.latency
            + Duration::from_secs_f64(megabytes.max(0.0) / self.megabytes_per_second.max(0.01))
    }

    fn scaled(self, factor: f64) -> Self {
        Self {
            latency: self.latency.mul_f64(factor),
            megabytes_per_second: self.megabytes_per_second / factor.max(0.01),
        }
    }
}

/// The registry an image reference resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Registry {
    /// Docker Hub (no registry host, or `docker.io`).
    DockerHub,
    /// Amazon ECR Public (`public.ecr.aws`).
    PublicEcr,
    /// GitLab's registry (`registry.gitlab.com`), where the runner's helper image lives.
    GitLab,
    /// The account's private ECR registry (`<account>.dkr.ecr.<region>.amazonaws.com`), where
    /// the stack's pull-through cache serves its images.
    PrivateEcr,
    /// Any other registry (timed like Docker Hub).
    Other,
}

impl Registry {
    /// The registry of an image reference.
    pub fn of(image: &str) -> Self {
        let host = match image.split_once('/') {
            Some((first, _))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                first
            }
            _ => return Registry::DockerHub,
        };
        match host {
            "docker.io" | "registry-1.docker.io" | "index.docker.io" => Registry::DockerHub,
            "public.ecr.aws" => Registry::PublicEcr,
            "registry.gitlab.com" => Registry::GitLab,
            // ECR's registry host: `<account>.dkr.ecr.<region>.amazonaws.com` (ECR User Guide,
            // "Amazon ECR private registry"), `.amazonaws.com.cn` in China.
            host if host.split('.').nth(1) == Some("dkr")
                && host.split('.').nth(2) == Some("ecr")
                && (host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn")) =>
            {
                Registry::PrivateEcr
            }
            _ => Registry::Other,
        }
    }
}

/// What the Fargate side of the account does.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FargateModel {
    /// Launch-rate token bucket: tokens available at once.
    pub launch_burst: f64,
    /// Launch-rate token bucket: tokens added per second.
    pub launch_per_second: f64,
    /// vCPUs of Fargate pods that may run at once in the account and Region.
    pub vcpu_quota: f64,
    /// vCPUs held by pods other than runner managers and job pods (CoreDNS on Fargate).
    pub system_vcpu: f64,
    /// A new Fargate node: provisioned and registered with the cluster.
    pub node_start: Spread,
    /// The rest of a pod's start on its new node (sandbox, network, containers), pulls aside.
    pub pod_setup: Spread,
    /// From the runner's delete to the pod's vCPUs counting as free again.
    pub capacity_release: Duration,
}

/// What the runner manager and the job itself cost.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunnerModel {
    /// One `POST /api/v4/jobs/request` round trip.
    pub request_round_trip: Spread,
    /// "Preparing the kubernetes executor" and the API calls before the pod exists.
    pub executor_prepare: Spread,
    /// get sources + `step_script` + cleanup of a hello-world job, through the helper.
    pub script: Spread,
    /// Reporting the job's end to GitLab and deleting the pod.
    pub finish: Duration,
    /// With adaptive request concurrency: growth of the requests in flight per job taken.
    pub adaptive_growth: f64,
}

/// Image pulls onto an empty Fargate node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PullModel {
    /// Docker Hub.
    pub docker_hub: RegistryTiming,
    /// Amazon ECR Public, in the pod's Region.
    pub public_ecr: RegistryTiming,
    /// registry.gitlab.com.
    pub gitlab: RegistryTiming,
    /// Compressed size of the `bash` image, MB.
    pub bash_megabytes: f64,
    /// Compressed size of the runner's helper image, MB.
    pub helper_megabytes: f64,
    /// Compressed size assumed for any other job image, MB.
    pub other_megabytes: f64,
}

impl PullModel {
    /// Pull time of `image` onto an empty node.
    pub fn job_image(&self, image: &str) -> Duration {
        let registry = Registry::of(image);
        let name = image.rsplit('/').next().unwrap_or(image);
        let name = name.split([':', '@']).next().unwrap_or(name);
        let megabytes = if name == "bash" {
            self.bash_megabytes
        } else {
            self.other_megabytes
        };
        self.timing(registry).pull(megabytes)
    }

    /// Pull time of `image` of `megabytes` MB (compressed) from its registry onto an empty node.
    pub fn job_image_megabytes(&self, image: &str, megabytes: f64) -> Duration {
        self.timing(Registry::of(image)).pull(megabytes)
    }

    /// Pull time of the runner's helper image (registry.gitlab.com).
    pub fn helper_image(&self) -> Duration {
        self.gitlab.pull(self.helper_megabytes)
    }

    fn timing(&self, registry: Registry) -> RegistryTiming {
        match registry {
            Registry::DockerHub | Registry::Other => self.docker_hub,
            // **Assumed**: the private registry in the pod's Region, its layers through the S3
            // gateway endpoint, serves as fast as ECR Public in the Region (no published figure
            // for either); a cold pull-through pull's import is [`crate::images::ImageModel`]'s.
            Registry::PublicEcr | Registry::PrivateEcr => self.public_ecr,
            Registry::GitLab => self.gitlab,
        }
    }
}

/// Every timing parameter of the simulator; see the [module docs](self).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetModel {
    /// Fargate.
    pub fargate: FargateModel,
    /// Image pulls.
    pub pulls: PullModel,
    /// The runner and the job.
    pub runner: RunnerModel,
}

const SRC_THROTTLING: &str = "AWS Fargate throttling quotas (docs.aws.amazon.com/AmazonECS/latest/developerguide/throttling.html): \
     token bucket per account and Region; accounts launching only EKS pods: burst 20, 20 pod launches/s sustained";
const SRC_QUOTA: &str = "fitted: the tutorial's account quota is not published. With the tutorial's configuration \
     (poll_timeout 90 s, request_concurrency 1, two releases sharing the eks-fargate jobs at 400) a pod may wait for \
     room only about 20 s before its Fargate start runs past poll_timeout, so the quota must hold nearly all 400 job \
     pods: below about 70 vCPU 400-job pods time out (65: 10 of 400), at 70, 80 and 90 vCPU 400 jobs take 157, 151 \
     and 143 s (200 jobs 133 s), so 80 (about 310 job pods of 0.25 vCPU beside 2 CoreDNS pods and the managers) is \
     used, with room on both sides; no quota brings the 400-job run closer to the published 'just over 3 minutes' \
     without timing jobs out (the 90 s poll_timeout leaves too little room to wait). The \
     documented default for new accounts is 6 vCPU (AWS General Reference, ECS endpoints and quotas) and grows with \
     use; the model cannot tell this quota from another account-wide cap on running pods";
const SRC_COREDNS: &str = "EKS Blueprints fargate-serverless: CoreDNS add-on on Fargate, 0.25 vCPU per pod, 2 replicas (shared/reference/aws.md)";
const SRC_NODE: &str = "aws/containers-roadmap#649 'Improve Fargate Node Startup Time': '30-45 seconds for a node to be \
     created and registered ... in total it's taking over a minute to start a new pod'";
const SRC_SETUP: &str = "aws/containers-roadmap#649: the rest of 'over a minute' per pod after the node registers, pulls counted apart";
const SRC_RELEASE: &str =
    "assumed: container stop and Fargate's accounting after the runner's delete";
const SRC_RTT: &str = "fitted: the round trip of a job request to GitLab.com that returns a job (Rails builds the job \
     payload), chosen with the vCPU quota so 200 jobs on one runner with request_concurrency 1 take the tutorial's \
     'just under 2 minutes' within 25 %, leaving the 400-job run (two runners, each taking jobs one round trip \
     apart) room to wait for the quota without passing its 90 s poll_timeout";
const SRC_PREPARE: &str = "GitLab Runner executors/kubernetes: 'Preparing the \"kubernetes\" executor', then the API calls \
     creating the build pod; assumed duration";
const SRC_SCRIPT: &str = "assumed: a hello-world job's get-sources, step_script and cleanup stages, each an exec through the helper";
const SRC_FINISH: &str = "assumed: the job's final update to GitLab and the pod's delete call";
const SRC_ADAPTIVE: &str = "GitLab Runner feature flag FF_USE_ADAPTIVE_REQUEST_CONCURRENCY (feature-flags.md: request_concurrency \
     becomes the maximum and the requests in flight follow the rate of successful job requests); the growth per job is assumed";
const SRC_PULL: &str = "assumed: token + manifest + redirects, then layers at the stated throughput onto an empty Fargate node \
     ('each new node starts with an empty image cache', shared/reference/gitlab.md)";
const SRC_SIZES: &str = "assumed: approximate compressed sizes of library/bash and gitlab-runner-helper (alpine, x86_64)";

impl Default for FleetModel {
    /// The calibrated model: see [`FleetModel::parameters`] for every value's source.
    fn default() -> Self {
        Self {
            fargate: FargateModel {
                launch_burst: 20.0,
                launch_per_second: 20.0,
                vcpu_quota: 80.0,
                system_vcpu: 0.5,
                node_start: Spread::secs(30.0, 45.0),
                pod_setup: Spread::secs(10.0, 20.0),
                capacity_release: Duration::from_secs(3),
            },
            pulls: PullModel {
                docker_hub: RegistryTiming {
                    latency: Duration::from_millis(1500),
                    megabytes_per_second: 30.0,
                },
                public_ecr: RegistryTiming {
                    latency: Duration::from_millis(400),
                    megabytes_per_second: 80.0,
                },
                gitlab: RegistryTiming {
                    latency: Duration::from_millis(1000),
                    megabytes_per_second: 40.0,
                },
                bash_megabytes: 6.0,
                helper_megabytes: 35.0,
                other_megabytes: 50.0,
            },
            runner: RunnerModel {
                request_round_trip: Spread::secs(0.225, 0.375),
                executor_prepare: Spread::secs(0.5, 1.5),
                script: Spread::secs(4.0, 8.0),
                finish: Duration::from_millis(500),
                adaptive_growth: 0.1,
            },
        }
    }
}

impl FleetModel {
    /// A job pod's mean start in the model once Fargate has room: a new node, the pod's setup,
    /// and the helper and `image` pulls onto its empty cache. The sandbox's preflight expects
    /// this, so its quota verdict and the model agree.
    pub fn expected_pod_start(&self, image: &str) -> Duration {
        let mean = |s: Spread| (s.low + s.high) / 2;
        mean(self.fargate.node_start)
            + mean(self.fargate.pod_setup)
            + self.pulls.helper_image()
            + self.pulls.job_image(image)
    }

    /// A hello-world job's mean time on its pod in the model, until its vCPUs are free again.
    pub fn expected_job(&self) -> Duration {
        let mean = |s: Spread| (s.low + s.high) / 2;
        mean(self.runner.executor_prepare)
            + mean(self.runner.script)
            + self.runner.finish
            + self.fargate.capacity_release
    }

    /// Every parameter with its value, basis and source.
    pub fn parameters(&self) -> Vec<Parameter> {
        let f = &self.fargate;
        let p = &self.pulls;
        let r = &self.runner;
        let reg = |t: &RegistryTiming| {
            format!(
                "{:.2} s + size / {:.0} MB/s",
                t.latency.as_secs_f64(),
                t.megabytes_per_second
            )
        };
        vec![
            param(
                "fargate.launch_burst",
                format!("{:.0} pods", f.launch_burst),
                Basis::Documented,
                SRC_THROTTLING,
            ),
            param(
                "fargate.launch_per_second",
                format!("{:.0} pods/s", f.launch_per_second),
                Basis::Documented,
                SRC_THROTTLING,
            ),
            param(
                "fargate.vcpu_quota",
                format!("{:.1} vCPU", f.vcpu_quota),
                Basis::Fitted,
                SRC_QUOTA,
            ),
            param(
                "fargate.system_vcpu",
                format!("{:.2} vCPU", f.system_vcpu),
                Basis::Documented,
                SRC_COREDNS,
            ),
            param(
                "fargate.node_start",
                f.node_start.describe(),
                Basis::Measured,
                SRC_NODE,
            ),
            param(
                "fargate.pod_setup",
                f.pod_setup.describe(),
                Basis::Measured,
                SRC_SETUP,
            ),
            param(
                "fargate.capacity_release",
                format!("{:.1} s", f.capacity_release.as_secs_f64()),
                Basis::Assumed,
                SRC_RELEASE,
            ),
            param(
                "pull.docker_hub",
                reg(&p.docker_hub),
                Basis::Assumed,
                SRC_PULL,
            ),
            param(
                "pull.public_ecr",
                reg(&p.public_ecr),
                Basis::Assumed,
                SRC_PULL,
            ),
            param(
                "pull.gitlab_registry",
                reg(&p.gitlab),
                Basis::Assumed,
                SRC_PULL,
            ),
            param(
                "pull.image_sizes",
                format!(
                    "bash {:.0} MB, helper {:.0} MB, other {:.0} MB",
                    p.bash_megabytes, p.helper_megabytes, p.other_megabytes
                ),
                Basis::Assumed,
                SRC_SIZES,
            ),
            param(
                "runner.request_round_trip",
                r.request_round_trip.describe(),
                Basis::Fitted,
                SRC_RTT,
            ),
            param(
                "runner.executor_prepare",
                r.executor_prepare.describe(),
                Basis::Assumed,
                SRC_PREPARE,
            ),
            param(
                "runner.script",
                r.script.describe(),
                Basis::Assumed,
                SRC_SCRIPT,
            ),
            param(
                "runner.finish",
                format!("{:.1} s", r.finish.as_secs_f64()),
                Basis::Assumed,
                SRC_FINISH,
            ),
            param(
                "runner.adaptive_growth",
                format!("{:.0} % per job taken", r.adaptive_growth * 100.0),
                Basis::Assumed,
                SRC_ADAPTIVE,
            ),
        ]
    }

    /// Names accepted by [`FleetModel::scaled`]: the parameters that are times, rates or sizes.
    pub const SCALABLE: [&'static str; 12] = [
        "fargate.launch_per_second",
        "fargate.vcpu_quota",
        "fargate.node_start",
        "fargate.pod_setup",
        "fargate.capacity_release",
        "pull.docker_hub",
        "pull.public_ecr",
        "pull.gitlab_registry",
        "runner.request_round_trip",
        "runner.executor_prepare",
        "runner.script",
        "runner.finish",
    ];

    /// The model with one parameter multiplied by `factor` (durations and the quota grow with
    /// it, the launch rate grows with it, a registry gets `factor` times slower); `None` for a
    /// name not in [`FleetModel::SCALABLE`].
    pub fn scaled(&self, name: &str, factor: f64) -> Option<Self> {
        let mut m = self.clone();
        let factor = factor.max(0.01);
        match name {
            "fargate.launch_per_second" => {
                m.fargate.launch_per_second *= factor;
                m.fargate.launch_burst *= factor;
            }
            "fargate.vcpu_quota" => m.fargate.vcpu_quota *= factor,
            "fargate.node_start" => m.fargate.node_start = m.fargate.node_start.scaled(factor),
            "fargate.pod_setup" => m.fargate.pod_setup = m.fargate.pod_setup.scaled(factor),
            "fargate.capacity_release" => {
                m.fargate.capacity_release = m.fargate.capacity_release.mul_f64(factor);
            }
            "pull.docker_hub" => m.pulls.docker_hub = m.pulls.docker_hub.scaled(factor),
            "pull.public_ecr" => m.pulls.public_ecr = m.pulls.public_ecr.scaled(factor),
            "pull.gitlab_registry" => m.pulls.gitlab = m.pulls.gitlab.scaled(factor),
            "runner.request_round_trip" => {
                m.runner.request_round_trip = m.runner.request_round_trip.scaled(factor);
            }
            "runner.executor_prepare" => {
                m.runner.executor_prepare = m.runner.executor_prepare.scaled(factor);
            }
            "runner.script" => m.runner.script = m.runner.script.scaled(factor),
            "runner.finish" => m.runner.finish = m.runner.finish.mul_f64(factor),
            _ => return None,
        }
        Some(m)
    }
}

fn param(name: &'static str, value: String, basis: Basis, source: &'static str) -> Parameter {
    Parameter {
        name,
        value,
        basis,
        source,
    }
}

/// The reference tutorial's published measurements (one runner release per 200 jobs,
/// `concurrent: 200`, runners tagged `eks-fargate` taking untagged jobs, `poll_timeout` 90 s,
/// `request_concurrency` 1, the `bash` image through Amazon ECR Public: the configuration of
/// [`RunnerProfile::Reference`](glrunner_flow::RunnerProfile::Reference)).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PublishedFigure {
    /// Jobs in the pipeline.
    pub jobs: u32,
    /// The published makespan, seconds (our reading of "just under/over").
    pub makespan_secs: f64,
    /// The published words.
    pub words: &'static str,
}

/// What the reference tutorial published: 200 jobs in just under 2 minutes, 400 jobs on two
/// runner releases in just over 3 minutes; beyond 400 the jobs hung (no figure).
pub const PUBLISHED: [PublishedFigure; 2] = [
    PublishedFigure {
        jobs: 200,
        makespan_secs: 115.0,
        words: "just under 2 minutes",
    },
    PublishedFigure {
        jobs: 400,
        makespan_secs: 185.0,
        words: "just over 3 minutes",
    },
];

/// The published figure for `jobs`, if any.
pub fn published(jobs: u32) -> Option<PublishedFigure> {
    PUBLISHED.iter().copied().find(|p| p.jobs == jobs)
}

/// A token bucket on tokio's clock: [`TokenBucket::reserve`] returns how long a launch waits.
#[derive(Debug, Clone)]
pub(super) struct TokenBucket {
    tokens: f64,
    burst: f64,
    per_second: f64,
    last: tokio::time::Instant,
}

impl TokenBucket {
    pub(super) fn new(burst: f64, per_second: f64) -> Self {
        let burst = burst.max(1.0);
        Self {
            tokens: burst,
            burst,
            per_second: per_second.max(0.001),
            last: tokio::time::Instant::now(),
        }
    }

    /// Takes one token (going into debt when empty) and returns the wait until it is covered.
    /// O(1): waiters queue in the order they reserve.
    pub(super) fn reserve(&mut self, now: tokio::time::Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.per_second)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_resolve_like_the_container_runtime() {
        assert_eq!(Registry::of("bash"), Registry::DockerHub);
        assert_eq!(Registry::of("library/bash:5"), Registry::DockerHub);
        assert_eq!(Registry::of("docker.io/library/bash"), Registry::DockerHub);
        assert_eq!(
            Registry::of("public.ecr.aws/docker/library/bash"),
            Registry::PublicEcr
        );
        assert_eq!(
            Registry::of(
                "registry.gitlab.com/gitlab-org/gitlab-runner/gitlab-runner-helper:x86_64-v17"
            ),
            Registry::GitLab
        );
        assert_eq!(Registry::of("localhost:5000/x"), Registry::Other);
        assert_eq!(
            Registry::of(
                "123456789012.dkr.ecr.us-east-1.amazonaws.com/ci/ecr-public/docker/library/bash"
            ),
            Registry::PrivateEcr
        );
        assert_eq!(
            Registry::of("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/x"),
            Registry::PrivateEcr
        );
        assert_eq!(Registry::of("ecr.example.com/x"), Registry::Other);
    }

    #[test]
    fn public_ecr_pulls_bash_faster_than_docker_hub() {
        let pulls = FleetModel::default().pulls;
        assert!(
            pulls.job_image("public.ecr.aws/docker/library/bash:latest") < pulls.job_image("bash")
        );
        assert!(pulls.job_image("bash") < pulls.job_image("python:3.12"));
    }

    #[test]
    fn every_parameter_names_a_source_and_every_scalable_one_scales() {
        let model = FleetModel::default();
        let params = model.parameters();
        assert!(params.iter().all(|p| p.source.len() > 20), "{params:#?}");
        for name in FleetModel::SCALABLE {
            assert!(
                params.iter().any(|p| p.name == name),
                "{name} is not listed"
            );
            let scaled = model.scaled(name, 1.5).expect(name);
            assert_ne!(scaled, model, "{name} did not change the model");
        }
        assert!(model.scaled("no.such", 2.0).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn token_bucket_allows_its_burst_then_its_rate() {
        let mut bucket = TokenBucket::new(20.0, 20.0);
        let now = tokio::time::Instant::now();
        let waits: Vec<Duration> = (0..40).map(|_| bucket.reserve(now)).collect();
        assert!(waits[..20].iter().all(|w| w.is_zero()));
        assert_eq!(waits[20], Duration::from_millis(50));
        assert_eq!(waits[39], Duration::from_secs(1));
        // A second later the debt is paid and nothing is banked beyond it.
        let later = now + Duration::from_secs(1);
        assert_eq!(bucket.reserve(later), Duration::from_millis(50));
    }
}
