//! What a flow run is asked to do: [`FlowConfig`] and its validation.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use glrunner_gitlab_client::ProjectRef;
use glrunner_gitlab_client::watch::WatchConfig;
use glrunner_infra::StackSpec;
use glrunner_runner_chart::{ChartSource, FleetPlan, FleetRequest, RunnerValues};
use serde::Serialize;

use super::{Error, Phase};
use crate::RunnerProfile;

/// What to run.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FlowConfig {
    /// The stack: name, region, network and cluster.
    pub spec: StackSpec,
    /// GitLab project path (`group/project`) or numeric id.
    pub project: String,
    /// Jobs in the load-test pipeline (all meant to run at once).
    pub jobs: u32,
    /// At most this many jobs per runner release (the fleet plan shards beyond it).
    pub max_per_release: u32,
    /// Expected Fargate start of a job pod (sets the runners' poll timeout).
    pub expected_pod_start: Duration,
    /// Job image (default: the CI generator's bash image).
    pub image: Option<String>,
    /// Phases to run.
    pub phases: BTreeSet<Phase>,
    /// Teardown (and the cleanup after a failure) keeps the infrastructure.
    pub keep_infra: bool,
    /// Teardown (and the cleanup after a failure) keeps the runner releases and GitLab runners,
    /// and therefore the infrastructure they run on.
    pub keep_runners: bool,
    /// On failure, keep everything for inspection instead of cleaning up.
    pub keep: bool,
    /// How the pipeline is watched.
    pub watch: WatchConfig,
    /// The janitor's grace period.
    pub reap_grace: Duration,
    /// Pause between janitor rounds.
    pub reap_interval: Duration,
    /// Stop reaping after this long even if job pods remain.
    pub reap_deadline: Duration,
    /// Bound of each helm install/uninstall.
    pub release_timeout: Duration,
    /// Runner configuration to install: the reference tutorial's or glrunner's tuned one.
    pub runner_profile: RunnerProfile,
    /// Most jobs one load-test pipeline may hold (GitLab's per-pipeline limit; the CI
    /// generator's default, 10,000, unless a self-managed instance allows more).
    pub max_pipeline_jobs: u32,
    /// Bound of the cleanup after a failure or a stop (SIGINT/SIGTERM): past it, the flow says
    /// what is left and how to finish.
    pub cleanup_timeout: Duration,
    /// The cluster: provisioned by the flow (default) or brought by the user.
    pub cluster: ClusterSource,
    /// The chart the releases install (default: the pinned gitlab-runner chart).
    pub chart: ChartSource,
    /// At most this many helm installs/upgrades at once (results keep the shards' order).
    pub helm_concurrency: usize,
    /// Where the janitor runs besides the flow's own reap phase: nowhere else (default), or
    /// in the cluster as a controller installed after the releases and removed by teardown.
    pub janitor: JanitorMode,
    /// How often the load test samples the job pods that are Pending to learn why (one pod
    /// list, and one Event list when any is Pending, per job namespace per sample; Kubernetes
    /// calls, off the GitLab request budget): the report's "queue time by Pending class".
    /// At least [`MIN_PENDING_SAMPLE_INTERVAL`].
    pub pending_sample_interval: Duration,
    /// The load test's image matrix (`--images`): jobs spread over these images, each job
    /// prints its `/etc/os-release`, and a sample of job logs proves each ran its own image.
    /// Empty: one image ([`FlowConfig::image`]).
    pub images: Vec<String>,
    /// Every load-test job restores and saves a cache of this many MB, one key per shard
    /// (`--cache-workload`); `None`: no cache.
    pub cache_workload: Option<u32>,
    /// The fleet's runners have a shared cache (`[runners.cache]`): set by whoever installs
    /// it (the stack's S3 cache); off, the cache workload's restores all miss and the report
    /// says why. Off by default.
    pub fleet_has_cache: bool,
    /// The stack's ECR pull-through cache: job images (`--image`, `--images`, the default
    /// image) and the runner's helper image are pulled through it ([`FlowConfig::image_paths`]).
    /// `None`: every image comes from its own registry.
    pub image_cache: Option<crate::image_cache::ImageCache>,
    /// Job identity through IRSA: `(ServiceAccount name, IAM role ARN)` per job role (the
    /// stack's `--job-role` roles). The flow applies each ServiceAccount, annotated with its
    /// role, in the job namespace once the releases run, sets the executor's `service_account`
    /// (one) or an anchored `service_account_overwrite_allowed` (several), and removes them on
    /// teardown. Empty: jobs run without an AWS identity.
    pub job_accounts: Vec<(String, String)>,
    /// The runners' shared S3 cache through IRSA (the stack's `--cache s3` bucket and role):
    /// each release's `[runners.cache]` and its manager ServiceAccount's role. `None`: no
    /// distributed cache.
    pub runner_cache: Option<glrunner_infra::cache::CacheOutputs>,
    /// The job pods' disk and the runners' resource-overwrite ceilings
    /// ([`glrunner_runner_chart::job_disk`]); default: Fargate's included 20 GiB, no overwrites.
    /// The cost projection prices the largest job pod the ceilings allow.
    pub job_disk: crate::job_disk::JobDisk,
}

