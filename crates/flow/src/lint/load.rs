//! Reading a CI file and its local includes into one configuration, keeping each file's text so
//! findings can name a line.
//!
//! YAML comes from `serde_norway`, which resolves anchors and aliases and (through
//! `apply_merge`) `<<` merge keys but keeps no positions, so lines are found in the text: every
//! top-level key starts at column 0 in block YAML, and a finding's line is the first line of the
//! job's block (or a template's) holding the offending value.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_norway::{Mapping, Value};

use super::{LintError, UncheckedInclude};

/// GitLab's limit on nested includes is far lower; this only stops a runaway.
const MAX_INCLUDE_DEPTH: usize = 100;

/// One file's text and where its top-level keys are.
#[derive(Debug)]
pub(super) struct SourceFile {
    /// Relative to the repository root.
    pub path: PathBuf,
    pub lines: Vec<String>,
    pub keys: Vec<TopKey>,
}

/// A top-level key and the lines of its block (0-based, `end` exclusive).
#[derive(Debug)]
pub(super) struct TopKey {
    pub name: String,
    pub first: usize,
    pub end: usize,
}

/// The merged configuration and the files it came from.
#[derive(Debug)]
pub(super) struct Config {
    /// Every file's keys merged: includes first, the including file over them.
    pub merged: Mapping,
    /// The files, lowest priority first (an include before the file including it).
    pub files: Vec<SourceFile>,
    pub unchecked: Vec<UncheckedInclude>,
}

/// A line in a file: (file relative to the root, 1-based line).
pub(super) type Location = (PathBuf, usize);

impl Config {
    /// Where top-level key `key` is defined: the highest-priority file defining it.
    pub fn key_location(&self, key: &str) -> Option<Location> {
        self.files.iter().rev().find_map(|f| {
            f.keys
                .iter()
                .find(|k| k.name == key)
                .map(|k| (f.path.clone(), k.first + 1))
        })
    }

    /// The first line matching `pred` inside the blocks of `keys` (in that order; each key in
    /// the highest-priority file first).
    pub fn find_in(&self, keys: &[&str], pred: &dyn Fn(&str) -> bool) -> Option<Location> {
        keys.iter().find_map(|key| {
            self.files.iter().rev().find_map(|f| {
                f.keys.iter().filter(|k| k.name == *key).find_map(|k| {
                    (k.first..k.end)
                        .find(|&i| pred(&f.lines[i]))
                        .map(|i| (f.path.clone(), i + 1))
                })
            })
        })
    }

    /// The first line matching `pred` in any file (for values that came through an anchor
    /// defined outside the job's block).
    pub fn find_anywhere(&self, pred: &dyn Fn(&str) -> bool) -> Option<Location> {
        self.files.iter().rev().find_map(|f| {
            f.lines
                .iter()
                .position(|l| !l.trim_start().starts_with('#') && pred(l))
                .map(|i| (f.path.clone(), i + 1))
        })
    }
}

/// Loads `name` (with `text`) in the repository at `root`, following local includes.
pub(super) fn load(root: &Path, name: &Path, text: &str) -> Result<Config, LintError> {
    let mut loader = Loader {
        root,
        files: Vec::new(),
        unchecked: Vec::new(),
        seen: BTreeSet::new(),
    };
    loader.seen.insert(name.to_owned());
    let merged = loader.load_one(name, text, 0)?;
    Ok(Config {
        merged,
        files: loader.files,
        unchecked: loader.unchecked,
    })
}

struct Loader<'a> {
    root: &'a Path,
    files: Vec<SourceFile>,
    unchecked: Vec<UncheckedInclude>,
    seen: BTreeSet<PathBuf>,
}

/// One entry of an `include:`.
enum Include {
    Local(String),
    Other { kind: &'static str, target: String },
}

impl Loader<'_> {
    fn load_one(&mut self, path: &Path, text: &str, depth: usize) -> Result<Mapping, LintError> {
        let mut own = parse(path, text)?;
        let mut merged = Mapping::new();
        if let Some(include) = own.remove("include") {
            for item in includes(&include) {
                match item {
                    Include::Local(target) => {
                        if let Some(included) = self.local(path, &target, depth)? {
                            deep_merge(&mut merged, included);
                        }
                    }
                    Include::Other { kind, target } => {
                        let reason = match kind {
                            "remote" => "remote includes are not fetched",
                            "template" => "GitLab's templates are not fetched",
                            "project" => "other projects' files are not fetched",
                            "component" => "CI/CD components are not fetched",
                            _ => "not an include this lint understands",
                        };
                        self.unchecked(kind, target, path, reason);
                    }
                }
            }
        }
        deep_merge(&mut merged, own);
        self.files.push(SourceFile {
            path: path.to_owned(),
            keys: top_keys(text),
            lines: text.lines().map(str::to_owned).collect(),
        });
        Ok(merged)
    }

