//! Fargate pod sizes: how a pod's requests round up to a billable vCPU/memory combination.
//!
//! EKS Fargate sizes a pod as `max(largest init container, sum of the other containers)`,
//! adds 256 MiB for the kubelet, kube-proxy and containerd, and rounds **up** to the smallest
//! valid combination below (source: the Amazon EKS user guide, "Fargate pod configuration").

use std::fmt;

use serde::{Deserialize, Serialize};

/// Memory Fargate adds to every pod for the kubelet, kube-proxy and containerd.
pub const FARGATE_OVERHEAD_MIB: u64 = 256;

/// A billable Fargate pod size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FargateSize {
    /// vCPU in millicores (250, 500, 1000, 2000, 4000, 8000, 16000).
    pub vcpu_millis: u32,
    /// Memory in MiB (whole GB, except 512 with 0.25 vCPU).
    pub memory_mib: u64,
}

/// Each vCPU step with its memory options in GB: (vCPU millis, first GB, last GB, step GB).
const TIERS: [(u32, u64, u64, u64); 7] = [
    (250, 1, 2, 1),
    (500, 1, 4, 1),
    (1000, 2, 8, 1),
    (2000, 4, 16, 1),
    (4000, 8, 30, 1),
    (8000, 16, 60, 4),
    (16000, 32, 120, 8),
];

impl FargateSize {
    /// The largest size Fargate runs: 16 vCPU / 120 GB.
    pub const LARGEST: Self = Self {
        vcpu_millis: 16000,
        memory_mib: 120 * 1024,
    };

    /// Every valid size, smallest vCPU first, then by memory.
    pub fn all() -> impl Iterator<Item = FargateSize> {
        TIERS.into_iter().flat_map(|(vcpu, first, last, step)| {
            let half = (vcpu == 250).then_some(512);
            half.into_iter()
                .chain((first..=last).step_by(step as usize).map(|gb| gb * 1024))
                .map(move |memory_mib| FargateSize {
                    vcpu_millis: vcpu,
                    memory_mib,
                })
        })
    }

    /// The smallest valid size holding `cpu_millis` and `memory_mib` of pod requests, after
    /// adding [`FARGATE_OVERHEAD_MIB`]; `None` beyond the largest (Fargate would not run it).
    pub fn for_requests(cpu_millis: u64, memory_mib: u64) -> Option<Self> {
        let needed_mib = memory_mib.checked_add(FARGATE_OVERHEAD_MIB)?;
        Self::all().find(|s| u64::from(s.vcpu_millis) >= cpu_millis && s.memory_mib >= needed_mib)
    }

    /// vCPUs (0.25, 0.5, 1, ...).
    pub fn vcpus(&self) -> f64 {
        f64::from(self.vcpu_millis) / 1000.0
    }

    /// Memory in GB (GiB), as Fargate bills it.
    pub fn memory_gb(&self) -> f64 {
        self.memory_mib as f64 / 1024.0
    }

    /// The size in a pod's [`CAPACITY_PROVISIONED_ANNOTATION`], e.g. `0.25vCPU 0.5GB` or
    /// `2vCPU 9GB`; `None` when the text is not of that shape.
    pub fn from_capacity_provisioned(text: &str) -> Option<Self> {
        let mut words = text.split_whitespace();
        let (Some(vcpu), Some(gb), None) = (words.next(), words.next(), words.next()) else {
            return None;
        };
        let vcpu: f64 = vcpu.strip_suffix("vCPU")?.parse().ok()?;
        let gb: f64 = gb.strip_suffix("GB")?.parse().ok()?;
        if !(vcpu.is_finite() && gb.is_finite() && vcpu > 0.0 && gb > 0.0) {
            return None;
        }
        Some(Self {
            vcpu_millis: u32::try_from((vcpu * 1000.0).round() as u64).ok()?,
            memory_mib: (gb * 1024.0).round() as u64,
        })
    }
}

/// The annotation EKS puts on every pod Fargate runs, naming the size it provisioned and bills
/// (`CapacityProvisioned: 0.25vCPU 0.5GB` in the EKS User Guide's Fargate logging page; read as
/// `(.*?)vCPU (.*?)GB` by awslabs/eks-node-viewer, pkg/model/pod.go `FargateCapacityProvisioned`).
pub const CAPACITY_PROVISIONED_ANNOTATION: &str = "CapacityProvisioned";

impl fmt::Display for FargateSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} vCPU / {} GB", self.vcpus(), self.memory_gb())
    }
}

