//! From the merged configuration to the jobs GitLab would run, each with everything it inherits:
//! `extends:` chains, `!reference` tags, `default:` (and the deprecated top-level globals) and
//! the global `variables:`, as the GitLab CI/CD YAML reference describes them.

use serde_norway::{Mapping, Value};

use super::load::{Config, deep_merge};

/// Top-level keys that are keywords, not jobs (GitLab CI/CD YAML reference, "Global keywords";
/// `types` is the removed alias of `stages`).
const GLOBAL_KEYWORDS: [&str; 11] = [
    "stages",
    "types",
    "variables",
    "workflow",
    "include",
    "default",
    "image",
    "services",
    "before_script",
    "after_script",
    "cache",
];

/// The deprecated top-level keywords that act as `default:` ones.
const GLOBAL_DEFAULTS: [&str; 5] = [
    "image",
    "services",
    "before_script",
    "after_script",
    "cache",
];

/// GitLab resolves `extends:` up to eleven levels deep (CI/CD YAML reference, `extends`).
const MAX_EXTENDS_DEPTH: usize = 11;

/// `!reference` tags nest up to ten levels (CI/CD YAML reference, `!reference` tags).
const MAX_REFERENCE_DEPTH: usize = 10;

/// A job with everything it inherits.
#[derive(Debug)]
pub(super) struct Job {
    pub name: String,
    pub body: Mapping,
    /// Where its settings may be written, most specific first: the job, its `extends:`
    /// ancestors, `default`, then the global keywords.
    pub search_keys: Vec<String>,
    /// Its variables (global ones first, the job's over them), as written.
    pub variables: Vec<(String, String)>,
}

impl Job {
    /// A string setting, e.g. `image` (`image: x` or `image: {name: x}`).
    pub fn image(&self) -> Option<String> {
        image_name(self.body.get("image")?)
    }

    /// The service images.
    pub fn services(&self) -> Vec<String> {
        match self.body.get("services") {
            Some(Value::Sequence(items)) => items.iter().filter_map(image_name).collect(),
            _ => Vec::new(),
        }
    }

    /// The job's tags as written.
    pub fn tags(&self) -> Vec<String> {
        match self.body.get("tags") {
            Some(Value::Sequence(items)) => items.iter().filter_map(scalar).collect(),
            Some(Value::String(one)) => vec![one.clone()],
            _ => Vec::new(),
        }
    }

    /// Every script line: `before_script`, `script`, `after_script`, multi-line entries split.
    pub fn script_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for key in ["before_script", "script", "after_script"] {
            if let Some(value) = self.body.get(key) {
                collect_lines(value, &mut out);
            }
        }
        out
    }

    /// The value of variable `name`, if set.
    pub fn variable(&self, name: &str) -> Option<&str> {
        self.variables
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The search keys as `&str`s.
    pub fn keys(&self) -> Vec<&str> {
        self.search_keys.iter().map(String::as_str).collect()
    }
}

fn image_name(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Mapping(m) => m.get("name").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Script entries are strings or (nested) lists of them; GitLab flattens nested lists.
fn collect_lines(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.extend(s.lines().map(str::to_owned)),
        Value::Sequence(items) => items.iter().for_each(|v| collect_lines(v, out)),
        other => out.extend(scalar(other)),
    }
}

/// The jobs of `config` in file order (hidden jobs, whose names start with `.`, are templates).
pub(super) fn jobs(config: &Config) -> Vec<Job> {
    let merged = &config.merged;
    let mut out = Vec::new();
    for (key, value) in merged {
        let Some(name) = key.as_str() else { continue };
        if name.starts_with('.') || GLOBAL_KEYWORDS.contains(&name) || !value.is_mapping() {
            continue;
        }
        let mut ancestors = Vec::new();
        let mut body = extended(merged, name, 0, &mut ancestors);
        resolve_references(&mut body, merged, 0);
        let mut search_keys = vec![name.to_owned()];
        search_keys.extend(ancestors);
        apply_defaults(&mut body, merged, &mut search_keys);
        let variables = variables(&body, merged);
        out.push(Job {
            name: name.to_owned(),
            body,
            search_keys,
            variables,
        });
    }
    out
}

