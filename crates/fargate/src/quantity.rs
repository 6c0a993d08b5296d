//! Exact Kubernetes quantities (`500m`, `1.5Gi`, `2.007`, `1e3`): integer arithmetic only, no f64.
//!
//! The grammar is Kubernetes' own (`k8s.io/apimachinery/pkg/api/resource`):
//!
//! ```text
//! quantity  ::= sign? number suffix
//! number    ::= digits | digits "." digits | digits "." | "." digits
//! suffix    ::= "" | binarySI | decimalSI | ("e" | "E") sign? digits
//! binarySI  ::= Ki | Mi | Gi | Ti | Pi | Ei
//! decimalSI ::= n | u | m | k | M | G | T | P | E
//! ```
//!
//! A value is kept as `mantissa × 10^exp10 × 2^exp2` with a `u128` mantissa, so `2.007` CPU is
//! exactly 2007 millicores and `1.5Gi` exactly 1536 MiB; anything that does not parse is an
//! error, never 0.

use std::fmt;
use std::str::FromStr;

/// Bytes in one MiB.
pub const MIB: u64 = 1 << 20;

/// Why a quantity was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a valid quantity: {reason}")]
pub struct QuantityError {
    /// The text that was given.
    pub input: String,
    /// What is wrong with it.
    pub reason: String,
}

impl QuantityError {
    fn new(input: &str, reason: impl Into<String>) -> Self {
        Self {
            input: input.to_owned(),
            reason: reason.into(),
        }
    }
}

/// A parsed Kubernetes quantity: `mantissa × 10^exp10 × 2^exp2`, with its sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    negative: bool,
    mantissa: u128,
    exp10: i32,
    exp2: u32,
}

/// Decimal digits a `u128` always holds.
const MAX_DIGITS: usize = 38;

impl Quantity {
    /// Parses `text` with Kubernetes' quantity grammar.
    pub fn parse(text: &str) -> Result<Self, QuantityError> {
        let bad = |reason: &str| QuantityError::new(text, reason);
        let (negative, rest) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            Some(_) => (false, text),
            None => return Err(bad("it is empty")),
        };
        let number_len = rest
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        let (number, suffix) = rest.split_at(number_len);
        let (int, frac) = number.split_once('.').unwrap_or((number, ""));
        if frac.contains('.') {
            return Err(bad("it has more than one decimal point"));
        }
        if int.is_empty() && frac.is_empty() {
            return Err(bad("it has no digits (e.g. 500m, 1.5Gi, 2)"));
        }
        let digits = format!("{int}{frac}");
        let significant = digits.trim_start_matches('0');
        let trimmed = significant.trim_end_matches('0');
        if trimmed.len() > MAX_DIGITS {
            return Err(bad("it has too many significant digits"));
        }
        let trailing_zeros = significant.len() - trimmed.len();
        let mantissa = if trimmed.is_empty() {
            0
        } else {
            trimmed
                .parse::<u128>()
                .map_err(|_| bad("its digits do not form a number"))?
        };
        let mut exp10 = i32::try_from(trailing_zeros).map_err(|_| bad("it is too long"))?
            - i32::try_from(frac.len()).map_err(|_| bad("it is too long"))?;
        let mut exp2 = 0;
        match suffix {
            "" => {}
            "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" => {
                let power = "KMGTPE".find(&suffix[..1]).unwrap_or(0) as u32 + 1;
                exp2 = 10 * power;
            }
            "n" => exp10 -= 9,
            "u" => exp10 -= 6,
            "m" => exp10 -= 3,
            "k" => exp10 += 3,
            "M" => exp10 += 6,
            "G" => exp10 += 9,
            "T" => exp10 += 12,
            "P" => exp10 += 15,
            "E" => exp10 += 18,
            s if s.starts_with(['e', 'E']) => {
                let exponent = &s[1..];
                let unsigned = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
                if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad("its exponent is not a whole number (e.g. 1e3)"));
                }
                let e: i32 = exponent
                    .parse()
                    .ok()
                    .filter(|e: &i32| e.abs() <= 1000)
                    .ok_or_else(|| bad("its exponent is out of range"))?;
                exp10 += e;
            }
            other => {
                return Err(bad(&format!(
                    "unknown suffix {other:?} (use one of n u m k M G T P E Ki Mi Gi Ti Pi Ei, or e<exponent>)"
                )));
            }
        }
        Ok(Self {
            negative: negative && mantissa != 0,
            mantissa,
            exp10,
            exp2,
        })
    }

    /// Whether the value is below zero.
    pub fn is_negative(&self) -> bool {
        self.negative
    }

    /// `|value| × 10^scale`, rounded up; `None` when it does not fit a `u128`.
    pub fn ceil_scaled(&self, scale: i32) -> Option<u128> {
        let n = self.mantissa.checked_mul(1u128.checked_shl(self.exp2)?)?;
        let e = self.exp10.checked_add(scale)?;
        if n == 0 {
            return Some(0);
        }
        if e >= 0 {
            n.checked_mul(10u128.checked_pow(e.unsigned_abs())?)
        } else {
            match 10u128.checked_pow(e.unsigned_abs()) {
                Some(divisor) => Some(n.div_ceil(divisor)),
                // 10^-e exceeds every u128: the value is a positive fraction of the unit.
                None => Some(1),
            }
        }
    }

    /// Whether `|value| × 10^scale` is a whole number.
    pub fn is_whole_at(&self, scale: i32) -> bool {
        let e = self.exp10.saturating_add(scale);
        if e >= 0 || self.mantissa == 0 {
            return true;
        }
        match 10u128.checked_pow(e.unsigned_abs()) {
            Some(divisor) => self
                .mantissa
                .checked_mul(1u128 << self.exp2.min(127))
                .is_some_and(|n| n % divisor == 0),
            None => false,
        }
    }
}

