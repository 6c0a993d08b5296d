//! `doctor --ci-file`: the lint of a project's `.gitlab-ci.yml` as a CI pipeline calls it: exit 1
//! when a job cannot run on the Fargate fleet, 0 for a Fargate-clean file, 2 for a file that
//! cannot be read or parsed; the human report names job, line, source and fix; `--output json`
//! is the report.

use super::{run, text};

fn write(dir: &std::path::Path, body: &str) -> std::path::PathBuf {
    let path = dir.join(".gitlab-ci.yml");
    std::fs::write(&path, body).unwrap();
    path
}

const DIND: &str = "\
build-image:
  image: docker:27
  tags: [glrunner-1]
  services:
    - docker:27-dind
  script:
    - docker build -t $CI_REGISTRY_IMAGE .
";

/// Clean for the default fleet (tuned profile, stack `glrunner`: tags glrunner-1, glrunner-2).
const CLEAN: &str = "\
test:
  image: public.ecr.aws/docker/library/python:3.13
  tags: [glrunner-1]
  script: [pytest]
";

#[test]
fn a_job_that_cannot_run_exits_1_and_says_where_why_and_what_instead() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), DIND);
    let out = run("doctor", &["--ci-file", path.to_str().unwrap()], &[]);
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("job \"build-image\""), "{stdout}");
    assert!(
        stdout.contains("error   docker-in-docker (.gitlab-ci.yml:5)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("fargate.html#fargate-considerations"),
        "{stdout}"
    );
    assert!(stdout.contains("fix: route this job to a runner that is not on Fargate"));
    assert!(
        stdout.contains("warning docker-hub-image (.gitlab-ci.yml:2)"),
        "{stdout}"
    );
    assert!(stderr.contains("1 job(s) of"), "{stderr}");
    assert!(
        stderr.contains("cannot run on this Fargate fleet: build-image"),
        "{stderr}"
    );
}

#[test]
fn a_fargate_clean_file_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), CLEAN);
    let out = run("doctor", &["--ci-file", path.to_str().unwrap()], &[]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("1 job(s); 0 cannot run"), "{stdout}");
    assert!(
        stdout.contains("job \"test\" (.gitlab-ci.yml:1): ok"),
        "{stdout}"
    );
    assert!(stdout.contains("runs on: glrunner-runner-1"), "{stdout}");
    // The same file on another stack's fleet: its tag is served by no runner there.
    let other = run(
        "doctor",
        &["--ci-file", path.to_str().unwrap(), "--stack", "other"],
        &[],
    );
    assert_eq!(other.status.code(), Some(1), "{}", text(&other.stdout));
    assert!(text(&other.stdout).contains("unserved-tags"));
}

#[test]
fn json_output_is_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), DIND);
    let out = run(
        "doctor",
        &["--ci-file", path.to_str().unwrap(), "--output", "json"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let findings = report["findings"].as_array().unwrap();
    let dind = findings
        .iter()
        .find(|f| f["rule"] == "docker-in-docker")
        .expect("a dind finding");
    assert_eq!(dind["job"], "build-image");
    assert_eq!(dind["line"], 5);
    assert_eq!(dind["severity"], "error");
    assert!(
        dind["source"]
            .as_str()
            .unwrap()
            .contains("docs.aws.amazon.com")
    );
    assert_eq!(report["jobs"][0]["runners"][0], "glrunner-runner-1");
    // The error line that ends stderr is JSON too.
    let stderr = text(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    let err: serde_json::Value = serde_json::from_str(last).unwrap();
    assert_eq!(err["exit_code"], 1);
}

#[test]
fn a_missing_or_unparsable_file_is_invalid_input_naming_the_flag_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.yml");
    let out = run("doctor", &["--ci-file", missing.to_str().unwrap()], &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--ci-file: cannot read"), "{stderr}");
    assert!(stderr.contains("fix: pass the path of a readable .gitlab-ci.yml"));
    assert!(out.stdout.is_empty());

    let bad = write(dir.path(), "build:\n  script: [make\n");
    let out = run("doctor", &["--ci-file", bad.to_str().unwrap()], &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--ci-file:"), "{stderr}");
    assert!(
        stderr.contains("is not a GitLab CI configuration"),
        "{stderr}"
    );
    assert!(stderr.contains("fix: correct the file's YAML"), "{stderr}");
}

#[test]
fn help_explains_the_flag() {
    let out = run("doctor", &["--help"], &[]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout.contains("--ci-file <PATH>"), "{stdout}");
    assert!(
        stdout.contains("Lint a project's `.gitlab-ci.yml`"),
        "{stdout}"
    );
}

/// The AWS CLI on the default fleet, which gives jobs no AWS identity (no `--job-role`): a
/// warning naming the line, why and the fix; the job still runs (exit 0).
#[test]
fn the_aws_cli_without_a_job_role_is_a_warning_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "deploy:\n  image: public.ecr.aws/aws-cli/aws-cli:2.17.0\n  tags: [glrunner-1]\n  script:\n    - aws s3 sync public/ s3://site/\n",
    );
    let out = run("doctor", &["--ci-file", path.to_str().unwrap()], &[]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains("warning aws-without-identity (.gitlab-ci.yml:5)"),
        "{stdout}"
    );
    assert!(stdout.contains("pod-identities.html"), "{stdout}");
    assert!(stdout.contains("--job-role NAME=POLICY_ARN"), "{stdout}");
}
