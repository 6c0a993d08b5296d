//! Network and EKS-on-Fargate cluster provisioning for glrunner.
//!
//! Takes an AWS account from nothing to an EKS cluster whose every pod runs on Fargate, and
//! back to nothing:
//!
//! - [`spec`]: validated inputs ([`StackSpec`]: stack name, region, [`NetworkSpec`], [`ClusterSpec`]).
//! - [`plan`]: a DAG of described steps ([`Plan`]), printable as a tree or JSON before anything runs.
//! - [`Engine`]: applies a plan (independent steps concurrently, reusing whatever exists by
//!   tag), and tears a stack down in dependency order, ending with a leftover scan.
//! - Two capability traits, [`NetworkProvisioner`] (EC2) and [`ClusterProvisioner`] (EKS + IAM),
//!   with backends [`aws`] (aws-sdk-ec2/eks/iam/sts), [`memory`] (AWS's timing and rules on
//!   tokio's clock) and mockall mocks (feature `mock`).
//! - [`state`]: the local state cache (atomic writes, exclusive lock).
//! - [`kubeconfig`]: kubeconfig writing and a built-in EKS bearer-token generator.
//! - [`regions`], [`versions`]: dated tables of the Regions with EKS on Fargate and of the
//!   Kubernetes versions EKS creates, with their control-plane price.
//! - [`selector`]: which pods a Fargate profile's selectors take, wildcards included.
//!
//! Every resource carries the tags `glrunner.io/stack=<stack>` and `glrunner.io/key=<step>`;
//! a re-run after any interruption finds what exists and converges without duplicates.
//!
//! ```no_run
//! # async fn demo() -> glrunner_infra::Result<()> {
//! use glrunner_infra::{Engine, Plan, StackName, StackSpec, memory::InMemoryCloud};
//! let cloud = InMemoryCloud::default();
//! let spec = StackSpec::new(StackName::new("demo")?, "us-east-1");
//! let engine = Engine::new(&cloud, &cloud);
//! let plan = glrunner_infra::plan_stack(&spec, &cloud).await?;
//! println!("{}", plan.render_tree());
//! engine.apply(&plan).await?;
//! engine.teardown(&spec.stack).await?;
//! # Ok(()) }
//! ```

mod forward;
#[cfg(feature = "testing")]
pub mod testing;

pub mod account;
pub mod apply;
pub mod aws;
pub mod cache;
pub mod conformance;
pub mod error;
pub mod identity;
pub mod image_cache;
pub mod job_roles;
pub mod kubeconfig;
pub mod memory;
pub mod oidc;
pub mod plan;
pub mod pod_identity;
pub mod progress;
pub mod provider;
pub mod regions;
pub mod resource;
pub mod selector;
pub mod spec;
pub mod stack;
pub mod state;
pub mod teardown;
pub mod versions;
pub mod wait;

#[cfg(feature = "mock")]
pub use account::MockAccountInspector;
pub use account::{
    AccountInspector, AccountUsage, ActionDecision, CallerIdentity, ContextValue, InMemoryAccount,
    PermissionCheck, PriceQuote, QuotaValue,
};
pub use apply::{ApplyReport, Engine, StepTiming};
pub use error::{Error, Result};
pub use plan::{Plan, Step, StepStatus};
#[cfg(feature = "mock")]
pub use pod_identity::MockPodIdentityInspector;
pub use pod_identity::{InMemoryPodIdentity, PodIdentityAssociation, PodIdentityInspector};
pub use progress::{NoProgress, Progress, ProgressEvent};
pub use provider::{ClusterProvisioner, NetworkProvisioner};
#[cfg(feature = "mock")]
pub use provider::{MockClusterProvisioner, MockNetworkProvisioner};
pub use resource::{
    AvailabilityZone, ClusterAccess, CreateRequest, FargateProfileSelectors, Resource,
    ResourceKind, ResourceState,
};
pub use selector::{selects, wildcard_match};
pub use spec::{ClusterSpec, FargateSelector, NatMode, NetworkSpec, StackName, StackSpec};
pub use stack::{
    ProvisionOutcome, StackOptions, provision, provision_until, teardown, teardown_until,
};
pub use state::StateFile;
pub use teardown::TeardownReport;
pub use wait::WaitPolicy;

/// Plans a stack: validates the spec, reads the region's availability zones (read-only) and
/// builds the step DAG.
pub async fn plan_stack(spec: &StackSpec, network: &dyn NetworkProvisioner) -> Result<Plan> {
    spec.validate()?;
    let available = network.availability_zones().await?;
    let azs = plan::choose_azs(&available, spec.network.az_count)?;
    Plan::build(spec, &azs)
}
