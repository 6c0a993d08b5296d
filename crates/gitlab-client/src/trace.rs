//! Job traces read back: the image a job ran (its `/etc/os-release`), its cache steps, and image references checked.
//!
//! A job log (`GET /projects/:id/jobs/:job_id/trace`, [`crate::GitLabApi::job_trace`]) is the
//! runner's raw output: ANSI colours, section markers `section_start:<unix>:<name>\r\x1b[0K`
//! (`traceSectionStart`, gitlab-runner helpers/build_section.go line 19) and, with
//! `FF_TIMESTAMPS`, a `2026-01-21T09:47:05.094219Z 00O ` prefix on every line. [`lines`]
//! strips all of that; the parsers below read the plain lines.
//!
//! - **The image a job ran**: the load test's script prints the container's
//!   `/etc/os-release` between [`OS_RELEASE_BEGIN`] and [`OS_RELEASE_END`] (the file's format:
//!   `KEY=VALUE` lines, values optionally quoted, freedesktop.org os-release(5)), and
//!   [`OsRelease::from_trace`] reads it back. [`ImageRef::expected_os`] says what a distro
//!   image's file says, so a job that ran another image than its own is caught.
//! - **The cache**: [`CacheTrace::from_trace`] reads the runner's own messages (sources next to
//!   each one) for a restore (hit, miss, local only) and a save (uploaded, local only, skipped
//!   by policy), timed by the `restore_cache` / `archive_cache` sections (`BuildStageRestoreCache`,
//!   `BuildStageArchiveOnSuccessCache`, gitlab-runner common/build.go lines 77 and 80).

use std::collections::BTreeMap;

use serde::Serialize;

/// The line the load-test script prints before `/etc/os-release`.
pub const OS_RELEASE_BEGIN: &str = "glrunner-os-release-begin";
/// The line the load-test script prints after `/etc/os-release`.
pub const OS_RELEASE_END: &str = "glrunner-os-release-end";

/// The script lines that print the container's `/etc/os-release` between the markers. `cat`
/// and `echo` exist in every distro image; `|| true` keeps an image without the file (busybox)
/// from failing the job, which then reads as "no os-release".
pub fn os_release_script() -> Vec<String> {
    vec![format!(
        "echo {OS_RELEASE_BEGIN}; cat /etc/os-release || true; echo {OS_RELEASE_END}"
    )]
}

/// One plain line of a trace: its text without colours or section markers, and its
/// `FF_TIMESTAMPS` time or the time of the section marker it carried, in unix seconds.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceLine {
    /// The text, ANSI escape sequences and markers removed, trailing blanks trimmed.
    pub text: String,
    /// `FF_TIMESTAMPS` prefix (sub-second), when the runner wrote one.
    pub timestamp: Option<f64>,
    /// A section marker on this line: (`start` or `end`, name, unix seconds).
    pub section: Option<(SectionEdge, String, f64)>,
}

/// Which end of a trace section a marker is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SectionEdge {
    /// `section_start:…`.
    Start,
    /// `section_end:…`.
    End,
}

/// Removes ANSI escape sequences (`ESC [ … letter`, and a lone `ESC x`).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        // `ESC [ params letter` (CSI); any other escape drops its one following character.
        if chars.next() == Some('[') {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        }
    }
    out
}

/// Parses the `FF_TIMESTAMPS` prefix `<RFC 3339 nano date> <stream id><O|E><' '|'+'>` (a
/// 2-digit hex stream id, stdout or stderr, `+` appending to the last line: gitlab-runner
/// common/buildlogger/internal/timestamper/timestamper.go lines 42-50), returning the unix time
/// and the rest of the line.
fn timestamp_prefix(line: &str) -> Option<(f64, &str)> {
    let (stamp, rest) = line.split_once(' ')?;
    if stamp.len() < 20 || !stamp.ends_with('Z') || stamp.as_bytes().get(10) != Some(&b'T') {
        return None;
    }
    let t: jiff::Timestamp = stamp.parse().ok()?;
    let stream = rest.get(..3)?;
    if !stream.as_bytes()[..2].iter().all(u8::is_ascii_hexdigit)
        || !matches!(stream.as_bytes()[2], b'O' | b'E')
    {
        return None;
    }
    let rest = &rest[3..];
    let rest = rest
        .strip_prefix('+')
        .or_else(|| rest.strip_prefix(' '))
        .unwrap_or(rest);
    Some((t.as_microsecond() as f64 / 1e6, rest))
}