/// Default interval of the load test's Pending samples ([`FlowConfig::pending_sample_interval`]).
pub const DEFAULT_PENDING_SAMPLE_INTERVAL: Duration = Duration::from_secs(5);

/// Shortest interval of the load test's Pending samples: at most one sample per second.
pub const MIN_PENDING_SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// Default bound on concurrent helm operations: enough to overlap the ~45 s manager pod starts,
/// few enough not to queue dozens of `helm --wait` watches against the API server at once.
pub const DEFAULT_HELM_CONCURRENCY: usize = 4;

impl FlowConfig {
    /// All phases for `jobs` jobs in `project` on `spec`'s stack, with defaults.
    pub fn new(spec: StackSpec, project: impl Into<String>, jobs: u32) -> Self {
        Self {
            spec,
            project: project.into(),
            jobs,
            max_per_release: glrunner_runner_chart::fleet::DEFAULT_MAX_PER_RELEASE,
            expected_pod_start: glrunner_runner_chart::fleet::DEFAULT_EXPECTED_POD_START,
            image: None,
            phases: Phase::ALL.into_iter().collect(),
            keep_infra: false,
            keep_runners: false,
            keep: false,
            watch: WatchConfig::default(),
            reap_grace: Duration::from_secs(60),
            reap_interval: Duration::from_secs(30),
            reap_deadline: Duration::from_secs(20 * 60),
            release_timeout: Duration::from_secs(600),
            runner_profile: RunnerProfile::default(),
            max_pipeline_jobs: glrunner_gitlab_client::ci::DEFAULT_MAX_JOBS,
            cleanup_timeout: Duration::from_secs(45 * 60),
            helm_concurrency: DEFAULT_HELM_CONCURRENCY,
            cluster: ClusterSource::default(),
            chart: ChartSource::default(),
            janitor: JanitorMode::default(),
            pending_sample_interval: DEFAULT_PENDING_SAMPLE_INTERVAL,
            images: Vec::new(),
            cache_workload: None,
            fleet_has_cache: false,
            image_cache: None,
            job_accounts: Vec::new(),
            runner_cache: None,
            job_disk: crate::job_disk::JobDisk::default(),
        }
    }

    /// Whether the run uses what the stack it provisions makes in the account (the image cache,
    /// the S3 cache, job roles) and has not been given it: then [`FlowConfig::with_stack_outputs`]
    /// fills it in once the account is known. A cluster the user brought has none of them.
    pub fn needs_stack_outputs(&self) -> bool {
        !self.cluster.brought_by_user()
            && ((self.image_cache.is_none() && self.spec.image_cache.enabled)
                || (self.runner_cache.is_none() && self.spec.cache.is_some())
                || (self.job_accounts.is_empty() && !self.spec.job_roles.is_empty()))
    }

