//! Which AWS Regions offer Amazon EKS, and which of those run EKS pods on Fargate: one table,
//! pure data, used by region validation and the preflight alike.

use serde::Serialize;

/// Where the table comes from, and when it was read.
pub const SOURCE: &str = "EKS Regions: botocore 1.43.11 data/endpoints.json (service `eks`, every partition), \
     agreeing with the AWS General Reference page \"Amazon Elastic Kubernetes Service endpoints and quotas\" \
     (read 2026-12-03; it lists ap-east-2 Taipei and ap-southeast-6 New Zealand). Fargate: EKS User Guide, \
     \"Simplify compute management with AWS Fargate\": \"AWS Fargate with Amazon EKS isn't available in \
     AWS GovCloud (US-East) and AWS GovCloud (US-West)\" (the only Regions it names; read 2026-12-03). Left out: the ISO and European Sovereign Cloud \
     (aws-eusc) partitions, which glrunner does not support";

/// The date [`SOURCE`] was read.
pub const READ_ON: &str = "2026-12-03";

/// One Region of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Region {
    /// Region code, e.g. `eu-west-1`.
    pub code: &'static str,
    /// The partition (`aws`, `aws-us-gov`, `aws-cn`).
    pub partition: &'static str,
    /// Whether EKS runs pods on Fargate there.
    pub eks_fargate: bool,
    /// The Region's short code in billing and Price List usage types (`USE1`, `EU`, `APN1`):
    /// see [`BILLING_CODES_SOURCE`].
    pub billing_code: &'static str,
}

/// Where [`Region::billing_code`] comes from.
pub const BILLING_CODES_SOURCE: &str = "AWS General Reference, \"AWS Region billing codes\" \
     (docs.aws.amazon.com/global-infrastructure/latest/regions/aws-region-billing-codes.html, read 2026-12-03): \
     \"AWS billing and usage reports often use abbreviations for Region codes\", e.g. USE1 us-east-1, \
     EU eu-west-1, EUC1 eu-central-1, APN1 ap-northeast-1; the Price List API's `usagetype` starts with the \
     same code (`USE1-Fargate-vCPU-Hours:perCPU`). us-east-1 is also billed without a prefix (\"USE1 (or no \
     prefix)\", Amazon S3 and AWS End User Messaging usage-report pages)";

const fn aws(code: &'static str, billing_code: &'static str) -> Region {
    Region {
        code,
        billing_code,
        partition: "aws",
        eks_fargate: true,
    }
}

/// Every Region with Amazon EKS, by partition then code.
pub const EKS_REGIONS: &[Region] = &[
    aws("af-south-1", "AFS1"),
    aws("ap-east-1", "APE1"),
    aws("ap-east-2", "APE2"),
    aws("ap-northeast-1", "APN1"),
    aws("ap-northeast-2", "APN2"),
    aws("ap-northeast-3", "APN3"),
    aws("ap-south-1", "APS3"),
    aws("ap-south-2", "APS5"),
    aws("ap-southeast-1", "APS1"),
    aws("ap-southeast-2", "APS2"),
    aws("ap-southeast-3", "APS4"),
    aws("ap-southeast-4", "APS6"),
    aws("ap-southeast-5", "APS7"),
    aws("ap-southeast-6", "APS8"),
    aws("ap-southeast-7", "APS9"),
    aws("ca-central-1", "CAN1"),
    aws("ca-west-1", "CAN2"),
    aws("eu-central-1", "EUC1"),
    aws("eu-central-2", "EUC2"),
    aws("eu-north-1", "EUN1"),
    aws("eu-south-1", "EUS1"),
    aws("eu-south-2", "EUS2"),
    aws("eu-west-1", "EU"),
    aws("eu-west-2", "EUW2"),
    aws("eu-west-3", "EUW3"),
    aws("il-central-1", "ILC1"),
    aws("me-central-1", "MEC1"),
    aws("me-south-1", "MES1"),
    aws("mx-central-1", "MXC1"),
    aws("sa-east-1", "SAE1"),
    aws("us-east-1", "USE1"),
    aws("us-east-2", "USE2"),
    aws("us-west-1", "USW1"),
    aws("us-west-2", "USW2"),
    // The China Regions have EKS; glrunner does not support their partition (see
    // crate::spec::validate_region), so whether they run EKS pods on Fargate is not asserted.
    Region {
        code: "cn-north-1",
        billing_code: "CNN1",
        partition: "aws-cn",
        eks_fargate: false,
    },
    Region {
        code: "cn-northwest-1",
        billing_code: "CNW1",
        partition: "aws-cn",
        eks_fargate: false,
    },
    Region {
        code: "us-gov-east-1",
        billing_code: "UGE1",
        partition: "aws-us-gov",
        eks_fargate: false,
    },
    Region {
        code: "us-gov-west-1",
        billing_code: "UGW1",
        partition: "aws-us-gov",
        eks_fargate: false,
    },
];

