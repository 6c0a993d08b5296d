//! The crate's layering, checked: every module imports only from its own layer or below.
//!
//! The layers, bottom up (ARCHITECTURE.md, "Inside glrunner-flow modules import downward
//! only"): the vocabulary → the plan → ports, cluster checks, drain, reports → the preflight →
//! the phases → the checked run and the AWS wiring. A name the crate root re-exports (`crate::FlowConfig`,
//! `super::Error` from a top-level module) counts as an import of the module that defines it.

use std::collections::BTreeMap;

/// Each top-level module, its layer and its source (submodules' sources count as their parent's).
const MODULES: &[(&str, u8, &[&str])] = &[
    ("backend", 0, &[include_str!("backend.rs")]),
    ("profile", 0, &[include_str!("profile.rs")]),
    ("phase", 0, &[include_str!("phase.rs")]),
    ("error", 0, &[include_str!("error.rs")]),
    ("config", 0, &[include_str!("config.rs")]),
    ("cost", 0, &[include_str!("cost.rs")]),
    ("image_cache", 0, &[include_str!("image_cache.rs")]),
    ("ownership", 0, &[include_str!("ownership.rs")]),
    ("job_disk", 0, &[include_str!("job_disk.rs")]),
    ("plan", 1, &[include_str!("plan.rs")]),
    ("backends", 2, &[include_str!("backends.rs")]),
    ("cluster", 2, &[include_str!("cluster.rs")]),
    ("conformance", 2, &[include_str!("conformance.rs")]),
    ("drain", 2, &[include_str!("drain.rs")]),
    ("janitor", 2, &[include_str!("janitor.rs")]),
    ("report", 2, &[include_str!("report.rs")]),
    ("pending", 2, &[include_str!("pending.rs")]),
    (
        "lint",
        2,
        &[
            include_str!("lint/mod.rs"),
            include_str!("lint/fleet.rs"),
            include_str!("lint/load.rs"),
            include_str!("lint/resolve.rs"),
            include_str!("lint/rules.rs"),
            include_str!("lint/rules/identity.rs"),
            include_str!("lint/tests.rs"),
        ],
    ),
    (
        "artifacts",
        2,
        &[
            include_str!("artifacts/mod.rs"),
            include_str!("artifacts/html.rs"),
            include_str!("artifacts/junit.rs"),
            include_str!("artifacts/metrics.rs"),
        ],
    ),
    (
        "preflight",
        3,
        &[
            include_str!("preflight/mod.rs"),
            include_str!("preflight/footprint.rs"),
            include_str!("preflight/pod_identity.rs"),
            include_str!("preflight/tests.rs"),
        ],
    ),
    ("events", 4, &[include_str!("events.rs")]),
    (
        "phases",
        4,
        &[
            include_str!("phases/mod.rs"),
            include_str!("phases/plan.rs"),
            include_str!("phases/provision.rs"),
            include_str!("phases/project.rs"),
            include_str!("phases/runners.rs"),
            include_str!("phases/releases.rs"),
            include_str!("phases/load_test.rs"),
            include_str!("phases/reap.rs"),
            include_str!("phases/teardown.rs"),
        ],
    ),
    ("checked", 5, &[include_str!("checked.rs")]),
    ("aws", 5, &[include_str!("aws.rs")]),
];

const LIB: &str = include_str!("lib.rs");

/// The modules the crate root declares (`mod x;`, `pub mod x;`), test-only ones excepted.
fn declared_modules() -> Vec<String> {
    let mut out = Vec::new();
    let mut test_only = false;
    for line in LIB.lines().map(str::trim) {
        if line.starts_with("#[cfg(test)]") {
            test_only = true;
            continue;
        }
        let name = line
            .strip_prefix("pub mod ")
            .or_else(|| line.strip_prefix("mod "))
            .and_then(|rest| rest.strip_suffix(';'));
        if let Some(name) = name
            && !std::mem::take(&mut test_only)
        {
            out.push(name.to_owned());
        }
    }
    out
}

