//! A token type whose Debug, Display and Serialize never show the secret.

use std::fmt;

/// Token prefixes GitLab documents; the redacted form keeps the prefix so logs still say
/// which kind of token it was (`glrt-****`, `glpat-****`).
const KNOWN_PREFIXES: &[&str] = &[
    "glrt-", "glrtr-", "glpat-", "gldt-", "glcbt-", "glptt-", "glft-", "glimt-", "gloas-",
    "glsoat-",
];

/// A GitLab token: a personal/project access token for the API, or a runner authentication
/// token (`glrt-…`) returned by `POST /user/runners`.
///
/// `Debug`, `Display` and `Serialize` print only the token's kind (`glrt-****`); the value is
/// reachable only through [`SecretToken::expose`], which callers use at the one place that
/// needs it (an HTTP header, a Kubernetes Secret).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SecretToken(String);

impl SecretToken {
    /// Wraps a token value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when the token is empty or only whitespace.
    pub fn is_blank(&self) -> bool {
        self.0.trim().is_empty()
    }

    /// The redacted form: the known prefix followed by `****`, or just `****`.
    pub fn redacted(&self) -> String {
        let prefix = KNOWN_PREFIXES
            .iter()
            .find(|p| self.0.starts_with(*p))
            .copied()
            .unwrap_or("");
        format!("{prefix}****")
    }
}

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

impl serde::Serialize for SecretToken {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

impl<'de> serde::Deserialize<'de> for SecretToken {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(SecretToken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_display_and_json_are_redacted() {
        let t = SecretToken::new("glrt-t1_abcdefghijklmnop");
        assert_eq!(format!("{t}"), "glrt-****");
        assert_eq!(format!("{t:?}"), "SecretToken(glrt-****)");
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"glrt-****\"");
        assert_eq!(SecretToken::new("opaque").redacted(), "****");
        assert_eq!(t.expose(), "glrt-t1_abcdefghijklmnop");
    }
}