/// A pod's requests as Fargate counts them: `max(largest init container, sum of containers)`
/// for CPU and memory separately. Each item is `(cpu_millis, memory_mib)`.
pub fn pod_requests(
    containers: impl IntoIterator<Item = (u64, u64)>,
    init_containers: impl IntoIterator<Item = (u64, u64)>,
) -> (u64, u64) {
    let (cpu, mem) = containers
        .into_iter()
        .fold((0u64, 0u64), |(c, m), (dc, dm)| {
            (c.saturating_add(dc), m.saturating_add(dm))
        });
    init_containers
        .into_iter()
        .fold((cpu, mem), |(c, m), (ic, im)| (c.max(ic), m.max(im)))
}

/// Which request pushes a pod into a larger Fargate size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Resource {
    /// The CPU requests.
    Cpu,
    /// The memory requests.
    Memory,
}

/// A pod whose total lands just past a Fargate size: lowering one request by `excess` fits the
/// `smaller` size instead of the `billed` one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NearMiss {
    /// The request that tips the pod over.
    pub resource: Resource,
    /// The pod's total of that request (millicores, or MiB without Fargate's 256 MiB).
    pub total: u64,
    /// How much lower the total must be to fit `smaller` (millicores or MiB).
    pub excess: u64,
    /// The size Fargate bills for the pod as requested.
    pub billed: FargateSize,
    /// The size it would get with `total - excess`.
    pub smaller: FargateSize,
}

impl NearMiss {
    /// A pod is "just past" a size when lowering one request by at most a quarter of it (and at
    /// least 1m or 1 MiB) fits a smaller size. Returns the CPU case first, then memory.
    pub fn find(cpu_millis: u64, memory_mib: u64) -> Option<Self> {
        let billed = FargateSize::for_requests(cpu_millis, memory_mib)?;
        let within_a_quarter = |excess: u64, total: u64| excess > 0 && excess * 4 <= total;
        // CPU: the next vCPU step below the billed one.
        let lower_cpu = TIERS
            .iter()
            .map(|t| u64::from(t.0))
            .rfind(|&v| v < u64::from(billed.vcpu_millis));
        if let Some(cap) = lower_cpu
            && cpu_millis > cap
            && within_a_quarter(cpu_millis - cap, cpu_millis)
            && let Some(smaller) = FargateSize::for_requests(cap, memory_mib)
            && cheaper(smaller, billed)
        {
            return Some(Self {
                resource: Resource::Cpu,
                total: cpu_millis,
                excess: cpu_millis - cap,
                billed,
                smaller,
            });
        }
        // Memory: the largest memory option below the billed one that still holds the CPU.
        let lower_memory = FargateSize::all()
            .filter(|s| s.memory_mib < billed.memory_mib)
            .filter(|s| u64::from(s.vcpu_millis) >= cpu_millis)
            .map(|s| s.memory_mib)
            .max()?;
        let fits = lower_memory.checked_sub(FARGATE_OVERHEAD_MIB)?;
        let excess = memory_mib.checked_sub(fits)?;
        let smaller = FargateSize::for_requests(cpu_millis, fits)?;
        (within_a_quarter(excess, memory_mib) && cheaper(smaller, billed)).then_some(Self {
            resource: Resource::Memory,
            total: memory_mib,
            excess,
            billed,
            smaller,
        })
    }
}

