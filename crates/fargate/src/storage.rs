//! Fargate ephemeral storage: how much a pod may ask for, what Fargate provisions for it and how
//! much of that it bills.
//!
//! Sources:
//! - the Amazon EKS User Guide, "Fargate Pod configuration", Fargate storage
//!   (<https://docs.aws.amazon.com/eks/latest/userguide/fargate-pod-configuration.html>): every
//!   pod gets 20 GiB of ephemeral storage by default;
//! - the AWS Containers blog, "AWS Fargate adds support for larger ephemeral volumes"
//!   (<https://aws.amazon.com/blogs/containers/amazon-eks-fargate-adds-support-for-larger-ephemeral-volumes/>):
//!   the `ephemeral-storage` requests of an EKS Fargate pod's containers are configurable up to
//!   175 GiB per pod; Fargate provisions `sum of requests + 10% + 5 GiB` and bills what it
//!   provisions beyond the included 20 GiB (its example: two containers of 50 GiB → 115 GiB
//!   provisioned, 95 GiB billed), in whole GB, for as long as the pod runs;
//! - the AWS Fargate pricing page (<https://aws.amazon.com/fargate/pricing/>), "Ephemeral
//!   Storage": USD 0.000111 per GB-hour in the US regions of [`STORAGE_TABLE`].

/// Ephemeral storage included with every Fargate pod, GiB.
pub const INCLUDED_STORAGE_GIB: u64 = 20;

/// Most ephemeral storage the containers of one EKS Fargate pod may request, GiB.
pub const MAX_STORAGE_GIB: u64 = 175;

/// [`MAX_STORAGE_GIB`] in MiB.
pub const MAX_STORAGE_MIB: u64 = MAX_STORAGE_GIB * 1024;

/// Storage Fargate reserves on top of the requests for system components, GiB.
pub const SYSTEM_RESERVED_GIB: u64 = 5;

/// Where [`STORAGE_TABLE`]'s prices come from.
pub const STORAGE_PRICE_SOURCE: &str = "table: AWS Fargate pricing page (aws.amazon.com/fargate/pricing), \
     Ephemeral Storage, Linux/x86, as listed in 2025; billed beyond the included 20 GiB (AWS Containers blog, \
     \"AWS Fargate adds support for larger ephemeral volumes\")";

/// Regions whose ephemeral-storage price the table holds: (region, USD per GB-hour).
pub const STORAGE_TABLE: [(&str, f64); 3] = [
    ("us-east-1", 0.000111),
    ("us-east-2", 0.000111),
    ("us-west-2", 0.000111),
];

/// The table's ephemeral-storage price for `region` (USD per GB-hour) and its source; us-east-1's,
/// marked as a lower bound, where the table has no entry (Fargate costs more elsewhere).
pub fn storage_gb_hour_usd(region: &str) -> (f64, String) {
    match STORAGE_TABLE.iter().find(|(r, _)| *r == region) {
        Some(&(_, usd)) => (usd, STORAGE_PRICE_SOURCE.to_owned()),
        None => (
            STORAGE_TABLE[0].1,
            format!(
                "{STORAGE_PRICE_SOURCE}; no entry for {region}: us-east-1's price used as a lower bound"
            ),
        ),
    }
}

/// MiB Fargate provisions for a pod whose containers request `requests_mib` of ephemeral
/// storage in total: the requests plus 10% plus 5 GiB, never less than the included 20 GiB.
pub fn provisioned_storage_mib(requests_mib: u64) -> u64 {
    (requests_mib + requests_mib.div_ceil(10) + SYSTEM_RESERVED_GIB * 1024)
        .max(INCLUDED_STORAGE_GIB * 1024)
}

/// [`provisioned_storage_mib`] in GiB.
pub fn provisioned_storage_gib(requests_mib: u64) -> f64 {
    provisioned_storage_mib(requests_mib) as f64 / 1024.0
}

/// Whole GB of ephemeral storage Fargate bills for such a pod: what it provisions beyond the
/// included 20 GiB, rounded up (0 for a pod within the default).
pub fn billed_storage_gb(requests_mib: u64) -> u64 {
    provisioned_storage_mib(requests_mib)
        .saturating_sub(INCLUDED_STORAGE_GIB * 1024)
        .div_ceil(1024)
}

/// Whether a pod may request `requests_mib` of ephemeral storage on Fargate (at most 175 GiB).
pub fn fits_fargate(requests_mib: u64) -> bool {
    requests_mib <= MAX_STORAGE_MIB
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_blog_example_is_billed_95_gb() {
        // Two containers of 50 GiB: 100 + 10 + 5 = 115 GiB provisioned, 95 GiB billed.
        assert!((provisioned_storage_gib(100 * 1024) - 115.0).abs() < 1e-9);
        assert_eq!(billed_storage_gb(100 * 1024), 95);
    }

    #[test]
    fn the_default_is_free_and_the_first_billed_gb_rounds_up() {
        assert_eq!(billed_storage_gb(0), 0);
        assert!((provisioned_storage_gib(0) - 20.0).abs() < 1e-9);
        // 13 GiB + 1.3 + 5 = 19.3 GiB: within the included 20.
        assert_eq!(billed_storage_gb(13 * 1024), 0);
        // 14 GiB + 1.4 + 5 = 20.4 GiB: 1 GB billed.
        assert_eq!(billed_storage_gb(14 * 1024), 1);
        // The most a pod may ask: 175 + 17.5 + 5 = 197.5 GiB → 178 GB billed.
        assert_eq!(billed_storage_gb(MAX_STORAGE_MIB), 178);
    }

    #[test]
    fn at_most_175_gib_per_pod() {
        assert!(fits_fargate(MAX_STORAGE_MIB));
        assert!(!fits_fargate(MAX_STORAGE_MIB + 1));
    }

    #[test]
    fn unknown_regions_are_priced_as_a_lower_bound() {
        let (usd, source) = storage_gb_hour_usd("us-east-1");
        assert_eq!(usd, 0.000111);
        assert!(!source.contains("lower bound"), "{source}");
        let (usd, source) = storage_gb_hour_usd("eu-west-1");
        assert_eq!(usd, 0.000111);
        assert!(source.contains("lower bound"), "{source}");
    }
}
