//! The provision and teardown examples as CI pipelines call them: exit codes, messages, JSON,
//! no AWS call on bad input or dry-run, and a full round trip against moto when it runs.

// Each test binary uses its part of the shared module.
#[path = "cli/artifacts.rs"]
mod artifacts;
#[path = "cli/ci_lint.rs"]
mod ci_lint;
#[path = "cli/golden.rs"]
mod golden;
#[path = "cli/loadtest.rs"]
mod loadtest;
#[path = "cli/runner_example.rs"]
mod runner_example;
#[path = "cli/scripts.rs"]
mod scripts;
#[allow(dead_code)]
#[path = "support/servers.rs"]
mod servers;
#[path = "cli/signals.rs"]
mod signals;
#[path = "cli/targets.rs"]
mod targets;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output};

/// `target/debug/examples/<name>`: cargo builds the examples before running the tests.
fn example(name: &str) -> PathBuf {
    let deps = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    deps.parent().unwrap().join("examples").join(name)
}

fn run(name: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(example(name));
    cmd.args(args)
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_REGION")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run example {name}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A listener that AWS calls would hit; afterwards, whether anything connected.
struct Tripwire(TcpListener);

impl Tripwire {
    fn new() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        Self(listener)
    }
    fn url(&self) -> String {
        format!("http://{}", self.0.local_addr().unwrap())
    }
    fn touched(&self) -> bool {
        self.0.accept().is_ok()
    }
}

#[test]
fn bad_input_exits_2_names_the_flag_and_calls_nothing() {
    let cases: &[(&[&str], &str)] = &[
        (&["--vpc-cidr", "10.0.0.0/24"], "--vpc-cidr"),
        (&["--vpc-cidr", "10.0.0.0"], "--vpc-cidr"),
        (&["--vpc-cidr", "8.8.0.0/16"], "private range"),
        (&["--azs", "1"], "--azs"),
        (&["--azs", "4"], "--azs"),
        (&["--stack", "Bad_Name"], "--stack"),
        (&["--stack", "eks-x"], "--stack"),
        (&["--region", "us-moon-1"], "--region"),
        (&["--kubernetes-version", "1.19"], "--kubernetes-version"),
        (
            &["--runner-namespace", "Not_A_Namespace"],
            "--runner-namespace",
        ),
        (
            &[
                "--admin-principal",
                "arn:aws:sts::123456789012:assumed-role/Admin/me",
            ],
            "--admin-principal",
        ),
        (
            &["--public-access-cidrs", "203.0.113.7"],
            "--public-access-cidrs",
        ),
    ];
    for (args, needle) in cases {
        let wire = Tripwire::new();
        let url = wire.url();
        let mut full = vec!["--backend", "aws", "--region", "us-east-1"];
        full.extend_from_slice(args);
        let dir = tempfile::tempdir().unwrap();
        let state_dir = dir.path().to_str().unwrap().to_string();
        full.extend_from_slice(&["--state-dir", &state_dir]);
        let out = run(
            "provision",
            &full,
            &[
                ("AWS_ENDPOINT_URL", &url),
                ("AWS_ACCESS_KEY_ID", "x"),
                ("AWS_SECRET_ACCESS_KEY", "x"),
            ],
        );
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?}: message should name {needle}: {stderr}"
        );
        assert!(!wire.touched(), "{args:?}: an AWS call was made");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "{args:?}: nothing written"
        );
    }
}

