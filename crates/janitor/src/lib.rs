//! glrunner-janitor: safely reaps hung GitLab Runner job pods (Kubernetes executor) on EKS Fargate.
//!
//! Hung job pods — stuck Pending after the runner gave up on them, running past their job timeout,
//! finished but never deleted, or stuck Terminating on a Fargate node whose kubelet is gone — keep
//! Fargate capacity billed. The janitor deletes exactly those, and nothing else.
//!
//! # Identity, not names
//!
//! A pod is a job pod only if it carries the executor's label `job.runner.gitlab.com/pod` **and**
//! annotation `job.runner.gitlab.com/id`. Pods owned by a ReplicaSet, Deployment, StatefulSet,
//! DaemonSet or Job, pods with the gitlab-runner chart's labels (`app`/`release`,
//! `chart=gitlab-runner-*`) and anything outside the configured namespaces are never touched.
//! Listing uses a server-side label selector per configured namespace, never `--all-namespaces`;
//! every delete carries a UID precondition, so a pod deleted and recreated under the same name
//! between list and delete survives ([`Error::Conflict`]).
//!
//! # Pieces
//!
//! | item | what |
//! |---|---|
//! | [`PodApi`] | trait: list (paginated, label-selected), get, delete with UID precondition and grace |
//! | [`k8s::KubePodApi`] | kube-rs backend: kubeconfig + context, in-cluster, or a [`k8s::TokenProvider`] (EKS tokens) |
//! | [`memory::InMemoryPods`] | in-memory backend with the API server's delete semantics, drivable by a sandbox |
//! | `MockPodApi`, `MockJobStatusSource`, `MockTokenProvider` | mockall mocks (feature `mock`) |
//! | [`policy`] | the pure policy: [`policy::decide`]`(pod, now, policy, evidence)` → Keep/Reap with a reason |
//! | [`JobStatusSource`] | trait: GitLab's view of a job, for the optional cross-check |
//! | [`Reaper`] | one round or a watch loop; dry run; bounded delete concurrency; a [`Report`] |
//! | [`cost`] | Fargate size (+256 MiB, rounded up) and price of each reaped pod |
//! | [`controller::Controller`] | `reap run`: watch-backed stores, the policy on every change, a deadline per pod, Events, a Lease, orphaned Secrets |
//! | [`classify`] | why a Pending job pod has not started: [`classify::explain_pending`] → class, message, fix |
//! | [`metrics`] | OpenMetrics registry (pods by phase and Pending class, reaped, Fargate vCPUs) and its `/metrics` server |
//! | [`rbac::rbac_manifest`] | ServiceAccount + Role + RoleBinding to run in-cluster (k8s-openapi objects, [`rbac::rbac_objects`]) |
//!
//! # Features
//!
//! | feature | enables |
//! |---|---|
//! | `mock` | mockall mocks of the traits |
//! | `testing` | the `conformance` suite, `k8s::fixtures` and `testing::Faulty`, a fault-injecting [`PodApi`] decorator (not API-stable) |
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> glrunner_janitor::Result<()> {
//! use std::sync::Arc;
//! use glrunner_janitor::{k8s::KubePodApi, policy::Policy, Reaper, ReaperConfig};
//!
//! let api = KubePodApi::from_kubeconfig(None, Some("my-eks")).await?;
//! let config = ReaperConfig::new(Policy::new(["gitlab-runner"])).with_dry_run(true);
//! let report = Reaper::new(Arc::new(api), config)?.run_once().await?;
//! println!("{report}");
//! # Ok(()) }
//! ```

pub mod api;
pub mod classify;
pub mod clock;
#[cfg(any(test, feature = "testing"))]
pub mod conformance;
pub mod controller;
pub mod cost;
pub mod deploy;
mod error;
mod forward;
pub mod k8s;
pub mod lease;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod policy;
pub mod rbac;
pub mod reaper;
pub mod secrets;
#[cfg(feature = "testing")]
pub mod testing;

pub use api::{DynJobStatusSource, DynPodApi, JobStatus, JobStatusSource, PodApi};
#[cfg(feature = "mock")]
pub use api::{MockJobStatusSource, MockPodApi};
pub use classify::{PendingClass, PendingPod, PodEvent, PodSignals};
pub use clock::{Clock, SystemClock, TokioClock};
pub use error::{BoxError, Error, Result};
/// The time crate used in the public API (`jiff::Timestamp`).
pub use jiff;
pub use model::{
    DeleteMode, DeleteOutcome, ListQuery, OwnerRef, PodInfo, PodKey, PodPhase, PodRequests,
};
pub use policy::{Decision, KeepReason, Policy, ReapReason};
pub use reaper::{Action, Reaper, ReaperConfig, Report};
