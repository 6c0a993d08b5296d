//! One duration grammar for every flag: Go-style durations (`90s`, `5m`, `1h30m`, `1.5h`,
//! `500ms`), the syntax GitLab Runner and Kubernetes use, parsed with jiff.
//!
//! A bare number is refused (is `90` seconds or minutes?) except `0`, as in Go; negative values
//! are refused. Whether zero is allowed is the flag's own rule ([`Zero`]), stated in its error.

use std::time::Duration;

use super::CliError;

/// Whether a flag accepts a zero duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zero {
    /// `0`/`0s` is a meaningful value of this flag.
    Allowed,
    /// Zero would make the flag meaningless (a timeout that never waits, an interval that spins).
    Refused,
}

/// What a duration flag accepts, for error messages.
pub const GRAMMAR_HINT: &str = "write a Go-style duration such as 90s, 5m, 1h30m or 500ms";

/// Parses `value` of `flag` with the one grammar; errors (exit 2) name the flag and the fix.
pub fn parse(flag: &str, value: &str, zero: Zero) -> Result<Duration, CliError> {
    let text = value.trim();
    let invalid = |why: String| CliError::invalid(format!("{flag}: {why}"));
    if text.is_empty() {
        return Err(invalid(format!("empty duration; {GRAMMAR_HINT}")));
    }
    if text.starts_with('-') {
        return Err(invalid(format!("{value:?} is negative; {GRAMMAR_HINT}")));
    }
    let parsed = if text == "0" {
        Duration::ZERO
    } else if text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(invalid(format!(
            "{value:?} has no unit; write {text}s for seconds or {text}m for minutes"
        )));
    } else {
        let signed = jiff::fmt::friendly::SpanParser::new()
            .parse_duration(text)
            .map_err(|e| invalid(format!("{value:?} is not a duration ({e}); {GRAMMAR_HINT}")))?;
        if signed.is_negative() {
            return Err(invalid(format!("{value:?} is negative; {GRAMMAR_HINT}")));
        }
        Duration::try_from(signed)
            .map_err(|e| invalid(format!("{value:?} is out of range ({e})")))?
    };
    if parsed.is_zero() && zero == Zero::Refused {
        return Err(invalid(format!(
            "{value:?} is zero, which this flag cannot use; {GRAMMAR_HINT}"
        )));
    }
    Ok(parsed)
}

/// A clap `value_parser` for a duration flag that refuses zero (the error names the value).
pub fn positive(value: &str) -> Result<Duration, String> {
    parse("duration", value, Zero::Refused).map_err(|e| {
        e.message
            .strip_prefix("duration: ")
            .unwrap_or(&e.message)
            .to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(value: &str) -> Duration {
        parse("--x", value, Zero::Allowed).unwrap_or_else(|e| panic!("{value}: {e}"))
    }

    #[test]
    fn go_durations_parse() {
        assert_eq!(ok("90s"), Duration::from_secs(90));
        assert_eq!(ok("5m"), Duration::from_secs(300));
        assert_eq!(ok("1h30m"), Duration::from_secs(5400));
        assert_eq!(ok("1h0m0s"), Duration::from_secs(3600));
        assert_eq!(ok("2h3m0.5s"), Duration::from_millis(7_380_500));
        assert_eq!(ok("1.5h"), Duration::from_secs(5400));
        assert_eq!(ok("500ms"), Duration::from_millis(500));
        assert_eq!(ok("0"), Duration::ZERO);
        assert_eq!(ok("0s"), Duration::ZERO);
    }

    #[test]
    fn bare_numbers_negatives_and_junk_are_refused_naming_the_flag() {
        for bad in ["90", "1.5", "-5m", "5m ago", "", "soon", "5 parsecs"] {
            let err = parse("--grace", bad, Zero::Allowed).unwrap_err();
            assert_eq!(err.code, super::super::EXIT_INVALID_INPUT, "{bad}");
            assert!(
                err.message.starts_with("--grace: "),
                "{bad}: {}",
                err.message
            );
        }
        let err = parse("--grace", "90", Zero::Allowed).unwrap_err();
        assert!(err.message.contains("90s"), "{}", err.message);
    }

    #[test]
    fn zero_follows_the_flag_rule() {
        assert!(parse("--timeout", "0s", Zero::Refused).is_err());
        assert!(parse("--timeout", "0", Zero::Refused).is_err());
        assert_eq!(
            parse("--grace", "0s", Zero::Allowed).unwrap(),
            Duration::ZERO
        );
        assert!(positive("0").is_err() && positive("1h").is_ok());
    }
}
