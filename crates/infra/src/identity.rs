//! The caller's identity: from what STS `GetCallerIdentity` says to the IAM principal an EKS
//! access entry accepts.

use crate::error::{Error, Result};

/// What kind of principal is calling, as told by its STS caller ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// An IAM user: its ARN (path included) is usable as is.
    IamUser {
        /// `arn:aws:iam::123456789012:user/path/name`.
        arn: String,
    },
    /// A session of an assumed IAM role. The STS ARN drops the role's path, so the role's
    /// real ARN must be read with `iam:GetRole` (IAM Identity Center roles live under
    /// `/aws-reserved/sso.amazonaws.com/<region>/`).
    AssumedRole {
        /// Partition, e.g. `aws`.
        partition: String,
        /// Account id.
        account: String,
        /// Role name (no path).
        role_name: String,
    },
}

/// What to do when the caller is neither an IAM role nor an IAM user.
///
/// `--admin-principal` cannot help: glrunner itself talks to the cluster it creates (helm, the
/// janitor, the cluster checks) as its caller, so the caller needs an access entry of its own,
/// and an access entry's principal is an IAM role or an IAM user (EKS API reference,
/// CreateAccessEntry `principalArn`; EKS User Guide, "Create access entries"). The
/// permission check likewise simulates only users, groups and roles
/// (`iam:SimulatePrincipalPolicy`, PolicySourceArn).
pub const CALLER_FIX: &str = "run glrunner as an IAM role: create one with glrunner's policy (README, \"Permissions\") and assume it (a profile with role_arn and source_profile, `aws sts assume-role`, an IAM Identity Center permission set via `aws sso login`, or the CI runner's instance or OIDC role); an IAM user with access keys works too";

/// Classifies an STS caller ARN. The account root and federated users cannot be given
/// access through an access entry: they are [`Error::InvalidInput`] with what to use instead
/// ([`CALLER_FIX`]). An assumed-role session is its role; the role's path, which the session
/// ARN drops, is read with `iam:GetRole` by the callers that need the role's real ARN.
pub fn classify_caller(arn: &str) -> Result<Caller> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    if parts.len() != 6 || parts[0] != "arn" {
        return Err(Error::invalid(
            "caller",
            format!("the AWS caller ARN {arn:?} is not an ARN; {CALLER_FIX}"),
        ));
    }
    let (partition, service, account, resource) = (parts[1], parts[2], parts[4], parts[5]);
    match (service, resource.split_once('/')) {
        ("iam", Some(("user", _))) => Ok(Caller::IamUser {
            arn: arn.to_string(),
        }),
        ("sts", Some(("assumed-role", rest))) => {
            let role_name = rest.split('/').next().unwrap_or_default();
            if role_name.is_empty() {
                return Err(Error::invalid(
                    "caller",
                    format!("the assumed-role ARN {arn:?} names no role; {CALLER_FIX}"),
                ));
            }
            Ok(Caller::AssumedRole {
                partition: partition.to_string(),
                account: account.to_string(),
                role_name: role_name.to_string(),
            })
        }
        ("iam", None) if resource == "root" => Err(Error::invalid(
            "caller",
            format!(
                "glrunner is running as the root user of account {account} ({arn}): an EKS access entry cannot name the root user, so glrunner could not reach the cluster it creates, and --admin-principal does not change that (glrunner itself needs the access); AWS also advises against root credentials for everyday tasks; {CALLER_FIX}"
            ),
        )),
        ("sts", Some(("federated-user", _))) => Err(Error::invalid(
            "caller",
            format!(
                "glrunner is running as a federated user ({arn}, a session from sts:GetFederationToken): an EKS access entry cannot name it and its policies cannot be simulated, so glrunner could not reach the cluster it creates, and --admin-principal does not change that; {CALLER_FIX}"
            ),
        )),
        _ => Err(Error::invalid(
            "caller",
            format!("the AWS caller {arn} is neither an IAM role nor an IAM user; {CALLER_FIX}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callers() {
        assert_eq!(
            classify_caller("arn:aws:iam::123456789012:user/team/ci").unwrap(),
            Caller::IamUser {
                arn: "arn:aws:iam::123456789012:user/team/ci".into()
            }
        );
        assert_eq!(
            classify_caller(
                "arn:aws-us-gov:sts::123456789012:assumed-role/AWSReservedSSO_Admin_0123/me@example.com"
            )
            .unwrap(),
            Caller::AssumedRole {
                partition: "aws-us-gov".into(),
                account: "123456789012".into(),
                role_name: "AWSReservedSSO_Admin_0123".into()
            }
        );
        for (arn, needle) in [
            ("arn:aws:iam::123456789012:root", "root user"),
            (
                "arn:aws:sts::123456789012:federated-user/bob",
                "federated user",
            ),
            ("nonsense", "not an ARN"),
        ] {
            let err = classify_caller(arn).unwrap_err();
            assert!(
                matches!(err, Error::InvalidInput { ref message, .. } if message.contains(needle) && message.contains("run glrunner as an IAM role")),
                "{arn}: {err}"
            );
            // The old advice (name other admins with --admin-principal) cannot help: glrunner
            // itself needs the access. The message may mention the flag only to say so.
            if let Error::InvalidInput { message, .. } = &err {
                assert!(
                    !message.contains("--admin-principal")
                        || message.contains("--admin-principal does not"),
                    "{arn}: {message}"
                );
            }
        }
    }
}
