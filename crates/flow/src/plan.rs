//! The plan of a run, computed once before its first call ([`FlowConfig::plan`]): the fleet, the
//! final values of every release, the poll timeout the runners get, and the preflight plan with
//! its cost projection. `--dry-run`, `doctor`, the plan and releases phases and the report all
//! read this one plan, so what is reported is what is installed.

use std::path::PathBuf;
use std::time::Duration;

use glrunner_fargate::FargateSize;
use glrunner_infra::{NatMode, StackSpec};
use glrunner_runner_chart::{FleetPlan, RunnerValues, Shard};

use crate::cost::{self, CostInputs, CostProjection, ExpectedDurations, Prices};
use crate::{ClusterSource, Error, FlowConfig};

/// Everything a run decides before its first call.
#[derive(Debug, Clone)]
pub struct RunPlan {
    /// The fleet: shards, tags, `concurrent`.
    pub fleet: FleetPlan,
    /// Each shard with the values its release is installed with (the runner profile applied).
    pub releases: Vec<(Shard, RunnerValues)>,
    /// The `poll_timeout` the runners are installed with (every release has the same).
    pub poll_timeout: Duration,
    /// What the preflight checks and prices.
    pub preflight: PreflightPlan,
}

impl FlowConfig {
    /// The run's plan against `gitlab_url`: computed from the configuration alone, no call.
    /// Invalid input (names `--jobs`) when the fleet cannot be planned or the values do not fit
    /// a Fargate pod.
    pub fn plan(&self, gitlab_url: &str) -> Result<RunPlan, Error> {
        let template = self.template(gitlab_url);
        let request = self.fleet_request(&template);
        let fleet =
            FleetPlan::new(&request).map_err(|e| Error::invalid("--jobs", e.to_string()))?;
        let releases: Vec<(Shard, RunnerValues)> = fleet
            .release_values(&template)
            .map_err(|e| Error::invalid("--jobs", e.to_string()))?
            .into_iter()
            .map(|(shard, values)| (shard, self.runner_profile.finalize(values)))
            .collect();
        // Every release gets the same poll timeout; with no shard, what one would get.
        let poll_timeout = releases.first().map_or_else(
            || {
                self.runner_profile
                    .finalize(
                        template.clone().with_poll_timeout(
                            template
                                .executor
                                .poll_timeout
                                .max(fleet.recommended_poll_timeout),
                        ),
                    )
                    .executor
                    .poll_timeout
            },
            |(_, values)| values.executor.poll_timeout,
        );
        // The manager is sized for the shard it drives (the largest one bounds the peak).
        let manager_pod_size = template
            .clone()
            .with_concurrent(fleet.largest_batch())
            .manager_pod_size();
        let (Some(job_pod_size), Some(manager_pod_size)) = (request.job_pod_size, manager_pod_size)
        else {
            return Err(Error::invalid(
                "--jobs",
                "the runner values' requests do not fit a Fargate pod",
            ));
        };
        // With a job disk or overwrite ceilings, a job may make its pod this large.
        let job_pod_ceiling = if self.job_disk.is_empty() {
            None
        } else {
            template.executor.largest_job_pod()
        };
        let preflight = PreflightPlan {
            spec: self.spec.clone(),
            fleet: fleet.clone(),
            job_pod_size,
            job_pod_ceiling,
            manager_pod_size,
            cache_workload_mb: self.cache_workload,
            project: Some(self.project.clone()),
            durations: ExpectedDurations {
                pod_start: self.expected_pod_start,
                ..ExpectedDurations::default()
            },
            budget_usd: None,
            helm: None,
            gitlab_url: gitlab_url.to_owned(),
            pipeline_variables: false,
            pipeline_jobs: self.jobs.min(self.max_pipeline_jobs),
            cluster: self.cluster.clone(),
            poll_timeout,
            priced_on: glrunner_infra::versions::today(),
        };
        Ok(RunPlan {
            fleet,
            releases,
            poll_timeout,
            preflight,
        })
    }
}

/// What the run will need: derived from the same flags `full_flow` takes.
#[derive(Debug, Clone)]
pub struct PreflightPlan {
    /// The stack (name, region, network, cluster).
    pub spec: StackSpec,
    /// The fleet: releases and their `concurrent`.
    pub fleet: FleetPlan,
    /// A job pod's Fargate size.
    pub job_pod_size: FargateSize,
    /// The largest job pod the runners' overwrite ceilings and job disk allow, when either is
    /// set ([`crate::job_disk`]): what the cost projection prices.
    pub job_pod_ceiling: Option<glrunner_runner_chart::JobPodCeiling>,
    /// A runner manager pod's Fargate size.
    pub manager_pod_size: FargateSize,
    /// The load test's cache workload in MB per key (`--cache-workload`), if any.
    pub cache_workload_mb: Option<u32>,
    /// The GitLab project (path or id); `None` skips the project check.
    pub project: Option<String>,
    /// Modelled durations for the cost projection.
    pub durations: ExpectedDurations,
    /// Abort when the projection exceeds this many USD.
    pub budget_usd: Option<f64>,
    /// The helm binary to check (`None`: no helm needed, e.g. on the sandbox).
    pub helm: Option<PathBuf>,
    /// The GitLab base URL (for messages).
    pub gitlab_url: String,
    /// Whether the run passes pipeline variables (`full_flow` passes none).
    pub pipeline_variables: bool,
    /// Jobs in the largest pipeline the run creates (`full_flow`: all of them in one).
    pub pipeline_jobs: u32,
    /// Where the cluster comes from: provisioned, an EKS cluster by name, or a kubeconfig.
    pub cluster: ClusterSource,
    /// The runners' `poll_timeout`: a job whose pod is not running this long after its creation
    /// fails ("timed out waiting for pod to start").
    pub poll_timeout: Duration,
    /// The UTC day the projection prices: whether the cluster's Kubernetes version is in
    /// standard or extended support then (today, when the plan was made).
    pub priced_on: jiff::civil::Date,
}