/// Whether `a` costs less than `b` at any positive vCPU and GB prices.
fn cheaper(a: FargateSize, b: FargateSize) -> bool {
    a.vcpu_millis <= b.vcpu_millis && a.memory_mib <= b.memory_mib && a != b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_capacity_provisioned_annotation_reads_as_a_size() {
        assert_eq!(
            FargateSize::from_capacity_provisioned("0.25vCPU 0.5GB"),
            FargateSize::for_requests(100, 70)
        );
        let big = FargateSize::from_capacity_provisioned("2vCPU 9GB").unwrap();
        assert_eq!((big.vcpus(), big.memory_gb()), (2.0, 9.0));
        for bad in [
            "",
            "0.25vCPU",
            "0.25 vCPU 0.5 GB",
            "0.25GB 0.5vCPU",
            "-1vCPU 2GB",
            "xvCPU 1GB",
        ] {
            assert_eq!(FargateSize::from_capacity_provisioned(bad), None, "{bad:?}");
        }
    }

    fn size(vcpu_millis: u32, gb_tenths: u64) -> FargateSize {
        FargateSize {
            vcpu_millis,
            memory_mib: gb_tenths * 1024 / 10,
        }
    }

    #[test]
    fn rounds_up_with_overhead() {
        let cases = [
            ((0, 0), size(250, 5)),
            ((100, 128), size(250, 5)),
            ((250, 256), size(250, 5)),
            ((250, 257), size(250, 10)),
            ((500, 768), size(500, 10)),
            ((750, 1280), size(1000, 20)),
            // 0.25 vCPU tops out at 2 GB: 3 GB needs 0.5 vCPU.
            ((250, 2900), size(500, 40)),
            ((250, 4096), size(1000, 50)),
            ((1250, 768), size(2000, 40)),
            ((1500, 1024), size(2000, 40)),
            ((8000, 17 * 1024), size(8000, 200)),
            ((8001, 1024), size(16000, 320)),
        ];
        for ((cpu, mem), want) in cases {
            assert_eq!(
                FargateSize::for_requests(cpu, mem),
                Some(want),
                "{cpu}m {mem}Mi"
            );
        }
        assert_eq!(FargateSize::for_requests(16001, 1024), None);
        assert_eq!(FargateSize::for_requests(1000, 120 * 1024), None);
        assert_eq!(
            FargateSize::for_requests(16000, 120 * 1024 - 256),
            Some(FargateSize::LARGEST)
        );
    }

    #[test]
    fn every_size_is_listed_once_in_order() {
        let all: Vec<_> = FargateSize::all().collect();
        // 3 + 4 + 7 + 13 + 23 + 12 + 12 combinations (AWS's table).
        assert_eq!(all.len(), 74);
        assert!(all.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(all.first(), Some(&size(250, 5)));
        assert_eq!(all.last(), Some(&FargateSize::LARGEST));
    }

    #[test]
    fn init_containers_count_as_the_max_not_the_sum() {
        assert_eq!(
            pod_requests([(500, 512), (250, 256)], [(1000, 128)]),
            (1000, 768)
        );
        assert_eq!(pod_requests([], []), (0, 0));
    }

    #[test]
    fn a_quarter_vcpu_helper_on_one_vcpu_is_a_near_miss() {
        // --cpu 1 plus the 250m helper: 1.25 vCPU is billed as 2 vCPU / 4 GB.
        let miss = NearMiss::find(1250, 768).expect("near miss");
        assert_eq!(miss.resource, Resource::Cpu);
        assert_eq!(miss.excess, 250);
        assert_eq!(miss.billed, size(2000, 40));
        assert_eq!(miss.smaller, size(1000, 20));
        assert_eq!(
            FargateSize::for_requests(1250 - 250, 768),
            Some(miss.smaller)
        );
    }

    #[test]
    fn memory_just_past_a_step_is_a_near_miss() {
        // 2 GiB of requests + 256 MiB overhead lands on 3 GB at 0.5 vCPU.
        let miss = NearMiss::find(500, 2048).expect("near miss");
        assert_eq!(miss.resource, Resource::Memory);
        assert_eq!(miss.excess, 256);
        assert_eq!(miss.billed, size(500, 30));
        assert_eq!(miss.smaller, size(500, 20));
    }

    #[test]
    fn well_inside_a_size_is_no_near_miss() {
        assert_eq!(NearMiss::find(500, 768), None);
        assert_eq!(NearMiss::find(250, 256), None);
        // 1.9 vCPU is far past 1 vCPU: lowering CPU by 900m is not "just past".
        assert_eq!(NearMiss::find(1900, 3000), None);
        assert_eq!(NearMiss::find(16001, 0), None);
    }

    proptest::proptest! {
        #[test]
        fn the_size_holds_the_requests_and_nothing_smaller_does(cpu in 0u64..16_000, mem in 0u64..100_000) {
            if let Some(s) = FargateSize::for_requests(cpu, mem) {
                proptest::prop_assert!(u64::from(s.vcpu_millis) >= cpu && s.memory_mib >= mem + 256);
                for smaller in FargateSize::all().filter(|t| cheaper(*t, s)) {
                    proptest::prop_assert!(u64::from(smaller.vcpu_millis) < cpu || smaller.memory_mib < mem + 256);
                }
            }
            if let Some(m) = NearMiss::find(cpu, mem) {
                let (c, mm) = match m.resource {
                    Resource::Cpu => (cpu - m.excess, mem),
                    Resource::Memory => (cpu, mem - m.excess),
                };
                proptest::prop_assert_eq!(FargateSize::for_requests(c, mm), Some(m.smaller));
                proptest::prop_assert!(cheaper(m.smaller, m.billed));
            }
        }
    }
}