    /// Reads the local include `target` (relative to the repository root, `/` optional);
    /// `None` when it is recorded as unchecked instead.
    fn local(
        &mut self,
        from: &Path,
        target: &str,
        depth: usize,
    ) -> Result<Option<Mapping>, LintError> {
        let relative = PathBuf::from(target.trim_start_matches('/'));
        if target.contains('*') {
            self.unchecked(
                "local",
                target.to_owned(),
                from,
                "wildcard local includes are not expanded",
            );
            return Ok(None);
        }
        if target.contains('$') {
            self.unchecked(
                "local",
                target.to_owned(),
                from,
                "the path uses CI variables, which the lint cannot evaluate",
            );
            return Ok(None);
        }
        if depth >= MAX_INCLUDE_DEPTH || !self.seen.insert(relative.clone()) {
            self.unchecked(
                "local",
                target.to_owned(),
                from,
                "already included: read once",
            );
            return Ok(None);
        }
        let full = self.root.join(&relative);
        let text = match std::fs::read_to_string(&full) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.unchecked(
                    "local",
                    target.to_owned(),
                    from,
                    &format!("not found at {}", full.display()),
                );
                return Ok(None);
            }
            Err(source) => return Err(LintError::Read { path: full, source }),
        };
        self.load_one(&relative, &text, depth + 1).map(Some)
    }

    fn unchecked(&mut self, kind: &str, target: String, from: &Path, reason: &str) {
        tracing::debug!(kind, %target, reason, "include not checked");
        self.unchecked.push(UncheckedInclude {
            kind: kind.to_owned(),
            target,
            file: from.to_owned(),
            reason: reason.to_owned(),
        });
    }
}

/// The file's configuration mapping. A file may open with a `spec:` header document (CI/CD
/// components and `spec:inputs`), then `---` and the configuration.
fn parse(path: &Path, text: &str) -> Result<Mapping, LintError> {
    let bad = |message: String| LintError::Parse {
        path: path.to_owned(),
        message,
    };
    let mut docs = Vec::new();
    for doc in serde_norway::Deserializer::from_str(text) {
        docs.push(<Value as serde::Deserialize>::deserialize(doc).map_err(|e| bad(e.to_string()))?);
    }
    let has_header = docs.len() == 2
        && docs[0]
            .as_mapping()
            .is_some_and(|m| m.len() == 1 && m.contains_key("spec"));
    let mut value = match docs.len() {
        0 => Value::Null,
        1 => docs.remove(0),
        2 if has_header => docs.remove(1),
        n => {
            return Err(bad(format!(
                "{n} YAML documents (a CI file has one, optionally after a `spec:` header)"
            )));
        }
    };
    value.apply_merge().map_err(|e| bad(e.to_string()))?;
    match value {
        Value::Null => Ok(Mapping::new()),
        Value::Mapping(m) => Ok(m),
        other => Err(bad(format!(
            "the top level is {}, not a mapping of keywords and jobs",
            kind_of(&other)
        ))),
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// The entries of an `include:` value: a string, a mapping, or a list of either (GitLab CI/CD
/// YAML reference, `include`).
fn includes(value: &Value) -> Vec<Include> {
    match value {
        Value::String(s) => vec![include_string(s)],
        Value::Mapping(m) => vec![include_mapping(m)],
        Value::Sequence(items) => items.iter().flat_map(includes).collect(),
        other => vec![Include::Other {
            kind: "unknown",
            target: format!("{other:?}"),
        }],
    }
}

/// A string include is a local path, or a remote URL when it starts with http(s)://.
fn include_string(s: &str) -> Include {
    if s.starts_with("https://") || s.starts_with("http://") {
        Include::Other {
            kind: "remote",
            target: s.to_owned(),
        }
    } else {
        Include::Local(s.to_owned())
    }
}

fn include_mapping(m: &Mapping) -> Include {
    let text = |key: &str| m.get(key).and_then(Value::as_str).map(str::to_owned);
    if let Some(local) = text("local") {
        return Include::Local(local);
    }
    for kind in ["remote", "template", "component"] {
        if let Some(target) = text(kind) {
            return Include::Other { kind, target };
        }
    }
    if let Some(project) = text("project") {
        let files = match m.get("file") {
            Some(Value::String(f)) => f.clone(),
            Some(Value::Sequence(fs)) => fs
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", "),
            _ => String::new(),
        };
        return Include::Other {
            kind: "project",
            target: format!("{project}:{files}"),
        };
    }
    Include::Other {
        kind: "unknown",
        target: format!("{m:?}"),
    }
}

/// Merges `over` into `base`: mappings key by key (recursively), anything else replaced. GitLab
/// merges included files and `extends:` this way ("deep merge"; arrays are not merged).
pub(super) fn deep_merge(base: &mut Mapping, over: Mapping) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(Value::Mapping(b)), Value::Mapping(o)) => deep_merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// The top-level keys of block YAML and their line ranges.
fn top_keys(text: &str) -> Vec<TopKey> {
    let lines: Vec<&str> = text.lines().collect();
    let mut keys: Vec<TopKey> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let starts_block = !line.is_empty()
            && !line.starts_with([' ', '\t', '#', '-', '}', ']'])
            && !line.starts_with("...");
        if line.starts_with("---") || line.starts_with("...") {
            if let Some(last) = keys.last_mut() {
                last.end = last.end.min(i);
            }
            continue;
        }
        if !starts_block {
            continue;
        }
        let Some(name) = key_of(line) else { continue };
        if let Some(last) = keys.last_mut() {
            last.end = last.end.min(i);
        }
        keys.push(TopKey {
            name,
            first: i,
            end: lines.len(),
        });
    }
    keys
}

/// The key of a `key: value` or `key:` line (quoted keys unquoted).
fn key_of(line: &str) -> Option<String> {
    let line = line.trim_end();
    if let Some(quote) = line.chars().next().filter(|c| *c == '"' || *c == '\'') {
        let rest = &line[1..];
        let end = rest.find(quote)?;
        return Some(rest[..end].to_owned());
    }
    let without_comment = line.split(" #").next().unwrap_or(line).trim_end();
    if let Some(at) = without_comment.find(": ") {
        return Some(without_comment[..at].to_owned());
    }
    without_comment
        .strip_suffix(':')
        .map(|key| key.trim_end().to_owned())
}
