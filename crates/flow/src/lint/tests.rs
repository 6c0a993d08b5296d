//! The lint on sample CI files and on real public ones (`tests/fixtures/gitlab-ci/`, SOURCES.md).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use glrunner_infra::{StackName, StackSpec};
use glrunner_runner_chart::ContainerResources;

use super::*;
use crate::{FlowConfig, RunnerProfile};

const URL: &str = "https://gitlab.example.com";

/// The fleet `full_flow` plans by default: tuned profile, 400 jobs, runners `ci-1` and `ci-2`
/// that take tagged jobs only.
fn tuned_fleet() -> LintFleet {
    let spec = StackSpec::new(StackName::new("ci").unwrap(), "us-east-1");
    let plan = FlowConfig::new(spec, "g/p", 400).plan(URL).unwrap();
    LintFleet::from_plan(&plan)
}

/// The reference tutorial's fleet: every runner tagged `eks-fargate` and taking untagged jobs.
fn reference_fleet() -> LintFleet {
    let spec = StackSpec::new(StackName::new("ci").unwrap(), "us-east-1");
    let plan = FlowConfig::new(spec, "g/p", 400)
        .with_runner_profile(RunnerProfile::Reference)
        .plan(URL)
        .unwrap();
    LintFleet::from_plan(&plan)
}

fn lint(text: &str, fleet: &LintFleet) -> LintReport {
    lint_source(
        Path::new("/nonexistent"),
        Path::new(".gitlab-ci.yml"),
        text,
        fleet,
    )
    .unwrap()
}

/// 1-based line of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in the text"))
        + 1
}

fn only<'a>(report: &'a LintReport, job: &'a str, rule: Rule) -> &'a Finding {
    let found: Vec<&Finding> = report.findings_of(job).filter(|f| f.rule == rule).collect();
    assert_eq!(found.len(), 1, "{job} {rule:?}: {:#?}", report.findings);
    found[0]
}

fn rules_of(report: &LintReport, job: &str) -> Vec<Rule> {
    let mut rules: Vec<Rule> = report.findings_of(job).map(|f| f.rule).collect();
    rules.sort();
    rules
}

#[test]
fn the_plans_fleet_is_what_the_releases_install() {
    let tuned = tuned_fleet();
    assert_eq!(tuned.all_tags(), ["ci-1", "ci-2"]);
    assert!(tuned.runners.iter().all(|r| !r.run_untagged));
    assert_eq!(
        tuned.runners[0].build,
        ContainerResources::new("200m", "128Mi")
    );
    let reference = reference_fleet();
    assert_eq!(reference.all_tags(), ["eks-fargate"]);
    assert!(reference.runners.iter().all(|r| r.run_untagged));
}

const DIND: &str = "\
stages: [build]

build-image:
  stage: build
  image: public.ecr.aws/docker/library/docker:27
  services:
    - docker:27-dind
  tags: [ci-1]
  script:
    - docker build -t $CI_REGISTRY_IMAGE .
";

#[test]
fn a_dind_job_cannot_run_and_says_where_why_and_what_instead() {
    let report = lint(DIND, &tuned_fleet());
    assert!(report.cannot_run());
    assert_eq!(report.jobs_that_cannot_run(), ["build-image"]);
    let dind = only(&report, "build-image", Rule::DockerInDocker);
    assert_eq!(dind.severity, Severity::Error);
    assert_eq!(dind.file, PathBuf::from(".gitlab-ci.yml"));
    assert_eq!(dind.line, line_of(DIND, "docker:27-dind"));
    assert!(dind.constraint.contains("privileged"), "{dind:?}");
    assert!(dind.source.contains("fargate.html#fargate-considerations"));
    assert!(dind.fix.contains("not on Fargate"));
    let build = only(&report, "build-image", Rule::DockerBuild);
    assert_eq!(build.line, line_of(DIND, "docker build"));
    // The image is on ECR Public, the tag is served, and the dind service is not also a Docker
    // Hub warning: nothing else.
    assert_eq!(
        rules_of(&report, "build-image"),
        [Rule::DockerInDocker, Rule::DockerBuild]
    );
}

const BIG: &str = "\
variables:
  GLOBAL: x

compile:
  image: public.ecr.aws/docker/library/gcc:14
  tags: [ci-2]
  variables:
    KUBERNETES_CPU_REQUEST: \"32\"
    KUBERNETES_MEMORY_REQUEST: 64Gi
  script: [make -j32]
";