    /// This configuration with what the stack makes in `account` and was not set by hand: the
    /// pull-through cache's paths ([`crate::image_cache::ImageCache::for_stack`]), the S3
    /// cache's bucket and manager role ([`glrunner_infra::cache::outputs_for`]) and the job
    /// ServiceAccounts of the job roles ([`glrunner_infra::job_roles::service_accounts`]). Every
    /// name is the one provisioning gives the resource, so nothing is read from AWS.
    #[must_use]
    pub fn with_stack_outputs(mut self, account: &str) -> Self {
        if self.cluster.brought_by_user() {
            return self;
        }
        if self.image_cache.is_none() {
            self.image_cache = crate::image_cache::ImageCache::for_stack(&self.spec, account);
        }
        if self.runner_cache.is_none() {
            self.runner_cache = glrunner_infra::cache::outputs_for(&self.spec, account);
        }
        if self.runner_cache.is_some() {
            self.fleet_has_cache = true;
        }
        if self.job_accounts.is_empty() {
            self.job_accounts = glrunner_infra::job_roles::service_accounts(&self.spec, account);
        }
        self
    }

    /// Sets where the janitor runs.
    #[must_use]
    pub fn with_janitor(mut self, janitor: JanitorMode) -> Self {
        self.janitor = janitor;
        self
    }

    /// The janitor's in-cluster objects for this run (`None` unless [`JanitorMode::InCluster`]):
    /// it lives in the runner namespace (the one the stack's Fargate profile selects) and reaps
    /// the job namespace with the flow's own policy (the runners' poll timeout, the grace).
    pub fn janitor_objects(
        &self,
        gitlab_url: &str,
        poll_timeout: Duration,
    ) -> Result<Option<glrunner_janitor::deploy::DeployObjects>, Error> {
        let JanitorMode::InCluster { image } = &self.janitor else {
            return Ok(None);
        };
        let home = self.spec.cluster.runner_namespace.clone();
        let jobs = self
            .template(gitlab_url)
            .executor
            .namespace
            .clone()
            .unwrap_or_else(|| home.clone());
        let mut spec = glrunner_janitor::deploy::DeploySpec::new(image, home, vec![jobs]);
        spec.extra_args = vec![
            "--pending-timeout".into(),
            format!("{}s", poll_timeout.as_secs()),
            "--grace".into(),
            format!("{}s", self.reap_grace.as_secs()),
        ];
        glrunner_janitor::deploy::deploy_objects(&spec)
            .map(Some)
            .map_err(|e| Error::invalid("--janitor-image", e.to_string()))
    }

    /// Runs on a cluster the user brings (provisioning and the infrastructure teardown are
    /// skipped) or, with [`ClusterSource::Provisioned`], on the stack's own.
    #[must_use]
    pub fn with_cluster(mut self, cluster: ClusterSource) -> Self {
        self.cluster = cluster;
        self
    }

    /// The EKS cluster whose endpoint, CA and Fargate profiles the flow reads (none for a
    /// kubeconfig).
    pub(super) fn eks_cluster_name(&self) -> Option<&str> {
        match &self.cluster {
            ClusterSource::Provisioned => Some(&self.spec.cluster.name),
            ClusterSource::Eks { name } => Some(name),
            ClusterSource::Kubeconfig { .. } => None,
        }
    }

    /// Sets the bound on concurrent helm operations.
    #[must_use]
    pub fn with_helm_concurrency(mut self, concurrency: usize) -> Self {
        self.helm_concurrency = concurrency;
        self
    }

    /// Runs only these phases.
    #[must_use]
    pub fn with_phases(mut self, phases: impl IntoIterator<Item = Phase>) -> Self {
        self.phases = phases.into_iter().collect();
        self
    }

    /// Sets the keep flags.
    #[must_use]
    pub fn with_keep(mut self, keep_infra: bool, keep_runners: bool, keep: bool) -> Self {
        self.keep_infra = keep_infra;
        self.keep_runners = keep_runners;
        self.keep = keep;
        self
    }

    /// Sets the cap of jobs per release.
    #[must_use]
    pub fn with_max_per_release(mut self, cap: u32) -> Self {
        self.max_per_release = cap;
        self
    }

    /// Sets the runner profile.
    #[must_use]
    pub fn with_runner_profile(mut self, profile: RunnerProfile) -> Self {
        self.runner_profile = profile;
        self
    }

    /// The load test's job image: `--image`, else the profile's (`None`: the CI generator's).
    pub fn job_image(&self) -> Option<String> {
        self.image
            .clone()
            .or_else(|| self.runner_profile.job_image().map(str::to_owned))
    }

    pub(super) fn runs(&self, phase: Phase) -> bool {
        self.phases.contains(&phase)
            && !(phase == Phase::Provision && self.cluster.brought_by_user())
    }