/// A section marker `section_start:<unix>:<name>[options]` at the start of `s`.
fn section_marker(s: &str) -> Option<(SectionEdge, String, f64)> {
    let (edge, rest) = if let Some(r) = s.strip_prefix("section_start:") {
        (SectionEdge::Start, r)
    } else {
        (SectionEdge::End, s.strip_prefix("section_end:")?)
    };
    let (secs, name) = rest.split_once(':')?;
    let secs: u64 = secs.parse().ok()?;
    let name = name.split(['[', '\r', ' ']).next().unwrap_or(name).trim();
    (!name.is_empty()).then(|| (edge, name.to_owned(), secs as f64))
}

/// The plain lines of a trace. A runner writes a section marker and the next text on one line
/// with `\r\x1b[0K` between them; each part becomes a line of its own.
pub fn lines(trace: &str) -> Vec<TraceLine> {
    let mut out = Vec::new();
    for raw in trace.split('\n') {
        let (timestamp, raw) = match timestamp_prefix(raw) {
            Some((t, rest)) => (Some(t), rest),
            None => (None, raw),
        };
        for part in raw.split('\r') {
            let text = strip_ansi(part);
            let text = text.trim_end();
            if let Some(section) = section_marker(text.trim_start()) {
                out.push(TraceLine {
                    text: String::new(),
                    timestamp,
                    section: Some(section),
                });
                continue;
            }
            if text.trim().is_empty() {
                continue;
            }
            out.push(TraceLine {
                text: text.to_owned(),
                timestamp,
                section: None,
            });
        }
    }
    out
}

/// What a job's `/etc/os-release` said (os-release(5): `ID`, `VERSION_ID`,
/// `VERSION_CODENAME`, `PRETTY_NAME`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OsRelease {
    /// `ID`, e.g. `alpine`, `debian`, `ubuntu`.
    pub id: String,
    /// `VERSION_ID`, e.g. `3.20.3`, `12`, `24.04`.
    pub version_id: Option<String>,
    /// `VERSION_CODENAME`, e.g. `bookworm`, `noble`.
    pub version_codename: Option<String>,
    /// `PRETTY_NAME`, for people.
    pub pretty_name: Option<String>,
}

impl OsRelease {
    /// Parses os-release(5) text: `KEY=VALUE` lines, the value in double or single quotes or
    /// bare, `#` comments and blank lines ignored. `None` without an `ID`.
    pub fn parse(text: &str) -> Option<Self> {
        let mut fields = BTreeMap::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let value = value.trim();
            let value = ['"', '\'']
                .iter()
                .find_map(|q| value.strip_prefix(*q).and_then(|v| v.strip_suffix(*q)))
                .unwrap_or(value);
            fields.insert(key.trim().to_owned(), value.replace("\\\"", "\""));
        }
        Some(Self {
            id: fields.remove("ID").filter(|id| !id.is_empty())?,
            version_id: fields.remove("VERSION_ID"),
            version_codename: fields.remove("VERSION_CODENAME"),
            pretty_name: fields.remove("PRETTY_NAME"),
        })
    }

    /// The os-release a load-test job printed between [`OS_RELEASE_BEGIN`] and
    /// [`OS_RELEASE_END`] (the echoed `$ echo …` command lines do not count as markers).
    pub fn from_trace(trace: &str) -> Option<Self> {
        let lines = lines(trace);
        let begin = lines
            .iter()
            .position(|l| l.text.trim() == OS_RELEASE_BEGIN)?;
        let body: Vec<&str> = lines[begin + 1..]
            .iter()
            .take_while(|l| l.text.trim() != OS_RELEASE_END)
            .filter(|l| l.section.is_none())
            .map(|l| l.text.as_str())
            .collect();
        Self::parse(&body.join("\n"))
    }

    /// `ID VERSION_ID` for messages, e.g. `debian 12 (Debian GNU/Linux 12 (bookworm))`.
    pub fn describe(&self) -> String {
        let mut s = self.id.clone();
        if let Some(v) = &self.version_id {
            s.push(' ');
            s.push_str(v);
        }
        if let Some(p) = &self.pretty_name {
            s.push_str(&format!(" ({p})"));
        }
        s
    }
}