#[test]
fn a_32_vcpu_job_is_beyond_fargate_and_its_overwrite_is_ignored() {
    let report = lint(BIG, &tuned_fleet());
    let beyond = only(&report, "compile", Rule::BeyondFargate);
    assert_eq!(beyond.severity, Severity::Error);
    assert_eq!(beyond.line, line_of(BIG, "KUBERNETES_CPU_REQUEST"));
    assert!(beyond.message.contains("32.05 vCPU"), "{}", beyond.message);
    assert!(beyond.source.contains("fargate-pod-configuration.html"));
    assert!(beyond.fix.contains("lower the request"));
    // glrunner's releases set no *_overwrite_max_allowed: the runner ignores both variables.
    let ignored: Vec<&Finding> = report
        .findings_of("compile")
        .filter(|f| f.rule == Rule::OverwriteIgnored)
        .collect();
    assert_eq!(ignored.len(), 2);
    assert!(ignored.iter().all(|f| f.severity == Severity::Warning));
    assert!(
        ignored[0]
            .message
            .contains("cpu_request_overwrite_max_allowed")
    );
    assert!(ignored[0].source.contains("overwrites.go"));
    assert_eq!(ignored[1].line, line_of(BIG, "KUBERNETES_MEMORY_REQUEST"));
}

#[test]
fn a_request_that_fits_fargate_is_only_ignored() {
    let text = BIG.replace("\"32\"", "\"4\"").replace("64Gi", "8Gi");
    let report = lint(&text, &tuned_fleet());
    assert_eq!(
        rules_of(&report, "compile"),
        [Rule::OverwriteIgnored, Rule::OverwriteIgnored]
    );
    assert!(!report.cannot_run());
}

#[test]
fn an_overwrite_above_the_runners_ceiling_fails_the_job() {
    let mut fleet = tuned_fleet();
    for runner in &mut fleet.runners {
        runner.overwrite_max_allowed = BTreeMap::from([
            ("KUBERNETES_CPU_REQUEST".to_owned(), "2".to_owned()),
            ("KUBERNETES_MEMORY_REQUEST".to_owned(), "64Gi".to_owned()),
        ]);
    }
    let text = BIG.replace("\"32\"", "\"4\"");
    let report = lint(&text, &fleet);
    let high = only(&report, "compile", Rule::OverwriteTooHigh);
    assert_eq!(high.line, line_of(&text, "KUBERNETES_CPU_REQUEST"));
    assert!(high.fix.contains("2 or less"));
    // Memory is at its ceiling, not above: no finding for it.
    assert_eq!(rules_of(&report, "compile"), [Rule::OverwriteTooHigh]);
}

#[test]
fn ephemeral_storage_beyond_175_gib_cannot_run() {
    let text = "big-data:\n  tags: [ci-1]\n  image: public.ecr.aws/x/y:1\n  variables:\n    KUBERNETES_EPHEMERAL_STORAGE_REQUEST: 200Gi\n  script: [x]\n";
    let report = lint(text, &tuned_fleet());
    let beyond = only(&report, "big-data", Rule::BeyondFargate);
    assert_eq!(beyond.line, 5);
    assert!(beyond.source.contains("larger-ephemeral-volumes"));
    let fits = lint(&text.replace("200Gi", "100Gi"), &tuned_fleet());
    assert_eq!(rules_of(&fits, "big-data"), [Rule::OverwriteIgnored]);
}

/// A fleet planned with `--cpu-overwrite-max 2` and `--ephemeral-storage 30Gi` (crate::job_disk):
/// every release carries the ceilings, and the lint holds jobs against them.
#[test]
fn the_plans_overwrite_ceilings_reach_the_lint() {
    let spec = StackSpec::new(StackName::new("ci").unwrap(), "us-east-1");
    let mut config = FlowConfig::new(spec, "g/p", 400);
    config.job_disk = crate::job_disk::JobDisk::new(Some("30Gi"), Some("2"), None, Some("60Gi"));
    let plan = config.plan(URL).unwrap();
    for (_, values) in &plan.releases {
        assert_eq!(
            values.executor.ephemeral_storage,
            Some(glrunner_runner_chart::EphemeralStorage::new("30Gi"))
        );
        assert_eq!(
            values.executor.overwrite_max.cpu_limit.as_deref(),
            Some("2")
        );
    }
    let fleet = LintFleet::from_plan(&plan);
    assert_eq!(
        fleet.runners[0].overwrite_max_allowed["KUBERNETES_CPU_REQUEST"],
        "2"
    );
    let text = BIG.replace("\"32\"", "\"4\"");
    let report = lint(&text, &fleet);
    let high = only(&report, "compile", Rule::OverwriteTooHigh);
    assert!(
        high.message
            .contains("cpu_request_overwrite_max_allowed = 2"),
        "{}",
        high.message
    );
    // Memory has no ceiling: ignored, and the fix names the flag that would set one.
    let ignored = only(&report, "compile", Rule::OverwriteIgnored);
    assert!(
        ignored.fix.contains("--memory-overwrite-max"),
        "{}",
        ignored.fix
    );
    // The projection prices the largest pod the ceilings allow, with its disk.
    let priced = plan.preflight.table_projection();
    assert!(
        priced
            .lines
            .iter()
            .any(|l| l.item == "job pod ephemeral storage"),
        "{:#?}",
        priced.lines
    );
    assert!(priced.priced_job_pod.unwrap().contains("60 GiB"));
}