    /// The names this run's stack owns (releases, Secrets, GitLab runners).
    pub fn ownership(&self) -> crate::Ownership<'_> {
        crate::Ownership::of(&self.spec.stack)
    }

    /// Release names are `<stack>-runner-<i>` ([`crate::Ownership::release_prefix`]).
    pub fn release_prefix(&self) -> String {
        self.ownership().release_prefix()
    }

    pub(crate) fn fleet_request(&self, template: &RunnerValues) -> FleetRequest {
        self.runner_profile.fleet_request(
            FleetRequest::new(self.jobs)
                .with_release_prefix(self.release_prefix())
                .with_tag_prefix(self.spec.stack.to_string())
                .with_max_per_release(self.max_per_release)
                .with_expected_pod_start(self.expected_pod_start)
                .with_values(template),
        )
    }

    /// The load test's CI file for `fleet`: the profile's jobs ([`RunnerProfile::load_test_spec`]),
    /// the job image (`--image`, else the profile's) and the pipeline's job limit.
    pub fn load_test_spec(&self, fleet: &FleetPlan) -> glrunner_gitlab_client::ci::LoadTestSpec {
        let mut spec = self.runner_profile.load_test_spec(fleet);
        if let Some(image) = self.job_image() {
            spec = spec.with_image(self.pulled(&image));
        }
        if !self.images.is_empty() {
            spec = spec.with_images(self.images.iter().map(|i| self.pulled(i)).collect());
        }
        spec.with_cache_workload(self.cache_workload)
            .with_max_jobs(self.max_pipeline_jobs)
    }

    /// Checks `--images` and `--cache-workload`: image references by distribution/reference's
    /// grammar, at least two distinct images, a cache of 1 to 1024 MB.
    fn validate_workload(&self) -> Result<(), Error> {
        if !self.images.is_empty() {
            if self.images.len() < 2 {
                return Err(Error::invalid(
                    "--images",
                    format!(
                        "{:?} is one image; the matrix needs at least two (--images alone: {})",
                        self.images,
                        glrunner_gitlab_client::ci::DEFAULT_IMAGE_MATRIX.join(",")
                    ),
                ));
            }
            let mut seen = BTreeSet::new();
            for image in &self.images {
                glrunner_gitlab_client::trace::ImageRef::parse(image).map_err(|e| {
                    Error::invalid(
                        "--images",
                        format!(
                            "{e}; write REGISTRY/REPOSITORY:TAG, e.g. {}",
                            glrunner_gitlab_client::ci::DEFAULT_IMAGE_MATRIX[0]
                        ),
                    )
                })?;
                if !seen.insert(image.as_str()) {
                    return Err(Error::invalid(
                        "--images",
                        format!("{image:?} is listed twice"),
                    ));
                }
            }
        }
        if let Some(mb) = self.cache_workload
            && !(1..=1024).contains(&mb)
        {
            return Err(Error::invalid(
                "--cache-workload",
                format!("{mb} MB: the cache size must be between 1 and 1024 MB"),
            ));
        }
        Ok(())
    }

    /// Checks everything checkable before any call.
    pub fn validate(&self, gitlab_url: &str) -> Result<(), Error> {
        self.spec
            .validate()
            .map_err(|e| Error::invalid("stack", e.to_string()))?;
        if self.phases.is_empty() {
            return Err(Error::invalid("--phases", "no phase selected"));
        }
        ProjectRef::parse(&self.project).map_err(|e| Error::invalid("--project", e.to_string()))?;
        self.validate_workload()?;
        glrunner_runner_chart::job_accounts::check_input(
            &self.job_namespace(gitlab_url),
            &self.job_accounts,
        )
        .map_err(|e| Error::invalid("--job-role", e.to_string()))?;
        if !self.spec.job_roles.is_empty() && self.cluster.brought_by_user() {
            // Job roles are planned with the stack; a brought cluster's roles are its owner's.
            return Err(Error::invalid(
                "--job-role",
                format!(
                    "job roles are created with the stack glrunner provisions, and cluster {} was brought; drop --job-role and give the job ServiceAccounts yourself (FlowConfig::job_accounts), or let glrunner provision the cluster",
                    self.cluster.describe()
                ),
            ));
        }
        let job_namespace = self.job_namespace(gitlab_url);
        if !self.spec.job_roles.is_empty() && job_namespace != self.spec.cluster.runner_namespace {
            // Each job role trusts its ServiceAccount in the runner namespace only.
            return Err(Error::invalid(
                "--job-role",
                format!(
                    "the job roles trust ServiceAccounts in namespace {:?}, but jobs run in {job_namespace:?}; run jobs in the runner namespace or drop --job-role",
                    self.spec.cluster.runner_namespace
                ),
            ));
        }
        self.job_disk.validate(&self.template(gitlab_url))?;
        FleetPlan::new(&self.fleet_request(&self.template(gitlab_url)))
            .map_err(|e| Error::invalid("--jobs", e.to_string()))?;
        if self.reap_interval.is_zero() {
            return Err(Error::invalid("reap_interval", "must be above zero"));
        }
        self.janitor_objects(gitlab_url, Duration::from_secs(180))?;
        if self.pending_sample_interval < MIN_PENDING_SAMPLE_INTERVAL {
            return Err(Error::invalid(
                "pending_sample_interval",
                format!(
                    "{:?} is below {MIN_PENDING_SAMPLE_INTERVAL:?} (at most one sample of the Pending job pods per second)",
                    self.pending_sample_interval
                ),
            ));
        }
        if !(1..=MAX_HELM_CONCURRENCY).contains(&self.helm_concurrency) {
            return Err(Error::invalid(
                "--helm-concurrency",
                format!(
                    "{} is outside 1..={MAX_HELM_CONCURRENCY} (fix: use e.g. {DEFAULT_HELM_CONCURRENCY})",
                    self.helm_concurrency
                ),
            ));
        }
        let template = self.template(gitlab_url);
        let job_namespace = template
            .executor
            .namespace
            .clone()
            .unwrap_or_else(|| self.spec.cluster.runner_namespace.clone());
        if !fargate_selects(
            &self.spec.cluster.fargate_selectors(),
            &job_namespace,
            &template.executor.pod_labels,
        ) {
            return Err(Error::invalid(
                "--runner-namespace",
                format!(
                    "no selector of the Fargate profile matches job namespace {job_namespace:?}: job pods would stay Pending (fix: add the namespace to the profile's selectors)"
                ),
            ));
        }
        Ok(())
    }

    /// The namespace the runners create job pods in (the template's executor namespace, else
    /// the runner namespace).
    pub(crate) fn job_namespace(&self, gitlab_url: &str) -> String {
        self.template(gitlab_url)
            .executor
            .namespace
            .unwrap_or_else(|| self.spec.cluster.runner_namespace.clone())
    }

    pub(crate) fn template(&self, gitlab_url: &str) -> RunnerValues {
        let ns = &self.spec.cluster.runner_namespace;
        let mut values = self
            .runner_profile
            .template(RunnerValues::new(gitlab_url).with_job_namespace(ns));
        if let Some(image) = self.job_image() {
            values = values.with_image(image);
        }
        // The job ServiceAccounts' names are known before the account is (the spec's job roles),
        // so the doctor's lint and the preflight see the identity the run will have.
        if !self.job_accounts.is_empty() {
            values = values.with_job_service_accounts(self.job_accounts.iter().map(|(n, _)| n));
        } else if !self.cluster.brought_by_user() && !self.spec.job_roles.is_empty() {
            values = values.with_job_service_accounts(self.spec.job_roles.iter().map(|r| &r.name));
        }
        if let Some(cache) = &self.runner_cache {
            values = values.with_s3_cache(
                glrunner_runner_chart::cache::S3Cache {
                    bucket: cache.bucket.clone(),
                    region: cache.region.clone(),
                },
                &cache.role_arn,
                &cache.service_account,
            );
        }
        if let Some(cache) = &self.image_cache {
            values.executor.image = self.pulled(&values.executor.image);
            if values.executor.helper_image.is_none()
                && let crate::image_cache::ImagePath::Cache { cached, .. } =
                    cache.helper_path(&self.helper_tag())
            {
                values.executor.helper_image = Some(cached);
            }
        }
        self.job_disk.apply(values)
    }

    /// The reference a job pulls for `image`: its pull-through cache path, or itself (no
    /// cache, a registry the cache does not mirror, or a reference validation refuses).
    fn pulled(&self, image: &str) -> String {
        match &self.image_cache {
            Some(cache) => cache.rewrite(image).unwrap_or_else(|_| image.to_owned()),
            None => image.to_owned(),
        }
    }

    /// The helper image's tag for the chart the releases install: the exact one for the pinned
    /// default chart's GitLab Runner, else the runner's own version, which it expands in
    /// `helper_image` ([`crate::image_cache::HELPER_TAG_OF_RUNNER`]).
    fn helper_tag(&self) -> String {
        match self.chart.version() {
            Some(v) if v.to_string() == glrunner_runner_chart::DEFAULT_CHART_VERSION => {
                crate::image_cache::helper_tag(glrunner_runner_chart::DEFAULT_RUNNER_VERSION)
            }
            _ => crate::image_cache::HELPER_TAG_OF_RUNNER.to_owned(),
        }
    }

    /// Where each image of the run comes from (the job images, then the runner's helper image):
    /// through the pull-through cache or straight from its registry, and why. Empty without a
    /// cache.
    pub fn image_paths(&self) -> Vec<crate::image_cache::ImagePath> {
        let Some(cache) = &self.image_cache else {
            return Vec::new();
        };
        let mut images: Vec<String> = if self.images.is_empty() {
            self.job_image().into_iter().collect()
        } else {
            self.images.clone()
        };
        if images.is_empty() {
            images.push(glrunner_gitlab_client::ci::DEFAULT_IMAGE.to_owned());
        }
        let mut paths: Vec<_> = images
            .iter()
            .filter_map(|image| cache.path(image).ok())
            .collect();
        paths.push(cache.helper_path(&self.helper_tag()));
        paths
    }
}

