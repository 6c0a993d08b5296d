//! Domain types: projects, runners, commits, pipelines, jobs and pages, shaped like GitLab's JSON.

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::secret::SecretToken;

/// A project, by numeric id or by full path (`group/subgroup/project`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ProjectRef {
    /// Numeric project id.
    Id(u64),
    /// Full path with namespace, e.g. `my-group/loadtest`.
    Path(String),
}

impl ProjectRef {
    /// Parses a project id (all digits) or a full project path, validating the path the way
    /// GitLab does: `/`-separated segments of letters, digits, `_`, `-` and `.`, each starting
    /// with a letter, digit or `_`, not ending in `.git` or `.atom`.
    pub fn parse(value: &str) -> Result<Self> {
        let value = value.trim();
        if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
            return value.parse().map(ProjectRef::Id).map_err(|_| {
                Error::invalid("parse", "project id", format!("{value:?} is too large"))
            });
        }
        validate_project_path(value)?;
        Ok(ProjectRef::Path(value.to_owned()))
    }

    /// The URL path segment for `/projects/:id`: the id, or the path with `/` encoded as `%2F`.
    pub fn api_segment(&self) -> String {
        match self {
            ProjectRef::Id(id) => id.to_string(),
            ProjectRef::Path(path) => encode_path(path),
        }
    }
}

impl fmt::Display for ProjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProjectRef::Id(id) => write!(f, "project {id}"),
            ProjectRef::Path(path) => write!(f, "project {path:?}"),
        }
    }
}

impl From<u64> for ProjectRef {
    fn from(id: u64) -> Self {
        ProjectRef::Id(id)
    }
}

fn validate_project_path(path: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::invalid(
            "parse",
            "project path",
            format!("{path:?} {why}; expected a numeric id or a path like `my-group/loadtest`"),
        ))
    };
    if path.is_empty() {
        return bad("is empty");
    }
    if path.len() > 255 * 4 {
        return bad("is too long");
    }
    for segment in path.split('/') {
        if segment.is_empty() {
            return bad("has an empty segment (leading, trailing or double `/`)");
        }
        if !segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
        {
            return bad("may contain only letters, digits, `_`, `-`, `.` and `/`");
        }
        let first = segment.as_bytes()[0];
        if !(first.is_ascii_alphanumeric() || first == b'_') {
            return bad("has a segment that does not start with a letter, digit or `_`");
        }
        if segment.ends_with(".git") || segment.ends_with(".atom") || segment.ends_with('.') {
            return bad("has a segment ending in `.git`, `.atom` or `.`");
        }
    }
    Ok(())
}

/// Percent-encodes a path for use as one URL segment (GitLab's `:id` / `:file_path`).
pub(crate) fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The user the API token belongs to (`GET /user`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// User id.
    pub id: u64,
    /// Login name; also the user's personal namespace path.
    pub username: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Whether the user is an instance administrator. GitLab shows `is_admin` only to
    /// administrators (`GET /user` presents `Entities::UserWithAdmin` when
    /// `current_user.admin?`, lib/api/users.rb; `UserWithAdmin` exposes `admin?` as
    /// `is_admin`), so it is absent, read as false, for everyone else.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_admin: bool,
}

/// A namespace (user or group) projects live in (`GET /namespaces/:id`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespace {
    /// Namespace id (`namespace_id` when creating projects).
    pub id: u64,
    /// Full path, e.g. `my-group/sub`.
    pub full_path: String,
    /// `user` or `group`.
    #[serde(default)]
    pub kind: String,
    /// The subscription plan (`free`, `premium`, `ultimate`, `ultimate_trial`, ...; `default`
    /// on a self-managed EE instance). GitLab EE shows it only to those who can administer the
    /// namespace (`expose :plan, if: can_admin_namespace`, ee/lib/ee/api/entities/namespace.rb:
    /// Owners of a group, the user of a personal namespace, administrators); GitLab CE never.
    /// Read it with [`crate::limits::PlanLimits::of`], which knows what its absence means.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
}