impl PreflightPlan {
    /// The plan `full_flow` would run with `config` against `gitlab_url` (see [`FlowConfig::plan`]).
    pub fn from_flow(config: &FlowConfig, gitlab_url: &str) -> Result<Self, String> {
        config
            .plan(gitlab_url)
            .map(|plan| plan.preflight)
            .map_err(|e| match e {
                Error::InvalidInput { message, .. } => message,
                other => other.to_string(),
            })
    }

    /// The cost projection at list prices from the price table (no call): what `--dry-run`
    /// shows and what the run is held against when the preflight is skipped.
    pub fn table_projection(&self) -> CostProjection {
        crate::cost::project(
            &self.cost_inputs(),
            &self.durations,
            &self.prices(Prices::table(&self.spec.region)),
        )
    }

    /// `prices` for the cluster this plan creates: its Kubernetes version on [`Self::priced_on`]
    /// ([`Prices::for_kubernetes`]).
    pub fn prices(&self, prices: Prices) -> Prices {
        prices.for_kubernetes(&self.spec.cluster.kubernetes_version, self.priced_on)
    }

    /// NAT gateways the network needs (each with an Elastic IP).
    pub fn nat_gateways(&self) -> u32 {
        match self.spec.network.nat {
            NatMode::Single => 1,
            NatMode::PerAz => u32::from(self.spec.network.az_count),
        }
    }

    /// Fargate vCPUs at the plan's peak: every job pod at once plus the manager pods and the
    /// CoreDNS pods (Fargate pods too, each of the smallest size: [`cost::coredns_pod_size`]).
    pub fn peak_vcpus(&self) -> f64 {
        f64::from(self.fleet.total_jobs) * self.job_pod_size.vcpus() + self.always_running_vcpus()
    }

    /// Fargate vCPUs the run holds throughout: the manager pods and the CoreDNS pods.
    pub fn always_running_vcpus(&self) -> f64 {
        self.fleet.shards.len() as f64 * self.manager_pod_size.vcpus()
            + f64::from(cost::COREDNS_PODS) * cost::coredns_pod_size().vcpus()
    }

    /// How the job pods queue under a Fargate vCPU `quota`: the manager and CoreDNS pods run
    /// throughout, job pods take the rest, a wave at a time; each wave holds its vCPUs for a pod
    /// start and a job. `None` when not even one job pod fits beside them.
    pub fn fargate_queue(&self, quota: f64) -> Option<FargateQueue> {
        let always = self.always_running_vcpus();
        let fits = ((quota - always) / self.job_pod_size.vcpus()).floor();
        if fits.is_nan() || fits < 1.0 {
            return None;
        }
        let at_once = fits.min(f64::from(u32::MAX)) as u32;
        let waves = self.fleet.total_jobs.div_ceil(at_once).max(1);
        let start = self.durations.pod_start;
        let turnover = start + self.durations.job;
        let last_wave_waits = turnover * (waves - 1);
        let last_wave_running = last_wave_waits + start;
        // Waves whose pods run within poll_timeout of their creation.
        let waves_in_time = if self.poll_timeout < start {
            0
        } else {
            ((self.poll_timeout - start).as_secs_f64() / turnover.as_secs_f64().max(0.001))
                .floor()
                .min(f64::from(u32::MAX - 1)) as u32
                + 1
        };
        Some(FargateQueue {
            job_pods_at_once: at_once,
            waves,
            last_wave_waits,
            last_wave_running,
            jobs_within_poll_timeout: waves_in_time.saturating_mul(at_once),
        })
    }

    /// The cost projection's inputs.
    pub fn cost_inputs(&self) -> CostInputs {
        CostInputs {
            region: self.spec.region.clone(),
            nat_gateways: self.nat_gateways(),
            manager_pods: u32::try_from(self.fleet.shards.len()).unwrap_or(u32::MAX),
            manager_pod_size: self.manager_pod_size,
            job_pods: self.fleet.total_jobs,
            job_pod_size: self.job_pod_size,
            job_pod_ceiling: self.job_pod_ceiling,
            image_cache: self.spec.image_cache.enabled,
            s3_cache: self
                .cache_workload_mb
                .zip(self.spec.cache.as_ref().map(|c| c.expire_days)),
        }
    }
}

/// How a plan's job pods queue under a Fargate vCPU quota below its peak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FargateQueue {
    /// Job pods that fit beside the manager and CoreDNS pods.
    pub job_pods_at_once: u32,
    /// Waves the jobs start in.
    pub waves: u32,
    /// How long a last-wave pod waits for room (Pending) after its creation.
    pub last_wave_waits: Duration,
    /// From its creation until a last-wave pod runs: its wait for room plus its start.
    pub last_wave_running: Duration,
    /// Jobs whose pods run within the runners' `poll_timeout` (the rest time out).
    pub jobs_within_poll_timeout: u32,
}
