//! The Kubernetes versions EKS offers, their support windows and their control-plane price:
//! a dated table, pure data, so validation refuses what EKS no longer creates and the cost
//! projection prices the version a plan will create.

use jiff::civil::{Date, date};
use serde::Serialize;

/// Where the table comes from, and when it was read.
pub const SOURCE: &str = "EKS User Guide, \"Understand the Kubernetes version lifecycle on EKS\", Amazon EKS Kubernetes \
     release calendar (awsdocs/amazon-eks-user-guide latest/ug/versioning/kubernetes-versions.adoc, rows 1.30-1.33; \
     the rows 1.34-1.36 from the published page as quoted by endoflife.date/amazon-eks and the 1.36 release notes, \
     each 14 months of standard and 12 of extended support after the EKS release, as the page defines them); \
     prices: Amazon EKS pricing page and the AWS Containers blog \"Amazon EKS extended support for Kubernetes \
     versions pricing\" ($0.10 per cluster-hour in standard support, $0.60 in total in extended support). \
     Read 2026-12-03";

/// The date [`SOURCE`] was read.
pub const READ_ON: Date = date(2026, 12, 3);

/// USD per cluster-hour while a version is in standard support.
pub const STANDARD_CLUSTER_HOUR_USD: f64 = 0.10;
/// USD per cluster-hour while a version is in extended support (the total, not the surcharge).
pub const EXTENDED_CLUSTER_HOUR_USD: f64 = 0.60;

/// One Kubernetes minor version on EKS. Dates are UTC days; "billing for extended support
/// starts at the beginning of the day that the version reaches end of standard support", and
/// "on the end of extended support date, you can no longer create new Amazon EKS clusters with
/// the unsupported version" (the calendar page).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct EksVersion {
    /// The minor version, e.g. `1.34`.
    pub version: &'static str,
    /// The day EKS released it.
    pub eks_release: Date,
    /// The first day of extended support.
    pub end_of_standard_support: Date,
    /// The first day EKS no longer creates clusters of it.
    pub end_of_extended_support: Date,
}

/// Where a version stands on a given day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Support {
    /// Not released on EKS yet.
    NotYetReleased,
    /// Standard support: [`STANDARD_CLUSTER_HOUR_USD`].
    Standard,
    /// Extended support: [`EXTENDED_CLUSTER_HOUR_USD`].
    Extended,
    /// Past extended support: EKS creates no new cluster of it.
    Ended,
}

/// The versions EKS offered or will offer within the table's window, newest first.
pub const EKS_VERSIONS: &[EksVersion] = &[
    EksVersion {
        version: "1.36",
        eks_release: date(2026, 6, 2),
        end_of_standard_support: date(2027, 8, 2),
        end_of_extended_support: date(2028, 8, 2),
    },
    EksVersion {
        version: "1.35",
        eks_release: date(2026, 1, 27),
        end_of_standard_support: date(2027, 3, 27),
        end_of_extended_support: date(2028, 3, 27),
    },
    EksVersion {
        version: "1.34",
        eks_release: date(2025, 10, 2),
        end_of_standard_support: date(2026, 12, 2),
        end_of_extended_support: date(2027, 12, 2),
    },
    EksVersion {
        version: "1.33",
        eks_release: date(2025, 5, 29),
        end_of_standard_support: date(2026, 7, 29),
        end_of_extended_support: date(2027, 7, 29),
    },
    EksVersion {
        version: "1.32",
        eks_release: date(2025, 1, 23),
        end_of_standard_support: date(2026, 3, 23),
        end_of_extended_support: date(2027, 3, 23),
    },
    EksVersion {
        version: "1.31",
        eks_release: date(2024, 9, 26),
        end_of_standard_support: date(2025, 11, 26),
        end_of_extended_support: date(2026, 11, 26),
    },
    EksVersion {
        version: "1.30",
        eks_release: date(2024, 5, 23),
        end_of_standard_support: date(2025, 7, 23),
        end_of_extended_support: date(2026, 7, 23),
    },
];

