//! Teardown: everything found by tag, deleted in dependency order, then a scan for leftovers.

use std::sync::Mutex;

use futures::stream::{FuturesUnordered, StreamExt};
use serde::Serialize;
use tokio::time::Instant;

use crate::apply::Engine;
use crate::error::{Error, Result};
use crate::progress::ProgressEvent;
use crate::resource::{Resource, ResourceKind};
use crate::spec::StackName;
use crate::wait::{needs_wait, retry_if};

/// Deletion order. ENIs are swept twice: once after the cluster (EKS-created interfaces),
/// once after the NAT gateways (interfaces they release). IAM roles go last: EKS needs the
/// cluster role until the cluster is gone, or it cannot clean up its own ENIs. The pull-through
/// cache goes once the cluster is gone (no pod pulls through it any more): its rules first (no
/// new repository appears), then the repositories they created, then the secrets the rules named.
pub const TEARDOWN_ORDER: &[ResourceKind] = &[
    ResourceKind::Addon,
    ResourceKind::AccessEntry,
    ResourceKind::FargateProfile,
    ResourceKind::OidcProvider,
    ResourceKind::CacheBucket,
    ResourceKind::Cluster,
    ResourceKind::PullThroughCacheRule,
    ResourceKind::CacheRepository,
    ResourceKind::CacheSecret,
    ResourceKind::NetworkInterface,
    ResourceKind::SecurityGroup,
    ResourceKind::NatGateway,
    ResourceKind::NetworkInterface,
    ResourceKind::ElasticIp,
    ResourceKind::VpcEndpoint,
    ResourceKind::RouteTable,
    ResourceKind::InternetGateway,
    ResourceKind::Subnet,
    ResourceKind::Vpc,
    ResourceKind::RolePolicy,
    ResourceKind::IamRole,
];

/// What teardown did (or, on dry-run, would do).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TeardownReport {
    /// Stack name.
    pub stack: String,
    /// Whether this was a dry run (nothing deleted).
    pub dry_run: bool,
    /// Resources deleted (or to delete), in order.
    pub deleted: Vec<Resource>,
    /// Errors met along the way (teardown keeps going past them).
    pub errors: Vec<String>,
    /// Resources still tagged with the stack after teardown.
    pub leftovers: Vec<Resource>,
    /// Resources deliberately left in place, with the reason (the network and roles of a
    /// cluster that is still there: EKS needs them to finish deleting it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<String>,
    /// Seconds the teardown took.
    pub makespan_s: f64,
}

