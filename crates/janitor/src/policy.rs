//! The pure reaping policy: which pods are job pods, and whether a job pod is kept or reaped.
//!
//! Nothing here reads a clock or does I/O: [`decide`] takes `now` and the optional facts the reaper
//! gathered (does the manager pod exist, what does GitLab say), so it is exhaustively testable.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;

use crate::api::JobStatus;
use crate::model::{DeleteMode, PodInfo, PodPhase, keys};

/// Owner kinds whose pods are never touched: they belong to a controller that recreates them.
pub const PROTECTED_OWNER_KINDS: &[&str] = &[
    "ReplicaSet",
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "CronJob",
    "ReplicationController",
];

/// The knobs of the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Policy {
    /// The only namespaces whose pods may be reaped.
    pub namespaces: BTreeSet<String>,
    /// Extra time granted past every deadline (finished, pending, job timeout, Terminating).
    pub grace: Duration,
    /// How long a pod may stay Pending: the runner's `poll_timeout` (default 180 s), after which the
    /// runner gives up on the pod ("timed out waiting for pod to start") and may leave it behind.
    pub pending_timeout: Duration,
    /// Job timeout assumed for Running pods without a readable `job.runner.gitlab.com/timeout`
    /// annotation; `None` keeps such pods.
    pub default_job_timeout: Option<Duration>,
}

impl Policy {
    /// Default grace: 5 minutes.
    pub const DEFAULT_GRACE: Duration = Duration::from_secs(300);
    /// Default pending timeout: the runner's default `poll_timeout`, 180 s.
    pub const DEFAULT_PENDING_TIMEOUT: Duration = Duration::from_secs(180);

    /// A policy for the given namespaces with the default durations.
    pub fn new<I, S>(namespaces: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            namespaces: namespaces.into_iter().map(Into::into).collect(),
            grace: Self::DEFAULT_GRACE,
            pending_timeout: Self::DEFAULT_PENDING_TIMEOUT,
            default_job_timeout: None,
        }
    }

    /// Sets the grace period.
    #[must_use]
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Sets the pending timeout (the runner's `poll_timeout`).
    #[must_use]
    pub fn with_pending_timeout(mut self, pending_timeout: Duration) -> Self {
        self.pending_timeout = pending_timeout;
        self
    }

    /// Sets the job timeout assumed when a pod has no timeout annotation.
    #[must_use]
    pub fn with_default_job_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.default_job_timeout = timeout;
        self
    }
}

/// Why a pod is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum KeepReason {
    /// Not a job pod: it lacks the executor's label or annotation.
    NotJobPod {
        /// The missing label or annotation.
        missing: String,
    },
    /// Owned by a controller (ReplicaSet, Deployment...): never ours to delete.
    OwnedByController {
        /// The owner's kind.
        kind: String,
    },
    /// Carries the gitlab-runner chart's labels: a runner-manager pod.
    ChartLabels,
    /// Outside the configured namespaces.
    OutsideNamespaces,
    /// Terminating, still within its grace period.
    TerminatingWithinGrace,
    /// Finished recently.
    FinishedWithinGrace,
    /// Pending, within the pending timeout plus grace.
    PendingWithinTimeout,
    /// Running, within its job timeout plus grace.
    RunningWithinTimeout,
    /// Running without a known job timeout.
    RunningWithoutTimeout,
    /// The phase is unknown.
    UnknownPhase,
}

impl KeepReason {
    /// A stable code for reports (`not_job_pod`, `chart_labels`...).
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotJobPod { .. } => "not_job_pod",
            Self::OwnedByController { .. } => "owned_by_controller",
            Self::ChartLabels => "chart_labels",
            Self::OutsideNamespaces => "outside_namespaces",
            Self::TerminatingWithinGrace => "terminating_within_grace",
            Self::FinishedWithinGrace => "finished_within_grace",
            Self::PendingWithinTimeout => "pending_within_timeout",
            Self::RunningWithinTimeout => "running_within_timeout",
            Self::RunningWithoutTimeout => "running_without_timeout",
            Self::UnknownPhase => "unknown_phase",
        }
    }

    /// Whether the pod was kept because it is not a job pod at all (as opposed to a healthy job pod).
    pub fn is_identity(&self) -> bool {
        matches!(
            self,
            Self::NotJobPod { .. }
                | Self::OwnedByController { .. }
                | Self::ChartLabels
                | Self::OutsideNamespaces
        )
    }
}

