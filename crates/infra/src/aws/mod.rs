//! The real backend: aws-sdk-ec2 for the network, aws-sdk-eks + aws-sdk-iam + STS for the cluster.
//!
//! Configuration comes from aws-config's standard chain (profiles, `AWS_REGION`,
//! `AWS_ENDPOINT_URL`, SSO, credential processes). Multi-call creations (VPC + DNS attributes,
//! IGW + attachment, route table + route + associations, role + policies, access entry +
//! policy) roll back what they created when a later call fails, so a retry starts clean.

mod account;
pub mod actions;
mod ec2;
mod eks;

use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_smithy_runtime_api::client::result::SdkError;

pub use account::{AwsAccount, PRICING_API_REGION, on_demand_usd};
pub use ec2::AwsNetwork;
pub use eks::AwsCluster;
pub(crate) use eks::principal_arn;

use crate::error::Error;

/// Loads the shared AWS configuration through the standard chain. `region` overrides the
/// configured region; `AWS_ENDPOINT_URL` (e.g. a local moto server) is honoured.
pub async fn load_config(region: Option<&str>) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(region) = region {
        loader = loader.region(aws_config::Region::new(region.to_string()));
    }
    loader.load().await
}

/// Error codes meaning "this does not exist" across EC2, EKS and IAM.
fn is_not_found_code(code: &str) -> bool {
    code.ends_with(".NotFound")
        || matches!(
            code,
            "NatGatewayNotFound" | "ResourceNotFoundException" | "NoSuchEntity"
        )
}

/// Maps an SDK error to the crate's stable categories by its error code.
pub(crate) fn map_sdk_error<E, R>(
    action: impl Into<String>,
    resource: impl Into<String>,
    backend: &'static str,
    err: SdkError<E, R>,
) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let action = action.into();
    let resource = resource.into();
    let code = err.code().unwrap_or_default().to_string();
    let message = err.message().unwrap_or_default().to_string();
    match code.as_str() {
        c if is_not_found_code(c) => Error::NotFound { action, resource },
        "DependencyViolation"
        | "DeleteConflict"
        | "InvalidIPAddress.InUse"
        | "InvalidNetworkInterface.InUse" => Error::DependencyViolation {
            action,
            resource,
            message,
        },
        "ResourceInUseException" if message.contains("already exists") => {
            Error::AlreadyExists { action, resource }
        }
        "ResourceInUseException" => Error::Conflict {
            action,
            resource,
            message,
        },
        "EntityAlreadyExists"
        | "RouteAlreadyExists"
        | "InvalidGroup.Duplicate"
        | "ResourceAlreadyExists" => Error::AlreadyExists { action, resource },
        "Throttling"
        | "ThrottlingException"
        | "RequestLimitExceeded"
        | "TooManyRequestsException" => Error::Throttled { action },
        "AccessDenied"
        | "AccessDeniedException"
        | "UnauthorizedOperation"
        | "AuthFailure"
        | "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "ExpiredToken" => Error::PermissionDenied {
            action: format!("{action} ({resource})"),
            message,
        },
        _ => Error::Backend {
            action: format!("{action} ({resource})"),
            backend,
            source: Box::new(err),
        },
    }
}