/// What the table says about a Region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Offer {
    /// EKS with Fargate.
    EksAndFargate,
    /// EKS, but no Fargate for EKS pods (GovCloud), or not known to have it (China).
    EksWithoutFargate,
    /// Not in the table: a Region newer than it, or a typo.
    Unknown,
}

/// The table's entry for `code`.
pub fn region(code: &str) -> Option<&'static Region> {
    EKS_REGIONS.iter().find(|r| r.code == code)
}

/// What `code` offers, per the table.
pub fn offer(code: &str) -> Offer {
    match region(code) {
        None => Offer::Unknown,
        Some(r) if r.eks_fargate => Offer::EksAndFargate,
        Some(_) => Offer::EksWithoutFargate,
    }
}

/// The usage types the Price List API may give the On-Demand product `name` (e.g.
/// `Fargate-vCPU-Hours:perCPU`) in Region `code`: `<billing code>-<name>`, and for us-east-1 also
/// `<name>` alone. Empty for a Region the table does not know.
pub fn usage_types(code: &str, name: &str) -> Vec<String> {
    let Some(region) = region(code) else {
        return Vec::new();
    };
    let mut out = vec![format!("{}-{name}", region.billing_code)];
    if region.code == "us-east-1" {
        out.push(name.to_owned());
    }
    out
}

/// The Regions where glrunner can build a stack: EKS with Fargate.
pub fn with_eks_fargate() -> impl Iterator<Item = &'static str> {
    EKS_REGIONS.iter().filter(|r| r.eks_fargate).map(|r| r.code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn govcloud_has_eks_but_no_fargate_and_new_regions_are_listed() {
        assert_eq!(offer("us-gov-west-1"), Offer::EksWithoutFargate);
        assert_eq!(offer("us-gov-east-1"), Offer::EksWithoutFargate);
        // The two Regions the old tables disagreed on: both have EKS (botocore's endpoints).
        assert_eq!(offer("ap-east-2"), Offer::EksAndFargate);
        assert_eq!(offer("ap-southeast-6"), Offer::EksAndFargate);
        assert_eq!(offer("us-east-9"), Offer::Unknown);
        assert!(with_eks_fargate().all(|c| region(c).unwrap().partition == "aws"));
    }

    #[test]
    fn billing_codes_follow_the_billing_codes_page() {
        // Rows of the AWS Region billing codes page, including the irregular ones.
        for (code, billing) in [
            ("us-east-1", "USE1"),
            ("us-west-2", "USW2"),
            ("eu-west-1", "EU"),
            ("eu-central-1", "EUC1"),
            ("ap-northeast-1", "APN1"),
            ("ap-south-1", "APS3"),
            ("ap-southeast-3", "APS4"),
            ("ap-southeast-6", "APS8"),
            ("ca-west-1", "CAN2"),
        ] {
            assert_eq!(region(code).unwrap().billing_code, billing, "{code}");
        }
        let mut seen: Vec<&str> = EKS_REGIONS.iter().map(|r| r.billing_code).collect();
        seen.sort();
        let n = seen.len();
        seen.dedup();
        assert_eq!(seen.len(), n, "billing codes are unique");
        assert_eq!(
            usage_types("us-east-1", "Fargate-GB-Hours"),
            ["USE1-Fargate-GB-Hours", "Fargate-GB-Hours"]
        );
        assert_eq!(
            usage_types("eu-west-1", "Fargate-GB-Hours"),
            ["EU-Fargate-GB-Hours"]
        );
        assert!(usage_types("us-east-9", "Fargate-GB-Hours").is_empty());
    }

    #[test]
    fn the_table_is_sorted_by_partition_then_code_without_duplicates() {
        let keys: Vec<(&str, &str)> = EKS_REGIONS.iter().map(|r| (r.partition, r.code)).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(keys, sorted);
        for r in EKS_REGIONS {
            assert_eq!(crate::spec::partition(r.code), r.partition, "{}", r.code);
        }
    }
}