const AWS: &str = "\
deploy:
  image: public.ecr.aws/docker/library/alpine:3.22
  tags: [ci-1]
  before_script:
    - apk add aws-cli
  script:
    - echo deploying
    - aws s3 sync public/ s3://my-bucket/
public-data:
  image: public.ecr.aws/aws-cli/aws-cli:2.17.0
  tags: [ci-1]
  script:
    - aws s3 cp --no-sign-request s3://public-bucket/data.csv .
cli-image:
  image: public.ecr.aws/aws-cli/aws-cli:2.17.0
  tags: [ci-1]
  script: [./deploy.sh]
own-keys:
  tags: [ci-1]
  image: public.ecr.aws/docker/library/alpine:3.22
  variables:
    AWS_ACCESS_KEY_ID: $DEPLOY_KEY_ID
  script: [aws sts get-caller-identity]
oidc:
  tags: [ci-1]
  image: public.ecr.aws/docker/library/alpine:3.22
  id_tokens:
    AWS_TOKEN:
      aud: sts.amazonaws.com
  script:
    - aws sts assume-role-with-web-identity --role-arn $ROLE --web-identity-token $AWS_TOKEN
chosen:
  tags: [ci-1]
  image: public.ecr.aws/docker/library/alpine:3.22
  variables:
    KUBERNETES_SERVICE_ACCOUNT_OVERWRITE: deploy
  script: [aws ecr describe-repositories]
";

fn with_job_roles(accounts: &[&str]) -> LintFleet {
    let mut fleet = tuned_fleet();
    for runner in &mut fleet.runners {
        runner.job_identity = glrunner_runner_chart::JobIdentity::for_accounts(accounts.to_vec());
    }
    fleet
}

fn aws_warned(report: &LintReport) -> Vec<&str> {
    report
        .findings
        .iter()
        .filter(|f| f.rule == Rule::AwsWithoutIdentity)
        .map(|f| f.job.as_str())
        .collect()
}

#[test]
fn the_aws_cli_without_a_job_role_is_a_warning_with_the_line_why_and_fix() {
    let report = lint(AWS, &tuned_fleet());
    // The fleet gives jobs no AWS identity (default: no job role).
    assert_eq!(aws_warned(&report), ["deploy", "cli-image", "chosen"]);
    let f = only(&report, "deploy", Rule::AwsWithoutIdentity);
    assert_eq!(f.severity, Severity::Warning);
    assert_eq!(f.line, line_of(AWS, "aws s3 sync"));
    assert!(
        f.message.contains("`aws s3 sync public/ s3://my-bucket/`"),
        "{}",
        f.message
    );
    assert!(f.message.contains("no job role"), "{}", f.message);
    assert!(
        f.constraint.contains("no instance metadata"),
        "{}",
        f.constraint
    );
    assert!(
        f.constraint
            .contains("EKS Pod Identity does not work on Fargate")
    );
    assert!(f.source.contains("(IMDS) isn't available"), "{}", f.source);
    assert!(f.source.contains("pod-identities.html"), "{}", f.source);
    assert!(f.fix.contains("--job-role NAME=POLICY_ARN"), "{}", f.fix);
    assert!(
        f.fix.contains("KUBERNETES_SERVICE_ACCOUNT_OVERWRITE"),
        "{}",
        f.fix
    );
    // The AWS CLI's image with scripts the lint cannot read: flagged at the image line.
    let image = only(&report, "cli-image", Rule::AwsWithoutIdentity);
    assert_eq!(image.line, line_of(AWS, "cli-image:") + 1);
    assert!(
        image
            .message
            .contains("image public.ecr.aws/aws-cli/aws-cli:2.17.0")
    );
    // A warning: the jobs can still run.
    assert!(!report.cannot_run());
}

#[test]
fn one_job_role_gives_every_job_an_identity() {
    let report = lint(AWS, &with_job_roles(&["deploy"]));
    assert!(aws_warned(&report).is_empty(), "{:#?}", report.findings);
}