impl FromStr for Quantity {
    type Err = QuantityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.negative { "-" } else { "" };
        write!(f, "{sign}{}e{}", self.mantissa, self.exp10)?;
        if self.exp2 > 0 {
            write!(f, "*2^{}", self.exp2)?;
        }
        Ok(())
    }
}

fn non_negative(text: &str) -> Result<Quantity, QuantityError> {
    let q = Quantity::parse(text)?;
    if q.is_negative() {
        return Err(QuantityError::new(text, "a request cannot be negative"));
    }
    Ok(q)
}

/// A CPU request in millicores, exactly: `500m` → 500, `2.007` → 2007, `1` → 1000. Finer than
/// 1m is an error (Kubernetes refuses it for CPU), as is anything negative or unparseable.
pub fn cpu_millis(text: &str) -> Result<u64, QuantityError> {
    let q = non_negative(text)?;
    if !q.is_whole_at(3) {
        return Err(QuantityError::new(
            text,
            "CPU is counted in whole millicores (1m = 0.001); Kubernetes refuses finer precision",
        ));
    }
    q.ceil_scaled(3)
        .and_then(|v| u64::try_from(v).ok())
        .ok_or_else(|| QuantityError::new(text, "it is too large"))
}

/// A memory request in bytes, rounded up to a whole byte like Kubernetes does.
pub fn memory_bytes(text: &str) -> Result<u64, QuantityError> {
    non_negative(text)?
        .ceil_scaled(0)
        .and_then(|v| u64::try_from(v).ok())
        .ok_or_else(|| QuantityError::new(text, "it is too large"))
}

/// A memory request in MiB, rounded up: `1.5Gi` → 1536, `512M` → 489, `1` (byte) → 1.
pub fn memory_mib(text: &str) -> Result<u64, QuantityError> {
    Ok(memory_bytes(text)?.div_ceil(MIB))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_exact() {
        for (text, millis) in [
            ("500m", 500),
            ("1", 1000),
            ("0.25", 250),
            (".5", 500),
            ("1.", 1000),
            ("2.007", 2007),
            ("2.0070", 2007),
            ("+3", 3000),
            ("1e3", 1_000_000),
            ("1E-3", 1),
            ("0.1k", 100_000),
            ("1000000u", 1000),
            ("0", 0),
            ("0m", 0),
            ("16", 16_000),
        ] {
            assert_eq!(cpu_millis(text), Ok(millis), "{text}");
        }
    }

    #[test]
    fn cpu_refuses_what_kubernetes_refuses() {
        for text in [
            "", "m", ".", "1..5", "0.0005", "100u", "-1", "1x", "1 ", " 1", "1Gb", "abc", "1e",
            "1e+", "1e1.5", "0x10", "1,5",
        ] {
            assert!(cpu_millis(text).is_err(), "{text:?} should be refused");
        }
    }

    #[test]
    fn memory_is_exact_and_rounds_up_to_mib() {
        for (text, mib) in [
            ("1.5Gi", 1536),
            ("2Gi", 2048),
            ("512Mi", 512),
            ("768Mi", 768),
            ("1024Ki", 1),
            ("1025Ki", 2),
            ("1G", 954),
            ("512M", 489),
            ("1e9", 954),
            ("1", 1),
            ("0", 0),
            ("0.5Gi", 512),
            ("1Ti", 1 << 20),
            ("128974848", 123),
            ("129e6", 124),
        ] {
            assert_eq!(memory_mib(text), Ok(mib), "{text}");
        }
        assert_eq!(memory_bytes("1.5"), Ok(2));
        assert_eq!(memory_bytes("1500m"), Ok(2));
    }

    #[test]
    fn memory_refuses_garbage_instead_of_counting_it_as_zero() {
        for text in ["", "Mi", "1.5.Gi", "-1Gi", "1GiB", "1gi", "1e99999", "1Ei1"] {
            assert!(memory_mib(text).is_err(), "{text:?} should be refused");
        }
        // Too large for u64 bytes is an error, not a wrap-around.
        assert!(memory_bytes("20Ei").is_err());
        let err = memory_mib("1GiB").unwrap_err();
        assert!(err.to_string().contains("\"1GiB\""), "{err}");
    }

    proptest::proptest! {
        #[test]
        fn millicores_round_trip(m in 0u64..100_000_000) {
            proptest::prop_assert_eq!(cpu_millis(&format!("{m}m")), Ok(m));
            let decimal = format!("{}.{:03}", m / 1000, m % 1000);
            proptest::prop_assert_eq!(cpu_millis(&decimal), Ok(m));
        }

        #[test]
        fn binary_suffixes_scale_exactly(n in 0u64..1_000_000) {
            proptest::prop_assert_eq!(memory_bytes(&format!("{n}Ki")), Ok(n * 1024));
            proptest::prop_assert_eq!(memory_mib(&format!("{n}Mi")), Ok(n));
            proptest::prop_assert_eq!(memory_mib(&format!("{n}.5Gi")), Ok(n * 1024 + 512));
        }
    }
}
