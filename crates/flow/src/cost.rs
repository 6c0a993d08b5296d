//! What a run will cost, line by line, before anything billable exists; and the same lines
//! again from the durations a finished run measured.
//!
//! Prices come from the AWS Price List API when it answered ([`Prices::from_quote`]), else from
//! the tables here and in `glrunner-fargate`, each line saying which. The durations are
//! modelled (see [`ExpectedDurations`]), so the projection is an estimate, not a bill.

use std::time::Duration;

use glrunner_fargate::{FargatePricing, FargateSize};
use glrunner_infra::PriceQuote;
use serde::Serialize;

/// Where the non-Fargate table prices come from.
pub const TABLE_SOURCE: &str = "table: AWS EKS and VPC pricing pages (us-east-1 list prices, 2025)";
/// EKS control plane, standard support: USD per cluster-hour (the dated version table's; a
/// version in extended support costs more: [`Prices::for_kubernetes`]).
pub const EKS_CLUSTER_HOUR_USD: f64 = glrunner_infra::versions::STANDARD_CLUSTER_HOUR_USD;
/// NAT gateway: USD per gateway-hour.
pub const NAT_GATEWAY_HOUR_USD: f64 = 0.045;
/// NAT gateway: USD per GB processed.
pub const NAT_GATEWAY_GB_USD: f64 = 0.045;
/// Public IPv4 address (the NAT gateways' Elastic IPs): USD per address-hour.
pub const PUBLIC_IPV4_HOUR_USD: f64 = 0.005;
/// Data each job pod pulls through the NAT gateway (image layers on an empty Fargate node):
/// the default bash image is about 6 MB compressed plus the runner helper image of ~50 MB.
pub const NAT_GB_PER_JOB_POD: f64 = 0.06;
/// Where the S3 prices come from.
pub const S3_SOURCE: &str =
    "table: Amazon S3 pricing page (S3 Standard, US East (N. Virginia) list prices, 2025)";
/// S3 Standard storage: USD per GB-month (Amazon S3 pricing, US East (N. Virginia), first 50 TB).
pub const S3_STORAGE_GB_MONTH_USD: f64 = 0.023;
/// S3 PUT, COPY, POST and LIST requests: USD per 1,000 (Amazon S3 pricing, S3 Standard).
pub const S3_PUT_PER_1000_USD: f64 = 0.005;
/// S3 GET and other requests: USD per 1,000 (Amazon S3 pricing, S3 Standard).
pub const S3_GET_PER_1000_USD: f64 = 0.0004;
/// The default load-test script only echoes: a job runs for seconds once its pod is up.
pub const DEFAULT_EXPECTED_JOB_DURATION: Duration = Duration::from_secs(30);

/// CoreDNS replicas on Fargate (the managed add-on's default).
pub const COREDNS_PODS: u32 = 2;

/// A CoreDNS pod's Fargate size: the add-on's requests (100m, 70Mi) + Fargate's 256 MiB, the
/// smallest size.
pub fn coredns_pod_size() -> FargateSize {
    FargateSize::for_requests(100, 70).unwrap_or(FargateSize::LARGEST)
}

/// The prices a projection uses, with their sources.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prices {
    /// Fargate vCPU and GB prices.
    pub fargate: FargatePricing,
    /// EKS control plane per cluster-hour.
    pub eks_cluster_hour: f64,
    /// Where the EKS price comes from.
    pub eks_source: String,
    /// NAT gateway per hour.
    pub nat_hour: f64,
    /// NAT gateway per GB processed.
    pub nat_gb: f64,
    /// Public IPv4 per address-hour.
    pub ipv4_hour: f64,
    /// Where the NAT and IPv4 prices come from (always the table).
    pub network_source: String,
}

impl Prices {
    /// The tables' prices for `region` (us-east-1's as a lower bound where the table has no entry).
    pub fn table(region: &str) -> Self {
        Self {
            fargate: FargatePricing::table_or_lower_bound(region),
            eks_cluster_hour: EKS_CLUSTER_HOUR_USD,
            eks_source: TABLE_SOURCE.into(),
            nat_hour: NAT_GATEWAY_HOUR_USD,
            nat_gb: NAT_GATEWAY_GB_USD,
            ipv4_hour: PUBLIC_IPV4_HOUR_USD,
            network_source: TABLE_SOURCE.into(),
        }
    }

