//! The CI limits of a namespace's plan: jobs per pipeline and jobs in active pipelines.
//!
//! # What GitLab checks when a pipeline is created
//!
//! `Ci::CreatePipelineService`'s chain runs `Chain::Limit::Size` and then
//! `Chain::Limit::ActiveJobs` (app/services/ci/create_pipeline_service.rb, `SEQUENCE`):
//!
//! - **Size**: refused when the pipeline has *more* jobs than the plan's `ci_pipeline_size`
//!   (`seeds_size > ci_pipeline_size_limit`, lib/gitlab/ci/pipeline/quota/size.rb line 26).
//! - **Active jobs**: refused when the jobs of the project's alive pipelines created in the last
//!   24 hours (`jobs_count_in_alive_pipelines`, app/models/ci/pipeline.rb; alive = created,
//!   waiting_for_resource, preparing, pending, running: `ALIVE_STATUSES`,
//!   app/models/concerns/ci/has_status.rb) *plus the new pipeline's jobs* reach the plan's
//!   `ci_active_jobs` (`count_persisted_jobs_in_all_alive_pipelines + count_current_pipeline_jobs`,
//!   lib/gitlab/ci/pipeline/chain/limit/active_jobs.rb; `PlanLimits#exceeded?` compares with
//!   `subject >= limit`, app/models/plan_limits.rb line 25). So with nothing else alive a
//!   pipeline of exactly `ci_active_jobs` jobs is refused: GitLab.com Free runs at most 499.
//!
//! A limit of 0 is no limit (`limit_for` keeps only positive values, app/models/plan_limits.rb).
//!
//! # GitLab.com's limits (doc/user/gitlab_com/_index.md, "CI/CD")
//!
//! | plan | jobs in a single pipeline | jobs in active pipelines |
//! |---|---|---|
//! | Free | 500 | 500 |
//! | trials | 1,000 | 1,000 |
//! | Premium | 1,500 | 20,000 |
//! | Ultimate | 2,000 | 60,000 |
//!
//! Plan names are EE's `Plan` constants (ee/app/models/ee/plan.rb): `free`, `bronze`, `silver`,
//! `premium`, `gold`, `ultimate`, `ultimate_trial`, `ultimate_trial_paid_customer`,
//! `premium_trial`, `opensource`; a self-managed EE instance's namespaces are on `default`.
//!
//! # Who sees the plan
//!
//! EE shows `GET /namespaces/:id`'s `plan` only when `::Ability.allowed?(current_user,
//! :admin_namespace, namespace)` (`can_admin_namespace`, ee/lib/ee/api/entities/namespace.rb
//! lines 11 and 43): a group's Owners, a personal namespace's user, administrators. A Maintainer
//! on GitLab.com sees no plan, which does not mean "no limit": [`PlanLimits::of`] then says the
//! limits are unknown.

use serde::Serialize;

use crate::types::Namespace;

/// Where a [`PlanLimits`] comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum LimitsSource {
    /// A GitLab.com plan GitLab named, read from GitLab.com's documented table.
    GitLabCom {
        /// The plan's name (`free`, `premium`, ...).
        plan: String,
    },
    /// A self-managed instance: the `default` plan, or no plan at all (GitLab CE, or EE to a
    /// user who cannot administer the namespace). Its limits are the instance's own: none
    /// unless an administrator set them (`ci_pipeline_size` and `ci_active_jobs` default to 0).
    SelfManaged,
    /// GitLab.com did not show the plan (the token's user cannot administer the namespace), or
    /// named one this table does not know.
    Unknown {
        /// Why the limits are unknown.
        reason: String,
    },
}

/// The CI limits that apply to a namespace's pipelines.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlanLimits {
    /// Where the limits come from.
    #[serde(flatten)]
    pub source: LimitsSource,
    /// Most jobs in one pipeline (`ci_pipeline_size`); `None`: no limit known to apply.
    pub jobs_per_pipeline: Option<u32>,
    /// Jobs in the project's alive pipelines, the new one included, must stay below this
    /// (`ci_active_jobs`); `None`: no limit known to apply.
    pub active_jobs: Option<u32>,
    /// True when GitLab said which plan applies (a GitLab.com plan in the table, or a
    /// self-managed instance); false when the limits are unknown.
    pub known: bool,
}