#[test]
fn with_several_job_roles_a_job_must_name_one() {
    let report = lint(AWS, &with_job_roles(&["deploy", "read-only"]));
    // `chosen` names `deploy`; the others name none and have no default.
    assert_eq!(aws_warned(&report), ["deploy", "cli-image"]);
    let f = only(&report, "deploy", Rule::AwsWithoutIdentity);
    assert!(
        f.message.contains("names no job ServiceAccount"),
        "{}",
        f.message
    );
    assert!(
        f.fix
            .contains("`KUBERNETES_SERVICE_ACCOUNT_OVERWRITE: deploy` (one of deploy, read-only)"),
        "{}",
        f.fix
    );
    let stranger = AWS.replace("OVERWRITE: deploy", "OVERWRITE: admin");
    let report = lint(&stranger, &with_job_roles(&["deploy", "read-only"]));
    let f = only(&report, "chosen", Rule::AwsWithoutIdentity);
    assert!(f.message.contains("=admin is not one of"), "{}", f.message);
    assert!(f.fix.contains("--job-role admin=POLICY_ARN"), "{}", f.fix);
}

#[test]
fn the_plans_job_identity_reaches_the_lint() {
    let spec = StackSpec::new(StackName::new("ci").unwrap(), "us-east-1");
    let mut plan = FlowConfig::new(spec, "g/p", 400).plan(URL).unwrap();
    assert!(
        LintFleet::from_plan(&plan)
            .runners
            .iter()
            .all(|r| r.job_identity.is_empty())
    );
    for (_, values) in &mut plan.releases {
        *values = values.clone().with_job_service_accounts(["deploy"]);
    }
    let fleet = LintFleet::from_plan(&plan);
    assert_eq!(
        fleet.runners[0].job_identity.service_account.as_deref(),
        Some("deploy")
    );
    assert!(aws_warned(&lint(AWS, &fleet)).is_empty());
}

const HUB: &str = "\
test:
  image: ruby:3.3
  tags: [ci-1]
  services:
    - name: docker.io/library/postgres:16
      alias: db
    - public.ecr.aws/docker/library/redis:7
    - bitnami/kafka:3
  script: [bundle exec rspec]
";

#[test]
fn docker_hub_images_are_flagged_with_the_mirror_to_use() {
    let report = lint(HUB, &tuned_fleet());
    let hub: Vec<&Finding> = report
        .findings_of("test")
        .filter(|f| f.rule == Rule::DockerHubImage)
        .collect();
    assert_eq!(hub.len(), 3, "{hub:#?}");
    assert!(hub.iter().all(|f| f.severity == Severity::Warning));
    assert_eq!(hub[0].line, line_of(HUB, "ruby:3.3"));
    assert!(
        hub[0]
            .fix
            .contains("public.ecr.aws/docker/library/ruby:3.3")
    );
    assert!(hub[0].source.contains("docs.docker.com/docker-hub/usage"));
    assert_eq!(hub[1].line, line_of(HUB, "postgres:16"));
    assert!(
        hub[1]
            .fix
            .contains("public.ecr.aws/docker/library/postgres:16")
    );
    // Not an official image: no ECR Public mirror to name, the cache is the way.
    assert_eq!(hub[2].line, line_of(HUB, "bitnami/kafka"));
    assert!(hub[2].fix.contains("pull-through cache"));
    assert!(!hub[2].fix.contains("public.ecr.aws/docker/library/"));
    assert!(!report.cannot_run());
}

const CLEAN: &str = "\
stages: [test]

default:
  image: public.ecr.aws/docker/library/python:3.13
  tags: [ci-1]

variables:
  PIP_CACHE_DIR: .cache/pip

unit:
  stage: test
  script:
    - pip install -e .
    - pytest
  parallel: 4

lint:
  stage: test
  image: registry.gitlab.com/pipeline-components/ruff:latest
  tags: [ci-2]
  script: [ruff check .]

downstream:
  trigger: group/other-project
";

#[test]
fn a_fargate_clean_file_passes() {
    let report = lint(CLEAN, &tuned_fleet());
    assert_eq!(report.findings, []);
    assert!(!report.cannot_run());
    let names: Vec<&str> = report.jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["unit", "lint", "downstream"]);
    assert_eq!(report.jobs[0].runners, ["ci-runner-1"]);
    assert_eq!(report.jobs[0].line, line_of(CLEAN, "unit:"));
    assert_eq!(report.jobs[1].runners, ["ci-runner-2"]);
    assert!(report.jobs[2].trigger);
    assert!(report.render_text().contains("0 cannot run"));
}

