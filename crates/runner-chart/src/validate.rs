//! Field validators shared by values, releases, secrets and fleet plans: names, URLs, quantities, versions.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Invalid, Result};

/// Longest Helm release name Helm accepts.
pub const MAX_RELEASE_NAME: usize = 53;
/// Longest Kubernetes namespace name.
pub const MAX_NAMESPACE: usize = 63;

fn is_dns_label(s: &str, max: usize) -> bool {
    let bytes = s.as_bytes();
    !s.is_empty()
        && s.len() <= max
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}

/// Checks a Helm release name: lowercase letters, digits and `-`, alphanumeric at both ends, at most 53 characters.
pub fn release_name(field: &str, name: &str) -> Result<(), Invalid> {
    if is_dns_label(name, MAX_RELEASE_NAME) {
        Ok(())
    } else {
        Err(Invalid::new(
            field,
            format!("{name:?} is not a valid Helm release name"),
            format!(
                "use at most {MAX_RELEASE_NAME} lowercase letters, digits and '-', starting and ending with a letter or digit, e.g. \"gitlab-runner\""
            ),
        ))
    }
}

/// Checks a Kubernetes namespace (DNS-1123 label, at most 63 characters).
pub fn namespace(field: &str, ns: &str) -> Result<(), Invalid> {
    if is_dns_label(ns, MAX_NAMESPACE) {
        Ok(())
    } else {
        Err(Invalid::new(
            field,
            format!("{ns:?} is not a valid Kubernetes namespace"),
            format!(
                "use at most {MAX_NAMESPACE} lowercase letters, digits and '-', starting and ending with a letter or digit, e.g. \"gitlab-runner\""
            ),
        ))
    }
}

/// Checks a Kubernetes object name such as a Secret's (DNS-1123 subdomain, at most 253 characters).
pub fn object_name(field: &str, name: &str) -> Result<(), Invalid> {
    let ok =
        !name.is_empty() && name.len() <= 253 && name.split('.').all(|part| is_dns_label(part, 63));
    if ok {
        Ok(())
    } else {
        Err(Invalid::new(
            field,
            format!("{name:?} is not a valid Kubernetes object name"),
            "use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit, e.g. \"gitlab-runner-token\"",
        ))
    }
}

/// Checks a GitLab runner tag: 1–64 characters of letters, digits, `.`, `_` and `-` (no commas or spaces).
pub fn runner_tag(field: &str, tag: &str) -> Result<(), Invalid> {
    let ok = !tag.is_empty()
        && tag.len() <= 64
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Invalid::new(
            field,
            format!("{tag:?} is not a usable runner tag"),
            "use 1 to 64 letters, digits, '.', '_' or '-', e.g. \"glrunner-1\"",
        ))
    }
}

/// Checks a Kubernetes label or annotation key (optional DNS prefix, `/`, name of at most 63 characters).
pub fn label_key(field: &str, key: &str) -> Result<(), Invalid> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.as_bytes()[name.len() - 1].is_ascii_alphanumeric();
    let prefix_ok = prefix.is_none_or(|p| object_name(field, p).is_ok());
    if name_ok && prefix_ok {
        Ok(())
    } else {
        Err(Invalid::new(
            field,
            format!("{key:?} is not a valid Kubernetes label/annotation key"),
            "use an optional DNS prefix and '/', then up to 63 letters, digits, '-', '_' or '.', e.g. \"example.com/team\"",
        ))
    }
}

/// Checks a label value (at most 63 characters of letters, digits, `-`, `_`, `.`; may be empty).
pub fn label_value(field: &str, value: &str) -> Result<(), Invalid> {
    let ok = value.is_empty()
        || (value.len() <= 63
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && value.as_bytes()[0].is_ascii_alphanumeric()
            && value.as_bytes()[value.len() - 1].is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(Invalid::new(
            field,
            format!("{value:?} is not a valid Kubernetes label value"),
            "use at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
        ))
    }
}

/// Checks the GitLab URL: absolute `https://` URL, or `http://` to a loopback host, or any `http://`
/// when `allow_insecure` is set.
pub fn gitlab_url(field: &str, raw: &str, allow_insecure: bool) -> Result<url::Url, Invalid> {
    let parsed = url::Url::parse(raw).map_err(|e| {
        Invalid::new(
            field,
            format!("{raw:?} is not an absolute URL ({e})"),
            "give the scheme and host, e.g. https://gitlab.example.com/",
        )
    })?;
    let host = parsed.host();
    match (parsed.scheme(), host) {
        (_, None) => Err(Invalid::new(
            field,
            format!("{raw:?} has no host (is the scheme missing?)"),
            "give the scheme and host, e.g. https://gitlab.example.com/",
        )),
        ("https", Some(_)) => Ok(parsed),
        ("http", Some(host)) => {
            let loopback = match host {
                url::Host::Domain(d) => d == "localhost" || d.ends_with(".localhost"),
                url::Host::Ipv4(ip) => ip.is_loopback(),
                url::Host::Ipv6(ip) => ip.is_loopback(),
            };
            if loopback || allow_insecure {
                Ok(parsed)
            } else {
                Err(Invalid::new(
                    field,
                    format!(
                        "{raw:?} uses plain http to a non-loopback host; the runner token would cross the network unencrypted"
                    ),
                    "use https://, or pass --allow-insecure-url if you really mean it",
                ))
            }
        }
        (scheme, Some(_)) => Err(Invalid::new(
            field,
            format!("{raw:?} has scheme {scheme:?}, not http or https (is the scheme missing?)"),
            "give the scheme and host, e.g. https://gitlab.example.com/",
        )),
    }
}

