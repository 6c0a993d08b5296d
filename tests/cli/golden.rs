//! The sandbox's machine-readable outputs, pinned: `--output json` of `full_flow` (both runner
//! profiles, `--dry-run`, and the image matrix with the cache workload), `doctor`, `provision --dry-run` and `fault_suite`, compared with
//! the files in `tests/golden/` (recorded before the library moved into `glrunner-flow` and
//! `glrunner-sandbox`). The sandbox is deterministic (one seed, a virtual clock); only the
//! wall-clock seconds differ between runs, so `wall_secs` is left out. JSON objects compare as
//! maps: key order is not part of the contract.
//!
//! A change that means to change an output rewrites the file with `GLRUNNER_UPDATE_GOLDEN=1`
//! and says why in its commit.

use std::path::PathBuf;

use serde_json::Value;

/// (golden file, example, arguments)
const CASES: &[(&str, &str, &[&str])] = &[
    ("full_flow", "full_flow", &["--output", "json"]),
    (
        "full_flow_reference",
        "full_flow",
        &["--output", "json", "--runner-profile", "reference"],
    ),
    (
        "full_flow_dry_run",
        "full_flow",
        &["--dry-run", "--output", "json"],
    ),
    ("doctor", "doctor", &["--output", "json"]),
    (
        "provision_dry_run",
        "provision",
        &["--dry-run", "--output", "json"],
    ),
    ("fault_suite", "fault_suite", &["--output", "json"]),
    // The image matrix's proof per image and the cache workload's hits and misses per shard.
    (
        "full_flow_images_cache",
        "full_flow",
        &[
            "--output",
            "json",
            "--jobs",
            "400",
            "--images",
            "--cache-workload",
        ],
    ),
];

fn without_wall_clock(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(k, _)| k != "wall_secs")
                .map(|(k, v)| (k, without_wall_clock(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_wall_clock).collect()),
        other => other,
    }
}

/// The first path at which two documents differ, for a readable failure.
fn first_difference(path: &str, want: &Value, got: &Value) -> Option<String> {
    match (want, got) {
        (Value::Object(a), Value::Object(b)) => {
            a.keys()
                .chain(b.keys())
                .find_map(|k| match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => first_difference(&format!("{path}.{k}"), x, y),
                    (x, y) => Some(format!("{path}.{k}: golden {x:?}, now {y:?}")),
                })
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (x, y))| first_difference(&format!("{path}[{i}]"), x, y)),
        _ if want == got => None,
        _ => Some(format!("{path}: golden {want}, now {got}")),
    }
}

#[test]
fn sandbox_json_outputs_match_the_golden_files() {
    // The checkout at run time: the build cache may be shared between checkouts.
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"))
        .join("tests/golden");
    let update = std::env::var_os("GLRUNNER_UPDATE_GOLDEN").is_some();
    let mut differences = Vec::new();
    for (golden, example, args) in CASES {
        let out = super::run(
            example,
            args,
            &[("GLRUNNER_BACKEND", "sandbox"), ("GITLAB_TOKEN", "")],
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "{example} {args:?}: {}",
            super::text(&out.stderr)
        );
        let got = without_wall_clock(
            serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|e| panic!("{example} {args:?} printed no JSON document: {e}")),
        );
        let path = dir.join(format!("{golden}.json"));
        if update {
            let text = serde_json::to_string_pretty(&got).unwrap() + "\n";
            std::fs::write(&path, text).unwrap();
            continue;
        }
        let want: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        if let Some(d) = first_difference(golden, &want, &got) {
            differences.push(d);
        }
    }
    assert!(
        differences.is_empty(),
        "outputs differ from tests/golden (GLRUNNER_UPDATE_GOLDEN=1 rewrites them):\n{}",
        differences.join("\n")
    );
}