/// The region comes from aws-config's profile provider: `[profile default]`, an inline
/// comment, and `AWS_CONFIG_FILE` without `HOME` all work as the aws CLI reads them.
#[test]
fn region_comes_from_the_aws_config_file_as_the_aws_cli_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    std::fs::write(
        &config,
        "[profile default]\nregion = eu-west-1 # the team's region\n",
    )
    .unwrap();
    let out = Command::new(example("provision"))
        .args(["--dry-run"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_CONFIG_FILE", &config)
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("none"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.starts_with("plan for stack glrunner in eu-west-1:"),
        "{stdout}"
    );
}

#[test]
fn sandbox_dry_run_prints_the_plan_tree_and_json() {
    let human = run("provision", &["--dry-run"], &[]);
    assert!(human.status.success(), "{}", text(&human.stderr));
    let stdout = text(&human.stdout);
    assert!(
        // 16, the OIDC provider, the S3 cache's bucket and role, and the image cache's five steps.
        stdout.starts_with("plan for stack glrunner in us-east-1: 24 steps"),
        "{stdout}"
    );
    assert!(
        stdout.contains("create NAT gateway in us-east-1a") && stdout.contains("└─ wave"),
        "{stdout}"
    );
    let json = run("provision", &["--dry-run", "--output", "json"], &[]);
    assert!(json.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).expect("one JSON document");
    assert_eq!(doc["plan"]["steps"].as_array().unwrap().len(), 24);
    assert!(doc["applied"].is_null());
}

#[test]
fn sandbox_provision_reports_the_virtual_makespan() {
    let out = run("provision", &["--output", "json"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let makespan = doc["applied"]["makespan_s"].as_f64().unwrap();
    assert!((16.0 * 60.0..18.0 * 60.0).contains(&makespan), "{makespan}");
    let help = run("provision", &["--help"], &[]);
    assert!(
        text(&help.stdout).contains("--nat <NAT>") && text(&help.stdout).contains("Exit codes")
    );
}

/// provision → provision again → teardown with the state file deleted, through the binaries.
#[test]
fn round_trip_against_moto() {
    let Some(url) = crate::servers::moto_url() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().to_str().unwrap();
    let env = [
        ("AWS_ENDPOINT_URL", url.as_str()),
        ("AWS_ACCESS_KEY_ID", "x"),
        ("AWS_SECRET_ACCESS_KEY", "x"),
        ("AWS_MAX_ATTEMPTS", "2"),
    ];
    let common = [
        "--backend",
        "aws",
        "--region",
        "us-east-1",
        "--stack",
        "cli-moto",
        "--state-dir",
        state,
        "--output",
        "json",
    ];

    let dry = run("provision", &[&common[..], &["--dry-run"]].concat(), &env);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    let first = run("provision", &common, &env);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let first: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(first["applied"]["steps"].as_array().unwrap().len(), 24);
    assert!(
        dir.path().join("cli-moto.json").exists()
            && dir.path().join("cli-moto.kubeconfig").exists()
    );

    let second = run("provision", &common, &env);
    let second: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    let created = second["applied"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["created"] == true)
        .count();
    assert_eq!(created, 0, "the re-run created nothing");
    let plan_exists = second["plan"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["status"]["status"] == "exists");
    assert!(plan_exists);

    std::fs::remove_file(dir.path().join("cli-moto.json")).unwrap();
    let down = run("teardown", &common, &env);
    assert!(down.status.success(), "{}", text(&down.stderr));
    let report: serde_json::Value = serde_json::from_slice(&down.stdout).unwrap();
    assert!(report["leftovers"].as_array().unwrap().is_empty());
    assert!(report["deleted"].as_array().unwrap().len() >= 16);
    let again = run("teardown", &[&common[..], &["--dry-run"]].concat(), &env);
    let again: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert!(
        again["deleted"].as_array().unwrap().is_empty(),
        "nothing tagged is left: {again}"
    );
}

#[path = "cli/reap.rs"]
mod reap;

/// `--janitor`: an image without `in-cluster`, or `in-cluster` on AWS without an image, is bad
/// input (exit 2, the flag named, no AWS call); on the sandbox `in-cluster` runs and its JSON
/// report says the janitor was installed and left nothing.
#[test]
fn the_janitor_flags_are_checked_before_any_call_and_in_cluster_runs_on_the_sandbox() {
    let cases: &[(&[&str], &str)] = &[
        (&["--janitor-image", "img:1"], "--janitor-image"),
        (&["--janitor", "in-cluster"], "--janitor-image"),
        (
            &["--janitor", "in-cluster", "--janitor-image", "has space"],
            "--janitor-image",
        ),
    ];
    for (args, needle) in cases {
        let wire = Tripwire::new();
        let url = wire.url();
        let mut full = vec![
            "--backend",
            "aws",
            "--region",
            "us-east-1",
            "--project",
            "g/p",
        ];
        full.extend_from_slice(args);
        let out = run(
            "full_flow",
            &full,
            &[
                ("AWS_ENDPOINT_URL", &url),
                ("AWS_ACCESS_KEY_ID", "x"),
                ("AWS_SECRET_ACCESS_KEY", "x"),
                ("GITLAB_TOKEN", "glpat-xxxxxxxxxxxxxxxxxxxx"),
                ("GITLAB_URL", &url),
            ],
        );
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(!wire.touched(), "{args:?}: a call was made");
    }
    let out = run(
        "full_flow",
        &[
            "--jobs",
            "20",
            "--janitor",
            "in-cluster",
            "--output",
            "json",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON report");
    let releases = report["phases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["phase"] == "releases")
        .expect("the releases phase");
    assert!(
        releases["summary"]
            .as_str()
            .unwrap_or_default()
            .contains("janitor in-cluster"),
        "{releases}"
    );
    assert_eq!(report["teardown"]["leftovers"]["total"], 0, "{stdout}");
}

/// `--no-image-cache` plans no cache; a credential flag takes an ARN or `env:VAR`, never the
/// value, and a bad one exits 2 naming the flag before anything is created.
#[test]
fn image_cache_flags_are_checked_before_anything_runs() {
    let off = run(
        "provision",
        &["--dry-run", "--output", "json", "--no-image-cache"],
        &[],
    );
    assert!(off.status.success(), "{}", text(&off.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&off.stdout).unwrap();
    // The OIDC provider and the S3 cache stay: only the image cache's five steps go.
    assert_eq!(doc["plan"]["steps"].as_array().unwrap().len(), 19);
    for (args, env, says) in [
        (
            vec!["--docker-hub-credential", "me:token"],
            vec![],
            "--docker-hub-credential: give the ARN",
        ),
        (
            vec!["--docker-hub-credential", "env:GLRUNNER_TEST_UNSET_VAR"],
            vec![],
            "GLRUNNER_TEST_UNSET_VAR is not set",
        ),
        (
            vec!["--gitlab-registry-credential", "env:GLRUNNER_TEST_HUB"],
            vec![("GLRUNNER_TEST_HUB", "no-colon-S3CRET")],
            "USERNAME:ACCESS_TOKEN",
        ),
        (
            vec![
                "--docker-hub-credential",
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:hub",
            ],
            vec![],
            "ecr-pullthroughcache/",
        ),
        (
            vec![
                "--no-image-cache",
                "--docker-hub-credential",
                "env:GLRUNNER_TEST_HUB",
            ],
            vec![("GLRUNNER_TEST_HUB", "me:S3CRET")],
            "the image cache is off",
        ),
    ] {
        let out = run("provision", &[&["--dry-run"][..], &args].concat(), &env);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("S3CRET"),
            "{args:?}: the value leaked: {stderr}"
        );
    }
}

/// A Docker Hub credential from the environment, through the binaries on strict moto: stored
/// as `ecr-pullthroughcache/<stack>/docker-hub`, and absent from argv, logs (trace level),
/// output and state; teardown leaves nothing.
#[test]
fn a_docker_hub_credential_from_the_environment_never_appears() {
    let Some(url) = crate::servers::moto_url() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().to_str().unwrap();
    let token = "dckr_pat_CLI-NEVER-SHOWN";
    let credential = format!("glrunner:{token}");
    let env = [
        ("AWS_ENDPOINT_URL", url.as_str()),
        ("AWS_ACCESS_KEY_ID", "x"),
        ("AWS_SECRET_ACCESS_KEY", "x"),
        ("AWS_MAX_ATTEMPTS", "2"),
        ("RUST_LOG", "trace"),
        ("GLRUNNER_TEST_DOCKER_HUB", credential.as_str()),
    ];
    let common = [
        "--backend",
        "aws",
        "--region",
        "us-east-1",
        "--stack",
        "cli-cache",
        "--state-dir",
        state,
        "--output",
        "json",
    ];
    let args = [
        &common[..],
        &["--docker-hub-credential", "env:GLRUNNER_TEST_DOCKER_HUB"],
    ]
    .concat();
    assert!(args.iter().all(|a| !a.contains("NEVER-SHOWN")));
    let up = run("provision", &args, &env);
    let (stdout, stderr) = (text(&up.stdout), text(&up.stderr));
    assert!(up.status.success(), "{stderr}");
    assert!(
        !stdout.contains("NEVER-SHOWN") && !stderr.contains("NEVER-SHOWN"),
        "the credential leaked into the output or logs"
    );
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let steps = doc["applied"]["steps"].as_array().unwrap();
    assert!(
        steps
            .iter()
            .any(|s| s.to_string().contains("image-cache/secret/docker-hub")),
        "{stdout}"
    );
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let body = std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default();
        assert!(
            !body.contains("NEVER-SHOWN"),
            "the credential is in a state file"
        );
    }
    let down = run("teardown", &common, &env);
    let stderr = text(&down.stderr);
    assert!(down.status.success(), "{stderr}");
    assert!(!text(&down.stdout).contains("NEVER-SHOWN") && !stderr.contains("NEVER-SHOWN"));
}

#[test]
fn a_bad_cache_expiry_is_refused_naming_the_flag_and_nothing_is_planned() {
    let out = run("provision", &["--dry-run", "--cache-expire-days", "0"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--cache-expire-days"),
        "{}",
        text(&out.stderr)
    );
    assert!(!text(&out.stdout).contains("plan for stack"));
    // --cache none plans no bucket and no cache role.
    let none = run("provision", &["--dry-run", "--cache", "none"], &[]);
    assert!(none.status.success(), "{}", text(&none.stderr));
    assert!(
        text(&none.stdout).starts_with("plan for stack glrunner in us-east-1: 22 steps"),
        "{}",
        text(&none.stdout)
    );
}

/// `--job-role NAME=POLICY_ARN` (#25): each job role is a planned IRSA role naming its
/// ServiceAccount and policies; a malformed value, a bad NAME or a policy of another partition
/// exits 2 naming the flag, and nothing is planned.
#[test]
fn job_roles_are_planned_and_bad_ones_are_refused_naming_the_flag() {
    let out = run(
        "provision",
        &[
            "--dry-run",
            "--job-role",
            "deploy=arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess",
            "--job-role",
            "deploy=arn:aws:iam::123456789012:policy/team/push",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("plan for stack glrunner in us-east-1: 25 steps"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "create IAM role glrunner-us-east-1-job-deploy for job ServiceAccount gitlab-runner/deploy (IRSA, audience sts.amazonaws.com) with arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess, arn:aws:iam::123456789012:policy/team/push"
        ),
        "{stdout}"
    );
    for bad in [
        "deploy",
        "Deploy=arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess",
        "deploy=arn:aws-cn:iam::aws:policy/AmazonS3ReadOnlyAccess",
        "deploy=arn:aws:iam::aws:role/admin",
    ] {
        let out = run("provision", &["--dry-run", "--job-role", bad], &[]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("--job-role"),
            "{bad}: {}",
            text(&out.stderr)
        );
        assert!(!text(&out.stdout).contains("plan for stack"), "{bad}");
    }
}
