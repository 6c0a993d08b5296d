//! Bounded waiting and retrying on tokio's clock (so the in-memory backend runs in virtual time).

use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::progress::{Progress, ProgressEvent};
use crate::resource::{Resource, ResourceKind, ResourceState};

/// How long to wait for what, and how often to look.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WaitPolicy {
    /// First poll interval; doubles up to `max_poll_interval`.
    pub poll_interval: Duration,
    /// Longest poll interval.
    pub max_poll_interval: Duration,
    /// Bound on EKS cluster create/delete.
    pub cluster_timeout: Duration,
    /// Bound on one Fargate profile create/delete, including waiting for a busy cluster.
    pub fargate_profile_timeout: Duration,
    /// Bound on NAT gateway create/delete.
    pub nat_timeout: Duration,
    /// Bound on add-on create/delete.
    pub addon_timeout: Duration,
    /// Bound on retrying busy/throttled/dependency errors for other resources.
    pub retry_timeout: Duration,
    /// How often a `Waiting` progress event is emitted during long waits.
    pub progress_every: Duration,
    /// Bound on waiting for AWS to propagate what this run just created (a new IAM role
    /// usable by EKS, a new VPC visible to CreateSubnet). The Terraform AWS provider uses 2 min.
    #[serde(default = "default_propagation_timeout")]
    pub propagation_timeout: Duration,
    /// How long another run's changes to a stack must have settled (nothing created, nothing
    /// changed, no network resource being created) before this run reuses what it made.
    #[serde(default = "default_other_run_quiet")]
    pub other_run_quiet: Duration,
}

fn default_other_run_quiet() -> Duration {
    Duration::from_secs(30)
}

fn default_propagation_timeout() -> Duration {
    Duration::from_secs(2 * 60)
}

impl Default for WaitPolicy {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(5),
            max_poll_interval: Duration::from_secs(30),
            cluster_timeout: Duration::from_secs(30 * 60),
            fargate_profile_timeout: Duration::from_secs(15 * 60),
            nat_timeout: Duration::from_secs(10 * 60),
            addon_timeout: Duration::from_secs(15 * 60),
            retry_timeout: Duration::from_secs(10 * 60),
            progress_every: Duration::from_secs(30),
            propagation_timeout: default_propagation_timeout(),
            other_run_quiet: default_other_run_quiet(),
        }
    }
}

impl WaitPolicy {
    /// A fast policy for tests against servers that answer at once (moto): 50 ms polls, 30 s bounds.
    pub fn fast() -> Self {
        Self {
            poll_interval: Duration::from_millis(50),
            max_poll_interval: Duration::from_millis(200),
            cluster_timeout: Duration::from_secs(30),
            fargate_profile_timeout: Duration::from_secs(30),
            nat_timeout: Duration::from_secs(30),
            addon_timeout: Duration::from_secs(30),
            retry_timeout: Duration::from_secs(30),
            progress_every: Duration::from_secs(5),
            propagation_timeout: Duration::from_secs(20),
            other_run_quiet: Duration::from_secs(1),
        }
    }

    /// The bound for waiting on a resource of this kind.
    pub fn timeout_for(&self, kind: ResourceKind) -> Duration {
        match kind {
            ResourceKind::Cluster => self.cluster_timeout,
            ResourceKind::FargateProfile => self.fargate_profile_timeout,
            ResourceKind::NatGateway => self.nat_timeout,
            ResourceKind::Addon => self.addon_timeout,
            _ => self.retry_timeout,
        }
    }
}

/// Whether a kind goes through an asynchronous state that apply must wait out.
pub fn needs_wait(kind: ResourceKind) -> bool {
    matches!(
        kind,
        ResourceKind::Cluster
            | ResourceKind::FargateProfile
            | ResourceKind::NatGateway
            | ResourceKind::Addon
    )
}

/// Runs `op` until it succeeds or fails with a non-retryable error, backing off between
/// retryable failures (busy, throttled, dependents going away) until `timeout`.
pub async fn retry<T, F, Fut>(
    key: &str,
    timeout: Duration,
    policy: &WaitPolicy,
    progress: &dyn Progress,
    op: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    retry_if(key, timeout, policy, progress, op, Error::is_retryable).await
}

/// [`retry`] with the caller's rule for which errors are worth another attempt.
pub async fn retry_if<T, F, Fut>(
    key: &str,
    timeout: Duration,
    policy: &WaitPolicy,
    progress: &dyn Progress,
    mut op: F,
    retryable: impl Fn(&Error) -> bool,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let start = Instant::now();
    let mut delay = policy.poll_interval;
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        match op().await {
            Err(err) if retryable(&err) => {
                if start.elapsed() + delay > timeout {
                    tracing::warn!(key, error = %err, "giving up after {attempt} attempts");
                    return Err(err);
                }
                tracing::info!(key, error = %err, attempt, "retryable error, trying again in {delay:?}");
                progress.event(&ProgressEvent::Retrying {
                    key: key.to_string(),
                    reason: err.to_string(),
                    attempt,
                });
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(policy.max_poll_interval);
            }
            other => return other,
        }
    }
}

/// Polls `describe` until `done` says so, failing on [`ResourceState::Failed`] and after `timeout`.
/// Transient describe errors ([`Error::is_transient`]: throttling, busy, 5xx and transport
/// failures that outlasted the SDK's own retries) are polled through within `timeout`.
///
/// Retry layers: the AWS SDK owns per-call retries (its standard mode); this engine retries
/// only states that take time to clear (busy, dependents, throttling beyond the SDK, AWS's
/// eventual consistency) and polls through transient errors while waiting. Nothing above
/// the engine retries infrastructure calls again.
pub async fn wait_for<F, Fut>(
    key: &str,
    waiting_for: &str,
    timeout: Duration,
    policy: &WaitPolicy,
    progress: &dyn Progress,
    mut describe: F,
    done: impl Fn(Option<&Resource>) -> bool,
) -> Result<Option<Resource>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<Resource>>>,
{
    let start = Instant::now();
    let mut delay = policy.poll_interval;
    let mut last_report = start;
    loop {
        match describe().await {
            Ok(current) => {
                if let Some(res) = current
                    .as_ref()
                    .filter(|r| r.state == ResourceState::Failed)
                {
                    return Err(Error::Failed {
                        resource: res.describe(),
                        message: format!("while waiting for {waiting_for}"),
                    });
                }
                if done(current.as_ref()) {
                    return Ok(current);
                }
            }
            // Throttled, busy or a 5xx burst while looking: a wait only reads, so it keeps
            // polling through transient errors; the bound below still holds.
            Err(err) if err.is_transient() => {
                tracing::info!(key, error = %err, "describe failed transiently, polling again")
            }
            Err(err) => return Err(err),
        }
        let elapsed = start.elapsed();
        if elapsed >= timeout {
            return Err(Error::Timeout {
                waiting_for: waiting_for.to_string(),
                waited: elapsed,
            });
        }
        if last_report.elapsed() >= policy.progress_every {
            last_report = Instant::now();
            progress.event(&ProgressEvent::Waiting {
                key: key.to_string(),
                waiting_for: waiting_for.to_string(),
                elapsed,
            });
        }
        tokio::time::sleep(
            delay
                .min(timeout.saturating_sub(elapsed))
                .max(Duration::from_millis(1)),
        )
        .await;
        delay = (delay * 2).min(policy.max_poll_interval);
    }
}