impl fmt::Display for KeepReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotJobPod { missing } => write!(f, "not a job pod (no {missing})"),
            Self::OwnedByController { kind } => write!(f, "owned by a {kind}"),
            Self::ChartLabels => f.write_str("runner-manager pod (gitlab-runner chart labels)"),
            Self::OutsideNamespaces => f.write_str("outside the configured namespaces"),
            Self::TerminatingWithinGrace => f.write_str("terminating, within grace"),
            Self::FinishedWithinGrace => f.write_str("finished, within grace"),
            Self::PendingWithinTimeout => f.write_str("pending, within pending timeout + grace"),
            Self::RunningWithinTimeout => f.write_str("running, within job timeout + grace"),
            Self::RunningWithoutTimeout => f.write_str("running, no job timeout known"),
            Self::UnknownPhase => f.write_str("unknown phase"),
        }
    }
}

/// Why a pod is reaped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum ReapReason {
    /// Succeeded or Failed for longer than the grace.
    Finished {
        /// The phase.
        phase: PodPhase,
    },
    /// Pending for longer than the pending timeout plus grace: the runner gave up on it.
    PendingTooLong,
    /// Running past its job timeout plus grace.
    PastJobTimeout {
        /// The job timeout in seconds.
        timeout_secs: u64,
    },
    /// Terminating for longer than the grace: no kubelet will confirm; force-deleted.
    StuckTerminating,
    /// The runner manager that owned the job no longer exists.
    ManagerGone {
        /// The manager's name (`manager.runner.gitlab.com/name`).
        manager: String,
    },
    /// GitLab says the job is over.
    GitLabJobFinished {
        /// GitLab's status.
        status: JobStatus,
    },
    /// Pending in a state that cannot recover (decided by a controller observer, opt-in).
    Unrecoverable {
        /// The rule or class that decided it, as the observer named it.
        rule: String,
    },
}

impl ReapReason {
    /// A stable code for reports (`pending_too_long`, `stuck_terminating`...).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Finished { .. } => "finished",
            Self::PendingTooLong => "pending_too_long",
            Self::PastJobTimeout { .. } => "past_job_timeout",
            Self::StuckTerminating => "stuck_terminating",
            Self::ManagerGone { .. } => "manager_gone",
            Self::GitLabJobFinished { .. } => "gitlab_job_finished",
            Self::Unrecoverable { .. } => "unrecoverable",
        }
    }

    /// How to delete a pod reaped for this reason: stuck Terminating pods are force-deleted.
    pub fn delete_mode(&self) -> DeleteMode {
        match self {
            Self::StuckTerminating => DeleteMode::force(),
            _ => DeleteMode::graceful(None),
        }
    }
}

impl fmt::Display for ReapReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Finished { phase } => write!(f, "{phase} longer than grace"),
            Self::PendingTooLong => f.write_str("pending longer than pending timeout + grace"),
            Self::PastJobTimeout { timeout_secs } => {
                write!(f, "running past job timeout {timeout_secs}s + grace")
            }
            Self::StuckTerminating => f.write_str("stuck terminating (force delete)"),
            Self::ManagerGone { manager } => write!(f, "runner manager {manager:?} is gone"),
            Self::GitLabJobFinished { status } => write!(f, "GitLab job is {status}"),
            Self::Unrecoverable { rule } => write!(f, "pending and cannot recover ({rule})"),
        }
    }
}

/// The policy's verdict on one pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", content = "why", rename_all = "snake_case")]
pub enum Decision {
    /// Leave the pod alone.
    Keep(KeepReason),
    /// Delete the pod.
    Reap(ReapReason),
}

impl Decision {
    /// Whether the verdict is to reap.
    pub fn is_reap(&self) -> bool {
        matches!(self, Self::Reap(_))
    }
}

/// Facts beyond the pod itself that the optional checks use. `None` means "not checked".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evidence {
    /// Whether the pod's runner-manager pod still exists.
    pub manager_exists: Option<bool>,
    /// GitLab's status of the pod's job.
    pub gitlab_status: Option<JobStatus>,
}