#[test]
fn tags_no_runner_serves_and_untagged_jobs_stay_pending() {
    let text = "a:\n  tags: [gpu-large]\n  script: [x]\nb:\n  script: [x]\nc:\n  tags: [\"$RUNNER\"]\n  script: [x]\n";
    let report = lint(text, &tuned_fleet());
    let unserved = only(&report, "a", Rule::UnservedTags);
    assert_eq!((unserved.line, unserved.severity), (2, Severity::Error));
    assert!(unserved.fix.contains("ci-1, ci-2"));
    assert!(unserved.source.contains("docs.gitlab.com/ci/yaml/#tags"));
    // A gpu tag is also a GPU the fleet does not have.
    assert_eq!(only(&report, "a", Rule::Gpu).severity, Severity::Error);
    let untagged = only(&report, "b", Rule::UntaggedJob);
    assert_eq!(untagged.line, 4);
    assert!(untagged.fix.contains("--runner-profile reference"));
    assert_eq!(rules_of(&report, "c"), [Rule::NotEvaluated]);
    // The reference fleet takes untagged jobs.
    let reference = lint(text, &reference_fleet());
    assert_eq!(rules_of(&reference, "b"), []);
    assert_eq!(reference.jobs[1].runners.len(), 2);
}

const EXTENDS: &str = "\
.docker:
  image: docker:27
  services:
    - docker:27-dind

.builder:
  extends: .docker
  tags: [ci-1]
  before_script:
    - buildah login -u x -p y registry.example.com

.kaniko:
  image:
    name: gcr.io/kaniko-project/executor:debug
    entrypoint: [\"\"]

image-build:
  extends: [.builder, .kaniko]
  script:
    - /kaniko/executor --context . --destination $CI_REGISTRY_IMAGE
";

#[test]
fn extends_chains_carry_their_findings_to_the_job_with_the_templates_lines() {
    let report = lint(EXTENDS, &tuned_fleet());
    let names: Vec<&str> = report.jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["image-build"], "hidden jobs are templates");
    // From .docker, two levels up.
    let dind = only(&report, "image-build", Rule::DockerInDocker);
    assert_eq!(dind.line, line_of(EXTENDS, "docker:27-dind"));
    // From .builder.
    let buildah = only(&report, "image-build", Rule::Buildah);
    assert_eq!(buildah.line, line_of(EXTENDS, "buildah login"));
    assert!(buildah.source.contains("containers/buildah/issues/6718"));
    assert!(buildah.constraint.contains("user namespaces"));
    // .kaniko's image overrides .docker's (later parents win), so no Docker Hub image.
    let kaniko = only(&report, "image-build", Rule::Kaniko);
    assert_eq!(kaniko.severity, Severity::Warning);
    assert_eq!(kaniko.line, line_of(EXTENDS, "/kaniko/executor"));
    assert!(kaniko.source.contains("GoogleContainerTools/kaniko"));
    assert!(kaniko.constraint.contains("June 2025"));
    assert_eq!(
        rules_of(&report, "image-build"),
        [Rule::DockerInDocker, Rule::Buildah, Rule::Kaniko]
    );
}

#[test]
fn defaults_globals_and_references_are_inherited_unless_refused() {
    let text = "\
image: node:22

default:
  services: [docker:dind]

.setup:
  script:
    - docker info

inherits:
  tags: [ci-1]
  script:
    - !reference [.setup, script]
    - npm test

refuses:
  tags: [ci-1]
  inherit:
    default: false
  script: [npm test]
";
    let report = lint(text, &tuned_fleet());
    assert_eq!(
        rules_of(&report, "inherits"),
        [
            Rule::DockerInDocker,
            Rule::DockerDaemon,
            Rule::DockerHubImage
        ]
    );
    assert_eq!(only(&report, "inherits", Rule::DockerInDocker).line, 4);
    assert_eq!(only(&report, "inherits", Rule::DockerHubImage).line, 1);
    // The !reference'd `docker info` is found in .setup's block.
    assert_eq!(only(&report, "inherits", Rule::DockerDaemon).line, 8);
    assert_eq!(rules_of(&report, "refuses"), []);
}