/// A project (`GET /projects/:id`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    /// Project id.
    pub id: u64,
    /// Short name.
    #[serde(default)]
    pub name: String,
    /// Full path, e.g. `my-group/loadtest`.
    pub path_with_namespace: String,
    /// Default branch; `None` for an empty repository.
    #[serde(default)]
    pub default_branch: Option<String>,
    /// Web URL.
    #[serde(default)]
    pub web_url: String,
    /// The minimum role that may set pipeline variables (`no_one_allowed`, `developer`,
    /// `maintainer`, `owner`); GitLab.com sets `no_one_allowed` in new namespaces since 17.7.
    /// `None` on GitLab versions before the setting existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci_pipeline_variables_minimum_override_role: Option<String>,
}

/// What `GET /version` answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerVersion {
    /// e.g. `17.5.1-ee` or `16.0.0-pre`.
    pub version: String,
    /// The Git revision.
    #[serde(default)]
    pub revision: String,
}

impl ServerVersion {
    /// Major and minor version, when the string starts with `MAJOR.MINOR`.
    pub fn major_minor(&self) -> Option<(u32, u32)> {
        let mut parts = self
            .version
            .trim()
            .trim_start_matches('v')
            .split(['.', '-']);
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some((major, minor))
    }

    /// Whether this is at least `major.minor`.
    pub fn at_least(&self, major: u32, minor: u32) -> Option<bool> {
        self.major_minor().map(|v| v >= (major, minor))
    }
}

/// The access token in use (`GET /personal_access_tokens/self`): its scopes, never its value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// Token id.
    pub id: u64,
    /// The token's name.
    #[serde(default)]
    pub name: String,
    /// Scopes, e.g. `api`, `create_runner`.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// False once revoked or expired.
    #[serde(default = "yes")]
    pub active: bool,
    /// Expiry date (`YYYY-MM-DD`), if any.
    #[serde(default)]
    pub expires_at: Option<String>,
}

fn yes() -> bool {
    true
}

/// Roles as GitLab's `access_level` numbers (`Gitlab::Access`, lib/gitlab/access.rb: `NO_ACCESS = 0`,
/// `MINIMAL_ACCESS = 5`, `GUEST = 10`, `PLANNER = 15`, `REPORTER = 20`, `DEVELOPER = 30`,
/// `MAINTAINER = 40`, `OWNER = 50`; the names from its `options_with_none`, "Minimal Access"
/// from EE's `Gitlab::Access`).
pub mod access_level {
    /// No access (a member of an invited group when project sharing is off).
    pub const NO_ACCESS: u32 = 0;
    /// Minimal Access (EE): a member who sees the group but none of its projects.
    pub const MINIMAL_ACCESS: u32 = 5;
    /// Guest.
    pub const GUEST: u32 = 10;
    /// Planner.
    pub const PLANNER: u32 = 15;
    /// Reporter.
    pub const REPORTER: u32 = 20;
    /// Developer.
    pub const DEVELOPER: u32 = 30;
    /// Maintainer.
    pub const MAINTAINER: u32 = 40;
    /// Owner.
    pub const OWNER: u32 = 50;

    /// The role's name as GitLab shows it (`Gitlab::Access.human_access_with_none`); a level
    /// GitLab does not define is "an unknown role".
    pub fn name(level: u32) -> &'static str {
        match level {
            NO_ACCESS => "None",
            MINIMAL_ACCESS => "Minimal Access",
            GUEST => "Guest",
            PLANNER => "Planner",
            REPORTER => "Reporter",
            DEVELOPER => "Developer",
            MAINTAINER => "Maintainer",
            OWNER => "Owner",
            _ => "an unknown role",
        }
    }
}

/// Where a membership is looked up: a project, or a group by full path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberScope {
    /// A project.
    Project(ProjectRef),
    /// A group, by full path.
    Group(String),
}

impl fmt::Display for MemberScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemberScope::Project(p) => write!(f, "{p}"),
            MemberScope::Group(g) => write!(f, "group {g}"),
        }
    }
}

