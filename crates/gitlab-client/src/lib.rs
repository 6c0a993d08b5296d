//! GitLab REST client, load-test CI file generation and pipeline watching for glrunner.
//!
//! # What is here
//!
//! - [`GitLabApi`]: the object-safe trait over this crate's own types (token check, projects,
//!   runners via `POST /user/runners`, commits, pipelines, pipeline jobs page by page, a
//!   project's jobs by status, cancel), with [`GitLabApiExt`] helpers (`all_pipeline_jobs`,
//!   `project_jobs_up_to` with a bound on the jobs read, `get_or_create_project`, `put_file`).
//! - Backends:
//!   - [`HttpGitLab`] ([`http`]): GitLab's REST API v4 on reqwest, with our transport policy:
//!     429 honoured through `Retry-After` / `RateLimit-Reset`, 5xx and connection errors
//!     retried with capped exponential backoff (non-idempotent POSTs only when nothing was
//!     sent), bounded timeouts, 401/403 mapped to [`Error::PermissionDenied`] naming the
//!     scope, tokens redacted everywhere ([`SecretToken`]), plain `http` only on loopback
//!     unless allowed.
//!   - [`memory::InMemoryGitLab`]: projects, runners with tags, pipelines whose jobs move
//!     pending → running → success/failed when a runner simulator takes them
//!     ([`memory::InMemoryGitLab::request_jobs`] / [`memory::InMemoryGitLab::finish_job`],
//!     or [`memory::simulate_runners`], a minimal fake runner for this crate's own tests and
//!     its watch benchmark: fixed delays, no timing model; the sandbox's calibrated runner
//!     simulator lives in `glrunner-sandbox`), GitLab-like pagination and
//!     configurable 429s, timestamps from a virtual clock on tokio's (pausable) time.
//!   - `MockGitLabApi` (feature `mock`): a mockall mock for embedders' unit tests.
//! - [`ci`]: load-test `.gitlab-ci.yml` generation from explicit shard tags, ≤200 per
//!   `parallel`, and [`ci::expand`] to turn a CI file back into concrete jobs.
//! - [`loadtest`]: one load test end to end: the CI file committed with `[skip ci]` (and
//!   `workflow: rules` that run only API pipelines), exactly the pipelines that are watched
//!   (split under a jobs-per-pipeline limit), no pipeline variables unless asked, and the
//!   pipelines canceled when the run ends early ([`loadtest::RunningPipelines`] for signal
//!   handlers).
//! - [`watch`]: [`watch::watch_pipelines`] with an adaptive interval and a request budget,
//!   progress events, and a [`Report`] (makespan, queue/run percentiles, jobs/minute,
//!   failures by reason, requests) as a table or JSON.
//! - [`permissions`]: the token scopes and roles GitLab requires for glrunner's calls
//!   ([`permissions::scopes_allow_runner_creation`], [`permissions::runner_creation_role`]).
//! - [`limits`]: a namespace's CI limits ([`limits::PlanLimits`]: jobs per pipeline, jobs in
//!   active pipelines), including what a hidden or `default` plan means.
//! - [`conformance`]: one behavioural suite run against every backend (not API-stable).
//!
//! # Features
//!
//! | feature | what it adds |
//! |---|---|
//! | `mock` | `MockGitLabApi` (mockall) |
//! | `testing` | `testing::serve`: the in-memory GitLab over HTTP (wiremock) for tests of clients and binaries |
//! | `faulty` | `faulty::Faulty` (also `testing::Faulty`): a `GitLabApi` decorator that injects faults by rule, without wiremock |
//!
//! # Why not the `gitlab` crate
//!
//! The `gitlab` crate (0.1905) has typed endpoints, but its whole `api` module sits behind
//! its default `client_api` feature, so with `default-features = false` there are no
//! endpoints to use. With that feature it shares our reqwest 0.13 (no second TLS stack),
//! yet it adds 45 packages to this crate's graph (about 150 → 195, per `cargo tree`):
//! reqwest's blocking client, `graphql_client` with its codegen proc-macros (on `syn` 1),
//! `chrono` beside our `jiff`, `derive_builder`/`darling`, `cron`, `backtrace`, `thiserror`
//! 1 beside 2, and about 84,000 lines of endpoint code for the fifteen calls we make. Its
//! paging helper also hides the response headers (`x-next-page`, `x-total`, `RateLimit-*`)
//! that the watcher's request budget and our rate-limit policy read. A small typed client on
//! the workspace's reqwest keeps the build lean and makes the transport policy explicit in
//! [`http`].
//!
//! # Example
//!
//! ```no_run
//! use glrunner_gitlab_client::{ci, watch, GitLabApi, GitLabApiExt, HttpGitLab, NewPipeline, ProjectRef};
//!
//! # async fn run() -> glrunner_gitlab_client::Result<()> {
//! let gitlab = HttpGitLab::builder().from_env().build()?;
//! let project = gitlab.get_or_create_project("my-group/loadtest").await?;
//! let spec = ci::LoadTestSpec::even(400, &["shard-1".to_owned(), "shard-2".to_owned()]);
//! let project = ProjectRef::Id(project.id);
//! gitlab.put_file(&project, "main", ".gitlab-ci.yml", &spec.to_yaml()?, "load test").await?;
//! let pipeline = gitlab.create_pipeline(&project, &NewPipeline::new("main")).await?;
//! let report = watch::watch_pipeline(&gitlab, &project, pipeline.id, &Default::default(), &mut |_| {}).await?;
//! println!("{}", report.render_table());
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod ci;
pub mod conformance;
pub mod error;
#[cfg(feature = "faulty")]
pub mod faulty;
mod forward;
pub mod http;
pub mod limits;
pub mod loadtest;
pub mod memory;
pub mod permissions;
pub mod report;
pub mod runners;
pub mod sample;
pub mod secret;
#[cfg(feature = "testing")]
pub mod testing;
pub mod trace;
pub mod types;
pub mod watch;

#[cfg(feature = "mock")]
pub use api::MockGitLabApi;
pub use api::{DynGitLabApi, GitLabApi, GitLabApiExt, LostAnswerPolicy};
pub use error::{Error, Result};
pub use http::{AuthScheme, HttpGitLab, HttpGitLabBuilder, RetryPolicy};
pub use report::{JobTiming, Percentiles, PipelineSummary, Report, WatchOutcome};
pub use secret::SecretToken;
pub use types::*;

/// How much of a job log [`GitLabApi::job_trace`] reads: the load test's lines come early, and
/// a runaway log must not cost the watcher its memory.
pub const MAX_TRACE_BYTES: usize = 1024 * 1024;

/// GitLab's maximum `per_page`.
pub const MAX_PER_PAGE: u32 = 100;