/// Parses a CPU quantity (`"500m"`, `"1"`, `"0.25"`, `"2.007"`) into millicores, exactly
/// (Kubernetes' grammar through [`glrunner_fargate::quantity`]); at least 1m, at most 16 cores.
pub fn cpu_millis(field: &str, q: &str) -> Result<u32, Invalid> {
    let fix = "use millicores like \"500m\" or cores like \"0.5\", \"1\", \"2\" (at least 1m, at most 16 cores on Fargate)";
    let millis = glrunner_fargate::quantity::cpu_millis(q).map_err(|e| {
        Invalid::new(
            field,
            format!("{q:?} is not a CPU quantity: {}", e.reason),
            fix,
        )
    })?;
    if millis == 0 || millis > 16_000 {
        return Err(Invalid::new(
            field,
            format!("{q:?} is outside the CPU a Fargate pod can request"),
            fix,
        ));
    }
    Ok(millis as u32)
}

/// Parses a memory quantity (`"512Mi"`, `"1.5Gi"`, `"1G"`, `"1500M"`) into MiB, rounding up
/// (Kubernetes' grammar through [`glrunner_fargate::quantity`]); at least 1Mi, at most 120Gi.
pub fn memory_mib(field: &str, q: &str) -> Result<u64, Invalid> {
    let fix = "use a number with a unit, e.g. \"512Mi\", \"1.5Gi\" or \"2G\" (at least 1Mi, at most 120Gi on Fargate)";
    let bytes = glrunner_fargate::quantity::memory_bytes(q).map_err(|e| {
        Invalid::new(
            field,
            format!("{q:?} is not a memory quantity: {}", e.reason),
            fix,
        )
    })?;
    let mib = bytes.div_ceil(glrunner_fargate::quantity::MIB);
    if mib == 0 || mib > 120 * 1024 {
        return Err(Invalid::new(
            field,
            format!("{q:?} is outside the memory a Fargate pod can request"),
            fix,
        ));
    }
    Ok(mib)
}

/// An exact chart version, `MAJOR.MINOR.PATCH` with optional `-prerelease` and `+build`, e.g.
/// `0.86.0`: parsed and ordered by the `semver` crate (so `0.9.0 < 0.86.0`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ChartVersion {
    text: String,
    version: semver::Version,
}

/// The chart version this crate's values model was checked against (chart 0.86.0 = GitLab Runner 18.9.0).
pub const DEFAULT_CHART_VERSION: &str = "0.86.0";

/// The GitLab Runner version [`DEFAULT_CHART_VERSION`] deploys (the chart's `appVersion` in its
/// Chart.yaml, as `helm list` reports it), which picks the runner's helper image tag.
pub const DEFAULT_RUNNER_VERSION: &str = "18.9.0";

impl ChartVersion {
    /// Parses an exact semantic version; ranges, `v` prefixes and `latest` are rejected so installs are repeatable.
    pub fn parse(field: &str, raw: &str) -> Result<Self, Invalid> {
        semver::Version::parse(raw)
            .map(|version| Self {
                text: raw.to_string(),
                version,
            })
            .map_err(|e| {
                Invalid::new(
                    field,
                    format!("{raw:?} is not an exact chart version ({e})"),
                    format!(
                        "use MAJOR.MINOR.PATCH without a 'v' or a range, e.g. {DEFAULT_CHART_VERSION}"
                    ),
                )
            })
    }

    /// The version text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The parsed version.
    pub fn version(&self) -> &semver::Version {
        &self.version
    }
}

impl PartialEq for ChartVersion {
    fn eq(&self, other: &Self) -> bool {
        self.version == other.version
    }
}

impl Eq for ChartVersion {}

impl std::hash::Hash for ChartVersion {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.version.hash(state);
    }
}

impl PartialOrd for ChartVersion {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ChartVersion {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.version.cmp(&other.version)
    }
}

impl Default for ChartVersion {
    fn default() -> Self {
        Self {
            text: DEFAULT_CHART_VERSION.to_string(),
            version: semver::Version::new(0, 86, 0),
        }
    }
}

impl fmt::Display for ChartVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for ChartVersion {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse("chart_version", s).map_err(|i| Error::InvalidInput { issues: vec![i] })
    }
}