/// A member with its effective role (`GET /projects/:id/members/all/:user_id`, inherited
/// memberships included).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// User id.
    pub id: u64,
    /// Login name.
    #[serde(default)]
    pub username: String,
    /// The role, see [`access_level`].
    pub access_level: u32,
}

/// Input of `POST /projects`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NewProject {
    /// Repository path (last segment of the full path).
    pub path: String,
    /// Display name; defaults to `path`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Namespace to create it in; the user's own namespace when `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace_id: Option<u64>,
    /// `private` (default here), `internal` or `public`.
    pub visibility: String,
    /// Create an initial commit with a README (gives the project a default branch).
    pub initialize_with_readme: bool,
}

impl NewProject {
    /// A private project with a README, in the user's namespace.
    pub fn new(path: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            name: None,
            namespace_id: None,
            visibility: "private".into(),
            initialize_with_readme: true,
        }
    }

    /// Creates the project in the given namespace.
    #[must_use]
    pub fn in_namespace(mut self, namespace_id: u64) -> Self {
        self.namespace_id = Some(namespace_id);
        self
    }
}

/// Input of `POST /user/runners` for a project runner (`runner_type=project_type`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NewRunner {
    /// Always `project_type` here.
    pub runner_type: String,
    /// The project the runner serves.
    pub project_id: u64,
    /// Free-text description (shown in the UI; the sandbox uses it as the release name).
    pub description: String,
    /// Tags; jobs must carry a subset of these to be picked up.
    pub tag_list: Vec<String>,
    /// Whether the runner also takes jobs without tags.
    pub run_untagged: bool,
    /// Maximum job timeout in seconds, if limited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum_timeout: Option<u32>,
}

impl NewRunner {
    /// A project runner with the given tags that does not run untagged jobs.
    pub fn project(project_id: u64, description: impl Into<String>, tags: Vec<String>) -> Self {
        Self {
            runner_type: "project_type".into(),
            project_id,
            description: description.into(),
            tag_list: tags,
            run_untagged: false,
            maximum_timeout: None,
        }
    }

    /// Sets `run_untagged`.
    #[must_use]
    pub fn run_untagged(mut self, yes: bool) -> Self {
        self.run_untagged = yes;
        self
    }
}

/// The answer of `POST /user/runners`: the only time GitLab shows the runner token.
///
/// Not `Serialize`: it carries a [`SecretToken`], which never serialises.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct CreatedRunner {
    /// Runner id.
    pub id: u64,
    /// Runner authentication token (`glrt-…`); redacted in Debug/Display/JSON.
    pub token: SecretToken,
    /// Expiry, if the instance enforces one.
    #[serde(default)]
    pub token_expires_at: Option<Timestamp>,
}

/// A runner as listed by `GET /projects/:id/runners`: GitLab's list entries carry no
/// `tag_list` and no `contacted_at` (only [`RunnerDetails`] from `GET /runners/:id` does).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Runner {
    /// Runner id.
    pub id: u64,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// `instance_type`, `group_type` or `project_type`.
    #[serde(default)]
    pub runner_type: String,
    /// Paused runners take no jobs.
    #[serde(default)]
    pub paused: bool,
    /// `online`, `offline`, `stale` or `never_contacted`.
    #[serde(default)]
    pub status: Option<String>,
    /// Whether a runner manager contacted GitLab recently (GitLab: within the last 2 hours).
    #[serde(default)]
    pub online: Option<bool>,
}

/// A runner's details (`GET /runners/:id`): the list fields plus tags and last contact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnerDetails {
    /// Runner id.
    pub id: u64,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// `instance_type`, `group_type` or `project_type`.
    #[serde(default)]
    pub runner_type: String,
    /// Paused runners take no jobs.
    #[serde(default)]
    pub paused: bool,
    /// `online`, `offline`, `stale` or `never_contacted`.
    #[serde(default)]
    pub status: Option<String>,
    /// Whether a runner manager contacted GitLab recently.
    #[serde(default)]
    pub online: Option<bool>,
    /// When a runner manager last contacted GitLab (`None`: never).
    #[serde(default)]
    pub contacted_at: Option<Timestamp>,
    /// Tags; jobs must carry a subset of these to be picked up.
    #[serde(default)]
    pub tag_list: Vec<String>,
    /// Whether it also takes jobs without tags.
    #[serde(default)]
    pub run_untagged: bool,
}