/// What a distro image's `/etc/os-release` says, derived from its reference.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OsExpectation {
    /// The `ID` it must have.
    pub id: String,
    /// `VERSION_ID` must equal this or start with it and a `.` (alpine `3.20` → `3.20.3`).
    pub version_prefix: Option<String>,
    /// `VERSION_CODENAME` it must have (debian `bookworm`, ubuntu `noble`).
    pub codename: Option<String>,
}

impl OsExpectation {
    /// Whether `os` is what this image ships.
    pub fn matches(&self, os: &OsRelease) -> bool {
        if os.id != self.id {
            return false;
        }
        if let Some(prefix) = &self.version_prefix {
            let ok = os.version_id.as_deref().is_some_and(|v| {
                v == prefix
                    || v.strip_prefix(prefix.as_str())
                        .is_some_and(|r| r.starts_with('.'))
            });
            if !ok {
                return false;
            }
        }
        if let Some(codename) = &self.codename
            && os.version_codename.as_deref() != Some(codename.as_str())
        {
            return false;
        }
        true
    }
}

/// A container image reference, checked against the grammar of distribution/reference
/// (reference.go: `[domain/]path[:tag][@digest]`; path components
/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`, tag `[\w][\w.-]{0,127}`, digest
/// `algorithm:hex`, a name of at most 255 characters).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ImageRef {
    /// The registry host (`public.ecr.aws`), when the reference names one.
    pub domain: Option<String>,
    /// The repository path (`docker/library/alpine`).
    pub path: String,
    /// The tag, when given.
    pub tag: Option<String>,
    /// The digest (`sha256:…`), when given.
    pub digest: Option<String>,
}

impl ImageRef {
    /// Parses and checks `reference`; the error says what is wrong.
    pub fn parse(reference: &str) -> std::result::Result<Self, String> {
        if reference.is_empty() {
            return Err("the image reference is empty".into());
        }
        if reference
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(format!("{reference:?} contains whitespace"));
        }
        let (rest, digest) = match reference.split_once('@') {
            Some((r, d)) => {
                let (algo, hex) = d
                    .split_once(':')
                    .ok_or_else(|| format!("{reference:?}: digest {d:?} is not ALGORITHM:HEX"))?;
                let algo_ok = !algo.is_empty()
                    && algo.chars().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || "+._-".contains(c)
                    });
                let hex_ok = hex.len() >= 32 && hex.chars().all(|c| c.is_ascii_hexdigit());
                let sha256_ok = algo != "sha256" || hex.len() == 64;
                if !algo_ok || !hex_ok || !sha256_ok {
                    return Err(format!(
                        "{reference:?}: digest {d:?} is not ALGORITHM:HEX (sha256 takes 64 hex digits)"
                    ));
                }
                (r, Some(d.to_owned()))
            }
            None => (reference, None),
        };
        // A `:` after the last `/` starts the tag; one before it is a registry port.
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        if let Some(tag) = tag {
            let mut chars = tag.chars();
            let first_ok = chars
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
            if !first_ok
                || tag.len() > 128
                || !chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
            {
                return Err(format!(
                    "{reference:?}: tag {tag:?} is not a valid tag (letters, digits, `_`, `.`, `-`, at most 128, not starting with `.` or `-`)"
                ));
            }
        }
        if name.is_empty() || name.len() > 255 {
            return Err(format!(
                "{reference:?}: the repository name must be 1 to 255 characters"
            ));
        }
        let mut parts: Vec<&str> = name.split('/').collect();
        let domain = match parts.first() {
            Some(first)
                if parts.len() > 1
                    && (first.contains('.') || first.contains(':') || *first == "localhost") =>
            {
                let d = parts.remove(0);
                let (host, port) = match d.rsplit_once(':') {
                    Some((h, p)) => (h, Some(p)),
                    None => (d, None),
                };
                let host_ok = !host.is_empty()
                    && host.split('.').all(|label| {
                        !label.is_empty()
                            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                            && !label.starts_with('-')
                            && !label.ends_with('-')
                    });
                let port_ok =
                    port.is_none_or(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
                if !host_ok || !port_ok {
                    return Err(format!(
                        "{reference:?}: registry {d:?} is not a host name with an optional port"
                    ));
                }
                Some(d.to_owned())
            }
            _ => None,
        };
        for component in &parts {
            if !path_component_ok(component) {
                return Err(format!(
                    "{reference:?}: {component:?} is not a valid repository path component (lowercase letters and digits, separated by `.`, `_`, `__` or dashes)"
                ));
            }
        }
        Ok(Self {
            domain,
            path: parts.join("/"),
            tag: tag.map(str::to_owned),
            digest,
        })
    }

    /// The repository's last path component (`alpine` of `public.ecr.aws/docker/library/alpine`).
    pub fn name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }

    /// What the image's `/etc/os-release` says, for the distro images whose tags name their
    /// release (Docker's official images, also mirrored on ECR Public under
    /// `docker/library/…`): `alpine:X.Y` (ID `alpine`, VERSION_ID `X.Y.z`), `debian:<codename>`
    /// or `debian:<N>` (`-slim` too), `ubuntu:<YY.MM>` or `ubuntu:<codename>`, `fedora:<N>`,
    /// `amazonlinux:<N>` (ID `amzn`), and `bash` (built on alpine). `None` for any other image:
    /// only its jobs' agreement can be checked then.
    pub fn expected_os(&self) -> Option<OsExpectation> {
        let tag = self.tag.as_deref().filter(|t| *t != "latest");
        let exp = |id: &str, version: Option<&str>, codename: Option<&str>| OsExpectation {
            id: id.to_owned(),
            version_prefix: version.map(str::to_owned),
            codename: codename.map(str::to_owned),
        };
        let numeric = |t: &str| t.chars().all(|c| c.is_ascii_digit() || c == '.');
        match self.name() {
            "alpine" => Some(exp("alpine", tag.filter(|t| numeric(t)), None)),
            "bash" => Some(exp("alpine", None, None)),
            "debian" => {
                let release = tag.map(|t| t.strip_suffix("-slim").unwrap_or(t));
                Some(match release {
                    Some(r) if numeric(r) => exp("debian", Some(r), None),
                    Some(r) if DEBIAN_CODENAMES.contains(&r) => exp("debian", None, Some(r)),
                    _ => exp("debian", None, None),
                })
            }
            "ubuntu" => Some(match tag {
                Some(t) if numeric(t) => exp("ubuntu", Some(t), None),
                Some(t) if UBUNTU_CODENAMES.contains(&t) => exp("ubuntu", None, Some(t)),
                _ => exp("ubuntu", None, None),
            }),
            "fedora" => Some(exp("fedora", tag.filter(|t| numeric(t)), None)),
            "amazonlinux" => Some(exp("amzn", tag.filter(|t| numeric(t)), None)),
            _ => None,
        }
    }
}

/// Debian codenames a `debian:` tag may carry (debian-archive's dists).
const DEBIAN_CODENAMES: &[&str] = &["buster", "bullseye", "bookworm", "trixie", "forky"];
/// Ubuntu codenames an `ubuntu:` tag may carry (Docker's official ubuntu image tags).
const UBUNTU_CODENAMES: &[&str] = &["focal", "jammy", "noble", "oracular", "plucky", "questing"];

fn path_component_ok(c: &str) -> bool {
    // [a-z0-9]+ ( ( [._] | __ | [-]+ ) [a-z0-9]+ )*
    let b = c.as_bytes();
    if b.is_empty() {
        return false;
    }
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    let mut i = 0;
    while i < b.len() {
        if !alnum(b[i]) {
            return false;
        }
        while i < b.len() && alnum(b[i]) {
            i += 1;
        }
        if i == b.len() {
            return true;
        }
        match b[i] {
            b'.' => i += 1,
            b'_' if b.get(i + 1) == Some(&b'_') => i += 2,
            b'_' => i += 1,
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == b.len() {
            return false;
        }
    }
    true
}

/// How a job's cache restore ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RestoreOutcome {
    /// Downloaded from the shared cache and extracted.
    Hit,
    /// Nothing to extract ("Failed to extract cache").
    Miss,
    /// No shared cache configured: the runner extracted a local copy ("No URL provided"); on
    /// Fargate a fresh pod has none, so this is a miss the shared cache would have served.
    LocalOnly,
}

/// How a job's cache save ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SaveOutcome {
    /// Uploaded to the shared cache ("Uploading cache.zip to …", then "Created cache").
    Uploaded,
    /// Archived, but no shared cache configured: kept on the pod only, lost with it.
    LocalOnly,
    /// Not uploaded: the job's `cache:policy` is `pull` ("Not uploading cache … due to policy").
    SkippedByPolicy,
    /// "Creating cache" without "Created cache": the save failed.
    Failed,
}

/// A job's cache steps, read from its trace.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CacheTrace {
    /// The key restored ("Checking cache for <key>...").
    pub restore_key: Option<String>,
    /// How the restore ended.
    pub restore: Option<RestoreOutcome>,
    /// Seconds the `restore_cache` section took.
    pub restore_secs: Option<f64>,
    /// The key saved ("Creating cache <key>...").
    pub save_key: Option<String>,
    /// How the save ended.
    pub save: Option<SaveOutcome>,
    /// Seconds the `archive_cache` section took.
    pub save_secs: Option<f64>,
}

impl CacheTrace {
    /// Reads the runner's cache messages:
    ///
    /// - `Checking cache for %s...` (gitlab-runner shells/abstract.go line 352),
    ///   `Successfully extracted cache` (line 373), `Failed to extract cache` (line 375; the
    ///   newer step runner's `Failed to extract cache %s: %v`,
    ///   functions/concrete/run/stages/cache_extract.go line 74);
    /// - `No URL provided, cache will not be downloaded from shared cache server. Instead a
    ///   local version of cache will be extracted.` (commands/helpers/cache_extractor.go line 642),
    ///   `Downloading cache from …` / `Downloading cache.zip from …` (line 584);
    /// - `Creating cache %s...` (shells/abstract.go line 1644), `Created cache` (line 1653),
    ///   `Uploading cache.zip to …` (commands/helpers/cache_archiver.go line 119),
    ///   `No URL provided, cache will not be uploaded to shared cache server. Cache will be
    ///   stored only locally.` (line 448), `Not uploading cache %s due to policy`;
    /// - the times from the `restore_cache` and `archive_cache` sections (sub-second with
    ///   `FF_TIMESTAMPS`, else the markers' whole seconds).
    pub fn from_trace(trace: &str) -> Self {
        let mut out = Self::default();
        let mut downloaded = false;
        let mut local_restore = false;
        let mut uploaded = false;
        let mut local_save = false;
        let mut created = false;
        let mut section_start: BTreeMap<String, f64> = BTreeMap::new();
        let mut section_secs: BTreeMap<String, f64> = BTreeMap::new();
        for line in lines(trace) {
            if let Some((edge, name, secs)) = &line.section {
                let at = line.timestamp.unwrap_or(*secs);
                match edge {
                    SectionEdge::Start => {
                        section_start.insert(name.clone(), at);
                    }
                    SectionEdge::End => {
                        if let Some(start) = section_start.remove(name) {
                            // Milliseconds: the timestamps' microseconds are below any
                            // cache transfer's noise (and unix seconds in an f64 are not exact).
                            let secs = ((at - start).max(0.0) * 1000.0).round() / 1000.0;
                            section_secs.insert(name.clone(), secs);
                        }
                    }
                }
                continue;
            }
            let text = line.text.trim();
            if let Some(key) = text
                .strip_prefix("Checking cache for ")
                .and_then(|k| k.strip_suffix("..."))
            {
                let key = key.strip_suffix(" (fallback)").unwrap_or(key);
                out.restore_key = Some(key.to_owned());
            } else if text.starts_with("Downloading cache from ")
                || text.starts_with("Downloading cache.zip from ")
            {
                downloaded = true;
            } else if text.starts_with("No URL provided, cache will not be downloaded") {
                local_restore = true;
            } else if text == "Successfully extracted cache" {
                out.restore = Some(if downloaded || !local_restore {
                    RestoreOutcome::Hit
                } else {
                    RestoreOutcome::LocalOnly
                });
            } else if text.starts_with("Failed to extract cache") {
                out.restore = Some(RestoreOutcome::Miss);
            } else if let Some(key) = text
                .strip_prefix("Creating cache ")
                .and_then(|k| k.strip_suffix("..."))
            {
                out.save_key = Some(key.to_owned());
            } else if text.starts_with("Uploading cache.zip to ")
                || text.starts_with("Uploading cache.tar.zst to ")
            {
                uploaded = true;
            } else if text.starts_with("No URL provided, cache will not be uploaded") {
                local_save = true;
            } else if text == "Created cache" {
                created = true;
            } else if let Some(key) = text
                .strip_prefix("Not uploading cache ")
                .and_then(|k| k.strip_suffix(" due to policy"))
            {
                out.save_key = Some(key.to_owned());
                out.save = Some(SaveOutcome::SkippedByPolicy);
            }
        }
        if out.restore_key.is_some() && out.restore.is_none() {
            out.restore = Some(RestoreOutcome::Miss);
        }
        if out.save_key.is_some() && out.save.is_none() {
            out.save = Some(match (created, uploaded, local_save) {
                (true, true, _) => SaveOutcome::Uploaded,
                (true, false, _) => SaveOutcome::LocalOnly,
                (false, _, _) => SaveOutcome::Failed,
            });
        }
        if out.restore_key.is_some() {
            out.restore_secs = section_secs.get("restore_cache").copied();
        }
        if out.save_key.is_some() {
            out.save_secs = section_secs
                .get("archive_cache")
                .or_else(|| section_secs.get("archive_cache_on_failure"))
                .copied();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_follow_the_distribution_grammar() {
        let r = ImageRef::parse("public.ecr.aws/docker/library/debian:bookworm-slim").unwrap();
        assert_eq!(r.domain.as_deref(), Some("public.ecr.aws"));
        assert_eq!(r.path, "docker/library/debian");
        assert_eq!(r.tag.as_deref(), Some("bookworm-slim"));
        let r = ImageRef::parse("localhost:5000/a/b__c:1").unwrap();
        assert_eq!(r.domain.as_deref(), Some("localhost:5000"));
        let d = format!("alpine@sha256:{}", "a".repeat(64));
        assert_eq!(ImageRef::parse(&d).unwrap().digest.unwrap().len(), 7 + 64);
        for bad in [
            "",
            "Alpine:3",
            "alpine:",
            "alpine:-x",
            "a//b",
            "a b",
            "alpine@sha256:abc",
            "reg.io:port/x",
            "x-:1",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn distro_tags_say_what_os_release_holds() {
        let e = ImageRef::parse("public.ecr.aws/docker/library/alpine:3.20")
            .unwrap()
            .expected_os()
            .unwrap();
        let os = |id: &str, v: &str, c: Option<&str>| OsRelease {
            id: id.into(),
            version_id: Some(v.into()),
            version_codename: c.map(str::to_owned),
            pretty_name: None,
        };
        assert!(e.matches(&os("alpine", "3.20.3", None)));
        assert!(!e.matches(&os("alpine", "3.2.0", None)));
        assert!(!e.matches(&os("alpine", "3.21.0", None)));
        let deb = ImageRef::parse("debian:bookworm-slim")
            .unwrap()
            .expected_os()
            .unwrap();
        assert!(deb.matches(&os("debian", "12", Some("bookworm"))));
        assert!(!deb.matches(&os("debian", "13", Some("trixie"))));
        let ubu = ImageRef::parse("ubuntu:24.04")
            .unwrap()
            .expected_os()
            .unwrap();
        assert!(ubu.matches(&os("ubuntu", "24.04", Some("noble"))));
        assert!(!ubu.matches(&os("debian", "12", Some("bookworm"))));
        assert!(
            ImageRef::parse("python:3.12")
                .unwrap()
                .expected_os()
                .is_none()
        );
    }
}