/// The job `name` with its `extends:` parents merged under it (deep merge, parents in order);
/// the parents' names are appended to `ancestors`.
fn extended(merged: &Mapping, name: &str, depth: usize, ancestors: &mut Vec<String>) -> Mapping {
    let Some(Value::Mapping(own)) = merged.get(name) else {
        return Mapping::new();
    };
    let mut own = own.clone();
    let parents: Vec<String> = match own.remove("extends") {
        Some(Value::String(p)) => vec![p],
        Some(Value::Sequence(ps)) => ps.iter().filter_map(scalar).collect(),
        _ => Vec::new(),
    };
    let mut base = Mapping::new();
    for parent in parents {
        if depth >= MAX_EXTENDS_DEPTH || parent == name || ancestors.contains(&parent) {
            tracing::debug!(job = name, %parent, "extends not followed (loop or too deep)");
            continue;
        }
        ancestors.push(parent.clone());
        let resolved = extended(merged, &parent, depth + 1, ancestors);
        deep_merge(&mut base, resolved);
    }
    deep_merge(&mut base, own);
    base
}

/// Replaces `!reference [job, key, ...]` with the referenced value; in lists (scripts) a
/// referenced list is spliced in.
fn resolve_references(body: &mut Mapping, merged: &Mapping, depth: usize) {
    for (_, value) in body.iter_mut() {
        resolve_value(value, merged, depth);
    }
}

fn resolve_value(value: &mut Value, merged: &Mapping, depth: usize) {
    if depth > MAX_REFERENCE_DEPTH {
        return;
    }
    match value {
        Value::Tagged(tagged) if tagged.tag == "reference" => {
            let mut target = lookup(merged, &tagged.value).unwrap_or(Value::Null);
            resolve_value(&mut target, merged, depth + 1);
            *value = target;
        }
        Value::Sequence(items) => {
            let mut out = Vec::with_capacity(items.len());
            for mut item in std::mem::take(items) {
                let is_reference = matches!(&item, Value::Tagged(t) if t.tag == "reference");
                resolve_value(&mut item, merged, depth + 1);
                match item {
                    Value::Sequence(spliced) if is_reference => out.extend(spliced),
                    other => out.push(other),
                }
            }
            *items = out;
        }
        Value::Mapping(m) => resolve_references(m, merged, depth + 1),
        _ => {}
    }
}

fn lookup(merged: &Mapping, path: &Value) -> Option<Value> {
    let Value::Sequence(path) = path else {
        return None;
    };
    let mut current = merged.get(path.first()?.as_str()?)?;
    for step in &path[1..] {
        current = current.as_mapping()?.get(step.as_str()?)?;
    }
    Some(current.clone())
}

/// Whether the job's `inherit:<what>` lets it take `key` (`true`/`false`, or a list of keys).
fn inherits(body: &Mapping, what: &str, key: &str) -> bool {
    match body.get("inherit").and_then(|i| i.get(what)) {
        Some(Value::Bool(b)) => *b,
        Some(Value::Sequence(keys)) => keys.iter().any(|k| k.as_str() == Some(key)),
        _ => true,
    }
}

/// Fills the keys the job does not set from `default:`, then from the deprecated globals.
fn apply_defaults(body: &mut Mapping, merged: &Mapping, search_keys: &mut Vec<String>) {
    let mut used_default = false;
    if let Some(Value::Mapping(default)) = merged.get("default") {
        for (key, value) in default {
            let Some(k) = key.as_str() else { continue };
            if !body.contains_key(k) && inherits(body, "default", k) {
                body.insert(key.clone(), value.clone());
                used_default = true;
            }
        }
    }
    if used_default {
        search_keys.push("default".to_owned());
    }
    for key in GLOBAL_DEFAULTS {
        if let Some(value) = merged.get(key)
            && !body.contains_key(key)
            && inherits(body, "default", key)
        {
            body.insert(Value::from(key), value.clone());
            search_keys.push(key.to_owned());
        }
    }
}

/// Global variables (unless `inherit:variables` excludes them), then the job's over them.
fn variables(body: &Mapping, merged: &Mapping) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut add = |vars: &Value, filter: &dyn Fn(&str) -> bool| {
        if let Value::Mapping(vars) = vars {
            for (k, v) in vars {
                let Some(k) = k.as_str() else { continue };
                // A variable is a value, or `{value: ..., description: ...}`.
                let value = match v {
                    Value::Mapping(m) => m.get("value").and_then(scalar),
                    other => scalar(other),
                };
                if let Some(value) = value
                    && filter(k)
                {
                    out.push((k.to_owned(), value));
                }
            }
        }
    };
    if let Some(global) = merged.get("variables") {
        add(global, &|k| inherits(body, "variables", k));
    }
    if let Some(own) = body.get("variables") {
        add(own, &|_| true);
    }
    out
}
