//! No silent sandbox: every example refuses a real-target flag on the sandbox backend (exit 2,
//! naming the flag and `--backend aws`, nothing run), and ignores real-target environment
//! variables on the sandbox with one line saying which.

use std::process::{Command, Output};

use super::{example, text};

/// Variables a real backend reads; removed from the inherited environment so each case sets its own.
const REAL_ENV: &[&str] = &[
    "GITLAB_TOKEN",
    "GITLAB_URL",
    "CI_SERVER_URL",
    "KUBECONFIG",
    "GLRUNNER_HELM",
    "GLRUNNER_RUNNER_TOKEN",
    "AWS_PROFILE",
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "GLRUNNER_BACKEND",
    "AWS_REGION",
];

fn sandbox(name: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(example(name));
    cmd.args(args).env("AWS_EC2_METADATA_DISABLED", "true");
    for k in REAL_ENV {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run example {name}: {e}"))
}

/// Exit 2, the flag and the fix named, and nothing done (no report on stdout).
fn assert_refused(name: &str, args: &[&str], flags: &[&str]) {
    let out = sandbox(name, args, &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{name} {args:?}: {stderr}");
    for flag in flags {
        assert!(
            stderr.contains(flag),
            "{name} {args:?}: should name {flag}: {stderr}"
        );
    }
    assert!(
        stderr.contains("--backend aws"),
        "{name} {args:?}: should say the fix: {stderr}"
    );
    assert!(
        text(&out.stdout).trim().is_empty(),
        "{name} {args:?}: nothing may run: {}",
        text(&out.stdout)
    );
}

#[test]
fn reap_refuses_a_kubeconfig_context_or_in_cluster_on_the_sandbox() {
    // The issue's own example: it used to print a table of "deleted" pods and exit 0.
    assert_refused(
        "reap",
        &[
            "--kubeconfig",
            "prod.yaml",
            "--namespace",
            "gitlab-runner",
            "--once",
        ],
        &["--kubeconfig"],
    );
    assert_refused("reap", &["--context", "prod", "--watch"], &["--context"]);
    assert_refused("reap", &["--in-cluster"], &["--in-cluster"]);
    assert_refused(
        "reap",
        &["--gitlab-url", "https://gitlab.example.com"],
        &["--gitlab-url"],
    );
    // `rbac` only prints manifests: nothing to refuse.
    let rbac = sandbox("reap", &["rbac", "--namespace", "ci"], &[]);
    assert_eq!(rbac.status.code(), Some(0), "{}", text(&rbac.stderr));
}

#[test]
fn loadtest_refuses_a_gitlab_url_or_project_on_the_sandbox() {
    assert_refused(
        "loadtest",
        &[
            "--gitlab-url",
            "https://gitlab.example.com",
            "--project",
            "g/p",
        ],
        &["--gitlab-url", "--project"],
    );
    assert_refused(
        "loadtest",
        &["--project", "my-group/loadtest", "--jobs", "10"],
        &["--project"],
    );
    // `ci-yaml` only prints the file.
    let yaml = sandbox(
        "loadtest",
        &["ci-yaml", "--jobs", "10", "--project", "g/p"],
        &[],
    );
    assert_eq!(yaml.status.code(), Some(0), "{}", text(&yaml.stderr));
}

#[test]
fn runner_refuses_kubeconfig_context_helm_and_gitlab_url_on_the_sandbox() {
    let base = ["install", "--release", "r1", "--tag", "t1"];
    for (extra, flag) in [
        (["--kubeconfig", "kc.yaml"], "--kubeconfig"),
        (["--context", "prod"], "--context"),
        (["--helm", "/usr/local/bin/helm"], "--helm"),
        (
            ["--gitlab-url", "https://gitlab.example.com"],
            "--gitlab-url",
        ),
    ] {
        let args: Vec<&str> = base.iter().copied().chain(extra).collect();
        assert_refused("runner", &args, &[flag]);
    }
    assert_refused(
        "runner",
        &["status", "--kubeconfig", "kc.yaml"],
        &["--kubeconfig"],
    );
    // `values` renders YAML for a URL; it reaches nothing.
    let values = sandbox(
        "runner",
        &["values", "--gitlab-url", "https://gitlab.example.com"],
        &[],
    );
    assert_eq!(values.status.code(), Some(0), "{}", text(&values.stderr));
}

#[test]
fn full_flow_refuses_gitlab_url_project_and_helm_on_the_sandbox() {
    assert_refused(
        "full_flow",
        &[
            "--gitlab-url",
            "https://gitlab.example.com",
            "--project",
            "g/p",
        ],
        &["--gitlab-url", "--project"],
    );
    assert_refused("full_flow", &["--helm", "/usr/local/bin/helm"], &["--helm"]);
}

#[test]
fn the_sandbox_ignores_real_target_environment_variables_with_one_line() {
    let env = [
        ("GITLAB_TOKEN", "glpat-do-not-print-me"),
        ("CI_SERVER_URL", "https://gitlab.example.com"),
        ("KUBECONFIG", "/nonexistent/kubeconfig"),
    ];
    // GitLab CI sets CI_SERVER_URL in every job: the README's first command still runs there.
    for (name, args) in [
        ("provision", &["--dry-run"][..]),
        ("teardown", &["--dry-run"][..]),
        ("full_flow", &["--dry-run"][..]),
        ("loadtest", &["--jobs", "20"][..]),
        ("reap", &["--once"][..]),
        ("runner", &["list"][..]),
    ] {
        let out = sandbox(name, args, &env);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{name}: {stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("ignoring")).collect();
        assert_eq!(lines.len(), 1, "{name}: one line: {stderr}");
        for var in ["GITLAB_TOKEN", "CI_SERVER_URL", "KUBECONFIG"] {
            assert!(lines[0].contains(var), "{name}: names {var}: {}", lines[0]);
        }
        let all = format!("{}{stderr}", text(&out.stdout));
        assert!(
            !all.contains("glpat-do-not-print-me"),
            "{name}: the token leaked"
        );
    }
    // Nothing set, nothing said; JSON output keeps stderr JSON lines.
    let quiet = sandbox("provision", &["--dry-run"], &[]);
    assert!(
        !text(&quiet.stderr).contains("ignoring"),
        "{}",
        text(&quiet.stderr)
    );
    let json = sandbox("provision", &["--dry-run", "--output", "json"], &env);
    for line in text(&json.stderr).lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(v["event"], "sandbox-ignored-env", "{line}");
    }
}

#[test]
fn the_aws_backend_is_not_refused_by_the_rule() {
    let out = sandbox(
        "reap",
        &[
            "--backend",
            "aws",
            "--kubeconfig",
            "/nonexistent/kubeconfig",
            "--once",
        ],
        &[],
    );
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("sandbox"), "{stderr}");
    assert!(stderr.contains("kubeconfig"), "{stderr}");
}

