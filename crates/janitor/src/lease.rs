//! Leader election on a `coordination.k8s.io/v1` Lease, so two janitor replicas never both act.
//!
//! The algorithm is client-go's (`tools/leaderelection/leaderelection.go`, `tryAcquireOrRenew`):
//! read the Lease; take it when it is free or its holder has not renewed it for
//! `leaseDurationSeconds`; write it back with the `resourceVersion` read, so of two replicas
//! racing for it the apiserver lets exactly one win (409 Conflict for the other). A replica acts
//! only until `renew_deadline` after the start of its last successful write, which is shorter
//! than the `lease_duration` another replica must wait before it may take over.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, PostParams};

use crate::{Error, Result};

/// Which Lease, who we are, and its timings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LeaseConfig {
    /// The Lease's namespace (the janitor's own).
    pub namespace: String,
    /// The Lease's name.
    pub name: String,
    /// This replica's identity (in a pod: its name, from the downward API).
    pub identity: String,
    /// How long a holder's claim lasts without renewal (`leaseDurationSeconds`; client-go's
    /// default 15 s).
    pub lease_duration: Duration,
    /// How long after the start of a successful renewal this replica keeps acting (client-go's
    /// default 10 s); must be below `lease_duration`.
    pub renew_deadline: Duration,
    /// How often to try to acquire or renew (client-go's default 2 s).
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// client-go's defaults: lease 15 s, renew deadline 10 s, retry every 2 s.
    pub fn new(
        namespace: impl Into<String>,
        name: impl Into<String>,
        identity: impl Into<String>,
    ) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    /// Sets the three timings; `renew_deadline` must be shorter than `lease_duration`.
    pub fn with_timings(
        mut self,
        lease_duration: Duration,
        renew_deadline: Duration,
        retry_period: Duration,
    ) -> Result<Self> {
        if renew_deadline >= lease_duration || lease_duration.as_secs() == 0 {
            return Err(Error::invalid(
                "lease timings",
                format!(
                    "the renew deadline ({renew_deadline:?}) must be shorter than the lease duration \
                     ({lease_duration:?}, at least 1 s), or two replicas could act at once"
                ),
            ));
        }
        self.lease_duration = lease_duration;
        self.renew_deadline = renew_deadline;
        self.retry_period = retry_period;
        Ok(self)
    }
}

/// Takes and renews the Lease; says whether this replica may act right now.
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaseConfig,
    leading_until: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for LeaderElector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderElector")
            .field("config", &self.config)
            .field("leading", &self.is_leading())
            .finish()
    }
}

fn lease_error(action: &str, config: &LeaseConfig, e: kube::Error) -> Error {
    let resource = format!("lease {}/{}", config.namespace, config.name);
    crate::k8s::forbidden_or_backend(action, &resource, e)
}

impl LeaderElector {
    /// An elector over `config`'s Lease through `client`.
    pub fn new(client: Client, config: LeaseConfig) -> Self {
        Self {
            api: Api::namespaced(client, &config.namespace),
            config,
            leading_until: Mutex::new(None),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &LeaseConfig {
        &self.config
    }

    /// Whether this replica holds the Lease now (within the renew deadline of its last renewal).
    pub fn is_leading(&self) -> bool {
        self.leading_until
            .lock()
            .map(|until| until.is_some_and(|t| Instant::now() < t))
            .unwrap_or(false)
    }

    fn set_leading(&self, until: Option<Instant>) {
        if let Ok(mut guard) = self.leading_until.lock() {
            *guard = until;
        }
    }

    fn spec(&self, now: Timestamp, previous: Option<&LeaseSpec>) -> LeaseSpec {
        let ours = previous
            .and_then(|s| s.holder_identity.as_deref())
            .is_some_and(|h| h == self.config.identity);
        let transitions = previous.and_then(|s| s.lease_transitions).unwrap_or(0);
        LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(
                i32::try_from(self.config.lease_duration.as_secs()).unwrap_or(i32::MAX),
            ),
            acquire_time: if ours {
                previous.and_then(|s| s.acquire_time.clone())
            } else {
                Some(MicroTime(now))
            },
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(if ours || previous.is_none() {
                transitions
            } else {
                transitions + 1
            }),
            ..LeaseSpec::default()
        }
    }

    /// One attempt to take or renew the Lease. `Ok(true)`: this replica leads until the renew
    /// deadline; `Ok(false)`: another replica holds it (or won the race for it).
    pub fn try_acquire_or_renew(&self) -> futures::future::BoxFuture<'_, Result<bool>> {
        // Boxed here, where the lifetimes are concrete, so callers' spawned futures stay `Send`.
        Box::pin(self.acquire_or_renew())
    }

    async fn acquire_or_renew(&self) -> Result<bool> {
        let started = Instant::now();
        let now = Timestamp::now();
        let lease = match self.api.get_opt(&self.config.name).await {
            Ok(lease) => lease,
            Err(e) => {
                self.set_leading(None);
                return Err(lease_error("read", &self.config, e));
            }
        };
        let result = match lease {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.config.name.clone()),
                        namespace: Some(self.config.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(self.spec(now, None)),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            Some(lease) => {
                let spec = lease.spec.clone().unwrap_or_default();
                let holder = spec.holder_identity.as_deref().unwrap_or_default();
                let duration = jiff::SignedDuration::from_secs(i64::from(
                    spec.lease_duration_seconds.unwrap_or(0).max(0),
                ));
                let expired = spec
                    .renew_time
                    .as_ref()
                    .is_none_or(|t| t.0.checked_add(duration).is_ok_and(|end| end < now));
                if holder != self.config.identity && !holder.is_empty() && !expired {
                    self.set_leading(None);
                    return Ok(false);
                }
                let updated = Lease {
                    metadata: lease.metadata.clone(),
                    spec: Some(self.spec(now, Some(&spec))),
                };
                // The resourceVersion read makes this a compare-and-swap.
                self.api
                    .replace(&self.config.name, &PostParams::default(), &updated)
                    .await
            }
        };
        match result {
            Ok(_) => {
                self.set_leading(Some(started + self.config.renew_deadline));
                Ok(true)
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                self.set_leading(None);
                Ok(false)
            }
            Err(e) => {
                self.set_leading(None);
                Err(lease_error("renew", &self.config, e))
            }
        }
    }

    /// Gives the Lease up (as client-go's `ReleaseOnCancel`): stops acting at once, then clears
    /// the holder so another replica takes over without waiting out the lease duration.
    pub fn release(&self) -> futures::future::BoxFuture<'_, Result<()>> {
        Box::pin(self.give_up())
    }

    async fn give_up(&self) -> Result<()> {
        let was_leading = self.is_leading();
        self.set_leading(None);
        if !was_leading {
            return Ok(());
        }
        let Some(lease) = self
            .api
            .get_opt(&self.config.name)
            .await
            .map_err(|e| lease_error("read", &self.config, e))?
        else {
            return Ok(());
        };
        let mut spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        let released = Lease {
            metadata: lease.metadata,
            spec: Some(spec),
        };
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &released)
            .await
        {
            Ok(_) | Err(kube::Error::Api(_)) => Ok(()),
            Err(e) => Err(lease_error("release", &self.config, e)),
        }
    }
}
