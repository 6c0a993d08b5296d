//! Which AWS Regions offer Amazon EKS, and which of those run EKS pods on Fargate: a table, as
//! no API answers this without extra SDK crates (the SSM global-infrastructure parameters would).

/// Where the table comes from, and when it was read.
pub const SOURCE: &str = "AWS Regional Services List and EKS service endpoints (Regions as of 2026-11); \
     EKS User Guide, AWS Fargate: \"AWS Fargate with Amazon EKS isn't available in AWS GovCloud (US-East) \
     and AWS GovCloud (US-West)\"";

/// Regions where Amazon EKS is offered.
pub const EKS_REGIONS: &[&str] = &[
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-south-1",
    "ap-south-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "cn-north-1",
    "cn-northwest-1",
    "us-gov-east-1",
    "us-gov-west-1",
];

/// EKS Regions without Fargate for EKS pods.
pub const EKS_WITHOUT_FARGATE: &[&str] = &["us-gov-east-1", "us-gov-west-1"];

/// What the table says about a Region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// EKS with Fargate.
    EksAndFargate,
    /// EKS, but no Fargate for EKS pods.
    EksWithoutFargate,
    /// Not in the table: a Region newer than it, or a typo.
    Unknown,
}

/// What `region` offers, per the table.
pub fn offer(region: &str) -> Offer {
    if !EKS_REGIONS.contains(&region) {
        Offer::Unknown
    } else if EKS_WITHOUT_FARGATE.contains(&region) {
        Offer::EksWithoutFargate
    } else {
        Offer::EksAndFargate
    }
}