    /// The Price List API's answer where it has one, the table elsewhere.
    pub fn from_quote(region: &str, quote: &PriceQuote) -> Self {
        let mut prices = Self::table(region);
        const API: &str = "AWS Price List API";
        if let (Some(vcpu), Some(gb)) = (quote.fargate_vcpu_hour, quote.fargate_gb_hour)
            && let Ok(p) = FargatePricing::new(region, vcpu, gb, API)
        {
            prices.fargate = p;
        }
        if let Some(hour) = quote
            .eks_cluster_hour
            .filter(|h| h.is_finite() && *h >= 0.0)
        {
            prices.eks_cluster_hour = hour;
            prices.eks_source = API.into();
        }
        prices
    }

    /// These prices for a cluster of Kubernetes `version` running on `day`: a version in EKS
    /// extended support is billed [`glrunner_infra::versions::EXTENDED_CLUSTER_HOUR_USD`] per
    /// cluster-hour (the dated table in `glrunner_infra::versions`), whatever the Price List's
    /// standard `AmazonEKS-Hours:perCluster` said; a version in standard support keeps the
    /// standard price (the Price List's, else the table's). A version the table does not know,
    /// or one EKS no longer runs, keeps the standard price (validation refuses those).
    pub fn for_kubernetes(mut self, version: &str, day: jiff::civil::Date) -> Self {
        use glrunner_infra::versions::{self, Support};
        let Some(v) = versions::eks_version(version) else {
            return self;
        };
        if v.support_on(day) == Support::Extended
            && let Some(hour) = v.cluster_hour_usd_on(day)
        {
            self.eks_cluster_hour = hour;
            self.eks_source = format!(
                "table: Kubernetes {version} is in EKS extended support on {day} (since {}), ${hour} per cluster-hour \
                 (glrunner_infra::versions, read {})",
                v.end_of_standard_support,
                versions::READ_ON
            );
        }
        self
    }

    /// Whether any price came from the Price List API.
    pub fn used_price_list_api(&self) -> bool {
        self.fargate.source.contains("Price List") || self.eks_source.contains("Price List")
    }
}

/// How long each part of the run is expected to take: modelled, not measured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ExpectedDurations {
    /// Network + EKS control plane + Fargate profile + CoreDNS (EKS alone is 10–15 min).
    #[serde(serialize_with = "secs")]
    pub provision: Duration,
    /// Runner releases until their manager pods run.
    #[serde(serialize_with = "secs")]
    pub releases: Duration,
    /// A job pod's start on Fargate (node + image pull).
    #[serde(serialize_with = "secs")]
    pub pod_start: Duration,
    /// One job once its pod runs.
    #[serde(serialize_with = "secs")]
    pub job: Duration,
    /// Teardown (releases, Fargate profile, cluster, NAT, VPC).
    #[serde(serialize_with = "secs")]
    pub teardown: Duration,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl Default for ExpectedDurations {
    fn default() -> Self {
        Self {
            provision: Duration::from_secs(15 * 60),
            releases: Duration::from_secs(3 * 60),
            pod_start: Duration::from_secs(90),
            job: DEFAULT_EXPECTED_JOB_DURATION,
            teardown: Duration::from_secs(12 * 60),
        }
    }
}

impl ExpectedDurations {
    /// These durations with the measured ones put in where a phase ran: the load test's
    /// measured time replaces the modelled pod start + job + pickup (the job keeps its
    /// expected length, the rest counts as pod start).
    pub fn with_measured(
        &self,
        provision: Option<Duration>,
        releases: Option<Duration>,
        load_test: Option<Duration>,
        teardown: Option<Duration>,
    ) -> Self {
        let mut d = *self;
        d.provision = provision.unwrap_or(d.provision);
        d.releases = releases.unwrap_or(d.releases);
        d.teardown = teardown.unwrap_or(d.teardown);
        if let Some(load) = load_test {
            d.pod_start = load.saturating_sub(d.job + Duration::from_secs(30));
        }
        d
    }