impl RunnerDetails {
    /// True when a runner manager contacted GitLab at or after `since`. "Online" is not that:
    /// GitLab calls a runner online for two hours after its last contact
    /// (`Ci::Runner::ONLINE_CONTACT_TIMEOUT = 2.hours`, app/models/ci/runner.rb), so a reused
    /// runner whose manager is gone stays online for up to two hours. `contacted_at` is read
    /// through `cached_attr_reader` (the same file), i.e. from the contact cache each job
    /// request refreshes, not from the database column that is written only every 40-55 minutes.
    pub fn contacted_since(&self, since: Timestamp) -> bool {
        self.contacted_at.is_some_and(|at| at >= since)
    }

    /// True once a runner manager has contacted GitLab and GitLab counts it online.
    pub fn is_online(&self) -> bool {
        match self.online {
            Some(online) => online,
            None => self.status.as_deref() == Some("online"),
        }
    }
}

/// A branch (`GET /projects/:id/repository/branches/:branch`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Branch {
    /// Branch name.
    pub name: String,
    /// The head commit.
    #[serde(default)]
    pub commit: Option<BranchCommit>,
}

/// The head commit of a [`Branch`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BranchCommit {
    /// Full SHA.
    pub id: String,
}

/// One file action of a commit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitAction {
    /// `create`, `update` or `delete`.
    pub action: FileAction,
    /// Path in the repository.
    pub file_path: String,
    /// New content (text), for create and update.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

/// What a [`CommitAction`] does to its file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileAction {
    /// The file must not exist yet.
    Create,
    /// The file must exist.
    Update,
    /// The file must exist.
    Delete,
}

/// Input of `POST /projects/:id/repository/commits`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NewCommit {
    /// Branch to commit to (created from `start_branch`, or as the first branch of an empty repository).
    pub branch: String,
    /// Creates `branch` from this branch when `branch` does not exist yet (GitLab refuses a
    /// commit to a missing branch of a non-empty repository without it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_branch: Option<String>,
    /// Commit message.
    pub commit_message: String,
    /// File actions, applied atomically.
    pub actions: Vec<CommitAction>,
}

/// A commit (`id` is the SHA).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    /// Full SHA.
    pub id: String,
    /// Title (first line of the message).
    #[serde(default)]
    pub title: String,
    /// Creation time.
    #[serde(default)]
    pub created_at: Option<Timestamp>,
}

/// A CI/CD variable passed to a new pipeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineVariable {
    /// Name.
    pub key: String,
    /// Value.
    pub value: String,
    /// `env_var` (default) or `file`.
    pub variable_type: String,
}

/// Input of `POST /projects/:id/pipeline`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NewPipeline {
    /// Branch or tag to run.
    #[serde(rename = "ref")]
    pub ref_name: String,
    /// Variables for this pipeline.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub variables: Vec<PipelineVariable>,
}

impl NewPipeline {
    /// A pipeline on `ref_name` without variables.
    pub fn new(ref_name: impl Into<String>) -> Self {
        Self {
            ref_name: ref_name.into(),
            variables: Vec::new(),
        }
    }

    /// Adds an `env_var` variable.
    #[must_use]
    pub fn variable(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.variables.push(PipelineVariable {
            key: key.into(),
            value: value.into(),
            variable_type: "env_var".into(),
        });
        self
    }
}

/// Pipeline status as GitLab reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PipelineStatus {
    /// Created, not yet processed.
    Created,
    /// Waiting for a resource group.
    WaitingForResource,
    /// Preparing.
    Preparing,
    /// Jobs wait for runners.
    Pending,
    /// At least one job runs or has finished.
    Running,
    /// All jobs passed.
    Success,
    /// A job failed.
    Failed,
    /// Canceled.
    Canceled,
    /// Being canceled.
    Canceling,
    /// Skipped.
    Skipped,
    /// Waiting for a manual action.
    Manual,
    /// Scheduled.
    Scheduled,
    /// A status this crate does not know.
    #[serde(other)]
    Unknown,
}