/// Whether `pod` is a GitLab Runner job pod the janitor may ever touch; `Err` says why not.
///
/// A job pod carries the label [`keys::LABEL_JOB_POD`] and the annotation [`keys::ANNOTATION_JOB_ID`],
/// is not owned by a controller, does not carry the chart's labels, and lives in a configured namespace.
pub fn check_identity(pod: &PodInfo, namespaces: &BTreeSet<String>) -> Result<(), KeepReason> {
    if !namespaces.contains(&pod.namespace) {
        return Err(KeepReason::OutsideNamespaces);
    }
    if !pod.labels.contains_key(keys::LABEL_JOB_POD) {
        return Err(KeepReason::NotJobPod {
            missing: format!("label {}", keys::LABEL_JOB_POD),
        });
    }
    if !pod.annotations.contains_key(keys::ANNOTATION_JOB_ID) {
        return Err(KeepReason::NotJobPod {
            missing: format!("annotation {}", keys::ANNOTATION_JOB_ID),
        });
    }
    if let Some(owner) = pod
        .owners
        .iter()
        .find(|o| o.controller || PROTECTED_OWNER_KINDS.contains(&o.kind.as_str()))
    {
        return Err(KeepReason::OwnedByController {
            kind: owner.kind.clone(),
        });
    }
    let chart = pod
        .labels
        .get(keys::LABEL_CHART)
        .is_some_and(|c| c.starts_with("gitlab-runner"));
    let app_release = pod.labels.contains_key(keys::LABEL_CHART_APP)
        && pod.labels.contains_key(keys::LABEL_CHART_RELEASE);
    if chart || app_release {
        return Err(KeepReason::ChartLabels);
    }
    Ok(())
}

fn elapsed(now: Timestamp, since: Timestamp) -> Duration {
    now.duration_since(since)
        .try_into()
        .unwrap_or(Duration::ZERO)
}

/// Decides whether to keep or reap `pod` at time `now`.
pub fn decide(pod: &PodInfo, now: Timestamp, policy: &Policy, evidence: &Evidence) -> Decision {
    if let Err(reason) = check_identity(pod, &policy.namespaces) {
        return Decision::Keep(reason);
    }
    let grace = policy.grace;

    if let Some(deleted) = pod.deletion_timestamp {
        // deletionTimestamp is when the pod should be gone (request time + its grace period).
        return if now > deleted && elapsed(now, deleted) > grace {
            Decision::Reap(ReapReason::StuckTerminating)
        } else {
            Decision::Keep(KeepReason::TerminatingWithinGrace)
        };
    }

    let age = elapsed(now, pod.created_at);
    let primary = match pod.phase {
        PodPhase::Succeeded | PodPhase::Failed => {
            let since = pod.started_at.unwrap_or(pod.created_at);
            if elapsed(now, since) > grace {
                Decision::Reap(ReapReason::Finished {
                    phase: pod.phase.clone(),
                })
            } else {
                Decision::Keep(KeepReason::FinishedWithinGrace)
            }
        }
        PodPhase::Pending => {
            if age > policy.pending_timeout.saturating_add(grace) {
                Decision::Reap(ReapReason::PendingTooLong)
            } else {
                Decision::Keep(KeepReason::PendingWithinTimeout)
            }
        }
        PodPhase::Running => {
            let timeout = pod
                .annotations
                .get(keys::ANNOTATION_JOB_TIMEOUT)
                .and_then(|t| parse_go_duration(t))
                .or(policy.default_job_timeout);
            match timeout {
                None => Decision::Keep(KeepReason::RunningWithoutTimeout),
                Some(timeout) => {
                    let since = pod.started_at.unwrap_or(pod.created_at);
                    if elapsed(now, since) > timeout.saturating_add(grace) {
                        Decision::Reap(ReapReason::PastJobTimeout {
                            timeout_secs: timeout.as_secs(),
                        })
                    } else {
                        Decision::Keep(KeepReason::RunningWithinTimeout)
                    }
                }
            }
        }
        PodPhase::Unknown => Decision::Keep(KeepReason::UnknownPhase),
    };
    if primary.is_reap() || age <= grace {
        return primary;
    }
    if evidence.manager_exists == Some(false) {
        let manager = pod
            .labels
            .get(keys::LABEL_MANAGER_NAME)
            .cloned()
            .unwrap_or_default();
        return Decision::Reap(ReapReason::ManagerGone { manager });
    }
    if let Some(status) = &evidence.gitlab_status
        && status.is_finished()
    {
        return Decision::Reap(ReapReason::GitLabJobFinished {
            status: status.clone(),
        });
    }
    primary
}

