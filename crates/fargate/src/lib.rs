//! EKS Fargate domain knowledge shared by glrunner's crates: exact Kubernetes quantities, how a
//! pod's requests round up to a billable Fargate size, what that size costs, and the pod's
//! ephemeral storage ([`storage`]).
//!
//! A leaf crate: it depends on none of glrunner's other crates, so runner-chart, janitor and
//! the root package's cost projection can all use it.
//!
//! ```
//! use glrunner_fargate::{FargatePricing, FargateSize, NearMiss, quantity};
//!
//! // A 1-vCPU build container plus the 250m helper: 1.25 vCPU.
//! let cpu = quantity::cpu_millis("1")? + quantity::cpu_millis("250m")?;
//! let mem = quantity::memory_mib("512Mi")? + quantity::memory_mib("256Mi")?;
//! let size = FargateSize::for_requests(cpu, mem).expect("fits Fargate");
//! assert_eq!(size.to_string(), "2 vCPU / 4 GB");
//! let miss = NearMiss::find(cpu, mem).expect("just past 1 vCPU");
//! assert_eq!(miss.excess, 250);
//! let hourly = FargatePricing::us_east_1().hourly(size);
//! assert!(hourly > 0.09 && hourly < 0.1);
//! # Ok::<(), glrunner_fargate::quantity::QuantityError>(())
//! ```

pub mod price;
pub mod quantity;
pub mod size;
pub mod storage;

pub use price::{FargatePricing, PriceError};
pub use quantity::{Quantity, QuantityError};
pub use size::{
    CAPACITY_PROVISIONED_ANNOTATION, FARGATE_OVERHEAD_MIB, FargateSize, NearMiss, Resource,
    pod_requests,
};