#[test]
fn local_includes_are_read_from_the_repository_root_and_others_named() {
    let repo = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(repo.path().join("ci/nested")).unwrap();
    std::fs::write(
        repo.path().join(".gitlab-ci.yml"),
        "\
include:
  - ci/build.yml
  - local: /ci/test.yml
  - remote: https://example.com/ci.yml
  - template: Auto-DevOps.gitlab-ci.yml
  - project: group/templates
    file: [a.yml, b.yml]
  - component: $CI_SERVER_FQDN/group/comp/build@1.0
  - ci/missing.yml

main-job:
  tags: [ci-1]
  script: [make]
",
    )
    .unwrap();
    std::fs::write(
        repo.path().join("ci/build.yml"),
        "include: 'ci/nested/deep.yml'\n\nbuild:\n  tags: [ci-1]\n  image: golang:1.23\n  script: [go build]\n",
    )
    .unwrap();
    std::fs::write(
        repo.path().join("ci/test.yml"),
        "# tests\ntest:\n  tags: [ci-1]\n  services:\n    - docker:dind\n  script: [go test]\n",
    )
    .unwrap();
    std::fs::write(
        repo.path().join("ci/nested/deep.yml"),
        "deep:\n  tags: [ci-9]\n  script: [x]\n",
    )
    .unwrap();
    let report = lint_file(&repo.path().join(".gitlab-ci.yml"), &tuned_fleet()).unwrap();
    let jobs: Vec<(&str, &Path, usize)> = report
        .jobs
        .iter()
        .map(|j| (j.name.as_str(), j.file.as_path(), j.line))
        .collect();
    assert_eq!(
        jobs,
        [
            ("deep", Path::new("ci/nested/deep.yml"), 1),
            ("build", Path::new("ci/build.yml"), 3),
            ("test", Path::new("ci/test.yml"), 2),
            ("main-job", Path::new(".gitlab-ci.yml"), 11),
        ]
    );
    let hub = only(&report, "build", Rule::DockerHubImage);
    assert_eq!(
        (hub.file.as_path(), hub.line),
        (Path::new("ci/build.yml"), 5)
    );
    let dind = only(&report, "test", Rule::DockerInDocker);
    assert_eq!(
        (dind.file.as_path(), dind.line),
        (Path::new("ci/test.yml"), 5)
    );
    assert_eq!(only(&report, "deep", Rule::UnservedTags).line, 2);
    let unchecked: Vec<(&str, &str)> = report
        .unchecked_includes
        .iter()
        .map(|u| (u.kind.as_str(), u.target.as_str()))
        .collect();
    assert_eq!(
        unchecked,
        [
            ("remote", "https://example.com/ci.yml"),
            ("template", "Auto-DevOps.gitlab-ci.yml"),
            ("project", "group/templates:a.yml, b.yml"),
            ("component", "$CI_SERVER_FQDN/group/comp/build@1.0"),
            ("local", "ci/missing.yml"),
        ]
    );
    assert!(report.unchecked_includes[4].reason.contains("not found"));
    let text = report.render_text();
    assert!(text.contains("include remote https://example.com/ci.yml"));
}

#[test]
fn bad_input_is_an_error_naming_the_file() {
    let fleet = tuned_fleet();
    let parse = lint_source(Path::new("."), Path::new("ci.yml"), "a: [1,\n", &fleet).unwrap_err();
    assert!(matches!(parse, LintError::Parse { .. }));
    assert!(parse.to_string().contains("ci.yml"), "{parse}");
    let list = lint_source(Path::new("."), Path::new("ci.yml"), "- a\n- b\n", &fleet).unwrap_err();
    assert!(list.to_string().contains("a list, not a mapping"), "{list}");
    let missing = lint_file(Path::new("/nonexistent/.gitlab-ci.yml"), &fleet).unwrap_err();
    assert!(matches!(missing, LintError::Read { .. }));
    // A component's `spec:` header document is not an error.
    let spec = "spec:\n  inputs:\n    stage: {}\n---\njob:\n  tags: [ci-1]\n  script: [x]\n";
    let report = lint(spec, &fleet);
    assert_eq!(report.jobs.len(), 1);
    assert_eq!(report.jobs[0].line, 5);
}

#[test]
fn the_json_report_names_rules_and_severities_in_kebab_case() {
    let report = lint(DIND, &tuned_fleet());
    let json = serde_json::to_value(&report).unwrap();
    let first = &json["findings"][0];
    assert_eq!(first["rule"], "docker-in-docker");
    assert_eq!(first["severity"], "error");
    assert_eq!(first["job"], "build-image");
    assert_eq!(first["line"], 7);
    assert_eq!(json["jobs"][0]["runners"][0], "ci-runner-1");
    assert!(json["unchecked_includes"].as_array().unwrap().is_empty());
}

// Real public CI files (tests/fixtures/gitlab-ci/SOURCES.md).

fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/gitlab-ci")
        .join(name)
}

fn fixture(name: &str, fleet: &LintFleet) -> (LintReport, String) {
    let path = fixture_path(name).join(".gitlab-ci.yml");
    let report = lint_file(&path, fleet).unwrap();
    (report, std::fs::read_to_string(path).unwrap())
}