/// When [`decide`]'s verdict on `pod` changes on its own as time passes (no new event): the first
/// instant past the deadline that applies to its state (pending timeout + grace, job timeout +
/// grace, finished + grace, Terminating + grace), or, when evidence (GitLab, the manager check)
/// is gathered, the end of the grace after creation from which evidence counts. `None` when the
/// verdict cannot change without an event (not a job pod, running without a known timeout,
/// unknown phase) or the deadline has passed.
///
/// A controller sleeps until the earliest of these instead of re-listing.
pub fn next_deadline(
    pod: &PodInfo,
    now: Timestamp,
    policy: &Policy,
    with_evidence: bool,
) -> Option<Timestamp> {
    check_identity(pod, &policy.namespaces).ok()?;
    let after = |since: Timestamp, wait: Duration| -> Option<Timestamp> {
        let wait = jiff::SignedDuration::try_from(wait).ok()?;
        // `decide` compares with `>`: the verdict flips just past the deadline.
        since
            .checked_add(wait)
            .ok()?
            .checked_add(jiff::SignedDuration::from_millis(1))
            .ok()
    };
    let grace = policy.grace;
    let primary = if let Some(deleted) = pod.deletion_timestamp {
        after(deleted, grace)
    } else {
        match pod.phase {
            PodPhase::Succeeded | PodPhase::Failed => {
                after(pod.started_at.unwrap_or(pod.created_at), grace)
            }
            PodPhase::Pending => {
                after(pod.created_at, policy.pending_timeout.saturating_add(grace))
            }
            PodPhase::Running => pod
                .annotations
                .get(keys::ANNOTATION_JOB_TIMEOUT)
                .and_then(|t| parse_go_duration(t))
                .or(policy.default_job_timeout)
                .and_then(|timeout| {
                    after(
                        pod.started_at.unwrap_or(pod.created_at),
                        timeout.saturating_add(grace),
                    )
                }),
            PodPhase::Unknown => None,
        }
    };
    let evidence = (with_evidence && pod.deletion_timestamp.is_none())
        .then(|| after(pod.created_at, grace))
        .flatten();
    [primary, evidence]
        .into_iter()
        .flatten()
        .filter(|t| *t > now)
        .min()
}

/// Parses a Go `time.Duration` string as the executor writes it (`2h3m0.5s`, `1h0m0s`, `90s`, `0`).
/// Negative or malformed values give `None`.
///
/// What Go's `Duration.String()` writes is a subset of jiff's "friendly" duration format (units
/// `h`/`m`/`s`/`ms`/`us`/`µs`/`ns`, no spaces needed, a fraction on the last unit), so jiff parses
/// it; only Go's bare `0` needs saying.
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let text = text.strip_prefix('+').unwrap_or(text);
    if text == "0" {
        return Some(Duration::ZERO);
    }
    let parsed: jiff::SignedDuration = text.parse().ok()?;
    Duration::try_from(parsed).ok()
}

