//! Waiting until runners are online: a runner's manager must have contacted GitLab before a
//! pipeline is worth starting (a deployed release does not mean a registered runner).
//!
//! For a runner that existed before (a re-run reusing it), "online" proves nothing: GitLab
//! calls a runner online for two hours after its last contact (`ONLINE_CONTACT_TIMEOUT`,
//! app/models/ci/runner.rb), also when the manager that made it is gone.
//! [`wait_until_contacted_since`] requires a contact at or after a given instant (the
//! release's deployment) instead, from `GET /runners/:id`'s `contacted_at`, which every GitLab
//! with `POST /user/runners` (15.10+) answers. (`GET /runners/:id/managers` would name each
//! manager, but it came only with gitlab-org/gitlab!153715, May 2024: older instances answer
//! 404.)

use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;
use tokio::time::Instant;

use crate::api::GitLabApi;
use crate::error::Error;
use crate::types::RunnerDetails;

/// One poll of [`wait_until_online`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OnlineProgress {
    /// Seconds since the wait started (tokio clock).
    pub elapsed_secs: f64,
    /// Runners online so far.
    pub online: usize,
    /// Runners waited for.
    pub total: usize,
}

/// Runners that did not come online in time (or could not be read), with what GitLab says.
#[derive(Debug, thiserror::Error)]
#[error("{} of {total} runner(s) not {} after {} s: {}", not_online.len(), since.map_or_else(|| "online".to_owned(), |t| format!("contacted since {t}")), waited.as_secs(), describe(not_online))]
pub struct NotOnline {
    /// What GitLab said about each runner that is not online (or the error reading it).
    pub not_online: Vec<(u64, std::result::Result<RunnerDetails, String>)>,
    /// Runners waited for.
    pub total: usize,
    /// How long the wait took.
    pub waited: Duration,
    /// The instant a contact was required after ([`wait_until_contacted_since`]); `None` when
    /// only "online" was asked for.
    pub since: Option<Timestamp>,
}

fn describe(not_online: &[(u64, std::result::Result<RunnerDetails, String>)]) -> String {
    not_online
        .iter()
        .map(|(id, r)| match r {
            Ok(d) => format!(
                "runner {id} ({}) is {} (last contact: {})",
                d.description.as_deref().unwrap_or("no description"),
                d.status.as_deref().unwrap_or("unknown"),
                d.contacted_at
                    .map_or_else(|| "never".to_owned(), |t| t.to_string())
            ),
            Err(e) => format!("runner {id}: {e}"),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Polls `GET /runners/:id` for each runner until all are online or `timeout` passes. Runners
/// already online are not asked again. Errors reading a runner (other than a throttle the
/// transport gave up on) count as "not online yet"; the last one is reported.
pub async fn wait_until_online(
    api: &dyn GitLabApi,
    runner_ids: &[u64],
    timeout: Duration,
    interval: Duration,
    on_progress: &mut (dyn FnMut(&OnlineProgress) + Send),
) -> std::result::Result<Vec<RunnerDetails>, NotOnline> {
    wait_for(api, runner_ids, None, timeout, interval, on_progress).await
}

/// Polls `GET /runners/:id` for each runner until every one is online *and* a manager contacted
/// GitLab at or after `since` ([`RunnerDetails::contacted_since`]), or `timeout` passes. Pass the
/// instant this run's release was deployed: a reused runner whose manager is gone is online
/// for up to two hours on its old contact, but has none since. Otherwise as
/// [`wait_until_online`].
pub async fn wait_until_contacted_since(
    api: &dyn GitLabApi,
    runner_ids: &[u64],
    since: Timestamp,
    timeout: Duration,
    interval: Duration,
    on_progress: &mut (dyn FnMut(&OnlineProgress) + Send),
) -> std::result::Result<Vec<RunnerDetails>, NotOnline> {
    wait_for(api, runner_ids, Some(since), timeout, interval, on_progress).await
}

async fn wait_for(
    api: &dyn GitLabApi,
    runner_ids: &[u64],
    since: Option<Timestamp>,
    timeout: Duration,
    interval: Duration,
    on_progress: &mut (dyn FnMut(&OnlineProgress) + Send),
) -> std::result::Result<Vec<RunnerDetails>, NotOnline> {
    let ready = |d: &RunnerDetails| d.is_online() && since.is_none_or(|t| d.contacted_since(t));
    let start = Instant::now();
    let deadline = start + timeout;
    let mut online: Vec<RunnerDetails> = Vec::new();
    let mut last: Vec<(u64, std::result::Result<RunnerDetails, String>)> = Vec::new();
    loop {
        last.clear();
        for &id in runner_ids {
            if online.iter().any(|r| r.id == id) {
                continue;
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            let answer = match tokio::time::timeout(
                remaining.max(Duration::from_millis(1)),
                api.get_runner(id),
            )
            .await
            {
                Ok(Ok(d)) => Ok(d),
                Ok(Err(e @ Error::NotFound { .. })) => Err(format!("{e} (was it deleted?)")),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("GitLab did not answer before the deadline".to_owned()),
            };
            match answer {
                Ok(d) if ready(&d) => online.push(d),
                other => last.push((id, other)),
            }
        }
        on_progress(&OnlineProgress {
            elapsed_secs: start.elapsed().as_secs_f64(),
            online: online.len(),
            total: runner_ids.len(),
        });
        if last.is_empty() {
            online.sort_by_key(|r| r.id);
            return Ok(online);
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(NotOnline {
                not_online: std::mem::take(&mut last),
                total: runner_ids.len(),
                waited: start.elapsed(),
                since,
            });
        }
        tokio::time::sleep(interval.min(remaining)).await;
    }
}