impl Engine<'_> {
    /// Deletes every resource of the stack found by tag, in [`TEARDOWN_ORDER`]. Fargate profiles
    /// go one at a time (EKS allows one profile operation per cluster); other kinds in parallel.
    /// NotFound counts as done; busy and dependency errors are retried within the wait policy.
    /// Ends with a leftover scan and fails with [`Error::Leftovers`] naming anything left.
    pub async fn teardown(&self, stack: &StackName) -> Result<TeardownReport> {
        let start = Instant::now();
        let mut report = TeardownReport {
            stack: stack.to_string(),
            ..TeardownReport::default()
        };
        let mut cluster_remains: Option<Vec<Resource>> = None;
        for &kind in TEARDOWN_ORDER {
            if self.cancel.is_cancelled() {
                return Err(self.interrupted(stack, &report));
            }
            if let Some(clusters) = &cluster_remains
                && kind != ResourceKind::Cluster
                && (kind.is_network() || kind == ResourceKind::IamRole)
            {
                // EKS still needs the cluster role and the VPC to clean up its ENIs and
                // security group; deleting them now would strand the cluster.
                if let Ok(found) = self.discover_kind(stack, kind).await {
                    for res in found {
                        let names: Vec<String> = clusters.iter().map(|c| c.id.clone()).collect();
                        let why = if names.is_empty() {
                            format!(
                                "{} kept: the stack's EKS cluster could not be listed and may still exist (it needs its network and roles to finish deleting); run teardown again once it can be listed",
                                res.describe()
                            )
                        } else {
                            format!(
                                "{} kept: EKS cluster {} still exists and needs it to finish deleting; run teardown again once the cluster is gone",
                                res.describe(),
                                names.join(", ")
                            )
                        };
                        self.progress.event(&ProgressEvent::Warning {
                            key: res.describe(),
                            message: why.clone(),
                        });
                        tracing::warn!("{why}");
                        report.kept.push(why);
                    }
                }
                continue;
            }
            let found = match self.discover_kind(stack, kind).await {
                Ok(found) => found,
                Err(err) => {
                    report.errors.push(format!("discover {kind}s: {err}"));
                    if kind == ResourceKind::Cluster {
                        // Unknown whether the cluster is there: keep what it needs (the safe
                        // side; deleting the NAT gateway and routes would strand it).
                        cluster_remains = Some(Vec::new());
                    }
                    continue;
                }
            };
            let found: Vec<Resource> = if kind == ResourceKind::AccessEntry {
                // Only the entries glrunner made (tagged with a key). The FARGATE_LINUX entry
                // EKS makes for the pod execution role must outlive the Fargate profile, or its
                // nodes lose their identity ("identity is not mapped": aws/containers-roadmap
                // #2441; "Pod execution role is not found in auth config":
                // terraform-aws-modules/terraform-aws-eks#2972); it and any entry someone else
                // added go with the cluster.
                let (ours, others): (Vec<_>, Vec<_>) =
                    found.into_iter().partition(|r| !r.key.is_empty());
                for res in &others {
                    tracing::info!("{} left to go with its cluster", res.describe());
                }
                ours
            } else {
                found
            };
            if kind == ResourceKind::FargateProfile {
                for res in found {
                    if self.cancel.is_cancelled() {
                        return Err(self.interrupted(stack, &report));
                    }
                    self.delete_one(res, &mut report).await;
                }
            } else {
                let mut running: FuturesUnordered<_> = found
                    .into_iter()
                    .map(|res| self.delete_resource(res))
                    .collect();
                while let Some((res, outcome)) = running.next().await {
                    match outcome {
                        Ok(()) => report.deleted.push(res),
                        Err(err) => report
                            .errors
                            .push(format!("delete {}: {err}", res.describe())),
                    }
                }
            }
            if kind == ResourceKind::Cluster {
                match self.discover_kind(stack, kind).await {
                    Ok(left) if left.is_empty() => {}
                    Ok(left) => cluster_remains = Some(left),
                    // Unknown: assume it is still there, which is the safe side.
                    Err(err) => {
                        report.errors.push(format!("discover EKS clusters: {err}"));
                        cluster_remains = Some(Vec::new());
                    }
                }
            }
        }
        report.leftovers = match self.leftovers(stack).await {
            Ok(left) => left,
            // What is left is unknown; the errors below say why.
            Err(err) if !report.errors.is_empty() || !report.kept.is_empty() => {
                report.errors.push(format!("scan for leftovers: {err}"));
                Vec::new()
            }
            Err(err) => return Err(err),
        };
        report.makespan_s = start.elapsed().as_secs_f64();
        if let Some(state) = self.state
            && report.leftovers.is_empty()
            && report.kept.is_empty()
            && report.errors.is_empty()
        {
            state.remove()?;
        }
        if !report.kept.is_empty() {
            let mut message = report.errors.clone();
            message.push(format!(
                "kept {} resource(s) because the cluster still exists: {}",
                report.kept.len(),
                report.kept.join("; ")
            ));
            return Err(Error::Failed {
                resource: format!("teardown of stack {stack}"),
                message: message.join("; "),
            });
        }
        if !report.leftovers.is_empty() {
            tracing::error!(
                count = report.leftovers.len(),
                "teardown left resources behind"
            );
            return Err(Error::Leftovers(
                report.leftovers.iter().map(Resource::describe).collect(),
            ));
        }
        if !report.errors.is_empty() {
            return Err(Error::Failed {
                resource: format!("teardown of stack {stack}"),
                message: report.errors.join("; "),
            });
        }
        Ok(report)
    }

    fn interrupted(&self, stack: &StackName, report: &TeardownReport) -> Error {
        let mut progress = format!("{} resource(s) deleted", report.deleted.len());
        if !report.errors.is_empty() {
            progress.push_str(&format!(
                " ({} error(s): {})",
                report.errors.len(),
                report.errors.join("; ")
            ));
        }
        Error::Interrupted {
            during: format!("teardown of stack {stack}"),
            progress,
        }
    }

    /// What teardown would delete, in order, without deleting anything.
    pub async fn teardown_plan(&self, stack: &StackName) -> Result<TeardownReport> {
        let mut report = TeardownReport {
            stack: stack.to_string(),
            dry_run: true,
            ..TeardownReport::default()
        };
        let (network, cluster) =
            tokio::try_join!(self.network.discover(stack), self.cluster.discover(stack))?;
        let all: Vec<Resource> = network
            .into_iter()
            .chain(cluster)
            .filter(Resource::exists)
            .collect();
        let mut seen = std::collections::HashSet::new();
        for &kind in TEARDOWN_ORDER {
            for res in all.iter().filter(|r| r.kind == kind) {
                if seen.insert((res.kind, res.id.clone())) {
                    report.deleted.push(res.clone());
                }
            }
        }
        Ok(report)
    }

    /// Everything still present with the stack's tag (gone NAT gateways excluded).
    pub async fn leftovers(&self, stack: &StackName) -> Result<Vec<Resource>> {
        let (network, cluster) =
            tokio::try_join!(self.network.discover(stack), self.cluster.discover(stack))?;
        Ok(network
            .into_iter()
            .chain(cluster)
            .filter(Resource::exists)
            .collect())
    }

    /// Deletes the stack's resources that `keep` rejects, in [`TEARDOWN_ORDER`] (used when a
    /// plan changes under a half-applied stack, e.g. after EKS refused its zones). Returns what
    /// was deleted; the first error stops it.
    pub async fn prune(
        &self,
        stack: &StackName,
        keep: impl Fn(&Resource) -> bool,
    ) -> Result<Vec<Resource>> {
        let mut deleted = Vec::new();
        for &kind in TEARDOWN_ORDER {
            let found: Vec<Resource> = self
                .discover_kind(stack, kind)
                .await?
                .into_iter()
                .filter(|r| !r.key.is_empty() && !keep(r))
                .collect();
            for res in found {
                let (res, outcome) = self.delete_resource(res).await;
                outcome?;
                deleted.push(res);
            }
        }
        Ok(deleted)
    }

    /// The stack's resources of one kind. A read: transient errors (a 5xx burst, throttling)
    /// are retried within the wait policy's bound, so a burst does not make teardown skip a
    /// kind (or keep the whole network because the cluster's fate is unknown).
    async fn discover_kind(&self, stack: &StackName, kind: ResourceKind) -> Result<Vec<Resource>> {
        let what = format!("discover {kind}s of stack {stack}");
        let all = retry_if(
            &what,
            self.waits.retry_timeout,
            &self.waits,
            self.progress,
            || async {
                if kind.is_network() {
                    self.network.discover(stack).await
                } else {
                    self.cluster.discover(stack).await
                }
            },
            Error::is_transient,
        )
        .await?;
        Ok(all
            .into_iter()
            .filter(|r| r.kind == kind && r.exists())
            .collect())
    }

    async fn delete_one(&self, res: Resource, report: &mut TeardownReport) {
        let (res, outcome) = self.delete_resource(res).await;
        match outcome {
            Ok(()) => report.deleted.push(res),
            Err(err) => report
                .errors
                .push(format!("delete {}: {err}", res.describe())),
        }
    }

    /// Deletes one resource, retrying while busy and, within the propagation window, while AWS
    /// has not caught up ([`Error::Propagating`]: EC2 refuses to release a NAT gateway's
    /// Elastic IP for a while after the gateway is deleted), and waits until it is gone where
    /// AWS is asynchronous.
    async fn delete_resource(&self, res: Resource) -> (Resource, Result<()>) {
        let started = Instant::now();
        let label = res.describe();
        self.progress.event(&ProgressEvent::Deleting {
            resource: label.clone(),
        });
        tracing::info!("deleting {label}");
        let timeout = self.waits.timeout_for(res.kind);
        let first_propagating: Mutex<Option<Instant>> = Mutex::new(None);
        let retryable = |err: &Error| -> bool {
            if err.is_retryable() {
                return true;
            }
            if !matches!(err, Error::Propagating { .. }) {
                return false;
            }
            let mut first = first_propagating.lock().expect("propagation clock");
            let since = *first.get_or_insert_with(Instant::now);
            since.elapsed() < self.waits.propagation_timeout
        };
        let outcome = async {
            let deleted = retry_if(
                &label,
                timeout.max(self.waits.propagation_timeout),
                &self.waits,
                self.progress,
                || async {
                    if res.kind.is_network() {
                        self.network.delete(&res).await
                    } else {
                        self.cluster.delete(&res).await
                    }
                },
                retryable,
            )
            .await;
            match deleted {
                Ok(()) => {}
                Err(err) if err.is_not_found() => return Ok(()),
                Err(err) => return Err(err),
            }
            if needs_wait(res.kind) {
                self.wait_gone(&label, &res, timeout).await?;
            }
            Ok(())
        }
        .await;
        if outcome.is_ok() {
            self.progress.event(&ProgressEvent::Deleted {
                resource: label,
                elapsed: started.elapsed(),
            });
            if let Some(state) = self.state
                && !res.key.is_empty()
            {
                let _ = state.forget(&res.key);
            }
        }
        (res, outcome)
    }
}
