//! EKS Fargate pod sizing: how requests round up to a billable vCPU/memory combination, and what it costs.

use serde::Serialize;

/// Memory Fargate adds to every pod for kubelet, kube-proxy and containerd.
pub const FARGATE_OVERHEAD_MIB: u64 = 256;

/// us-east-1 Linux/x86 price per vCPU-hour (USD), for estimates only.
pub const USD_PER_VCPU_HOUR: f64 = 0.04048;
/// us-east-1 Linux/x86 price per GB-hour (USD), for estimates only.
pub const USD_PER_GB_HOUR: f64 = 0.004445;

/// A billable Fargate pod size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct FargateSize {
    /// vCPU in millicores (250, 500, 1000, 2000, 4000, 8000, 16000).
    pub vcpu_millis: u32,
    /// Memory in MiB (whole GB steps).
    pub memory_mib: u64,
}

/// (vCPU millis, min GB, max GB, step GB) of each valid Fargate combination.
const COMBINATIONS: [(u32, u64, u64, u64); 7] = [
    (250, 0, 2, 1),
    (500, 1, 4, 1),
    (1000, 2, 8, 1),
    (2000, 4, 16, 1),
    (4000, 8, 30, 1),
    (8000, 16, 60, 4),
    (16000, 32, 120, 8),
];

impl FargateSize {
    /// The smallest valid combination holding `cpu_millis` and `memory_mib` of requests, after
    /// adding [`FARGATE_OVERHEAD_MIB`]; `None` when it exceeds the largest (16 vCPU, 120 GB).
    pub fn for_requests(cpu_millis: u32, memory_mib: u64) -> Option<Self> {
        let needed_mib = memory_mib + FARGATE_OVERHEAD_MIB;
        for (vcpu, min_gb, max_gb, step) in COMBINATIONS {
            if cpu_millis > vcpu {
                continue;
            }
            // 0.25 vCPU offers 0.5 GB as its smallest size.
            let mut options: Vec<u64> = Vec::new();
            if vcpu == 250 {
                options.push(512);
            }
            let mut gb = min_gb.max(1);
            while gb <= max_gb {
                options.push(gb * 1024);
                gb += step;
            }
            if let Some(mib) = options.into_iter().find(|m| *m >= needed_mib) {
                return Some(Self {
                    vcpu_millis: vcpu,
                    memory_mib: mib,
                });
            }
        }
        None
    }

    /// vCPUs as a float (0.25, 0.5, 1, ...).
    pub fn vcpus(&self) -> f64 {
        f64::from(self.vcpu_millis) / 1000.0
    }

    /// Estimated USD per hour of one pod of this size (us-east-1 Linux/x86 list prices).
    pub fn usd_per_hour(&self) -> f64 {
        self.vcpus() * USD_PER_VCPU_HOUR + (self.memory_mib as f64 / 1024.0) * USD_PER_GB_HOUR
    }
}

impl std::fmt::Display for FargateSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} vCPU / {} GB",
            self.vcpus(),
            self.memory_mib as f64 / 1024.0
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_up_with_overhead() {
        assert_eq!(
            FargateSize::for_requests(100, 128),
            Some(FargateSize {
                vcpu_millis: 250,
                memory_mib: 512
            })
        );
        assert_eq!(
            FargateSize::for_requests(250, 256),
            Some(FargateSize {
                vcpu_millis: 250,
                memory_mib: 512
            })
        );
        assert_eq!(
            FargateSize::for_requests(250, 257),
            Some(FargateSize {
                vcpu_millis: 250,
                memory_mib: 1024
            })
        );
        assert_eq!(
            FargateSize::for_requests(500, 768),
            Some(FargateSize {
                vcpu_millis: 500,
                memory_mib: 1024
            })
        );
        assert_eq!(
            FargateSize::for_requests(750, 1280),
            Some(FargateSize {
                vcpu_millis: 1000,
                memory_mib: 2048
            })
        );
        assert_eq!(
            FargateSize::for_requests(250, 4096),
            Some(FargateSize {
                vcpu_millis: 1000,
                memory_mib: 5120
            })
        );
        assert_eq!(
            FargateSize::for_requests(8001, 1024),
            Some(FargateSize {
                vcpu_millis: 16000,
                memory_mib: 32 * 1024
            })
        );
        assert_eq!(FargateSize::for_requests(16001, 1024), None);
        assert_eq!(FargateSize::for_requests(1000, 120 * 1024), None);
    }

    #[test]
    fn cost() {
        let s = FargateSize {
            vcpu_millis: 250,
            memory_mib: 512,
        };
        assert!((s.usd_per_hour() - 0.0123).abs() < 0.0005);
    }
}