/// GitLab.com's limits of a plan `(jobs per pipeline, jobs in active pipelines)`, or `None`
/// for a name the table does not know. Source: doc/user/gitlab_com/_index.md ("Maximum jobs in
/// a single pipeline", "Maximum jobs in active pipelines"); the legacy names bronze/silver are
/// Premium and gold Ultimate (`Plan::PAID_HOSTED_PLANS`, ee/app/models/ee/plan.rb), open-source
/// namespaces get Ultimate.
pub fn gitlab_com_limits(plan: &str) -> Option<(u32, u32)> {
    match plan {
        "free" => Some((500, 500)),
        // "1000 for all trial tiers"; a paying customer's trial is a trial too.
        "ultimate_trial" | "premium_trial" | "ultimate_trial_paid_customer" => Some((1_000, 1_000)),
        "premium" | "bronze" | "silver" => Some((1_500, 20_000)),
        "ultimate" | "gold" | "opensource" => Some((2_000, 60_000)),
        _ => None,
    }
}

/// Whether the API URL is GitLab.com's (where namespaces have GitLab.com plans).
pub fn is_gitlab_com(url: &url::Url) -> bool {
    matches!(url.host_str(), Some(h) if h.eq_ignore_ascii_case("gitlab.com") || h.eq_ignore_ascii_case("www.gitlab.com"))
}

impl PlanLimits {
    /// The limits of a namespace as `GET /namespaces/:id` answered it, on GitLab.com or not.
    pub fn of(namespace: &Namespace, gitlab_com: bool) -> Self {
        Self::for_plan(namespace.plan.as_deref(), gitlab_com)
    }

    /// The limits of a plan name (`None`: GitLab showed no plan).
    pub fn for_plan(plan: Option<&str>, gitlab_com: bool) -> Self {
        let unknown = |reason: String| PlanLimits {
            source: LimitsSource::Unknown { reason },
            jobs_per_pipeline: None,
            active_jobs: None,
            known: false,
        };
        match (plan, gitlab_com) {
            // `default` is the plan of every namespace of a self-managed EE instance; on
            // GitLab.com a namespace without a subscription is on `free`.
            (Some("default"), false) | (None, false) => PlanLimits {
                source: LimitsSource::SelfManaged,
                jobs_per_pipeline: None,
                active_jobs: None,
                known: true,
            },
            (None, true) => unknown(
                "GitLab.com shows a namespace's plan only to those who can administer it (a group's Owners, \
                 a personal namespace's user, administrators)"
                    .to_owned(),
            ),
            (Some(p), _) => match gitlab_com_limits(p) {
                Some((pipeline, active)) => PlanLimits {
                    source: LimitsSource::GitLabCom { plan: p.to_owned() },
                    jobs_per_pipeline: Some(pipeline),
                    active_jobs: Some(active),
                    known: true,
                },
                None => unknown(format!("plan {p:?} is not in GitLab.com's table of CI limits")),
            },
        }
    }

    /// GitLab.com Free's limits: the lowest, what a caller may assume when the plan is unknown.
    pub fn gitlab_com_free() -> Self {
        Self::for_plan(Some("free"), true)
    }

    /// The most jobs one pipeline may have when nothing else of the project is alive:
    /// at most `jobs_per_pipeline`, and below `active_jobs` (the new pipeline's own jobs count
    /// towards it with `>=`). `None`: no limit known.
    pub fn max_pipeline_jobs(&self) -> Option<u32> {
        let below_active = self.active_jobs.map(|a| a.saturating_sub(1));
        match (self.jobs_per_pipeline, below_active) {
            (Some(p), Some(a)) => Some(p.min(a)),
            (p, a) => p.or(a),
        }
    }

    /// The most jobs that may run at once in the project's pipelines together (below
    /// `active_jobs`); `None`: no limit known.
    pub fn max_jobs_at_once(&self) -> Option<u32> {
        self.active_jobs.map(|a| a.saturating_sub(1))
    }