    /// The load test: every job at once, so one pod start plus one job (plus GitLab's pickup).
    pub fn load_test(&self) -> Duration {
        self.pod_start + self.job + Duration::from_secs(30)
    }

    /// From the control plane's creation to its deletion.
    pub fn wall(&self) -> Duration {
        self.provision + self.releases + self.load_test() + self.teardown
    }
}

/// What the run will have running.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostInputs {
    /// The region.
    pub region: String,
    /// NAT gateways (one, or one per AZ), each with an Elastic IP.
    pub nat_gateways: u32,
    /// Runner manager pods (one per release).
    pub manager_pods: u32,
    /// The manager pod's Fargate size.
    pub manager_pod_size: FargateSize,
    /// Job pods (all the load test's jobs).
    pub job_pods: u32,
    /// A job pod's Fargate size.
    pub job_pod_size: FargateSize,
    /// The largest job pod the overwrite ceilings and job disk allow; `Some`: the projection
    /// prices every job pod at it, ephemeral storage beyond Fargate's 20 GiB included.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_pod_ceiling: Option<glrunner_runner_chart::JobPodCeiling>,
    /// The stack has the ECR pull-through cache and its S3 gateway endpoint: job and helper
    /// image layers come from ECR through the endpoint, not through the NAT gateway.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub image_cache: bool,
    /// The S3 runner cache the load test's cache workload uses: `(MB per key, days objects
    /// live)`; one key per shard, each job restores (GET) and saves (PUT) it once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_cache: Option<(u32, u16)>,
}

/// One line of the projection.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostLine {
    /// What is billed.
    pub item: String,
    /// How the amount is computed.
    pub basis: String,
    /// USD.
    pub usd: f64,
    /// Where the price comes from.
    pub price_source: String,
}

/// The projected (or, from measured durations, estimated) cost of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostProjection {
    /// The lines.
    pub lines: Vec<CostLine>,
    /// Their sum in USD.
    pub total_usd: f64,
    /// The durations used.
    pub durations: ExpectedDurations,
    /// Whether any price came from the Price List API (else the tables).
    pub price_list_api: bool,
    /// The prices used, with their sources.
    pub prices: Prices,
    /// The job pod the projection priced when the runners' overwrite ceilings or job disk make
    /// it larger than the default one, e.g. `4 vCPU / 8 GB with 60 GiB of ephemeral storage`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priced_job_pod: Option<String>,
    /// With the image cache: what the image pulls would have cost in NAT data without it (not
    /// in the total).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nat_data_saved_usd: Option<f64>,
}

fn hours(d: Duration) -> f64 {
    d.as_secs_f64() / 3600.0
}

fn minutes(d: Duration) -> String {
    format!("{:.1} min", d.as_secs_f64() / 60.0)
}

