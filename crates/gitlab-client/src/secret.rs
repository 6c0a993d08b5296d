//! A GitLab token on `secrecy`: redacted in Debug and Display, never serialised, zeroized on drop.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

/// Token prefixes GitLab documents; the redacted form keeps the prefix so logs still say
/// which kind of token it was (`glrt-****`, `glpat-****`).
const KNOWN_PREFIXES: &[&str] = &[
    "glrt-", "glrtr-", "glpat-", "gldt-", "glcbt-", "glptt-", "glft-", "glimt-", "gloas-",
    "glsoat-",
];

/// What [`SecretToken::redacted`] appends to the prefix.
const REDACTION: &str = "****";

/// A GitLab token: a personal/project access token for the API, or a runner authentication
/// token (`glrt-…`) returned by `POST /user/runners`.
///
/// The value lives in a [`secrecy::SecretString`] (wiped from memory when dropped).
/// `Debug` and `Display` print only the token's kind (`glrt-****`); the value is reachable
/// only through [`SecretToken::expose`], which callers use at the one place that needs it
/// (an HTTP header, a Kubernetes Secret).
///
/// It deserialises (GitLab's `POST /user/runners` answer carries one) but deliberately does
/// not implement `Serialize`: a serialised form would be either the secret (a leak) or a
/// redaction that reads back as a wrong token. Deserialising a redacted form (`glrt-****`)
/// is an error for the same reason.
#[derive(Clone)]
pub struct SecretToken(SecretString);

impl SecretToken {
    /// Wraps a token value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }

    /// The secret value. Never log it.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// True when the token is empty or only whitespace.
    pub fn is_blank(&self) -> bool {
        self.expose().trim().is_empty()
    }

    /// The documented prefix of the token (`glpat-`), or `""` for unprefixed tokens.
    pub fn prefix(&self) -> &'static str {
        KNOWN_PREFIXES
            .iter()
            .find(|p| self.expose().starts_with(*p))
            .copied()
            .unwrap_or("")
    }

    /// The redacted form: the known prefix followed by `****`, or just `****`.
    pub fn redacted(&self) -> String {
        format!("{}{REDACTION}", self.prefix())
    }

    /// True when the value is itself a redaction (`glrt-****`), i.e. not a usable token.
    fn is_redaction(value: &str) -> bool {
        let rest = KNOWN_PREFIXES
            .iter()
            .find_map(|p| value.strip_prefix(p))
            .unwrap_or(value);
        rest == REDACTION
    }
}

impl PartialEq for SecretToken {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for SecretToken {}

impl fmt::Debug for SecretToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretToken({})", self.redacted())
    }
}

impl fmt::Display for SecretToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl<'de> serde::Deserialize<'de> for SecretToken {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        if Self::is_redaction(&value) {
            return Err(serde::de::Error::custom(
                "found a redacted token (`****`) where a token was expected; redacted output cannot be read back as a secret",
            ));
        }
        Ok(SecretToken::new(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `T: Serialize`, decided at compile time without requiring it (an inherent
    /// associated const wins over the blanket trait's when its bound holds).
    struct Probe<T: ?Sized>(std::marker::PhantomData<T>);
    trait NotSerialize {
        const SERIALIZE: bool = false;
    }
    impl<T: ?Sized> NotSerialize for Probe<T> {}
    impl<T: ?Sized + serde::Serialize> Probe<T> {
        const SERIALIZE: bool = true;
    }

    #[test]
    fn debug_and_display_are_redacted() {
        let t = SecretToken::new("glrt-t1_abcdefghijklmnop");
        assert_eq!(format!("{t}"), "glrt-****");
        assert_eq!(format!("{t:?}"), "SecretToken(glrt-****)");
        assert_eq!(SecretToken::new("opaque").redacted(), "****");
        assert_eq!(t.expose(), "glrt-t1_abcdefghijklmnop");
    }

    #[test]
    fn a_token_cannot_be_serialised_so_no_round_trip_corrupts_it() {
        const {
            assert!(
                !Probe::<SecretToken>::SERIALIZE,
                "SecretToken must not implement Serialize: its redacted form would read back as a different token"
            );
            assert!(Probe::<String>::SERIALIZE, "the probe detects Serialize");
        }
    }

    #[test]
    fn deserialises_gitlab_json_and_refuses_a_redaction() {
        let t: SecretToken = serde_json::from_str("\"glrt-t1_abcdefghijklmnop\"").unwrap();
        assert_eq!(t.expose(), "glrt-t1_abcdefghijklmnop");
        for redacted in ["\"glrt-****\"", "\"****\"", "\"glpat-****\""] {
            let err = serde_json::from_str::<SecretToken>(redacted)
                .unwrap_err()
                .to_string();
            assert!(err.contains("redacted token"), "{redacted}: {err}");
        }
    }
}