    /// What GitLab would answer to a pipeline of `jobs` jobs while the project's alive pipelines
    /// (of the last 24 hours) hold `alive_jobs`: `Ok` or GitLab's refusal text.
    pub fn admits(&self, jobs: u32, alive_jobs: u32) -> Result<(), String> {
        if let Some(limit) = self.jobs_per_pipeline.filter(|l| *l > 0)
            && jobs > limit
        {
            return Err(format!(
                "The number of jobs has exceeded the limit of {limit}. Try splitting the configuration with parent-child-pipelines"
            ));
        }
        if let Some(limit) = self.active_jobs.filter(|l| *l > 0)
            && alive_jobs.saturating_add(jobs) >= limit
        {
            return Err(ACTIVE_JOBS_EXCEEDED.to_owned());
        }
        Ok(())
    }
}

/// GitLab's refusal when the active-jobs limit is reached (`Chain::Limit::ActiveJobs::MESSAGE`,
/// lib/gitlab/ci/pipeline/chain/limit/active_jobs.rb line 13).
pub const ACTIVE_JOBS_EXCEEDED: &str =
    "Project exceeded the allowed number of jobs in active pipelines. Retry later.";

/// GitLab's refusal of a pipeline above the size limit, with its help link
/// (`Quota::Size#message`, lib/gitlab/ci/pipeline/quota/size.rb lines 33-38: `help_page_url`
/// of `ci/debugging.md#pipeline-with-many-jobs-fails-to-start` on the instance's URL).
pub fn pipeline_size_exceeded(limit: u32, instance_url: &str) -> String {
    format!(
        "The number of jobs has exceeded the limit of {limit}. Try splitting the configuration with parent-child-pipelines \
         {}/help/ci/debugging.md#pipeline-with-many-jobs-fails-to-start",
        instance_url.trim_end_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_managed_default_is_not_gitlab_com_free() {
        let sm = PlanLimits::for_plan(Some("default"), false);
        assert_eq!(sm.source, LimitsSource::SelfManaged);
        assert!(sm.known && sm.jobs_per_pipeline.is_none() && sm.max_pipeline_jobs().is_none());
        assert!(sm.admits(5_000, 5_000).is_ok());
        assert_eq!(
            PlanLimits::for_plan(None, false).source,
            LimitsSource::SelfManaged
        );
    }

    #[test]
    fn a_hidden_plan_on_gitlab_com_is_unknown_not_unlimited() {
        let hidden = PlanLimits::for_plan(None, true);
        assert!(!hidden.known, "{hidden:?}");
        assert!(
            matches!(&hidden.source, LimitsSource::Unknown { reason } if reason.contains("Owners"))
        );
        let odd = PlanLimits::for_plan(Some("platinum"), true);
        assert!(!odd.known);
    }

    #[test]
    fn free_runs_at_most_499_jobs_at_once() {
        let free = PlanLimits::gitlab_com_free();
        assert_eq!(
            (free.jobs_per_pipeline, free.active_jobs),
            (Some(500), Some(500))
        );
        assert_eq!(free.max_pipeline_jobs(), Some(499));
        assert_eq!(free.max_jobs_at_once(), Some(499));
        assert!(free.admits(499, 0).is_ok());
        assert_eq!(free.admits(500, 0), Err(ACTIVE_JOBS_EXCEEDED.to_owned()));
        assert!(
            free.admits(501, 0)
                .unwrap_err()
                .contains("exceeded the limit of 500")
        );
        assert!(
            free.admits(250, 250).is_err(),
            "two halves started together"
        );
        let trial = PlanLimits::for_plan(Some("ultimate_trial"), true);
        assert_eq!(trial.max_pipeline_jobs(), Some(999));
        let premium = PlanLimits::for_plan(Some("premium"), true);
        assert_eq!(premium.max_pipeline_jobs(), Some(1_500));
        assert_eq!(premium.max_jobs_at_once(), Some(19_999));
    }

    #[test]
    fn gitlab_com_is_recognised_by_host() {
        let url = |s: &str| url::Url::parse(s).unwrap();
        assert!(is_gitlab_com(&url("https://gitlab.com/api/v4/")));
        assert!(!is_gitlab_com(&url("https://gitlab.example.com/api/v4/")));
        assert!(!is_gitlab_com(&url("https://notgitlab.com/")));
    }
}