/// Most helm operations at once that `--helm-concurrency` accepts.
pub const MAX_HELM_CONCURRENCY: usize = 32;

/// Where the janitor runs (`--janitor`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum JanitorMode {
    /// Only the flow's reap phase, from where the flow runs.
    #[default]
    Local,
    /// Also in the cluster (`reap deploy`'s objects: a Deployment of `reap run` with a Lease and
    /// least-privilege RBAC), installed after the releases, removed by teardown.
    InCluster {
        /// The janitor image (the repository's Containerfile, pushed to a registry the cluster
        /// pulls from).
        image: String,
    },
}

/// Where the cluster comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ClusterSource {
    /// glrunner provisions the stack's own cluster and tears it down again.
    #[default]
    Provisioned,
    /// An existing EKS cluster, found through the EKS API (`--cluster NAME`); credentials come from
    /// glrunner's own EKS token generator.
    Eks {
        /// The cluster's name.
        name: String,
    },
    /// Any conformant cluster reached through a kubeconfig (`--kubeconfig PATH [--context NAME]`).
    Kubeconfig {
        /// The kubeconfig file.
        path: PathBuf,
        /// Its context (default: the current context).
        context: Option<String>,
    },
}

impl ClusterSource {
    /// Whether the user brought the cluster: provisioning and the infrastructure teardown are
    /// skipped, and nothing outside the runner namespaces is created or deleted.
    pub fn brought_by_user(&self) -> bool {
        !matches!(self, Self::Provisioned)
    }

