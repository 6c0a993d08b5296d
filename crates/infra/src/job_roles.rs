//! Job roles: an IAM role per `--job-role NAME=POLICY_ARN` that the job ServiceAccount `NAME`
//! in the runner namespace assumes through the cluster's OIDC provider (IRSA), with the managed
//! policies the user named attached.
//!
//! IRSA, not EKS Pod Identity: the Pod Identity agent is a DaemonSet and Fargate runs none (EKS
//! User Guide, "Learn how EKS Pod Identity grants pods access to AWS services", EKS Pod
//! Identity considerations: not available for pods running on AWS Fargate). The trust policy is
//! [`crate::oidc::irsa_trust_policy`]: `sts:AssumeRoleWithWebIdentity` for exactly
//! `system:serviceaccount:<namespace>:<NAME>` with audience `sts.amazonaws.com` (EKS User Guide,
//! "Assign IAM roles to Kubernetes service accounts", "Configure the role's trust policy").

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The plan step key prefix of job roles (`role/job/<NAME>`).
pub const KEY_PREFIX: &str = "role/job/";
/// Most job roles a stack takes: each is one runner ServiceAccount the overwrite regex admits,
/// and ten managed policies per role is IAM's default quota ("IAM and AWS STS quotas": managed
/// policies attached to an IAM role, 10).
pub const MAX_JOB_ROLES: usize = 10;
/// Most managed policies per role (IAM's default quota, as above).
pub const MAX_POLICIES_PER_ROLE: usize = 10;
/// Longest IAM role name (IAM API Reference, `CreateRole`, `RoleName`: 1-64 characters).
pub const MAX_ROLE_NAME_LEN: usize = 64;

/// One job role: the ServiceAccount name jobs run as, and the managed policies of its role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRole {
    /// The job ServiceAccount's name (a DNS-1123 label), also the role name's last part.
    pub name: String,
    /// Managed policy ARNs attached to the role (AWS managed or the account's own).
    pub policy_arns: Vec<String>,
}

/// The step key of the role of job role `name`.
pub fn key(name: &str) -> String {
    format!("{KEY_PREFIX}{name}")
}

/// The IAM role of job role `name` in a stack: `<stack>-<region>-job-<name>`, at path `/`.
pub fn role_name(stack: &str, region: &str, name: &str) -> String {
    format!("{stack}-{region}-job-{name}")
}

/// The ARN of that role in `account` (roles are created at path `/`).
pub fn role_arn(partition: &str, account: &str, role_name: &str) -> String {
    format!("arn:{partition}:iam::{account}:role/{role_name}")
}

/// Parses `NAME=POLICY_ARN` (the `--job-role` flag's value).
pub fn parse_flag(text: &str) -> Result<(String, String)> {
    match text.split_once('=') {
        Some((name, arn)) if !name.is_empty() && !arn.is_empty() => {
            Ok((name.trim().to_string(), arn.trim().to_string()))
        }
        _ => Err(Error::invalid(
            "job_roles",
            format!(
                "{text:?} is not NAME=POLICY_ARN; write e.g. deploy=arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess"
            ),
        )),
    }
}

/// Groups `(NAME, POLICY_ARN)` pairs into job roles in first-seen order: a name given twice
/// gets both policies.
pub fn group(pairs: impl IntoIterator<Item = (String, String)>) -> Vec<JobRole> {
    let mut roles: Vec<JobRole> = Vec::new();
    for (name, arn) in pairs {
        match roles.iter_mut().find(|r| r.name == name) {
            Some(role) if role.policy_arns.contains(&arn) => {}
            Some(role) => role.policy_arns.push(arn),
            None => roles.push(JobRole {
                name,
                policy_arns: vec![arn],
            }),
        }
    }
    roles
}

/// Checks the job roles of a stack: names are DNS-1123 labels (ServiceAccount names the
/// runner's overwrite regex can name) whose role name fits IAM, each policy a managed policy ARN
/// of the stack's partition, within IAM's quotas.
pub fn validate(roles: &[JobRole], stack: &str, region: &str, partition: &str) -> Result<()> {
    let bad = |msg: String| Err(Error::invalid("job_roles", msg));
    if roles.len() > MAX_JOB_ROLES {
        return bad(format!(
            "{} job roles; give at most {MAX_JOB_ROLES}",
            roles.len()
        ));
    }
    for (i, role) in roles.iter().enumerate() {
        let name = &role.name;
        if roles[..i].iter().any(|r| &r.name == name) {
            return bad(format!("job role {name:?} is given twice"));
        }
        if !is_dns_label(name) {
            return bad(format!(
                "{name:?} is not a ServiceAccount name glrunner accepts; use lowercase letters, digits and '-', starting and ending with a letter or digit"
            ));
        }
        let iam_name = role_name(stack, region, name);
        if iam_name.len() > MAX_ROLE_NAME_LEN {
            return bad(format!(
                "job role {name:?} makes the IAM role name {iam_name:?} ({} characters; IAM allows {MAX_ROLE_NAME_LEN}); use a shorter NAME",
                iam_name.len()
            ));
        }
        let policies = &role.policy_arns;
        if policies.is_empty() || policies.len() > MAX_POLICIES_PER_ROLE {
            return bad(format!(
                "job role {name:?} has {} policies; give 1-{MAX_POLICIES_PER_ROLE}",
                policies.len()
            ));
        }
        for arn in policies {
            validate_policy_arn(name, arn, partition)?;
        }
    }
    Ok(())
}