#[test]
fn real_docker_markdownlint_cli_dind_anchors_and_merge_keys() {
    let (report, text) = fixture("docker-markdownlint-cli", &reference_fleet());
    let names: Vec<&str> = report.jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "lint:shell",
            "lint:yaml",
            "lint:markdown:docker_hub",
            "lint:markdown:gitlab",
            "poll:npm",
            "poll:docker_hub"
        ]
    );
    assert_eq!(report.jobs_that_cannot_run(), ["lint:shell"]);
    assert_eq!(
        only(&report, "lint:shell", Rule::DockerInDocker).line,
        line_of(&text, "- docker:dind")
    );
    let run = only(&report, "lint:shell", Rule::DockerDaemon);
    assert_eq!(run.line, line_of(&text, "docker run -v"));
    // `docker --version` needs no daemon and is not the finding's line.
    assert!(run.message.contains("docker run"));
    let hub = |job: &str| -> Vec<usize> {
        report
            .findings_of(job)
            .filter(|f| f.rule == Rule::DockerHubImage)
            .map(|f| f.line)
            .collect()
    };
    assert_eq!(hub("lint:shell"), [line_of(&text, "image: docker")]);
    assert_eq!(hub("lint:yaml"), [line_of(&text, "sdesbure/yamllint")]);
    assert_eq!(
        hub("lint:markdown:docker_hub"),
        [line_of(&text, "name: 06kellyjac/markdownlint-cli")]
    );
    // The `<<: *markdown` job with GitLab's registry image: clean.
    assert_eq!(rules_of(&report, "lint:markdown:gitlab"), []);
    assert_eq!(hub("poll:docker_hub"), [line_of(&text, "image: alpine")]);
    assert!(
        report
            .findings_of("poll:docker_hub")
            .next()
            .unwrap()
            .fix
            .contains("public.ecr.aws/docker/library/alpine")
    );
}

#[test]
fn real_gitlab_docker_template_cannot_run_on_fargate() {
    let (report, text) = fixture("gitlab-docker-template", &reference_fleet());
    assert_eq!(
        report.jobs_that_cannot_run(),
        ["docker-build-master", "docker-build"]
    );
    for job in ["docker-build-master", "docker-build"] {
        assert_eq!(
            rules_of(&report, job),
            [
                Rule::DockerInDocker,
                Rule::DockerBuild,
                Rule::DockerDaemon,
                Rule::DockerHubImage
            ],
            "{job}"
        );
    }
    let second = text.find("docker-build:").unwrap();
    let build_line = text[..second].lines().count() + line_of(&text[second..], "docker build");
    assert_eq!(
        only(&report, "docker-build", Rule::DockerBuild).line,
        build_line
    );
    assert_eq!(
        only(&report, "docker-build-master", Rule::DockerDaemon).line,
        line_of(&text, "docker login")
    );
}

#[test]
fn real_gitlab_kaniko_template_runs_with_an_archived_builder() {
    let (report, text) = fixture("gitlab-kaniko-template", &reference_fleet());
    let names: Vec<&str> = report.jobs.iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, ["kaniko-build"]);
    assert!(!report.cannot_run());
    let kaniko = only(&report, "kaniko-build", Rule::Kaniko);
    assert_eq!(kaniko.line, line_of(&text, "- /kaniko/executor --context"));
    assert_eq!(rules_of(&report, "kaniko-build"), [Rule::Kaniko]);
    // On the tuned fleet the untagged job stays pending.
    let (tuned, _) = fixture("gitlab-kaniko-template", &tuned_fleet());
    assert_eq!(
        rules_of(&tuned, "kaniko-build"),
        [Rule::Kaniko, Rule::UntaggedJob]
    );
}

#[test]
fn real_language_templates_pull_their_global_image_from_docker_hub() {
    for (name, image, image_line, jobs) in [
        (
            "gitlab-python-template",
            "python:latest",
            "image: python:latest",
            &["test", "run", "pages"][..],
        ),
        (
            "gitlab-rust-template",
            "rust:latest",
            "image: \"rust:latest\"",
            &["test:cargo", "deploy"][..],
        ),
    ] {
        let (report, text) = fixture(name, &reference_fleet());
        let names: Vec<&str> = report.jobs.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(names, jobs, "{name}");
        assert!(!report.cannot_run(), "{name}");
        for job in jobs {
            let hub = only(&report, job, Rule::DockerHubImage);
            assert_eq!(hub.line, line_of(&text, image_line), "{name} {job}");
            assert!(
                hub.fix
                    .contains(&format!("public.ecr.aws/docker/library/{image}"))
            );
            assert_eq!(rules_of(&report, job), [Rule::DockerHubImage]);
        }
    }
}

