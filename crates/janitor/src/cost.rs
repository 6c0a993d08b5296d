//! Fargate cost estimate of a pod: size from its requests, price from a configurable table.
//!
//! EKS Fargate sizes a pod as `max(largest init container, sum of containers)` requests plus 256 MiB
//! for the kubelet, kube-proxy and containerd, rounded **up** to a valid vCPU/memory combination, and
//! bills per second (one-minute minimum) from the image pull until the pod is gone.

use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use crate::model::{PodInfo, PodRequests};

/// Memory Fargate adds to every pod for its own agents.
pub const FARGATE_OVERHEAD_MIB: u64 = 256;

/// A Fargate task size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FargateSize {
    /// vCPU in millicores (250 = 0.25 vCPU).
    pub cpu_millis: u64,
    /// Memory in MiB (always whole GiB, except 512 for the smallest size).
    pub memory_mib: u64,
}

impl FargateSize {
    /// vCPU as a float.
    pub fn vcpu(&self) -> f64 {
        self.cpu_millis as f64 / 1000.0
    }

    /// Memory in GB (GiB) as a float.
    pub fn memory_gb(&self) -> f64 {
        self.memory_mib as f64 / 1024.0
    }
}

impl std::fmt::Display for FargateSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} vCPU / {} GB", self.vcpu(), self.memory_gb())
    }
}

/// Valid Fargate combinations: (vCPU millicores, memory options in MiB).
fn combinations() -> impl Iterator<Item = (u64, Vec<u64>)> {
    let gib = |from: u64, to: u64, step: u64| {
        (from..=to)
            .step_by(step as usize)
            .map(|g| g * 1024)
            .collect::<Vec<_>>()
    };
    [
        (250, vec![512, 1024, 2048]),
        (500, gib(1, 4, 1)),
        (1000, gib(2, 8, 1)),
        (2000, gib(4, 16, 1)),
        (4000, gib(8, 30, 1)),
        (8000, gib(16, 60, 4)),
        (16000, gib(32, 120, 8)),
    ]
    .into_iter()
}

/// The Fargate size for the given requests: +256 MiB, rounded up to the smallest valid combination.
/// Requests beyond the largest size map to the largest size (Fargate would refuse to schedule the pod).
pub fn fargate_size(requests: PodRequests) -> FargateSize {
    let memory = requests.memory_mib + FARGATE_OVERHEAD_MIB;
    for (cpu, memories) in combinations() {
        if cpu < requests.cpu_millis {
            continue;
        }
        if let Some(&m) = memories.iter().find(|&&m| m >= memory) {
            return FargateSize {
                cpu_millis: cpu,
                memory_mib: m,
            };
        }
    }
    FargateSize {
        cpu_millis: 16000,
        memory_mib: 120 * 1024,
    }
}

/// Fargate prices for one region (Linux/x86).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FargatePricing {
    /// The region these prices are for.
    pub region: String,
    /// USD per vCPU-hour.
    pub vcpu_hour_usd: f64,
    /// USD per GB-hour.
    pub gb_hour_usd: f64,
    /// Minimum billed duration per pod.
    #[serde(with = "secs")]
    pub minimum_billed: Duration,
}

mod secs {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }
}

impl Default for FargatePricing {
    fn default() -> Self {
        Self::us_east_1()
    }
}

impl FargatePricing {
    /// us-east-1 Linux/x86 on-demand: $0.04048 per vCPU-hour, $0.004445 per GB-hour, one-minute minimum.
    pub fn us_east_1() -> Self {
        Self {
            region: "us-east-1".into(),
            vcpu_hour_usd: 0.04048,
            gb_hour_usd: 0.004445,
            minimum_billed: Duration::from_secs(60),
        }
    }

    /// Custom prices.
    pub fn new(
        region: impl Into<String>,
        vcpu_hour_usd: f64,
        gb_hour_usd: f64,
    ) -> crate::Result<Self> {
        for (field, v) in [
            ("vCPU-hour price", vcpu_hour_usd),
            ("GB-hour price", gb_hour_usd),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(crate::Error::invalid(
                    field,
                    format!("{v} must be a non-negative number of USD"),
                ));
            }
        }
        Ok(Self {
            region: region.into(),
            vcpu_hour_usd,
            gb_hour_usd,
            minimum_billed: Duration::from_secs(60),
        })
    }

    /// USD per hour for a size.
    pub fn hourly(&self, size: FargateSize) -> f64 {
        size.vcpu() * self.vcpu_hour_usd + size.memory_gb() * self.gb_hour_usd
    }
}

/// The estimated cost of one pod.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostEstimate {
    /// The Fargate size.
    pub size: FargateSize,
    /// USD per hour the pod is burning now (0 when it is not bound to a Fargate node).
    pub usd_per_hour: f64,
    /// USD burned so far (from `status.startTime`, or creation, to now; one-minute minimum).
    pub usd_burned: f64,
}

/// Estimates what `pod` costs on Fargate at `now`. Only pods bound to a node (`spec.nodeName`) are
/// billed: an unscheduled Pending pod has no Fargate node yet.
pub fn estimate(pod: &PodInfo, now: Timestamp, pricing: &FargatePricing) -> CostEstimate {
    let size = fargate_size(pod.requests);
    if pod.node_name.is_none() {
        return CostEstimate {
            size,
            usd_per_hour: 0.0,
            usd_burned: 0.0,
        };
    }
    let hourly = pricing.hourly(size);
    let since = pod.started_at.unwrap_or(pod.created_at);
    let ran: Duration = now
        .duration_since(since)
        .try_into()
        .unwrap_or(Duration::ZERO);
    let billed = ran.max(pricing.minimum_billed);
    CostEstimate {
        size,
        usd_per_hour: hourly,
        usd_burned: hourly * billed.as_secs_f64() / 3600.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(cpu: u64, mem: u64) -> FargateSize {
        fargate_size(PodRequests {
            cpu_millis: cpu,
            memory_mib: mem,
        })
    }

    #[test]
    fn sizes_round_up() {
        assert_eq!(
            size(0, 0),
            FargateSize {
                cpu_millis: 250,
                memory_mib: 512
            }
        );
        assert_eq!(
            size(100, 256),
            FargateSize {
                cpu_millis: 250,
                memory_mib: 512
            }
        );
        assert_eq!(
            size(100, 257),
            FargateSize {
                cpu_millis: 250,
                memory_mib: 1024
            }
        );
        // 0.25 vCPU tops out at 2 GB: 3 GB needs 0.5 vCPU.
        assert_eq!(
            size(250, 2900),
            FargateSize {
                cpu_millis: 500,
                memory_mib: 4096
            }
        );
        assert_eq!(
            size(1500, 1024),
            FargateSize {
                cpu_millis: 2000,
                memory_mib: 4096
            }
        );
        assert_eq!(
            size(8000, 17 * 1024),
            FargateSize {
                cpu_millis: 8000,
                memory_mib: 20 * 1024
            }
        );
        assert_eq!(
            size(64000, 1),
            FargateSize {
                cpu_millis: 16000,
                memory_mib: 120 * 1024
            }
        );
    }

    #[test]
    fn smallest_pod_costs_about_a_cent_per_hour() {
        let p = FargatePricing::us_east_1();
        let hourly = p.hourly(size(0, 0));
        assert!((hourly - 0.0123425).abs() < 1e-6, "{hourly}");
        assert!(FargatePricing::new("x", -1.0, 0.0).is_err());
    }
}