/// Parses a duration flag written like `90s`, `5m`, `1h30m`; zero and negative values are rejected
/// with an [`crate::Error::InvalidInput`] naming `flag`.
pub fn parse_duration_flag(flag: &str, value: &str) -> crate::Result<Duration> {
    let hint = "write a positive duration such as 90s, 5m or 1h";
    if value.trim_start().starts_with('-') {
        return Err(crate::Error::invalid(
            flag,
            format!("{value:?} is negative; {hint}"),
        ));
    }
    let parsed = humantime::parse_duration(value.trim()).map_err(|e| {
        crate::Error::invalid(flag, format!("{value:?} is not a duration ({e}); {hint}"))
    })?;
    if parsed.is_zero() {
        return Err(crate::Error::invalid(
            flag,
            format!("{value:?} is zero; {hint}"),
        ));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::{OwnerRef, PodRequests};

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn job_pod(phase: PodPhase) -> PodInfo {
        PodInfo {
            namespace: "gitlab-runner".into(),
            name: "runner-abc-project-1-concurrent-0-x1y2z3w4".into(),
            uid: "u1".into(),
            labels: BTreeMap::from([
                (
                    keys::LABEL_JOB_POD.into(),
                    "runner-abc-project-1-concurrent-0".into(),
                ),
                (
                    keys::LABEL_MANAGER_NAME.into(),
                    "gitlab-runner-5fd7489954-jx682".into(),
                ),
            ]),
            annotations: BTreeMap::from([
                (keys::ANNOTATION_JOB_ID.into(), "42".into()),
                (keys::ANNOTATION_JOB_TIMEOUT.into(), "1h0m0s".into()),
            ]),
            owners: vec![],
            phase,
            node_name: Some("fargate-ip-10-0-1-1".into()),
            created_at: ts("2026-01-01T00:00:00Z"),
            started_at: Some(ts("2026-01-01T00:01:00Z")),
            deletion_timestamp: None,
            requests: PodRequests::default(),
            signals: Default::default(),
        }
    }

    fn policy() -> Policy {
        Policy::new(["gitlab-runner"]).with_grace(Duration::from_secs(60))
    }

    fn at(s: &str, pod: &PodInfo) -> Decision {
        decide(pod, ts(s), &policy(), &Evidence::default())
    }

    #[test]
    fn the_deadline_is_where_the_verdict_flips_in_every_state() {
        let policy = policy();
        let mut pending = job_pod(PodPhase::Pending);
        pending.node_name = None;
        let mut terminating = job_pod(PodPhase::Running);
        terminating.deletion_timestamp = Some(ts("2026-01-01T00:30:00Z"));
        let mut no_timeout = job_pod(PodPhase::Running);
        no_timeout.annotations.remove(keys::ANNOTATION_JOB_TIMEOUT);
        let now = ts("2026-01-01T00:00:10Z");
        for pod in [
            pending,
            job_pod(PodPhase::Running),
            job_pod(PodPhase::Succeeded),
            terminating,
        ] {
            let deadline = next_deadline(&pod, now, &policy, false).unwrap();
            let before = deadline
                .checked_sub(jiff::SignedDuration::from_millis(2))
                .unwrap();
            let none = Evidence::default();
            assert!(!decide(&pod, before, &policy, &none).is_reap(), "{pod:?}");
            assert!(decide(&pod, deadline, &policy, &none).is_reap(), "{pod:?}");
            // Past it, nothing is left to wait for.
            assert_eq!(next_deadline(&pod, deadline, &policy, false), None);
        }
        // Evidence counts from the end of the grace after creation.
        assert_eq!(next_deadline(&no_timeout, now, &policy, false), None);
        assert_eq!(
            next_deadline(&no_timeout, now, &policy, true),
            Some(ts("2026-01-01T00:01:00.001Z"))
        );
        let mut foreign = job_pod(PodPhase::Pending);
        foreign.namespace = "other".into();
        assert_eq!(next_deadline(&foreign, now, &policy, true), None);
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1h0m0s"), Some(Duration::from_secs(3600)));
        assert_eq!(
            parse_go_duration("2h3m0.5s"),
            Some(Duration::from_millis(7_380_500))
        );
        assert_eq!(parse_go_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("300ms"), Some(Duration::from_millis(300)));
        assert_eq!(
            parse_go_duration("2m0.5s"),
            Some(Duration::from_millis(120_500))
        );
        assert_eq!(
            parse_go_duration("1h30m0s"),
            Some(Duration::from_secs(5400))
        );
        assert_eq!(parse_go_duration("1µs"), Some(Duration::from_micros(1)));
        for bad in ["", "-1h", "1x", "h", "1h m", "abc"] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn duration_flags() {
        assert_eq!(
            parse_duration_flag("--grace", "90s").unwrap(),
            Duration::from_secs(90)
        );
        assert_eq!(
            parse_duration_flag("--grace", "5m").unwrap(),
            Duration::from_secs(300)
        );
        assert_eq!(
            parse_duration_flag("--grace", "1h").unwrap(),
            Duration::from_secs(3600)
        );
        for bad in ["abc", "0s", "-5m", ""] {
            let err = parse_duration_flag("--grace", bad).unwrap_err();
            assert!(err.to_string().contains("--grace"), "{err}");
        }
    }

    #[test]
    fn identity_rules() {
        let ns = policy().namespaces;
        assert!(check_identity(&job_pod(PodPhase::Running), &ns).is_ok());

        let mut p = job_pod(PodPhase::Running);
        p.labels.remove(keys::LABEL_JOB_POD);
        assert!(matches!(
            check_identity(&p, &ns),
            Err(KeepReason::NotJobPod { .. })
        ));

        let mut p = job_pod(PodPhase::Running);
        p.annotations.remove(keys::ANNOTATION_JOB_ID);
        assert!(matches!(
            check_identity(&p, &ns),
            Err(KeepReason::NotJobPod { .. })
        ));

        let mut p = job_pod(PodPhase::Running);
        p.owners.push(OwnerRef {
            kind: "ReplicaSet".into(),
            name: "rs".into(),
            controller: false,
        });
        assert!(matches!(
            check_identity(&p, &ns),
            Err(KeepReason::OwnedByController { .. })
        ));

        let mut p = job_pod(PodPhase::Running);
        p.labels
            .insert("chart".into(), "gitlab-runner-0.86.0".into());
        assert_eq!(check_identity(&p, &ns), Err(KeepReason::ChartLabels));

        let mut p = job_pod(PodPhase::Running);
        p.namespace = "other".into();
        assert_eq!(check_identity(&p, &ns), Err(KeepReason::OutsideNamespaces));
    }

    #[test]
    fn phases_and_deadlines() {
        let finished = job_pod(PodPhase::Failed);
        assert_eq!(
            at("2026-01-01T00:01:30Z", &finished),
            Decision::Keep(KeepReason::FinishedWithinGrace)
        );
        assert!(at("2026-01-01T00:02:01Z", &finished).is_reap());

        let mut pending = job_pod(PodPhase::Pending);
        pending.started_at = None;
        // pending timeout 180 s + grace 60 s
        assert_eq!(
            at("2026-01-01T00:04:00Z", &pending),
            Decision::Keep(KeepReason::PendingWithinTimeout)
        );
        assert_eq!(
            at("2026-01-01T00:04:01Z", &pending),
            Decision::Reap(ReapReason::PendingTooLong)
        );

        let running = job_pod(PodPhase::Running);
        // started 00:01, timeout 1 h + grace 1 min
        assert_eq!(
            at("2026-01-01T01:02:00Z", &running),
            Decision::Keep(KeepReason::RunningWithinTimeout)
        );
        assert_eq!(
            at("2026-01-01T01:02:01Z", &running),
            Decision::Reap(ReapReason::PastJobTimeout { timeout_secs: 3600 })
        );

        let mut no_timeout = job_pod(PodPhase::Running);
        no_timeout.annotations.remove(keys::ANNOTATION_JOB_TIMEOUT);
        assert_eq!(
            at("2030-01-01T00:00:00Z", &no_timeout),
            Decision::Keep(KeepReason::RunningWithoutTimeout)
        );
        let with_default = policy().with_default_job_timeout(Some(Duration::from_secs(600)));
        assert!(
            decide(
                &no_timeout,
                ts("2026-01-01T00:12:01Z"),
                &with_default,
                &Evidence::default()
            )
            .is_reap()
        );

        let mut terminating = job_pod(PodPhase::Running);
        terminating.deletion_timestamp = Some(ts("2026-01-01T00:10:00Z"));
        assert_eq!(
            at("2026-01-01T00:11:00Z", &terminating),
            Decision::Keep(KeepReason::TerminatingWithinGrace)
        );
        let d = at("2026-01-01T00:11:01Z", &terminating);
        assert_eq!(d, Decision::Reap(ReapReason::StuckTerminating));
        assert!(ReapReason::StuckTerminating.delete_mode().is_force());
    }

    #[test]
    fn optional_evidence() {
        let running = job_pod(PodPhase::Running);
        let now = ts("2026-01-01T00:30:00Z");
        let gone = Evidence {
            manager_exists: Some(false),
            gitlab_status: None,
        };
        assert_eq!(
            decide(&running, now, &policy(), &gone),
            Decision::Reap(ReapReason::ManagerGone {
                manager: "gitlab-runner-5fd7489954-jx682".into()
            })
        );
        let done = Evidence {
            manager_exists: Some(true),
            gitlab_status: Some(JobStatus::Canceled),
        };
        assert_eq!(
            decide(&running, now, &policy(), &done),
            Decision::Reap(ReapReason::GitLabJobFinished {
                status: JobStatus::Canceled
            })
        );
        let active = Evidence {
            manager_exists: Some(true),
            gitlab_status: Some(JobStatus::Running),
        };
        assert_eq!(
            decide(&running, now, &policy(), &active),
            Decision::Keep(KeepReason::RunningWithinTimeout)
        );
        // Young pods are never reaped on evidence alone.
        assert!(!decide(&running, ts("2026-01-01T00:00:30Z"), &policy(), &gone).is_reap());
        // Evidence never overrides identity.
        let mut manager = job_pod(PodPhase::Running);
        manager.labels.insert("app".into(), "gitlab-runner".into());
        manager
            .labels
            .insert("release".into(), "gitlab-runner".into());
        assert_eq!(
            decide(&manager, now, &policy(), &gone),
            Decision::Keep(KeepReason::ChartLabels)
        );
    }
}