impl PipelineStatus {
    /// True once the pipeline will not change any more (success, failed, canceled, skipped).
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            Self::Success | Self::Failed | Self::Canceled | Self::Skipped
        )
    }

    /// The API spelling (`running`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::WaitingForResource => "waiting_for_resource",
            Self::Preparing => "preparing",
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Success => "success",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
            Self::Canceling => "canceling",
            Self::Skipped => "skipped",
            Self::Manual => "manual",
            Self::Scheduled => "scheduled",
            Self::Unknown => "unknown",
        }
    }
}

impl fmt::Display for PipelineStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A pipeline (`GET /projects/:id/pipelines/:pipeline_id`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pipeline {
    /// Pipeline id (instance-wide).
    pub id: u64,
    /// Pipeline number within the project.
    #[serde(default)]
    pub iid: u64,
    /// Project id.
    #[serde(default)]
    pub project_id: u64,
    /// Status.
    pub status: PipelineStatus,
    /// Branch or tag.
    #[serde(rename = "ref", default)]
    pub ref_name: String,
    /// Commit SHA.
    #[serde(default)]
    pub sha: String,
    /// What started it: `api` (`POST /pipeline`), `push` (a commit), `web`, `schedule`, ...
    #[serde(default)]
    pub source: Option<String>,
    /// Creation time (start of the makespan).
    pub created_at: Timestamp,
    /// Last update.
    #[serde(default)]
    pub updated_at: Option<Timestamp>,
    /// When the first job started.
    #[serde(default)]
    pub started_at: Option<Timestamp>,
    /// When the pipeline finished.
    #[serde(default)]
    pub finished_at: Option<Timestamp>,
    /// Running time in seconds.
    #[serde(default)]
    pub duration: Option<f64>,
    /// Time spent queued, in seconds.
    #[serde(default)]
    pub queued_duration: Option<f64>,
    /// Web URL.
    #[serde(default)]
    pub web_url: String,
}

/// Job status as GitLab reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum JobStatus {
    /// Created, waiting for earlier stages.
    Created,
    /// Waiting for a resource group.
    WaitingForResource,
    /// Waiting for a runner.
    Pending,
    /// The runner prepares the environment.
    Preparing,
    /// Running on a runner.
    Running,
    /// Passed.
    Success,
    /// Failed (see `failure_reason`).
    Failed,
    /// Being canceled.
    Canceling,
    /// Canceled.
    Canceled,
    /// Skipped.
    Skipped,
    /// Waiting for a manual action.
    Manual,
    /// Scheduled (delayed job).
    Scheduled,
    /// Waiting for an external callback.
    WaitingForCallback,
    /// A status this crate does not know.
    #[serde(other)]
    Unknown,
}

impl JobStatus {
    /// The values GitLab documents for the `scope[]` filter of job listings. Other statuses
    /// (`preparing`, `scheduled`, `canceling`, ...) exist but are not documented as filters,
    /// so the watcher never sends them.
    pub const DOCUMENTED_SCOPES: [JobStatus; 9] = [
        JobStatus::Created,
        JobStatus::Pending,
        JobStatus::Running,
        JobStatus::Failed,
        JobStatus::Success,
        JobStatus::Canceled,
        JobStatus::Skipped,
        JobStatus::WaitingForResource,
        JobStatus::Manual,
    ];

    /// Final statuses as a `scope[]`: unfinished = total − these, which counts every active
    /// status (`preparing`, `canceling`, `scheduled`, `waiting_for_resource`, ...) without
    /// having to name it.
    pub const FINISHED_SCOPE: [JobStatus; 5] = [
        JobStatus::Success,
        JobStatus::Failed,
        JobStatus::Canceled,
        JobStatus::Skipped,
        JobStatus::Manual,
    ];