/// Projects the cost of a run of `inputs` lasting `durations` at `prices`.
pub fn project(
    inputs: &CostInputs,
    durations: &ExpectedDurations,
    prices: &Prices,
) -> CostProjection {
    let wall = durations.wall();
    let nat = f64::from(inputs.nat_gateways);
    // Managers run from their release until teardown removes them.
    let manager_time = durations.releases + durations.load_test() + Duration::from_secs(60);
    let job_time = durations.pod_start + durations.job;
    let mut lines = vec![
        CostLine {
            item: "EKS control plane".into(),
            basis: format!(
                "1 cluster × {} × ${}/h",
                minutes(wall),
                prices.eks_cluster_hour
            ),
            usd: prices.eks_cluster_hour * hours(wall),
            price_source: prices.eks_source.clone(),
        },
        CostLine {
            item: "NAT gateway hours".into(),
            basis: format!(
                "{} × {} × ${}/h",
                inputs.nat_gateways,
                minutes(wall),
                prices.nat_hour
            ),
            usd: nat * prices.nat_hour * hours(wall),
            price_source: prices.network_source.clone(),
        },
        nat_data_line(inputs, prices),
        CostLine {
            item: "public IPv4 addresses".into(),
            basis: format!(
                "{} Elastic IP(s) × {} × ${}/h",
                inputs.nat_gateways,
                minutes(wall),
                prices.ipv4_hour
            ),
            usd: nat * prices.ipv4_hour * hours(wall),
            price_source: prices.network_source.clone(),
        },
    ];
    // CoreDNS runs on Fargate too: two replicas of the smallest size for the cluster's life.
    let coredns = coredns_pod_size();
    lines.push(CostLine {
        item: "CoreDNS pods".into(),
        basis: format!("{COREDNS_PODS} × {coredns} × {}", minutes(wall)),
        usd: f64::from(COREDNS_PODS) * prices.fargate.cost(coredns, wall),
        price_source: prices.fargate.source.clone(),
    });
    lines.push(CostLine {
        item: "runner manager pods".into(),
        basis: format!(
            "{} × {} × {}",
            inputs.manager_pods,
            inputs.manager_pod_size,
            minutes(manager_time)
        ),
        usd: f64::from(inputs.manager_pods)
            * prices.fargate.cost(inputs.manager_pod_size, manager_time),
        price_source: prices.fargate.source.clone(),
    });
    let (job_lines, priced_job_pod) = job_pod_lines(inputs, job_time, prices);
    lines.extend(job_lines);
    lines.extend(s3_cache_lines(inputs));
    let total_usd = lines.iter().map(|l| l.usd).sum();
    let nat_data_saved_usd = inputs
        .image_cache
        .then(|| f64::from(inputs.job_pods) * NAT_GB_PER_JOB_POD * prices.nat_gb);
    CostProjection {
        lines,
        total_usd,
        nat_data_saved_usd,
        durations: *durations,
        price_list_api: prices.used_price_list_api(),
        prices: prices.clone(),
        priced_job_pod,
    }
}

/// NAT data: the job pods' image pulls ([`NAT_GB_PER_JOB_POD`] each) at the NAT's per-GB price,
/// or none with the image cache: ECR serves layers from S3 (ECR User Guide, "Amazon ECR interface
/// VPC endpoints": "Amazon ECR uses Amazon S3 to store your image layers"), which the free S3
/// gateway endpoint reaches without the NAT gateway (Amazon VPC User Guide, "Gateway endpoints
/// for Amazon S3"), and ECR itself pulls from the upstream, outside the VPC. What still crosses
/// the NAT (ECR API calls and manifests, kilobytes) is left out.
fn nat_data_line(inputs: &CostInputs, prices: &Prices) -> CostLine {
    let pulled_gb = if inputs.image_cache {
        0.0
    } else {
        NAT_GB_PER_JOB_POD
    };
    let via = if inputs.image_cache {
        " (image layers from ECR through the S3 gateway endpoint)"
    } else {
        ""
    };
    CostLine {
        item: "NAT data processed".into(),
        basis: format!(
            "{} job pods × {pulled_gb} GB of image pulls × ${}/GB{via}",
            inputs.job_pods, prices.nat_gb
        ),
        usd: f64::from(inputs.job_pods) * pulled_gb * prices.nat_gb,
        price_source: prices.network_source.clone(),
    }
}

/// The S3 cache's lines, with a cache workload on the stack's bucket: a GET and a PUT per job,
/// and each shard's key stored until the bucket's lifecycle expires it. Its traffic goes through
/// the S3 gateway endpoint (no NAT data, no S3 data transfer charge within the Region).
fn s3_cache_lines(inputs: &CostInputs) -> Vec<CostLine> {
    let Some((mb, days)) = inputs.s3_cache else {
        return Vec::new();
    };
    let jobs = f64::from(inputs.job_pods);
    let gb = f64::from(inputs.manager_pods) * f64::from(mb) / 1024.0;
    vec![
        CostLine {
            item: "S3 cache requests".into(),
            basis: format!(
                "{} job(s) × (1 GET × ${S3_GET_PER_1000_USD}/1000 + 1 PUT × ${S3_PUT_PER_1000_USD}/1000)",
                inputs.job_pods
            ),
            usd: jobs * (S3_GET_PER_1000_USD + S3_PUT_PER_1000_USD) / 1000.0,
            price_source: S3_SOURCE.into(),
        },
        CostLine {
            item: "S3 cache storage".into(),
            basis: format!(
                "{} key(s) × {mb} MB × {days} day(s) until expiry × ${S3_STORAGE_GB_MONTH_USD}/GB-month",
                inputs.manager_pods
            ),
            usd: gb * S3_STORAGE_GB_MONTH_USD * f64::from(days) / 30.0,
            price_source: S3_SOURCE.into(),
        },
    ]
}

