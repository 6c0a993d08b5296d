//! The cluster's IAM OpenID Connect provider and IAM roles for service accounts (IRSA).
//!
//! EKS gives every cluster an OIDC issuer (`cluster.identity.oidc.issuer` of DescribeCluster:
//! EKS API Reference, data types `Identity` → `OIDC` → `issuer`, "The issuer URL for the OIDC
//! identity provider"). IAM trusts tokens of that issuer once an OIDC provider exists for its
//! URL (IAM API Reference, CreateOpenIDConnectProvider: `Url` must begin with `https://`,
//! `ClientIDList` names the audiences; `ThumbprintList` is optional, IAM then keeps the
//! issuer's top intermediate CA thumbprint itself). The provider's ARN is
//! `arn:<partition>:iam::<account>:oidc-provider/<issuer without https://>` (EKS User Guide,
//! "Create an IAM OIDC provider for your cluster"). A role a pod may assume through it trusts
//! the provider as a federated principal for `sts:AssumeRoleWithWebIdentity`, with
//! `StringEquals` on `<issuer host/path>:sub` (`system:serviceaccount:<namespace>:<name>`)
//! and `<issuer host/path>:aud` (`sts.amazonaws.com`) (EKS User Guide, "Assign IAM roles to
//! Kubernetes service accounts", the trust policy of step "Create and associate IAM Role").
//!
//! Fargate has no EKS Pod Identity (EKS User Guide, "Learn how EKS Pod Identity grants pods
//! access to AWS services", considerations: "Pod Identity isn't available on AWS Fargate"),
//! so IRSA is the identity of both the runner's cache and the jobs.

use crate::error::{Error, Result};
use crate::provider::ClusterProvisioner;
use crate::resource::{Resource, ResourceKind};

/// The plan step (and `glrunner.io/key` tag) of the stack's OIDC provider.
pub const OIDC_PROVIDER_KEY: &str = "oidc-provider";

/// The audience (client id) of the tokens EKS projects for IRSA, and the one client id of the
/// provider (EKS User Guide, "Create an IAM OIDC provider for your cluster": "For Audience,
/// enter sts.amazonaws.com").
pub const STS_AUDIENCE: &str = "sts.amazonaws.com";

/// The issuer URL without its scheme: what the provider ARN ends with and what the IRSA
/// condition keys start with (`oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE`).
pub fn issuer_host_path(issuer: &str) -> &str {
    issuer
        .strip_prefix("https://")
        .unwrap_or(issuer)
        .trim_end_matches('/')
}

/// The ARN IAM gives the OIDC provider of `issuer` in `account` of `partition`.
pub fn provider_arn(partition: &str, account: &str, issuer: &str) -> String {
    format!(
        "arn:{partition}:iam::{account}:oidc-provider/{}",
        issuer_host_path(issuer)
    )
}

/// The issuer's host and path inside an OIDC provider ARN (`None` if it is not one).
pub fn host_path_of_provider_arn(arn: &str) -> Option<&str> {
    arn.split_once(":oidc-provider/").map(|(_, rest)| rest)
}

/// `system:serviceaccount:<namespace>:<name>`: the `sub` claim of a ServiceAccount's token.
pub fn service_account_subject(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// The trust policy of a role that exactly one ServiceAccount may assume through the OIDC
/// provider `provider_arn`: `StringEquals` on the `sub` and the `aud` (see the module docs).
pub fn irsa_trust_policy(provider_arn: &str, subject: &str) -> Result<String> {
    let host = host_path_of_provider_arn(provider_arn).ok_or_else(|| {
        Error::invalid(
            "oidc-provider",
            format!("{provider_arn} is not an IAM OIDC provider ARN"),
        )
    })?;
    let mut condition = serde_json::Map::new();
    condition.insert(format!("{host}:sub"), subject.into());
    condition.insert(format!("{host}:aud"), STS_AUDIENCE.into());
    Ok(serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Federated": provider_arn },
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": { "StringEquals": condition }
        }]
    })
    .to_string())
}

/// The IAM OIDC provider of a cluster glrunner did not create (a brought EKS cluster): found
/// by the ARN its issuer gives, and reused; glrunner neither creates nor deletes it (it is the
/// cluster owner's, account-wide, and other workloads' roles trust it). A cluster without one
/// is [`Error::InvalidInput`] naming how to create it.
pub async fn brought_provider(cluster: &dyn ClusterProvisioner, name: &str) -> Result<Resource> {
    let access = cluster.cluster_access(name).await?;
    let issuer = access.oidc_issuer.as_deref().ok_or_else(|| {
        Error::invalid(
            "cluster",
            format!("EKS cluster {name} reports no OIDC issuer (cluster.identity.oidc.issuer), so IAM roles for service accounts cannot trust it"),
        )
    })?;
    let (partition, account) = access
        .arn
        .split(':')
        .nth(1)
        .zip(crate::plan::account_of(&access.arn))
        .ok_or_else(|| {
            Error::invalid(
                "cluster",
                format!(
                    "EKS cluster {name} has no ARN to take its account from: {:?}",
                    access.arn
                ),
            )
        })?;
    let arn = provider_arn(partition, account, issuer);
    match cluster.describe(ResourceKind::OidcProvider, &arn).await? {
        Some(found) => Ok(found),
        None => Err(Error::invalid(
            "cluster",
            format!(
                "EKS cluster {name} has no IAM OIDC provider for its issuer {issuer}; create it once (eksctl utils associate-iam-oidc-provider --cluster {name} --approve, or IAM CreateOpenIDConnectProvider with client id {STS_AUDIENCE}): glrunner does not create account-wide identity providers for a cluster it did not make"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_policy_names_exactly_one_service_account_and_the_sts_audience() {
        let arn = provider_arn(
            "aws",
            "123456789012",
            "https://oidc.eks.us-east-1.amazonaws.com/id/ABC",
        );
        assert_eq!(
            arn,
            "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC"
        );
        let doc: serde_json::Value = serde_json::from_str(
            &irsa_trust_policy(&arn, &service_account_subject("ci", "runner")).unwrap(),
        )
        .unwrap();
        let statement = &doc["Statement"][0];
        assert_eq!(statement["Principal"]["Federated"], arn.as_str());
        assert_eq!(statement["Action"], "sts:AssumeRoleWithWebIdentity");
        assert_eq!(
            statement["Condition"]["StringEquals"],
            serde_json::json!({
                "oidc.eks.us-east-1.amazonaws.com/id/ABC:sub": "system:serviceaccount:ci:runner",
                "oidc.eks.us-east-1.amazonaws.com/id/ABC:aud": "sts.amazonaws.com",
            })
        );
        assert!(irsa_trust_policy("arn:aws:iam::1:role/x", "s").is_err());
    }
}
