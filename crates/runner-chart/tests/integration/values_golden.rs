//! Golden tests of the values YAML (`GLRUNNER_BLESS=1` rewrites the files), plus structural checks
//! that what helm gets is what the chart reads.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use glrunner_runner_chart::values::{EnvVar, RUNNER_TAGS_ANNOTATION};
use glrunner_runner_chart::{RunnerSummary, RunnerValues};

fn golden(name: &str, actual: &str) {
    // The checkout's directory at run time: the build cache is shared between checkouts, so this
    // binary may have been built in another one.
    let path = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("tests/golden")
    .join(name);
    if std::env::var_os("GLRUNNER_BLESS").is_some() {
        std::fs::write(&path, actual).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with GLRUNNER_BLESS=1 to create it",
            path.display()
        )
    });
    assert_eq!(
        actual, expected,
        "{name} changed; if intended, rerun with GLRUNNER_BLESS=1 and review the diff"
    );
}

fn full() -> RunnerValues {
    let mut v = RunnerValues::new("https://gitlab.example.com/")
        .with_concurrent(200)
        .with_job_namespace("gitlab-jobs")
        .with_poll_timeout(Duration::from_secs(360))
        .with_build_resources("1", "2Gi")
        .with_image("public.ecr.aws/docker/library/alpine:3.22")
        .with_runner_tags(["glrunner-1"])
        .with_secret_name("gitlab-runner-1-token");
    v.service_account.annotations.insert(
        "eks.amazonaws.com/role-arn".into(),
        "arn:aws:iam::123456789012:role/runner".into(),
    );
    v.pod_labels
        .insert("glrunner.io/stack".into(), "demo".into());
    v.pod_annotations
        .insert("example.com/owner".into(), "platform team".into());
    v.env_vars.push(EnvVar {
        name: "FF_USE_DUMB_INIT_WITH_KUBERNETES_EXECUTOR".into(),
        value: "true".into(),
    });
    v.executor
        .pod_labels
        .insert("glrunner.io/stack".into(), "demo".into());
    v.executor.pod_annotations.insert(
        "glrunner.io/note".into(),
        "quote \" and backslash \\".into(),
    );
    v
}

#[test]
fn default_values_yaml() {
    golden(
        "values-default.yaml",
        &RunnerValues::new("https://gitlab.example.com/")
            .to_yaml()
            .unwrap(),
    );
}

#[test]
fn full_values_yaml() {
    golden("values-full.yaml", &full().to_yaml().unwrap());
}

#[test]
fn yaml_has_the_chart_structure_and_no_token_keys() {
    let v = full();
    let tree: serde_json::Value = serde_norway::from_str(&v.to_yaml().unwrap()).unwrap();
    assert_eq!(tree["gitlabUrl"], "https://gitlab.example.com/");
    assert_eq!(tree["concurrent"], 200);
    assert_eq!(tree["checkInterval"], 3);
    assert_eq!(tree["rbac"]["create"], true);
    assert_eq!(tree["rbac"]["clusterWideAccess"], false);
    let rules = tree["rbac"]["rules"].as_array().unwrap();
    assert!(!rules.is_empty());
    for rule in rules {
        assert!(
            !rule["resources"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r == "*"),
            "wildcard resource in {rule}"
        );
        assert!(
            !rule["verbs"].as_array().unwrap().iter().any(|r| r == "*"),
            "wildcard verb in {rule}"
        );
    }
    assert_eq!(tree["runners"]["secret"], "gitlab-runner-1-token");
    assert_eq!(
        tree["deploymentAnnotations"][RUNNER_TAGS_ANNOTATION],
        "glrunner-1"
    );
    assert_eq!(tree["resources"]["requests"], tree["resources"]["limits"]);
    assert_eq!(
        tree["serviceAccount"]["annotations"]["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::123456789012:role/runner"
    );
    for key in ["runnerToken", "runnerRegistrationToken"] {
        assert!(tree.get(key).is_none(), "{key}");
    }
    for key in ["tags", "runUntagged", "locked", "protected", "name"] {
        assert!(tree["runners"].get(key).is_none(), "runners.{key}");
    }
    let config = tree["runners"]["config"].as_str().unwrap();
    for line in [
        "namespace = \"gitlab-jobs\"",
        "poll_timeout = 360",
        "privileged = false",
        "cpu_request = \"1\"",
        "cpu_limit = \"1\"",
        "memory_request = \"2Gi\"",
        "memory_limit = \"2Gi\"",
        "helper_memory_request = \"256Mi\"",
        "helper_memory_limit = \"256Mi\"",
        "service_cpu_limit = \"250m\"",
        "request_concurrency = 20",
        "FF_USE_ADAPTIVE_REQUEST_CONCURRENCY = true",
    ] {
        assert!(
            config.lines().any(|l| l.trim() == line),
            "{line:?} not in\n{config}"
        );
    }
    // Awkward strings survive as TOML (the runner parses it, not a line splitter).
    let parsed: toml::Table = toml::from_str(config).unwrap();
    assert_eq!(
        parsed["runners"][0]["kubernetes"]["pod_annotations"]["glrunner.io/note"].as_str(),
        Some("quote \" and backslash \\")
    );
    assert_eq!(tree["runners"]["jobNamespace"], "gitlab-jobs");
    // What status reads back from Helm's stored values matches what we set.
    assert_eq!(
        RunnerSummary::from_chart_values(&tree).unwrap(),
        RunnerSummary::of(&v)
    );
}

#[test]
fn yaml_is_deterministic() {
    let a = full().to_yaml().unwrap();
    let b = full().to_yaml().unwrap();
    assert_eq!(a, b);
    let mut labels = BTreeMap::new();
    labels.insert("b".to_string(), "2".to_string());
    labels.insert("a".to_string(), "1".to_string());
    let mut v = RunnerValues::new("https://gitlab.example.com/");
    v.pod_labels = labels;
    let yaml = v.to_yaml().unwrap();
    assert!(
        yaml.find("a: '1'").unwrap() < yaml.find("b: '2'").unwrap(),
        "{yaml}"
    );
}