/// The job pods' lines: at the default size, or, with overwrite ceilings or a job disk, at the
/// largest size they allow (a job may raise its pod up to it) plus the ephemeral storage Fargate
/// bills beyond the included 20 GiB (glrunner_fargate::storage: requests + 10% + 5 GiB,
/// whole GB, per second with the one-minute minimum).
fn job_pod_lines(
    inputs: &CostInputs,
    job_time: Duration,
    prices: &Prices,
) -> (Vec<CostLine>, Option<String>) {
    let pods = f64::from(inputs.job_pods);
    let Some(ceiling) = inputs.job_pod_ceiling else {
        let line = CostLine {
            item: "job pods".into(),
            basis: format!(
                "{} × {} × {} (pod start + job; 1 min minimum)",
                inputs.job_pods,
                inputs.job_pod_size,
                minutes(job_time)
            ),
            usd: pods * prices.fargate.cost(inputs.job_pod_size, job_time),
            price_source: prices.fargate.source.clone(),
        };
        return (vec![line], None);
    };
    let size = ceiling.size.max(inputs.job_pod_size);
    let storage_gib = ceiling.storage_mib as f64 / 1024.0;
    let described = if ceiling.storage_mib == 0 {
        format!("{size} with Fargate's included 20 GiB of ephemeral storage")
    } else {
        format!("{size} with {storage_gib:.0} GiB of ephemeral storage")
    };
    let mut lines = vec![CostLine {
        item: "job pods".into(),
        basis: format!(
            "{} × {} × {} (the largest pod the overwrite ceilings allow; default {}; pod start + job; 1 min minimum)",
            inputs.job_pods,
            size,
            minutes(job_time),
            inputs.job_pod_size
        ),
        usd: pods * prices.fargate.cost(size, job_time),
        price_source: prices.fargate.source.clone(),
    }];
    let billed_gb = ceiling.billed_storage_gb();
    if billed_gb > 0 {
        let (gb_hour, source) = glrunner_fargate::storage::storage_gb_hour_usd(&inputs.region);
        let billed_time = job_time.max(prices.fargate.minimum_billed);
        lines.push(CostLine {
            item: "job pod ephemeral storage".into(),
            basis: format!(
                "{} × {billed_gb} GB beyond the included 20 GiB ({storage_gib:.0} GiB requested + 10% + 5 GiB) × {} × ${gb_hour}/GB-h",
                inputs.job_pods,
                minutes(billed_time)
            ),
            usd: pods * billed_gb as f64 * gb_hour * hours(billed_time),
            price_source: source,
        });
    }
    (lines, Some(described))
}

/// What the run was projected to cost before it started, and the same lines from the
/// durations it measured (still an estimate: prices times modelled pod counts, not a bill).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostComparison {
    /// Before the run.
    pub projected: CostProjection,
    /// From the measured phase durations.
    pub estimated: CostProjection,
}