#[test]
fn real_gtk_is_clean_but_for_a_windows_tag() {
    let (report, text) = fixture("gtk", &reference_fleet());
    assert_eq!(rules_of(&report, "build"), []);
    let unserved = only(&report, "msys2-mingw32", Rule::UnservedTags);
    assert_eq!(unserved.line, line_of(&text, "tags:"));
    assert!(unserved.message.contains("win32"));
    assert_eq!(rules_of(&report, "msys2-mingw32"), [Rule::UnservedTags]);
    assert_eq!(report.jobs_that_cannot_run(), ["msys2-mingw32"]);
}

#[test]
fn real_meltano_reads_its_local_include_and_finds_dind_in_both_files() {
    let (report, text) = fixture("meltano", &reference_fleet());
    assert_eq!(report.unchecked_includes, []);
    let included =
        std::fs::read_to_string(fixture_path("meltano").join("docker/build-ci.yml")).unwrap();
    let base = report
        .jobs
        .iter()
        .find(|j| j.name == "meltano_base_dev")
        .expect("a job of the included file");
    assert_eq!(base.file, PathBuf::from("docker/build-ci.yml"));
    assert_eq!(base.line, line_of(&included, "meltano_base_dev:"));
    // Its dind and its `docker build` come through `<<: *docker_build` and the
    // `*docker_build_script` alias: found in the included file's templates.
    let dind = only(&report, "meltano_base_dev", Rule::DockerInDocker);
    assert_eq!(
        (dind.file.as_path(), dind.line),
        (
            Path::new("docker/build-ci.yml"),
            line_of(&included, "- docker:dind")
        )
    );
    let build = only(&report, "meltano_base_dev", Rule::DockerBuild);
    assert_eq!(build.line, line_of(&included, "docker build -t"));
    // The main file's publishing jobs, one through a merge key.
    for job in ["hub_meltano", "hub_meltano_cli"] {
        let dind = only(&report, job, Rule::DockerInDocker);
        assert_eq!(
            (dind.file.as_path(), dind.line),
            (Path::new(".gitlab-ci.yml"), line_of(&text, "- docker:dind"))
        );
        assert_eq!(
            only(&report, job, Rule::DockerDaemon).line,
            line_of(&text, "docker pull")
        );
    }
    let postgres = report
        .findings_of("test_postgres")
        .find(|f| f.message.contains("postgres:latest"))
        .unwrap();
    assert_eq!(postgres.line, line_of(&text, "- postgres:latest"));
    // Jobs on meltano's own registry images are clean.
    for job in ["lint", "package", "publish", "test_sqlite"] {
        assert_eq!(rules_of(&report, job), [], "{job}");
    }
    assert!(report.cannot_run());
}

#[test]
fn real_veloren_is_fargate_clean_on_a_fleet_taking_untagged_jobs() {
    let (report, _) = fixture("veloren", &reference_fleet());
    assert_eq!(report.jobs.len(), 12);
    assert_eq!(report.findings, []);
    assert!(!report.cannot_run());
    // On the tuned fleet every one of its untagged jobs would stay pending.
    let (tuned, _) = fixture("veloren", &tuned_fleet());
    assert_eq!(tuned.jobs_that_cannot_run().len(), 12);
    assert!(tuned.findings.iter().all(|f| f.rule == Rule::UntaggedJob));
}

#[test]
fn real_aws_s3_sample_calls_aws_with_no_identity_on_a_fleet_without_job_roles() {
    let (report, text) = fixture("aws-s3-sample", &reference_fleet());
    assert_eq!(
        rules_of(&report, "deploy"),
        [Rule::DockerHubImage, Rule::AwsWithoutIdentity]
    );
    let f = only(&report, "deploy", Rule::AwsWithoutIdentity);
    // The `aws s3 cp` line, not the commented-out `aws cloudfront` one.
    assert_eq!(f.line, line_of(&text, "- aws s3 cp"));
    assert!(f.message.contains("aws s3 cp ./build"), "{}", f.message);
    assert!(!report.cannot_run());
    // With one job role the pod runs as its ServiceAccount: nothing to warn about.
    let mut fleet = reference_fleet();
    for runner in &mut fleet.runners {
        runner.job_identity = glrunner_runner_chart::JobIdentity::for_accounts(["deploy"]);
    }
    let (report, _) = fixture("aws-s3-sample", &fleet);
    assert_eq!(rules_of(&report, "deploy"), [Rule::DockerHubImage]);
}