/// A managed policy ARN: `arn:<partition>:iam::<aws|12 digits>:policy/<path/>name` (IAM User
/// Guide, "IAM identifiers", ARNs; policy names are `[\w+=,.@-]+`, 1-128 characters).
fn validate_policy_arn(role: &str, arn: &str, partition: &str) -> Result<()> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let account_ok =
        |a: &str| a == "aws" || (a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()));
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.len() <= 128
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c))
    };
    let ok = parts.len() == 6
        && parts[0] == "arn"
        && parts[1] == partition
        && parts[2] == "iam"
        && parts[3].is_empty()
        && account_ok(parts[4])
        && parts[5]
            .strip_prefix("policy/")
            .and_then(|p| p.rsplit('/').next())
            .is_some_and(name_ok);
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "job_roles",
            format!(
                "job role {role:?}: {arn:?} is not a managed policy ARN in partition {partition}; write arn:{partition}:iam::aws:policy/NAME or arn:{partition}:iam::ACCOUNT:policy/NAME"
            ),
        ))
    }
}

/// A DNS-1123 label (Kubernetes API conventions, "Object names and IDs": at most 63 characters
/// of lowercase letters, digits and `-`, starting and ending with a letter or digit).
fn is_dns_label(name: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| alnum(c) || c == '-')
        && name.starts_with(alnum)
        && name.ends_with(alnum)
}

/// The job ServiceAccounts of a stack in `account`: `(NAME, role ARN)` per job role, what the
/// flow annotates each ServiceAccount with (`eks.amazonaws.com/role-arn`).
pub fn service_accounts(spec: &crate::spec::StackSpec, account: &str) -> Vec<(String, String)> {
    spec.job_roles
        .iter()
        .map(|role| {
            let name = role_name(spec.stack.as_str(), &spec.region, &role.name);
            (
                role.name.clone(),
                role_arn(spec.partition(), account, &name),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(name: &str, arns: &[&str]) -> JobRole {
        JobRole {
            name: name.into(),
            policy_arns: arns.iter().map(|a| a.to_string()).collect(),
        }
    }

    const S3_READ: &str = "arn:aws:iam::aws:policy/AmazonS3ReadOnlyAccess";

    #[test]
    fn flags_group_by_name_and_bad_ones_name_the_shape() {
        let pairs = [
            "deploy=arn:aws:iam::aws:policy/A",
            "read-only=arn:aws:iam::123456789012:policy/team/B",
            "deploy=arn:aws:iam::aws:policy/C",
            "deploy=arn:aws:iam::aws:policy/A",
        ]
        .map(|p| parse_flag(p).unwrap());
        let roles = group(pairs);
        assert_eq!(roles.len(), 2);
        assert_eq!(roles[0].policy_arns.len(), 2);
        for bad in ["deploy", "=arn", "deploy="] {
            let err = parse_flag(bad).unwrap_err().to_string();
            assert!(err.contains("NAME=POLICY_ARN"), "{err}");
        }
    }

    #[test]
    fn names_policies_and_quotas_are_checked() {
        let ok = [role("deploy", &[S3_READ])];
        validate(&ok, "glrunner", "us-east-1", "aws").unwrap();
        let long = "x".repeat(28);
        let cases = [
            (vec![role("Deploy", &[S3_READ])], "ServiceAccount name"),
            (vec![role("de_ploy", &[S3_READ])], "ServiceAccount name"),
            (vec![role("deploy", &[])], "policies"),
            (
                vec![role("deploy", &["arn:aws:iam::aws:role/x"])],
                "managed policy",
            ),
            (
                vec![role("deploy", &["arn:aws-cn:iam::aws:policy/A"])],
                "partition aws",
            ),
            (
                vec![role("deploy", &["arn:aws:iam::12:policy/A"])],
                "managed policy",
            ),
            (vec![role("d", &[S3_READ]), role("d", &[S3_READ])], "twice"),
            (vec![role(&"a".repeat(30), &[S3_READ])], "IAM allows 64"),
        ];
        for (roles, needle) in cases {
            let err = validate(&roles, &long, "ap-southeast-1", "aws")
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{needle}: {err}");
            assert!(err.contains("job_roles"), "{err}");
        }
        let many: Vec<_> = (0..=MAX_JOB_ROLES)
            .map(|i| role(&format!("r{i}"), &[S3_READ]))
            .collect();
        assert!(validate(&many, "ci", "us-east-1", "aws").is_err());
    }

    #[test]
    fn service_accounts_name_the_role_glrunner_creates() {
        let mut spec =
            crate::spec::StackSpec::new(crate::spec::StackName::new("ci").unwrap(), "eu-west-1");
        spec.job_roles = vec![role("deploy", &[S3_READ])];
        assert_eq!(
            service_accounts(&spec, "123456789012"),
            [(
                "deploy".to_string(),
                "arn:aws:iam::123456789012:role/ci-eu-west-1-job-deploy".to_string()
            )]
        );
    }
}
