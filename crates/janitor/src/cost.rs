//! Fargate cost estimate of a pod: size from its requests, price from a configurable table.
//!
//! EKS Fargate sizes a pod as `max(largest init container, sum of containers)` requests plus 256 MiB
//! for the kubelet, kube-proxy and containerd, rounded **up** to a valid vCPU/memory combination, and
//! bills per second (one-minute minimum) from the image pull until the pod is gone.

use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use crate::model::{PodInfo, PodRequests};

pub use glrunner_fargate::{FARGATE_OVERHEAD_MIB, FargatePricing, FargateSize, PriceError};

/// The Fargate size for the given requests: +256 MiB, rounded up to the smallest valid combination.
/// Requests beyond the largest size map to the largest size (Fargate would refuse to schedule the pod).
pub fn fargate_size(requests: PodRequests) -> FargateSize {
    FargateSize::for_requests(requests.cpu_millis, requests.memory_mib)
        .unwrap_or(FargateSize::LARGEST)
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
    let since = pod.started_at.unwrap_or(pod.created_at);
    let ran: Duration = now
        .duration_since(since)
        .try_into()
        .unwrap_or(Duration::ZERO);
    CostEstimate {
        size,
        usd_per_hour: pricing.hourly(size),
        usd_burned: pricing.cost(size, ran),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Sizing and prices are tested in glrunner-fargate; here only the janitor's use of them.
    #[test]
    fn beyond_the_largest_size_counts_as_the_largest() {
        let size = fargate_size(PodRequests {
            cpu_millis: 64000,
            memory_mib: 1,
        });
        assert_eq!(size, FargateSize::LARGEST);
        let size = fargate_size(PodRequests::default());
        assert_eq!((size.vcpu_millis, size.memory_mib), (250, 512));
    }
}