impl TryFrom<String> for ChartVersion {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<ChartVersion> for String {
    fn from(v: ChartVersion) -> Self {
        v.text
    }
}

/// Rejects text that Helm's `tpl` would evaluate (the chart renders `runners.config` as a template).
pub fn no_template(field: &str, value: &str) -> Result<(), Invalid> {
    if value.contains("{{") || value.contains("}}") {
        Err(Invalid::new(
            field,
            "contains '{{' or '}}', which the chart would evaluate as a Helm template",
            "remove the braces",
        ))
    } else {
        Ok(())
    }
}

/// Rejects anything that looks like a runner token: tokens go into the Secret, never into values or argv.
pub fn no_token(field: &str, value: &str) -> Result<(), Invalid> {
    if crate::secret::looks_like_token(value) {
        Err(Invalid::new(
            field,
            "contains what looks like a runner token (glrt-...); tokens must never be in Helm values",
            "remove it: the token is stored in the Kubernetes Secret named by runners.secret",
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(release_name("release", "gitlab-runner-1").is_ok());
        assert!(release_name("release", "Runner").is_err());
        assert!(release_name("release", "-a").is_err());
        assert!(release_name("release", &"a".repeat(54)).is_err());
        assert!(namespace("namespace", "ci_jobs").is_err());
        assert!(namespace("namespace", "ci-jobs").is_ok());
        assert!(object_name("secret", "gitlab-runner.token").is_ok());
        assert!(runner_tag("tag", "glrunner-1").is_ok());
        assert!(runner_tag("tag", "a,b").is_err());
        assert!(label_key("k", "example.com/team").is_ok());
        assert!(label_key("k", "bad key").is_err());
        assert!(label_value("v", "").is_ok());
        assert!(label_value("v", "x y").is_err());
    }

    #[test]
    fn urls() {
        assert!(gitlab_url("gitlab_url", "https://gitlab.example.com/", false).is_ok());
        let e = gitlab_url("gitlab_url", "gitlab.example.com", false).unwrap_err();
        assert!(e.problem.contains("not an absolute URL"), "{e}");
        let e = gitlab_url("gitlab_url", "localhost:8080", false).unwrap_err();
        assert!(e.problem.contains("scheme"), "{e}");
        assert!(gitlab_url("gitlab_url", "http://gitlab.example.com", false).is_err());
        assert!(gitlab_url("gitlab_url", "http://gitlab.example.com", true).is_ok());
        assert!(gitlab_url("gitlab_url", "http://127.0.0.1:8080", false).is_ok());
        assert!(gitlab_url("gitlab_url", "http://[::1]:8080", false).is_ok());
        assert!(gitlab_url("gitlab_url", "http://localhost", false).is_ok());
        assert!(gitlab_url("gitlab_url", "ftp://x", false).is_err());
    }

    #[test]
    fn quantities() {
        assert_eq!(cpu_millis("cpu", "500m").unwrap(), 500);
        assert_eq!(cpu_millis("cpu", "1").unwrap(), 1000);
        assert_eq!(cpu_millis("cpu", "0.25").unwrap(), 250);
        assert_eq!(cpu_millis("cpu", ".5").unwrap(), 500);
        assert_eq!(cpu_millis("cpu", "2.007").unwrap(), 2007);
        for bad in ["", "m", "0", "abc", "1.2345", "-1", "17", "1.5.0"] {
            assert!(cpu_millis("cpu", bad).is_err(), "{bad}");
        }
        assert_eq!(memory_mib("memory", "512Mi").unwrap(), 512);
        assert_eq!(memory_mib("memory", "2Gi").unwrap(), 2048);
        assert_eq!(memory_mib("memory", "1G").unwrap(), 954);
        // Kubernetes accepts decimals with binary suffixes (issue 17 item 12).
        assert_eq!(memory_mib("memory", "1.5Gi").unwrap(), 1536);
        assert_eq!(memory_mib("memory", "2.5Gi").unwrap(), 2560);
        for bad in ["", "Gi", "0Mi", "1Pi", "200Gi", "-1Gi", "1GiB", "0"] {
            assert!(memory_mib("memory", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn chart_versions() {
        for ok in ["0.86.0", "1.2.3-rc.1", "0.92.2+build.5"] {
            assert!(ChartVersion::parse("v", ok).is_ok(), "{ok}");
        }
        for bad in [
            "v0.86.0", "0.86", "latest", "~0.86", "0.86.x", "01.2.3", "1.2.3-", "",
        ] {
            assert!(ChartVersion::parse("v", bad).is_err(), "{bad}");
        }
        assert_eq!(ChartVersion::default().as_str(), DEFAULT_CHART_VERSION);
        assert_eq!(
            ChartVersion::default(),
            ChartVersion::parse("v", DEFAULT_CHART_VERSION).unwrap()
        );
    }

    #[test]
    fn chart_versions_order_as_semver_not_as_text() {
        let v = |s: &str| ChartVersion::parse("v", s).unwrap();
        assert!(v("0.9.0") < v("0.86.0"));
        assert!(v("0.86.0-rc.1") < v("0.86.0"));
        assert!(v("0.92.2") > v("0.86.0"));
        for bad in ["1.2.3-01", "1.2.3+", "1.2.3-a..b"] {
            assert!(ChartVersion::parse("v", bad).is_err(), "{bad}");
        }
    }
}