/// Name → defining module, from the crate root's `pub use module::{…}` lines.
fn reexports() -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let mut text = LIB;
    while let Some(at) = text.find("pub use ") {
        text = &text[at + "pub use ".len()..];
        let end = text.find(';').expect("a use ends with ;");
        let item = &text[..end];
        text = &text[end..];
        let Some((module, names)) = item.split_once("::") else {
            continue;
        };
        let names = names.trim().trim_start_matches('{').trim_end_matches('}');
        for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let name = name.rsplit("::").next().unwrap_or(name);
            map.insert(name.to_owned(), module.trim().to_owned());
        }
    }
    map
}

/// Every `crate::NAME` (and, in a top-level module, `super::NAME`) a source names, braces
/// expanded: `use crate::{a, b::c}` gives `a` and `b`.
fn named_roots(source: &str, top_level: bool) -> Vec<String> {
    let mut out = Vec::new();
    let prefixes: &[&str] = if top_level {
        &["crate::", "super::"]
    } else {
        &["crate::"]
    };
    for prefix in prefixes {
        let mut rest = source;
        while let Some(at) = rest.find(prefix) {
            // `glrunner_janitor::…` is not `crate::`: the prefix must start a path.
            let before = rest[..at].chars().next_back();
            rest = &rest[at + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            if let Some(group) = rest.strip_prefix('{') {
                let mut depth = 1;
                let mut item = String::new();
                for c in group.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        ',' if depth == 1 => {
                            out.push(std::mem::take(&mut item));
                            continue;
                        }
                        _ => {}
                    }
                    if depth == 1 {
                        item.push(c);
                    }
                }
                out.push(item);
            } else {
                out.push(
                    rest.chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect(),
                );
            }
        }
    }
    out.iter()
        .map(|item| {
            item.trim()
                .split("::")
                .next()
                .unwrap_or("")
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_owned()
        })
        .filter(|name| !name.is_empty() && name != "self" && name != "*")
        .collect()
}

#[test]
fn every_module_is_placed_in_a_layer() {
    let placed: Vec<&str> = MODULES.iter().map(|(m, _, _)| *m).collect();
    for module in declared_modules() {
        assert!(
            placed.contains(&module.as_str()),
            "module {module} has no layer: add it to MODULES in layers.rs"
        );
    }
}

#[test]
fn modules_import_only_from_their_layer_or_below() {
    let layer: BTreeMap<&str, u8> = MODULES.iter().map(|(m, l, _)| (*m, *l)).collect();
    let reexports = reexports();
    let mut upward = Vec::new();
    for (module, own, sources) in MODULES {
        for (i, source) in sources.iter().enumerate() {
            for name in named_roots(source, i == 0) {
                let target = if layer.contains_key(name.as_str()) {
                    name.clone()
                } else if let Some(m) = reexports.get(&name) {
                    m.clone()
                } else {
                    continue;
                };
                if layer[target.as_str()] > *own {
                    upward.push(format!(
                        "{module} (layer {own}) imports {name} from {target} (layer {})",
                        layer[target.as_str()]
                    ));
                }
            }
        }
    }
    upward.sort();
    upward.dedup();
    assert!(upward.is_empty(), "upward imports:\n{}", upward.join("\n"));
}

#[test]
fn the_check_sees_an_upward_import() {
    // A vocabulary module naming the checked run would be an upward import.
    let roots = named_roots(
        "use crate::{Backend, checked::run_checked};\nlet x = super::STOPPED;",
        true,
    );
    assert_eq!(roots, ["Backend", "checked", "STOPPED"]);
    assert_eq!(
        reexports().get("run_checked").map(String::as_str),
        Some("checked")
    );
    assert_eq!(
        reexports().get("FlowConfig").map(String::as_str),
        Some("config")
    );
}
