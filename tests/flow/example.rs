//! The `full_flow` example as a CI pipeline calls it: exit codes, the report, one JSON document,
//! cleanup after an injected failure, and no call of any kind on invalid `--backend aws` input.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output};

/// `target/debug/examples/full_flow`: cargo builds the examples before running the tests.
pub(super) fn full_flow(args: &[&str], env: &[(&str, &str)]) -> Output {
    let deps = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let bin = deps.parent().unwrap().join("examples").join("full_flow");
    let mut cmd = Command::new(PathBuf::from(&bin));
    cmd.args(args)
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_REGION")
        .env_remove("GITLAB_TOKEN")
        .env_remove("GITLAB_URL")
        .env_remove("CI_SERVER_URL")
        .env_remove("GLRUNNER_BACKEND")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn no_arguments_runs_the_sandbox_flow_and_prints_the_report() {
    let t0 = std::time::Instant::now();
    let out = full_flow(&[], &[]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        stdout,
        text(&out.stderr)
    );
    for needle in [
        "provisioning makespan",
        "job makespan",
        "queue time p50 / p95",
        "jobs per minute",
        "pods reaped",
        "cost avoided",
        "leftovers after teardown   0",
        "400 jobs",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in:\n{stdout}");
    }
    assert!(
        t0.elapsed().as_secs() < 60,
        "the sandbox flow takes seconds of wall time"
    );
}

#[test]
fn json_output_is_one_document_and_progress_is_json_lines() {
    // A quota that does not bind: at the model's fitted quota, 1000 jobs queue past poll_timeout.
    let out = full_flow(
        &[
            "--output",
            "json",
            "--jobs",
            "1000",
            "--fargate-vcpu-quota",
            "4000",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is one JSON document");
    assert!(doc["failure"].is_null());
    assert_eq!(doc["fleet"]["shards"].as_array().unwrap().len(), 5);
    assert_eq!(doc["load_test"]["by_status"]["success"], 1000);
    assert_eq!(doc["teardown"]["leftovers"]["total"], 0);
    for line in text(&out.stderr).lines().filter(|l| !l.trim().is_empty()) {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("stderr line is not JSON ({e}): {line}"));
    }
}

#[test]
fn an_injected_failure_exits_1_after_cleaning_up() {
    let out = full_flow(&["--output", "json", "--inject-fault", "runners"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["failure"]["phase"], "runners");
    assert_eq!(doc["failure"]["cleaned_up"], true);
    assert_eq!(doc["teardown"]["trigger"], "cleanup after failure");
    assert_eq!(doc["teardown"]["runners_deleted"], 1);
    assert_eq!(doc["teardown"]["leftovers"]["total"], 0);
    let last = text(&out.stderr)
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned();
    let err: serde_json::Value = serde_json::from_str(&last).unwrap();
    assert_eq!(err["exit_code"], 1);
}

/// Extra flags, extra environment, what the message must name.
type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);

#[test]
fn invalid_aws_input_exits_2_and_calls_nothing() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().to_str().unwrap().to_owned();
    let aws = [
        ("AWS_ENDPOINT_URL", url.as_str()),
        ("AWS_ACCESS_KEY_ID", "x"),
        ("AWS_SECRET_ACCESS_KEY", "x"),
    ];
    let base = [
        "--backend",
        "aws",
        "--region",
        "us-east-1",
        "--state-dir",
        state.as_str(),
    ];
    let cases: Vec<Case> = vec![
        (
            vec![
                "--gitlab-url",
                "https://gitlab.example.com",
                "--project",
                "g/p",
            ],
            vec![],
            "GITLAB_TOKEN",
        ),
        (
            vec!["--gitlab-url", "https://gitlab.example.com"],
            vec![("GITLAB_TOKEN", "glpat-secret-value")],
            "--project",
        ),
        (
            vec!["--project", "g/p"],
            vec![("GITLAB_TOKEN", "glpat-secret-value")],
            "--gitlab-url",
        ),
        (
            vec![
                "--gitlab-url",
                "https://gitlab.example.com",
                "--project",
                "g/p",
                "--jobs",
                "0",
            ],
            vec![("GITLAB_TOKEN", "glpat-secret-value")],
            "--jobs",
        ),
        (
            vec![
                "--gitlab-url",
                "https://gitlab.example.com",
                "--project",
                "g/p",
                "--inject-fault",
                "reap",
            ],
            vec![("GITLAB_TOKEN", "glpat-secret-value")],
            "--inject-fault",
        ),
    ];
    for (args, env, needle) in cases {
        let mut full: Vec<&str> = base.to_vec();
        full.extend(args.iter().copied());
        let mut all_env = aws.to_vec();
        all_env.extend(env.iter().copied());
        let out = full_flow(&full, &all_env);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?}: should name {needle}: {stderr}"
        );
        assert!(
            !stderr.contains("glpat-secret-value"),
            "the GitLab token leaked"
        );
        assert!(listener.accept().is_err(), "{args:?}: an AWS call was made");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "{args:?}: nothing written"
        );
    }
}