impl CostProjection {
    /// The projection as text lines.
    pub fn render_text(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        for l in &self.lines {
            let _ = writeln!(out, "  {:<24} ${:>9.4}  {}", l.item, l.usd, l.basis);
        }
        if let Some(saved) = self.nat_data_saved_usd {
            let _ = writeln!(
                out,
                "  {:<24} ${saved:>9.4}  NAT data the image pulls would cost without the image cache (not in the total)",
                "saved by the image cache"
            );
        }
        let _ = writeln!(
            out,
            "  {:<24} ${:>9.4}  over {} wall time (modelled durations); prices: {}",
            "total",
            self.total_usd,
            minutes(self.durations.wall()),
            if self.price_list_api {
                "AWS Price List API where it answered, tables elsewhere"
            } else {
                "tables in the code (Price List API not used)"
            }
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(jobs: u32) -> CostInputs {
        CostInputs {
            region: "us-east-1".into(),
            nat_gateways: 1,
            manager_pods: jobs.div_ceil(200),
            manager_pod_size: FargateSize::for_requests(250, 256).unwrap(),
            job_pods: jobs,
            job_pod_size: FargateSize::for_requests(500, 768).unwrap(),
            job_pod_ceiling: None,
            image_cache: false,
            s3_cache: None,
        }
    }

    #[test]
    fn the_s3_cache_workload_is_priced_per_request_and_stored_key() {
        let prices = Prices::table("us-east-1");
        let durations = ExpectedDurations::default();
        let without = project(&inputs(400), &durations, &prices);
        let with = project(
            &CostInputs {
                s3_cache: Some((10, 14)),
                ..inputs(400)
            },
            &durations,
            &prices,
        );
        let line = |item: &str| with.lines.iter().find(|l| l.item == item).unwrap().usd;
        assert!((line("S3 cache requests") - 400.0 * 0.0054 / 1000.0).abs() < 1e-12);
        let gb = 2.0 * 10.0 / 1024.0;
        assert!((line("S3 cache storage") - gb * 0.023 * 14.0 / 30.0).abs() < 1e-12);
        assert!(without.lines.iter().all(|l| !l.item.starts_with("S3")));
    }

    #[test]
    fn the_image_cache_takes_the_image_pulls_off_the_nat_data_line() {
        let prices = Prices::table("us-east-1");
        let durations = ExpectedDurations::default();
        let direct = project(&inputs(400), &durations, &prices);
        let cached = project(
            &CostInputs {
                image_cache: true,
                ..inputs(400)
            },
            &durations,
            &prices,
        );
        let nat_data = |p: &CostProjection| {
            p.lines
                .iter()
                .find(|l| l.item == "NAT data processed")
                .unwrap()
                .usd
        };
        let pulls = 400.0 * NAT_GB_PER_JOB_POD * prices.nat_gb;
        assert!((nat_data(&direct) - pulls).abs() < 1e-9);
        assert_eq!(nat_data(&cached), 0.0);
        assert_eq!(direct.nat_data_saved_usd, None);
        assert!((cached.nat_data_saved_usd.unwrap() - pulls).abs() < 1e-9);
        assert!((direct.total_usd - cached.total_usd - pulls).abs() < 1e-9);
        assert!(cached.render_text().contains("saved by the image cache"));
    }

    #[test]
    fn the_largest_pod_the_ceilings_allow_is_priced_with_its_storage() {
        let prices = Prices::table("us-east-1");
        let d = ExpectedDurations::default();
        let plain = project(&inputs(100), &d, &prices);
        assert_eq!(plain.priced_job_pod, None);
        assert!(
            plain
                .lines
                .iter()
                .all(|l| l.item != "job pod ephemeral storage")
        );
        let mut ceiling = inputs(100);
        let big = FargateSize::for_requests(4000, 8 * 1024).unwrap();
        ceiling.job_pod_ceiling = Some(glrunner_runner_chart::JobPodCeiling {
            size: big,
            storage_mib: 100 * 1024,
        });
        let dear = project(&ceiling, &d, &prices);
        let job_time = d.pod_start + d.job;
        let jobs = dear.lines.iter().find(|l| l.item == "job pods").unwrap();
        assert!((jobs.usd - 100.0 * prices.fargate.cost(big, job_time)).abs() < 1e-9);
        assert!(
            jobs.basis.contains("overwrite ceilings allow"),
            "{}",
            jobs.basis
        );
        // 100 GiB requested: 115 GiB provisioned, 95 GB billed (AWS's own example).
        let disk = dear
            .lines
            .iter()
            .find(|l| l.item == "job pod ephemeral storage")
            .unwrap();
        let want = 100.0 * 95.0 * 0.000111 * job_time.as_secs_f64() / 3600.0;
        assert!((disk.usd - want).abs() < 1e-12, "{} vs {want}", disk.usd);
        assert!(
            disk.price_source.contains("Ephemeral Storage"),
            "{}",
            disk.price_source
        );
        assert!(dear.total_usd > plain.total_usd);
        assert_eq!(
            dear.priced_job_pod.as_deref(),
            Some("4 vCPU / 9 GB with 100 GiB of ephemeral storage")
        );
    }

    #[test]
    fn the_projection_adds_up_its_lines_and_grows_with_the_jobs() {
        let prices = Prices::table("us-east-1");
        let d = ExpectedDurations::default();
        let small = project(&inputs(10), &d, &prices);
        let big = project(&inputs(400), &d, &prices);
        let sum: f64 = big.lines.iter().map(|l| l.usd).sum();
        assert!((big.total_usd - sum).abs() < 1e-12);
        assert!(big.total_usd > small.total_usd);
        // EKS for ~32 minutes at $0.10/h.
        let eks = &big.lines[0];
        assert!((eks.usd - 0.10 * d.wall().as_secs_f64() / 3600.0).abs() < 1e-12);
        // 400 job pods of 0.5 vCPU / 1 GB for 2 minutes each.
        let jobs = big.lines.iter().find(|l| l.item == "job pods").unwrap();
        let per_pod = (0.5 * 0.04048 + 1.0 * 0.004445) * 120.0 / 3600.0;
        assert!((jobs.usd - 400.0 * per_pod).abs() < 1e-9, "{}", jobs.usd);
        assert!(!big.price_list_api);
        assert!(big.render_text().contains("tables in the code"));
    }

    #[test]
    fn a_version_in_extended_support_costs_six_times_the_control_plane_hour() {
        use jiff::civil::date;
        let d = ExpectedDurations::default();
        let on = date(2026, 12, 3);
        // 1.35 is in standard support on 2026-12-03, 1.34 in extended support since 2026-12-02.
        let standard = Prices::table("us-east-1").for_kubernetes("1.35", on);
        let extended = Prices::table("us-east-1").for_kubernetes("1.34", on);
        assert_eq!(standard.eks_cluster_hour, 0.10);
        assert_eq!(extended.eks_cluster_hour, 0.60);
        assert!(
            extended.eks_source.contains("extended support"),
            "{}",
            extended.eks_source
        );
        let cheap = project(&inputs(10), &d, &standard);
        let dear = project(&inputs(10), &d, &extended);
        let eks = |p: &CostProjection| p.lines[0].usd;
        assert!((eks(&dear) - 6.0 * eks(&cheap)).abs() < 1e-12);
        assert!((dear.total_usd - cheap.total_usd - 5.0 * eks(&cheap)).abs() < 1e-12);
        // The day before 1.34 left standard support it still costs $0.10.
        let before = Prices::table("us-east-1").for_kubernetes("1.34", date(2026, 12, 1));
        assert_eq!(before.eks_cluster_hour, 0.10);
        // The Price List's standard price does not hide extended support.
        let quote = PriceQuote {
            region: "us-east-1".into(),
            fargate_vcpu_hour: None,
            fargate_gb_hour: None,
            eks_cluster_hour: Some(0.10),
        };
        let listed = Prices::from_quote("us-east-1", &quote).for_kubernetes("1.33", on);
        assert_eq!(listed.eks_cluster_hour, 0.60);
    }

    #[test]
    fn price_list_answers_replace_the_table_and_say_so() {
        let quote = PriceQuote {
            region: "eu-west-1".into(),
            fargate_vcpu_hour: Some(0.05),
            fargate_gb_hour: Some(0.005),
            eks_cluster_hour: None,
        };
        let prices = Prices::from_quote("eu-west-1", &quote);
        assert_eq!(prices.fargate.vcpu_hour_usd, 0.05);
        assert!(prices.fargate.source.contains("Price List"));
        assert!(prices.eks_source.starts_with("table"));
        assert!(prices.used_price_list_api());
        let partial = PriceQuote {
            fargate_gb_hour: None,
            ..quote
        };
        let prices = Prices::from_quote("eu-west-1", &partial);
        assert!(
            prices.fargate.source.contains("lower bound"),
            "{}",
            prices.fargate.source
        );
    }
}
