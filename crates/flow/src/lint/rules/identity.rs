//! The AWS-identity rule: a job that calls AWS (the AWS CLI in its scripts, or the AWS CLI's
//! image) while the runner that takes it gives its pod no AWS identity.
//!
//! On Fargate a job pod has no instance metadata to take credentials from, and EKS Pod Identity
//! does not reach Fargate pods, so the only identity a job gets from the fleet is IRSA: its pod
//! runs as a job ServiceAccount annotated with an IAM role (`--job-role NAME=POLICY_ARN`,
//! glrunner_runner_chart::identity). The fleet's job identity is each runner's
//! [`JobIdentity`] (default: none); a job has one when the runner's default `service_account`
//! is a job account, or when it names an admitted one in `KUBERNETES_SERVICE_ACCOUNT_OVERWRITE`
//! ([`JobIdentity::job_has_identity`]).

use glrunner_runner_chart::{JobIdentity, SERVICE_ACCOUNT_OVERWRITE_VARIABLE};

use super::{Ctx, Says, basename, commands};
use crate::lint::{Rule, Severity};

/// Why a Fargate job pod has no AWS credentials of its own.
const NO_IDENTITY_ON_FARGATE: &str = "Amazon EKS User Guide, Fargate considerations \
     (https://docs.aws.amazon.com/eks/latest/userguide/fargate.html#fargate-considerations): \
     \"The Amazon EC2 instance metadata service (IMDS) isn't available to Pods that are deployed to \
     Fargate nodes\"; EKS User Guide, EKS Pod Identity considerations \
     (https://docs.aws.amazon.com/eks/latest/userguide/pod-identities.html): Pod Identity runs on \
     Linux EC2 nodes, not on Fargate (aws/containers-roadmap#2274); IAM roles for service accounts \
     (https://docs.aws.amazon.com/eks/latest/userguide/iam-roles-for-service-accounts.html) work on Fargate";

/// Variables through which a job brings its own AWS credentials (the AWS CLI's environment
/// variables: AWS CLI User Guide, "Environment variables to configure the AWS CLI").
const OWN_CREDENTIALS: [&str; 4] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
];

/// Warns when `ctx`'s job calls AWS and `identity` (the runner taking the job) gives it none.
pub(super) fn aws_without_identity(ctx: &mut Ctx<'_>, identity: &JobIdentity) {
    let image = ctx.job.image().unwrap_or_default();
    // `--no-sign-request` reads public data anonymously: no identity needed.
    let lines = ctx.job.script_lines();
    let aws_calls = |signed_only: bool| {
        lines.iter().find(|line| {
            commands(line).iter().any(|w| {
                basename(w[0]) == "aws" && !(signed_only && w.contains(&"--no-sign-request"))
            })
        })
    };
    let cli_line = aws_calls(true).cloned();
    // The AWS CLI's image (amazon/aws-cli, public.ecr.aws/aws-cli/aws-cli) running scripts the
    // lint cannot see into, unless every call the job shows is anonymous.
    let aws_image = image.to_ascii_lowercase().contains("aws-cli") && aws_calls(false).is_none();
    if cli_line.is_none() && !aws_image {
        return;
    }
    // Credentials the job brings itself: CI variables, or GitLab's OIDC ID token (`id_tokens:`
    // with `aws sts assume-role-with-web-identity`). Project-level CI/CD variables are not in
    // the file: the finding says so.
    if OWN_CREDENTIALS
        .iter()
        .any(|v| ctx.job.variable(v).is_some())
        || ctx.job.body.contains_key("id_tokens")
    {
        return;
    }
    let overwrite = ctx.job.variable(SERVICE_ACCOUNT_OVERWRITE_VARIABLE);
    if identity.job_has_identity(overwrite) {
        return;
    }
    let (what, at) = match &cli_line {
        Some(line) => {
            let needle = line.trim().to_owned();
            let at = ctx.locate(&["before_script", "after_script"], &|l| {
                l.contains(needle.as_str())
            });
            (format!("`{needle}` calls AWS with the AWS CLI"), at)
        }
        None => {
            let at = ctx.locate(&[], &|l| l.contains(image.as_str()));
            (format!("image {image} is the AWS CLI's"), at)
        }
    };
    let accounts = identity.accounts.join(", ");
    let (why, fix) = match (identity.accounts.as_slice(), overwrite) {
        ([], _) => (
            "the fleet's runners give jobs no AWS identity (no job role)".to_owned(),
            format!(
                "give the fleet a job role with `--job-role NAME=POLICY_ARN` (an IAM role for the job \
                 ServiceAccount NAME through IRSA; with one role every job runs as it, with several set \
                 `{SERVICE_ACCOUNT_OVERWRITE_VARIABLE}: NAME` in this job), or pass credentials as masked \
                 CI/CD variables"
            ),
        ),
        (_, None | Some("")) => (
            format!(
                "the job names no job ServiceAccount and the runners have no default one (job roles: {accounts})"
            ),
            format!(
                "set `{SERVICE_ACCOUNT_OVERWRITE_VARIABLE}: {}` (one of {accounts}) in this job's variables",
                identity.accounts[0]
            ),
        ),
        (_, Some(named)) => (
            format!(
                "{SERVICE_ACCOUNT_OVERWRITE_VARIABLE}={named} is not one of the fleet's job ServiceAccounts \
                 ({accounts}), so the pod has no role"
            ),
            format!(
                "name one of {accounts} in {SERVICE_ACCOUNT_OVERWRITE_VARIABLE}, or add `--job-role {named}=POLICY_ARN`"
            ),
        ),
    };
    ctx.push(
        at,
        Says {
            rule: Rule::AwsWithoutIdentity,
            severity: Severity::Warning,
            message: format!(
                "{what}, but {why}: it finds no credentials unless the project supplies them as CI/CD variables"
            ),
            constraint: "a Fargate pod has no instance metadata and EKS Pod Identity does not work on Fargate: \
                         a job's only AWS identity is its pod's ServiceAccount role (IRSA)",
            source: NO_IDENTITY_ON_FARGATE,
            fix,
        },
    );
}