    /// One line for reports: `provisioned by glrunner`, `brought by the user (EKS cluster x)`.
    pub fn describe(&self) -> String {
        match self {
            Self::Provisioned => "provisioned by glrunner".into(),
            Self::Eks { name } => format!("brought by the user (EKS cluster {name})"),
            Self::Kubeconfig { path, context } => format!(
                "brought by the user (kubeconfig {}{})",
                path.display(),
                context
                    .as_deref()
                    .map(|c| format!(", context {c}"))
                    .unwrap_or_default()
            ),
        }
    }
}

/// Whether a Fargate profile with `selectors` takes the job pods of `namespace` that carry
/// `pod_labels`: a selector matches its namespace and requires all of its labels on the pod, with
/// EKS's `*` and `?` wildcards (the one matcher, [`glrunner_infra::selects`]).
pub fn fargate_selects(
    selectors: &[glrunner_infra::FargateSelector],
    namespace: &str,
    pod_labels: &std::collections::BTreeMap<String, String>,
) -> bool {
    glrunner_infra::selects(selectors, namespace, pod_labels)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use glrunner_infra::FargateSelector;

    use super::*;

    #[test]
    fn a_wildcard_selector_covers_the_runner_namespace() {
        // EKS user guide, "Fargate profile wildcards": `gitlab-*` selects `gitlab-runner`.
        let wild = [FargateSelector::namespace("gitlab-*")];
        assert!(fargate_selects(&wild, "gitlab-runner", &BTreeMap::new()));
        assert!(!fargate_selects(&wild, "ci", &BTreeMap::new()));
    }

    #[test]
    fn fargate_selectors_must_cover_the_job_namespace_and_labels() {
        let plain = [
            FargateSelector::namespace("kube-system"),
            FargateSelector::namespace("ci"),
        ];
        let none = BTreeMap::new();
        assert!(fargate_selects(&plain, "ci", &none));
        assert!(!fargate_selects(&plain, "ci-jobs", &none));
        let mut labelled = FargateSelector::namespace("ci-jobs");
        labelled.labels.insert("fargate".into(), "yes".into());
        assert!(!fargate_selects(&[labelled.clone()], "ci-jobs", &none));
        let pod = BTreeMap::from([("fargate".to_string(), "yes".to_string())]);
        assert!(fargate_selects(&[labelled], "ci-jobs", &pod));
    }

    /// With the stack's pull-through cache, every image the run pulls goes through it: the
    /// matrix's images and the default job image at their cache paths, the helper image at the
    /// pinned chart's exact runner tag, and the report's list says so per image.
    #[test]
    fn images_and_the_helper_go_through_the_pull_through_cache() {
        use crate::image_cache::{ImageCache, ImagePath, Upstream};
        let spec = glrunner_infra::StackSpec::new(
            glrunner_infra::StackName::new("ptc").unwrap(),
            "us-east-1",
        );
        let mut config = FlowConfig::new(spec, "group/app", 40);
        config.images = vec!["alpine:3.22".into(), "quay.io/fedora/fedora:41".into()];
        let url = "https://gitlab.example.com/";
        let before = config.plan(url).unwrap();
        assert_eq!(before.releases[0].1.executor.helper_image, None);
        assert!(config.image_paths().is_empty());

        config.image_cache = Some(
            ImageCache::new("123456789012", "us-east-1")
                .with_rule(Upstream::EcrPublic, "ptc/ecr-public")
                .with_rule(Upstream::DockerHub, "ptc/docker-hub"),
        );
        let reg = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
        let plan = config.plan(url).unwrap();
        let executor = &plan.releases[0].1.executor;
        assert_eq!(
            executor.helper_image.as_deref(),
            Some(&*format!(
                "{reg}/ptc/ecr-public/gitlab/gitlab-runner-helper:x86_64-v18.9.0"
            ))
        );
        assert!(
            executor
                .image
                .starts_with(&format!("{reg}/ptc/ecr-public/")),
            "{}",
            executor.image
        );
        let load = config.load_test_spec(&plan.fleet);
        assert_eq!(
            load.images,
            [
                format!("{reg}/ptc/docker-hub/library/alpine:3.22"),
                "quay.io/fedora/fedora:41".to_owned(),
            ]
        );
        let paths = config.image_paths();
        assert_eq!(paths.len(), 3, "{paths:?}");
        assert!(matches!(
            &paths[0],
            ImagePath::Cache {
                upstream: Upstream::DockerHub,
                ..
            }
        ));
        assert!(
            matches!(&paths[1], ImagePath::Direct { reason, .. } if reason.contains("quay.io")),
            "{paths:?}"
        );
        assert!(matches!(
            &paths[2],
            ImagePath::Cache {
                upstream: Upstream::EcrPublic,
                ..
            }
        ));

        // Another chart version: the runner's own version picks the helper tag.
        config.chart = glrunner_runner_chart::ChartSource::Repo {
            version: glrunner_runner_chart::ChartVersion::parse("chart", "0.87.1").unwrap(),
        };
        let plan = config.plan(url).unwrap();
        assert!(
            plan.releases[0]
                .1
                .executor
                .helper_image
                .as_deref()
                .unwrap()
                .ends_with(":x86_64-v${CI_RUNNER_VERSION}")
        );
    }
}
