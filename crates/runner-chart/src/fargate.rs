//! EKS Fargate pod sizing for runner releases: the shared `glrunner-fargate` crate, re-exported.

pub use glrunner_fargate::{FARGATE_OVERHEAD_MIB, FargatePricing, FargateSize, NearMiss, Resource};