/// Every example, with a real-target flag it takes (and must refuse on the sandbox), or `None`
/// when it takes none (its `--help` must then list none). A new example fails
/// [`every_example_follows_the_real_target_rule`] until it is added here.
/// Arguments naming a real target, and the flag the refusal must name.
type TargetCase = (&'static [&'static str], &'static str);

const EXAMPLES: &[(&str, Option<TargetCase>)] = &[
    (
        "bench_report",
        Some((
            &["--gitlab-url", "https://gitlab.example.com"],
            "--gitlab-url",
        )),
    ),
    (
        "doctor",
        Some((
            &[
                "--gitlab-url",
                "https://gitlab.example.com",
                "--project",
                "sandbox/x",
            ],
            "--gitlab-url",
        )),
    ),
    ("fault_suite", None),
    ("full_flow", Some((&["--cluster", "prod"], "--cluster"))),
    ("loadtest", Some((&["--project", "g/p"], "--project"))),
    ("provision", None),
    ("reap", Some((&["--in-cluster"], "--in-cluster"))),
    (
        "runner",
        Some((&["status", "--kubeconfig", "kc.yaml"], "--kubeconfig")),
    ),
    ("sandbox_bench", None),
    ("teardown", None),
];

#[test]
fn every_example_follows_the_real_target_rule() {
    // The checkout at run time (the build cache may be shared between checkouts).
    let dir =
        std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap()).join("examples");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().ok()?;
            name.strip_suffix(".rs").map(str::to_owned)
        })
        .collect();
    on_disk.sort();
    let listed: Vec<&str> = EXAMPLES.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        on_disk, listed,
        "examples/ and EXAMPLES in tests/cli/targets.rs must agree"
    );
    let target_flags = [
        "--kubeconfig",
        "--context",
        "--in-cluster",
        "--cluster",
        "--gitlab-url",
        "--project",
        "--create-project",
        "--helm",
        "--chart",
    ];
    for (name, case) in EXAMPLES {
        match case {
            Some((args, flag)) => assert_refused(name, args, &[flag]),
            None => {
                let help = text(&sandbox(name, &["--help"], &[]).stdout);
                for flag in target_flags {
                    assert!(
                        !help
                            .split_whitespace()
                            .any(|w| w.trim_end_matches(',') == flag),
                        "{name} takes {flag}: give it a case in EXAMPLES"
                    );
                }
            }
        }
    }
}
