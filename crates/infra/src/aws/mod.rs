//! The real backend: aws-sdk-ec2 for the network, aws-sdk-eks + aws-sdk-iam + STS for the cluster.
//!
//! Configuration comes from aws-config's standard chain (profiles, `AWS_REGION`,
//! `AWS_ENDPOINT_URL`, SSO, credential processes). Multi-call creations (VPC + DNS attributes,
//! IGW + attachment, route table + route + associations, role + policies, access entry +
//! policy) roll back what they created when a later call fails, so a retry starts clean.

mod account;
pub mod actions;
mod cache;
mod ec2;
mod eks;
mod image_cache;
mod oidc;
mod pod_identity;

use std::future::Future;
use std::time::Duration;

use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_smithy_runtime_api::client::result::SdkError;

pub use account::{AwsAccount, PRICING_API_REGION, on_demand_usd};
pub use ec2::AwsNetwork;
pub use eks::{AwsCluster, ROLE_PATH};
pub use pod_identity::AwsPodIdentity;

/// How long a multi-call creation keeps retrying `*.NotFound` for the id it has just created
/// (EC2 eventual consistency: ModifyVpcAttribute right after CreateVpc, AttachInternetGateway
/// right after CreateInternetGateway, CreateRoute right after CreateRouteTable).
pub const CONSISTENCY_WINDOW: Duration = Duration::from_secs(2 * 60);

/// Runs `op` again while it answers `*.NotFound`, within `window`: for calls naming an id the
/// same creation made moments ago, where NotFound means "not propagated yet".
pub(crate) async fn until_visible<T, E, R, F, Fut>(
    what: &str,
    window: Duration,
    mut op: F,
) -> Result<T, SdkError<E, R>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SdkError<E, R>>>,
    E: ProvideErrorMetadata,
{
    let start = tokio::time::Instant::now();
    let mut delay = Duration::from_millis(250);
    loop {
        match op().await {
            Err(err)
                if err.code().is_some_and(|c| c.ends_with(".NotFound"))
                    && start.elapsed() + delay <= window =>
            {
                tracing::info!(what, code = ?err.code(), "not visible yet (EC2 eventual consistency), trying again in {delay:?}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            other => return other,
        }
    }
}

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
            "NatGatewayNotFound"
                | "ResourceNotFoundException"
                | "NoSuchEntity"
                | "PullThroughCacheRuleNotFoundException"
                | "RepositoryNotFoundException"
                | "SecretNotFoundException"
        )
}

/// Error codes of AWS's 5xx answers (EC2 `InternalError`/`Unavailable`, EKS `ServerException`,
/// IAM `ServiceFailure`, the generic `InternalFailure`/`ServiceUnavailable`).
fn is_unavailable_code(code: &str) -> bool {
    matches!(
        code,
        "InternalError"
            | "InternalFailure"
            | "InternalServerError"
            | "ServerException"
            | "ServiceFailure"
            | "ServiceUnavailable"
            | "ServiceUnavailableException"
            | "Unavailable"
    )
}

/// A request that got no (complete) answer: the connection failed, timed out, or the
/// response could not be read.
fn is_transport_failure<E, R>(err: &SdkError<E, R>) -> bool {
    matches!(
        err,
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
    )
}

/// Messages with which EKS refuses an IAM role that IAM has not propagated yet (the same
/// messages the Terraform AWS provider retries on for CreateCluster and CreateFargateProfile).
const PROPAGATION_MESSAGES: &[&str] = &[
    "could not be assumed because it does not exist or the trusted entity is not correct",
    "doesn't have the Amazon EKS Managed Policies associated with it",
    "Misconfigured PodExecutionRole Trust Property",
];

/// Whether an `InvalidParameterException` is IAM eventual consistency rather than a real fault.
fn is_propagation(code: &str, message: &str) -> bool {
    code == "InvalidParameterException" && PROPAGATION_MESSAGES.iter().any(|m| message.contains(m))
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
        // EKS answers ClientException "No cluster found for name: x." on calls under a cluster
        // that is gone (ListFargateProfiles, ListAddons...).
        "ClientException" if message.contains("No cluster found") => {
            Error::NotFound { action, resource }
        }
        c if is_propagation(c, &message) => Error::Propagating {
            action,
            resource,
            message,
        },
        "DependencyViolation"
        | "DeleteConflict"
        | "InvalidIPAddress.InUse"
        | "InvalidNetworkInterface.InUse" => Error::DependencyViolation {
            action,
            resource,
            message,
        },
        // "Addon already exists.", "The specified access entry resource is already in use on
        // this cluster.": it exists, reuse it; other ResourceInUse messages mean busy.
        "ResourceInUseException"
            if message.contains("already exists") || message.contains("already in use") =>
        {
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
        | "ResourceAlreadyExists"
        | "PullThroughCacheRuleAlreadyExistsException"
        | "ResourceExistsException" => Error::AlreadyExists { action, resource },
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
        // 5xx answers and transport failures that outlasted the SDK's own retries.
        c if is_unavailable_code(c) || is_transport_failure(&err) => Error::Unavailable {
            action: format!("{action} ({resource})"),
            backend,
            source: Box::new(err),
        },
        _ => Error::Backend {
            action: format!("{action} ({resource})"),
            backend,
            source: Box::new(err),
        },
    }
}
