//! Fargate prices (Linux/x86, on-demand): a table in the code with its source and date, or
//! prices read elsewhere (the AWS Price List API) and handed in.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::FargateSize;

/// Where the table's prices come from.
pub const TABLE_SOURCE: &str = "AWS Fargate pricing page (aws.amazon.com/fargate/pricing), Linux/x86 on-demand, as listed in 2025";

/// Regions whose list price the table holds: (region, USD per vCPU-hour, USD per GB-hour).
/// These US regions share one price; elsewhere Fargate costs more and the table says so.
const TABLE: [(&str, f64, f64); 3] = [
    ("us-east-1", 0.04048, 0.004445),
    ("us-east-2", 0.04048, 0.004445),
    ("us-west-2", 0.04048, 0.004445),
];

/// Fargate bills each pod for at least one minute.
pub const MINIMUM_BILLED: Duration = Duration::from_secs(60);

/// A price that is not a non-negative number.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {value} must be a non-negative number of USD")]
pub struct PriceError {
    /// Which price.
    pub field: &'static str,
    /// The value given.
    pub value: f64,
}

/// Fargate prices for one region (Linux/x86).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FargatePricing {
    /// The region these prices are for.
    pub region: String,
    /// USD per vCPU-hour.
    pub vcpu_hour_usd: f64,
    /// USD per GB-hour.
    pub gb_hour_usd: f64,
    /// Minimum billed duration per pod (serialised as seconds).
    #[serde(with = "secs")]
    pub minimum_billed: Duration,
    /// Where the prices come from (the table and its date, the Price List API, or the user).
    pub source: String,
}

mod secs {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        <u64 as serde::Deserialize>::deserialize(d).map(Duration::from_secs)
    }
}

impl Default for FargatePricing {
    fn default() -> Self {
        Self::us_east_1()
    }
}

impl FargatePricing {
    /// us-east-1: $0.04048 per vCPU-hour, $0.004445 per GB-hour, one-minute minimum.
    pub fn us_east_1() -> Self {
        Self::table("us-east-1").unwrap_or_else(|| unreachable!("us-east-1 is in the table"))
    }

    /// The table's prices for `region`; `None` when the table does not hold that region.
    pub fn table(region: &str) -> Option<Self> {
        TABLE
            .iter()
            .find(|(r, _, _)| *r == region)
            .map(|&(r, vcpu, gb)| Self {
                region: r.to_owned(),
                vcpu_hour_usd: vcpu,
                gb_hour_usd: gb,
                minimum_billed: MINIMUM_BILLED,
                source: format!("table: {TABLE_SOURCE}"),
            })
    }

    /// The table's prices for `region`, or us-east-1's (the cheapest) marked as a lower bound.
    pub fn table_or_lower_bound(region: &str) -> Self {
        Self::table(region).unwrap_or_else(|| {
            let mut p = Self::us_east_1();
            p.source = format!(
                "table: no entry for {region}; us-east-1 prices used as a lower bound ({TABLE_SOURCE})"
            );
            p.region = region.to_owned();
            p
        })
    }

    /// Prices from elsewhere (the user, or the Price List API), naming their `source`.
    pub fn new(
        region: impl Into<String>,
        vcpu_hour_usd: f64,
        gb_hour_usd: f64,
        source: impl Into<String>,
    ) -> Result<Self, PriceError> {
        for (field, value) in [
            ("vCPU-hour price", vcpu_hour_usd),
            ("GB-hour price", gb_hour_usd),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(PriceError { field, value });
            }
        }
        Ok(Self {
            region: region.into(),
            vcpu_hour_usd,
            gb_hour_usd,
            minimum_billed: MINIMUM_BILLED,
            source: source.into(),
        })
    }

    /// USD per hour of one pod of `size`.
    pub fn hourly(&self, size: FargateSize) -> f64 {
        size.vcpus() * self.vcpu_hour_usd + size.memory_gb() * self.gb_hour_usd
    }

    /// USD for one pod of `size` running `ran` (billed per second, at least [`Self::minimum_billed`]).
    pub fn cost(&self, size: FargateSize, ran: Duration) -> f64 {
        self.hourly(size) * ran.max(self.minimum_billed).as_secs_f64() / 3600.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALLEST: FargateSize = FargateSize {
        vcpu_millis: 250,
        memory_mib: 512,
    };

    #[test]
    fn smallest_pod_costs_about_a_cent_per_hour() {
        let p = FargatePricing::us_east_1();
        let hourly = p.hourly(SMALLEST);
        assert!((hourly - 0.0123425).abs() < 1e-9, "{hourly}");
        assert!(p.source.contains("2025"), "{}", p.source);
    }

    #[test]
    fn billing_has_a_one_minute_minimum() {
        let p = FargatePricing::us_east_1();
        let one_second = p.cost(SMALLEST, Duration::from_secs(1));
        assert!((one_second - p.hourly(SMALLEST) / 60.0).abs() < 1e-12);
        let two_hours = p.cost(SMALLEST, Duration::from_secs(7200));
        assert!((two_hours - 2.0 * p.hourly(SMALLEST)).abs() < 1e-12);
    }

    #[test]
    fn unknown_regions_say_the_price_is_a_lower_bound() {
        assert!(FargatePricing::table("ap-southeast-1").is_none());
        let p = FargatePricing::table_or_lower_bound("ap-southeast-1");
        assert_eq!(p.region, "ap-southeast-1");
        assert!(p.source.contains("lower bound"), "{}", p.source);
    }

    #[test]
    fn prices_must_be_non_negative_numbers() {
        assert!(FargatePricing::new("x", -1.0, 0.0, "user").is_err());
        assert!(FargatePricing::new("x", 0.1, f64::NAN, "user").is_err());
        let err = FargatePricing::new("x", 0.1, -2.0, "user").unwrap_err();
        assert!(err.to_string().contains("GB-hour"), "{err}");
    }

    #[test]
    fn serialises_with_seconds() {
        let json = serde_json::to_value(FargatePricing::us_east_1()).unwrap();
        assert_eq!(json["minimum_billed"], 60);
        let back: FargatePricing = serde_json::from_value(json).unwrap();
        assert_eq!(back, FargatePricing::us_east_1());
    }
}