    /// Statuses of jobs still waiting for a runner, as a `scope[]`.
    pub const QUEUED_SCOPE: [JobStatus; 3] = [
        JobStatus::Created,
        JobStatus::WaitingForResource,
        JobStatus::Pending,
    ];

    /// True once the job will not change any more (success, failed, canceled, skipped, manual).
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            Self::Success | Self::Failed | Self::Canceled | Self::Skipped | Self::Manual
        )
    }

    /// The API spelling (`pending`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::WaitingForResource => "waiting_for_resource",
            Self::Pending => "pending",
            Self::Preparing => "preparing",
            Self::Running => "running",
            Self::Success => "success",
            Self::Failed => "failed",
            Self::Canceling => "canceling",
            Self::Canceled => "canceled",
            Self::Skipped => "skipped",
            Self::Manual => "manual",
            Self::Scheduled => "scheduled",
            Self::WaitingForCallback => "waiting_for_callback",
            Self::Unknown => "unknown",
        }
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The runner a job ran on (subset of GitLab's `runner` object).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRunner {
    /// Runner id.
    pub id: u64,
    /// Runner description.
    #[serde(default)]
    pub description: Option<String>,
}

/// A job (`GET /projects/:id/pipelines/:pipeline_id/jobs` items).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Job id (instance-wide).
    pub id: u64,
    /// Name, e.g. `loadtest-shard-1 3/200`.
    pub name: String,
    /// Stage.
    #[serde(default)]
    pub stage: String,
    /// Status.
    pub status: JobStatus,
    /// Tags the job requires.
    #[serde(default)]
    pub tag_list: Vec<String>,
    /// Creation time.
    pub created_at: Timestamp,
    /// When a runner picked it up.
    #[serde(default)]
    pub started_at: Option<Timestamp>,
    /// When it finished.
    #[serde(default)]
    pub finished_at: Option<Timestamp>,
    /// Run time in seconds.
    #[serde(default)]
    pub duration: Option<f64>,
    /// Queue time in seconds.
    #[serde(default)]
    pub queued_duration: Option<f64>,
    /// Why it failed (`script_failure`, `stuck_or_timeout_failure`, `runner_system_failure`…).
    #[serde(default)]
    pub failure_reason: Option<String>,
    /// Whether a failure is allowed.
    #[serde(default)]
    pub allow_failure: bool,
    /// The runner it ran on.
    #[serde(default)]
    pub runner: Option<JobRunner>,
    /// Web URL.
    #[serde(default)]
    pub web_url: String,
}

/// Query of one page of a pipeline's jobs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobsQuery {
    /// 1-based page number.
    pub page: u32,
    /// Page size, at most 100.
    pub per_page: u32,
    /// Only jobs in these statuses (`scope[]`); all when empty.
    pub scope: Vec<JobStatus>,
}

impl Default for JobsQuery {
    fn default() -> Self {
        Self {
            page: 1,
            per_page: crate::MAX_PER_PAGE,
            scope: Vec::new(),
        }
    }
}

impl JobsQuery {
    /// Page `page` of 100 jobs.
    pub fn page(page: u32) -> Self {
        Self {
            page,
            ..Self::default()
        }
    }

    /// Restricts to the given statuses.
    #[must_use]
    pub fn scope(mut self, scope: &[JobStatus]) -> Self {
        self.scope = scope.to_vec();
        self
    }
}

/// The first items of a listing, read up to a bound ([`crate::GitLabApiExt::project_jobs_up_to`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bounded<T> {
    /// The items read, in the listing's order.
    pub items: Vec<T>,
    /// Whether the listing had more than the bound: then `items` is its first part only.
    pub truncated: bool,
}

/// One page of an offset-paginated list, with GitLab's pagination headers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// This page's number (`x-page`).
    pub page: u32,
    /// Page size (`x-per-page`).
    pub per_page: u32,
    /// The next page (`x-next-page`; `None` on the last page).
    pub next_page: Option<u32>,
    /// Total items (`x-total`; omitted by GitLab above 10,000).
    pub total: Option<u64>,
    /// Total pages (`x-total-pages`; omitted above 10,000 items).
    pub total_pages: Option<u32>,
}