/// The table's entry for `version`.
pub fn eks_version(version: &str) -> Option<&'static EksVersion> {
    EKS_VERSIONS.iter().find(|v| v.version == version)
}

impl EksVersion {
    /// Where this version stands on `day`.
    pub fn support_on(&self, day: Date) -> Support {
        if day < self.eks_release {
            Support::NotYetReleased
        } else if day < self.end_of_standard_support {
            Support::Standard
        } else if day < self.end_of_extended_support {
            Support::Extended
        } else {
            Support::Ended
        }
    }

    /// Whether EKS creates a new cluster of this version on `day`.
    pub fn creatable_on(&self, day: Date) -> bool {
        matches!(self.support_on(day), Support::Standard | Support::Extended)
    }

    /// The control plane's USD per cluster-hour on `day`; `None` when no cluster of this
    /// version can run then.
    pub fn cluster_hour_usd_on(&self, day: Date) -> Option<f64> {
        match self.support_on(day) {
            Support::Standard => Some(STANDARD_CLUSTER_HOUR_USD),
            Support::Extended => Some(EXTENDED_CLUSTER_HOUR_USD),
            Support::NotYetReleased | Support::Ended => None,
        }
    }
}

/// The control plane's USD per cluster-hour of a cluster of `version` created on `day`, or
/// `None` when the table does not know the version or EKS would not create it then. This is
/// the list price in US Regions; the Price List API's `AmazonEKS-Hours:perCluster` is the
/// standard-support price of the region.
pub fn cluster_hour_usd(version: &str, day: Date) -> Option<f64> {
    eks_version(version)?.cluster_hour_usd_on(day)
}

/// Today's date in UTC, the calendar's time zone.
pub fn today() -> Date {
    jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_move_from_standard_to_extended_to_ended_on_the_calendar_days() {
        let v130 = eks_version("1.30").unwrap();
        assert_eq!(v130.support_on(date(2025, 7, 22)), Support::Standard);
        assert_eq!(v130.support_on(date(2025, 7, 23)), Support::Extended);
        assert_eq!(v130.support_on(date(2026, 7, 22)), Support::Extended);
        // "1.30 cannot be created after 2026-07-23."
        assert!(!v130.creatable_on(date(2026, 7, 23)));
        assert_eq!(v130.support_on(date(2026, 7, 23)), Support::Ended);
        assert_eq!(cluster_hour_usd("1.30", date(2026, 7, 23)), None);
    }

    #[test]
    fn extended_support_costs_six_times_standard() {
        // As read on 2026-12-03: 1.32-1.34 in extended support, 1.35 and 1.36 in standard.
        for v in ["1.32", "1.33", "1.34"] {
            assert_eq!(cluster_hour_usd(v, READ_ON), Some(0.60), "{v}");
        }
        for v in ["1.35", "1.36"] {
            assert_eq!(cluster_hour_usd(v, READ_ON), Some(0.10), "{v}");
        }
        assert_eq!(cluster_hour_usd("1.31", READ_ON), None, "ended 2026-11-26");
        assert_eq!(cluster_hour_usd("1.29", READ_ON), None, "not in the table");
    }

    #[test]
    fn each_row_is_fourteen_plus_twelve_months_newest_first() {
        for pair in EKS_VERSIONS.windows(2) {
            assert!(pair[0].eks_release > pair[1].eks_release);
        }
        for v in EKS_VERSIONS {
            assert_eq!(
                v.eks_release
                    .checked_add(jiff::Span::new().months(14))
                    .unwrap(),
                v.end_of_standard_support,
                "{}",
                v.version
            );
            assert_eq!(
                v.end_of_standard_support
                    .checked_add(jiff::Span::new().months(12))
                    .unwrap(),
                v.end_of_extended_support,
                "{}",
                v.version
            );
        }
    }
}
