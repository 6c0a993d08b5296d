//! Applying a plan: independent steps run concurrently, each reusing what exists before creating.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::plan::{Plan, Step};
use crate::progress::{NoProgress, Progress, ProgressEvent};
use crate::provider::{ClusterProvisioner, NetworkProvisioner};
use crate::resource::{CreateRequest, Resource, ResourceKind, ResourceState, ResourceTags};
use crate::spec::{REGION_TAG, StackName};
use crate::state::StateFile;
use crate::wait::{WaitPolicy, needs_wait, retry_if, wait_for};

/// The step whose creation claims a stack for one run (see [`Engine::apply`]).
const CLAIM_STEP: &str = "role/cluster";

/// Timing of one applied step, relative to the start of apply.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepTiming {
    /// Step key.
    pub key: String,
    /// Resource id.
    pub id: String,
    /// Whether the step created the resource (false: it existed).
    pub created: bool,
    /// Seconds from the start of apply to the start of the step.
    pub started_s: f64,
    /// Seconds from the start of apply to the end of the step.
    pub finished_s: f64,
}

/// What apply did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApplyReport {
    /// Stack name.
    pub stack: String,
    /// Every step, in completion order.
    pub steps: Vec<StepTiming>,
    /// Resources by step key.
    pub resources: HashMap<String, Resource>,
    /// Wall (or virtual) seconds from start to the last step's end.
    pub makespan_s: f64,
    /// How reused resources differ from what the plan would create (reported, not changed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<String>,
}

impl ApplyReport {
    /// Number of resources created by this run (0 on a converged re-run).
    pub fn created(&self) -> usize {
        self.steps.iter().filter(|s| s.created).count()
    }
}

/// What one step needs to know about the run it belongs to.
struct StepContext<'r> {
    stack: &'r StackName,
    region: &'r str,
    fresh: HashSet<String>,
    drift: &'r Mutex<Vec<String>>,
}

/// Runs plans and teardowns against a network and a cluster provisioner.
pub struct Engine<'a> {
    pub(crate) network: &'a dyn NetworkProvisioner,
    pub(crate) cluster: &'a dyn ClusterProvisioner,
    pub(crate) waits: WaitPolicy,
    pub(crate) progress: &'a dyn Progress,
    pub(crate) state: Option<&'a StateFile>,
    pub(crate) extra_tags: std::collections::BTreeMap<String, String>,
    pub(crate) cancel: CancellationToken,
}

impl std::fmt::Debug for Engine<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("waits", &self.waits)
            .field("state", &self.state.map(|s| s.path()))
            .finish_non_exhaustive()
    }
}

impl<'a> Engine<'a> {
    /// An engine with the default wait policy, no progress and no state file.
    pub fn new(network: &'a dyn NetworkProvisioner, cluster: &'a dyn ClusterProvisioner) -> Self {
        Self {
            network,
            cluster,
            waits: WaitPolicy::default(),
            progress: &NoProgress,
            state: None,
            extra_tags: Default::default(),
            cancel: CancellationToken::new(),
        }
    }

    /// Stops on this token: apply starts no new step and cuts waits short (a create call in
    /// flight finishes, so nothing is left half-made), teardown finishes the deletions in flight
    /// and starts no other; both then return [`Error::Interrupted`].
    #[must_use]
    pub fn with_cancel(mut self, cancel: CancellationToken) -> Self {
        self.cancel = cancel;
        self
    }

    /// Sets the wait policy.
    #[must_use]
    pub fn with_waits(mut self, waits: WaitPolicy) -> Self {
        self.waits = waits;
        self
    }

    /// Sets the progress receiver.
    #[must_use]
    pub fn with_progress(mut self, progress: &'a dyn Progress) -> Self {
        self.progress = progress;
        self
    }

    /// Records created resources in this state file.
    #[must_use]
    pub fn with_state(mut self, state: &'a StateFile) -> Self {
        self.state = Some(state);
        self
    }

    /// Extra tags for every created resource.
    #[must_use]
    pub fn with_tags(mut self, tags: std::collections::BTreeMap<String, String>) -> Self {
        self.extra_tags = tags;
        self
    }

    /// Every resource of the stack, from both provisioners, by step key (gone NAT gateways excluded).
    pub async fn existing(&self, stack: &StackName) -> Result<HashMap<String, Resource>> {
        let (network, cluster) =
            tokio::try_join!(self.network.discover(stack), self.cluster.discover(stack))?;
        let mut by_key = HashMap::new();
        for res in network.into_iter().chain(cluster) {
            if res.key.is_empty() || !res.exists() {
                continue;
            }
            if let Some(previous) = by_key.insert(res.key.clone(), res) {
                tracing::warn!(key = %previous.key, id = %previous.id, "two resources carry the same key; using the later one");
            }
        }
        Ok(by_key)
    }

    /// Applies the plan: steps whose dependencies are done run concurrently; each reuses the
    /// resource with its key if one exists, else creates it, then waits where AWS requires.
    ///
    /// Two runs of one stack at once (two CI jobs with separate state directories): a run
    /// that has network resources to create first creates the stack's cluster role alone. If
    /// that role already exists (the create answered AlreadyExists, or it was found), another
    /// run holds the stack: this run waits until that run's changes settle, says so, and then
    /// reuses what it made. Named resources (roles, cluster, Fargate profile, add-ons, access
    /// entries) that the other run creates meanwhile answer AlreadyExists and are reused.
    /// On the first failure no new step starts; running steps finish; the error is returned.
    pub async fn apply(&self, plan: &Plan) -> Result<ApplyReport> {
        let stack = StackName::new(plan.stack.clone())?;
        let start = Instant::now();
        let mut existing = self.existing(&stack).await?;
        // Unnamed EC2 resources (VPC, subnets, gateways...) cannot refuse a second creation, so
        // a run about to create them first claims the stack by creating its cluster role alone
        // (IAM names are unique: of two runs, one gets EntityAlreadyExists).
        let mut claim_pending = plan.step(CLAIM_STEP).is_some()
            && plan
                .steps
                .iter()
                .any(|s| s.kind.is_network() && !existing.contains_key(&s.key));
        let needs_caller = plan
            .steps
            .iter()
            .any(|s| s.kind == ResourceKind::AccessEntry);
        let caller = if needs_caller {
            self.cluster.caller_arn().await?
        } else {
            String::new()
        };
        // The caller's access entry step is keyed by the caller's ARN (Plan::bind_caller), so
        // another principal of the same stack gets an entry of its own.
        let bound;
        let plan = if plan.needs_caller() {
            let mut named = plan.clone();
            named.bind_caller(&caller);
            bound = named;
            &bound
        } else {
            plan
        };
        let cluster_name = plan
            .steps
            .iter()
            .find_map(|s| match &s.action {
                crate::plan::StepAction::Cluster { name, .. } => Some(name.clone()),
                _ => None,
            })
            .unwrap_or_else(|| plan.stack.clone());

        let mut done: HashMap<String, Resource> = HashMap::new();
        // Ids and ARNs of what this run created or just found: AWS's eventual consistency may
        // hide them from the next call for a while (a NotFound on them is retried).
        let mut fresh: HashSet<String> = HashSet::new();
        let drift = Mutex::new(Vec::new());
        let mut timings = Vec::new();
        let mut pending: Vec<&Step> = plan.steps.iter().collect();
        let mut running = FuturesUnordered::new();
        let mut failure: Option<Error> = None;
        loop {
            if failure.is_none() && !self.cancel.is_cancelled() {
                let mut still_pending = Vec::new();
                for step in pending {
                    if claim_pending && step.key != CLAIM_STEP {
                        still_pending.push(step);
                        continue;
                    }
                    if step.depends_on.iter().all(|d| done.contains_key(d)) {
                        match step
                            .action
                            .resolve(&done, &caller, &cluster_name, &plan.region)
                        {
                            Ok(request) => {
                                let found = existing.get(&step.key).cloned();
                                let context = StepContext {
                                    stack: &stack,
                                    region: &plan.region,
                                    fresh: fresh.clone(),
                                    drift: &drift,
                                };
                                running.push(self.run_step(context, step, request, found, start));
                            }
                            Err(err) => failure = Some(err),
                        }
                    } else {
                        still_pending.push(step);
                    }
                }
                pending = still_pending;
            }
            let Some((key, outcome)) = running.next().await else {
                break;
            };
            match outcome {
                Ok((resource, timing)) => {
                    if let Some(state) = self.state {
                        state.record(&key, &resource)?;
                    }
                    fresh.insert(resource.id.clone());
                    fresh.extend(resource.arn.clone());
                    let contended = claim_pending && key == CLAIM_STEP && !timing.created;
                    if claim_pending && key == CLAIM_STEP {
                        claim_pending = false;
                    }
                    timings.push(timing);
                    done.insert(key, resource);
                    if contended {
                        // Another run made the claim (now, or earlier and maybe died): let it
                        // finish its network, then reuse what it made.
                        match self.wait_for_other_run(&stack).await {
                            Ok(()) => existing = self.existing(&stack).await?,
                            Err(err) => {
                                failure.get_or_insert(err);
                            }
                        }
                    }
                }
                Err(err) => {
                    self.progress.event(&ProgressEvent::StepFailed {
                        key: key.clone(),
                        error: err.to_string(),
                    });
                    tracing::error!(step = %key, error = %err, "step failed");
                    failure.get_or_insert(err);
                }
            }
        }
        // The finished step futures borrowed the drift list.
        drop(running);
        if self.cancel.is_cancelled() {
            return Err(Error::Interrupted {
                during: format!("apply of stack {}", plan.stack),
                progress: format!(
                    "{} of {} step(s) done, {} not started",
                    done.len(),
                    plan.steps.len(),
                    pending.len()
                ),
            });
        }
        if let Some(err) = failure {
            return Err(err);
        }
        if !pending.is_empty() {
            let keys: Vec<&str> = pending.iter().map(|s| s.key.as_str()).collect();
            return Err(Error::invalid(
                "plan",
                format!("steps never became ready: {}", keys.join(", ")),
            ));
        }
        Ok(ApplyReport {
            stack: plan.stack.clone(),
            steps: timings,
            resources: done,
            makespan_s: start.elapsed().as_secs_f64(),
            drift: drift.into_inner().expect("drift mutex"),
        })
    }

    /// Waits while another run provisions this stack: until no network resource of the stack
    /// is being created and nothing of the stack changed for [`WaitPolicy::other_run_quiet`],
    /// bounded by [`WaitPolicy::retry_timeout`] (then this run goes on, reusing what exists).
    /// Says so through progress, as it can take minutes.
    async fn wait_for_other_run(&self, stack: &StackName) -> Result<()> {
        let message = format!(
            "another run is provisioning stack {stack} (its cluster role exists but its network is incomplete): \
             waiting until that run's changes settle, then reusing what it made"
        );
        tracing::warn!("{message}");
        self.progress.event(&ProgressEvent::Warning {
            key: CLAIM_STEP.to_string(),
            message,
        });
        let snapshot = |found: &HashMap<String, Resource>| -> Vec<(String, String, ResourceState)> {
            let mut v: Vec<_> = found
                .iter()
                .map(|(k, r)| (k.clone(), r.id.clone(), r.state))
                .collect();
            v.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
            v
        };
        let start = Instant::now();
        let mut last = None;
        let mut quiet_since = Instant::now();
        let mut last_report = start;
        loop {
            if self.cancel.is_cancelled() {
                return Ok(());
            }
            let found = match self.existing(stack).await {
                Ok(found) => Some(found),
                // A read: transient errors are waited out like any other change.
                Err(err) if err.is_transient() => None,
                Err(err) => return Err(err),
            };
            if let Some(found) = found {
                let busy = found
                    .values()
                    .any(|r| r.kind.is_network() && r.state == ResourceState::Creating);
                let now = snapshot(&found);
                if busy || last.as_ref() != Some(&now) {
                    quiet_since = Instant::now();
                    last = Some(now);
                } else if quiet_since.elapsed() >= self.waits.other_run_quiet {
                    tracing::info!(stack = %stack, waited = ?start.elapsed(), "the other run's changes settled");
                    return Ok(());
                }
            }
            if start.elapsed() >= self.waits.retry_timeout {
                tracing::warn!(stack = %stack, "the stack still changes after {:?}; going on", start.elapsed());
                return Ok(());
            }
            if last_report.elapsed() >= self.waits.progress_every {
                last_report = Instant::now();
                self.progress.event(&ProgressEvent::Waiting {
                    key: CLAIM_STEP.to_string(),
                    waiting_for: format!("another run provisioning stack {stack}"),
                    elapsed: start.elapsed(),
                });
            }
            tokio::time::sleep(self.waits.poll_interval).await;
        }
    }

    async fn run_step(
        &self,
        context: StepContext<'_>,
        step: &Step,
        request: CreateRequest,
        found: Option<Resource>,
        apply_start: Instant,
    ) -> (String, Result<(Resource, StepTiming)>) {
        let started = apply_start.elapsed();
        self.progress.event(&ProgressEvent::StepStarted {
            key: step.key.clone(),
            description: step.description.clone(),
        });
        tracing::info!(step = %step.key, "{}", step.description);
        let outcome =
            self.ensure(&context, step, &request, found)
                .await
                .map(|(resource, created)| {
                    let finished = apply_start.elapsed();
                    self.progress.event(&ProgressEvent::StepDone {
                        key: step.key.clone(),
                        id: resource.id.clone(),
                        created,
                        elapsed: finished - started,
                    });
                    let timing = StepTiming {
                        key: step.key.clone(),
                        id: resource.id.clone(),
                        created,
                        started_s: started.as_secs_f64(),
                        finished_s: finished.as_secs_f64(),
                    };
                    (resource, timing)
                });
        (step.key.clone(), outcome)
    }

    /// Reuse or create, then wait until available. Returns the resource and whether it was created.
    async fn ensure(
        &self,
        context: &StepContext<'_>,
        step: &Step,
        request: &CreateRequest,
        found: Option<Resource>,
    ) -> Result<(Resource, bool)> {
        let kind = step.kind;
        let timeout = self.waits.timeout_for(kind);
        let mut found = found;
        if let Some(existing) = &found {
            match existing.state {
                ResourceState::Failed => {
                    return Err(Error::Failed {
                        resource: existing.describe(),
                        message: "found in a failed state; run teardown, then provision again"
                            .into(),
                    });
                }
                ResourceState::Deleting => {
                    // A previous teardown is still removing it: wait until it is gone, then create anew.
                    self.wait_gone(&step.key, existing, timeout).await?;
                    found = None;
                }
                _ => {}
            }
        }
        let (resource, created) = match found {
            Some(existing) => {
                tracing::info!(step = %step.key, id = %existing.id, "found existing {}, reusing it", kind);
                self.progress.event(&ProgressEvent::StepFound {
                    key: step.key.clone(),
                    id: existing.id.clone(),
                });
                self.report_drift(context, step, request, &existing).await;
                (existing, false)
            }
            None => match self.create(context, step, request).await {
                Ok(created) => (created, true),
                Err(err) if err.is_already_exists() => {
                    // Another run (or a lost response) made it: find it and reuse it.
                    match self
                        .rediscover_until_visible(context, step, request)
                        .await?
                    {
                        Some(existing) => {
                            tracing::info!(step = %step.key, id = %existing.id, "{kind} already exists, reusing it");
                            self.progress.event(&ProgressEvent::StepFound {
                                key: step.key.clone(),
                                id: existing.id.clone(),
                            });
                            self.report_drift(context, step, request, &existing).await;
                            (existing, false)
                        }
                        None => return Err(err),
                    }
                }
                Err(err) => return Err(err),
            },
        };
        if needs_wait(kind) && resource.state != ResourceState::Available {
            let waiting_for = format!("{} {} to become available", kind, resource.id);
            let wait = wait_for(
                &step.key,
                &waiting_for,
                timeout,
                &self.waits,
                self.progress,
                || self.describe(kind, &resource.id),
                |r| r.is_some_and(|r| r.state == ResourceState::Available),
            );
            // Only the wait is cut short on a stop: the resource exists and carries its tags,
            // so a re-run finds it and waits again.
            let ready = tokio::select! {
                biased;
                () = self.cancel.cancelled() => {
                    return Err(Error::Interrupted {
                        during: format!("step {}", step.key),
                        progress: format!("{} {} exists, not yet available", kind, resource.id),
                    });
                }
                ready = wait => ready?,
            };
            return Ok((ready.unwrap_or(resource), created));
        }
        Ok((resource, created))
    }

    /// Creates the step's resource, retrying busy and throttled answers within the kind's
    /// bound, and, within the propagation window, what AWS's eventual consistency causes: an
    /// IAM role EKS cannot assume yet ([`Error::Propagating`]) and NotFound for an id this run
    /// just created (EC2: "Eventual consistency in the Amazon EC2 API").
    async fn create(
        &self,
        context: &StepContext<'_>,
        step: &Step,
        request: &CreateRequest,
    ) -> Result<Resource> {
        let kind = step.kind;
        let mut extra = self.extra_tags.clone();
        extra.insert(REGION_TAG.to_string(), context.region.to_string());
        let tags = ResourceTags {
            stack: context.stack.to_string(),
            key: step.key.clone(),
            extra,
        };
        let names_fresh = request
            .referenced_ids()
            .iter()
            .any(|id| context.fresh.contains(*id));
        let first_propagation_error: Mutex<Option<Instant>> = Mutex::new(None);
        let propagating = |err: &Error| -> bool {
            let eventual =
                matches!(err, Error::Propagating { .. }) || (err.is_not_found() && names_fresh);
            if !eventual {
                return false;
            }
            let mut first = first_propagation_error.lock().expect("propagation clock");
            let since = *first.get_or_insert_with(Instant::now);
            since.elapsed() < self.waits.propagation_timeout
        };
        retry_if(
            &step.key,
            self.waits
                .timeout_for(kind)
                .max(self.waits.propagation_timeout),
            &self.waits,
            self.progress,
            || async {
                if kind.is_network() {
                    self.network.create(request, &tags).await
                } else {
                    self.cluster.create(request, &tags).await
                }
            },
            |err| err.is_retryable() || propagating(err),
        )
        .await
    }

    /// [`Engine::rediscover`], again while it finds nothing, within the propagation window:
    /// IAM is eventually consistent, so GetRole may not show a role that another run (or a
    /// crashed attempt of this one) created a moment ago although CreateRole already answers
    /// EntityAlreadyExists (IAM User Guide, "Troubleshoot IAM": "Changes that I make are not
    /// always immediately visible").
    async fn rediscover_until_visible(
        &self,
        context: &StepContext<'_>,
        step: &Step,
        request: &CreateRequest,
    ) -> Result<Option<Resource>> {
        let start = Instant::now();
        let mut delay = self.waits.poll_interval;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            if let Some(found) = self.rediscover(context, step, request).await? {
                return Ok(Some(found));
            }
            if start.elapsed() + delay > self.waits.propagation_timeout
                || self.cancel.is_cancelled()
            {
                return Ok(None);
            }
            let reason = format!(
                "{} exists but is not visible yet (AWS eventual consistency)",
                step.kind
            );
            tracing::info!(step = %step.key, attempt, "{reason}; looking again in {delay:?}");
            self.progress.event(&ProgressEvent::Retrying {
                key: step.key.clone(),
                reason,
                attempt,
            });
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(self.waits.max_poll_interval);
        }
    }

    /// After AlreadyExists: the resource by its known id (roles, clusters, EKS children), else
    /// whatever carries the step's key now.
    async fn rediscover(
        &self,
        context: &StepContext<'_>,
        step: &Step,
        request: &CreateRequest,
    ) -> Result<Option<Resource>> {
        if let Some(id) = request.known_id()
            && let Some(found) = self.describe(step.kind, &id).await?
        {
            return Ok(Some(found));
        }
        Ok(self.existing(context.stack).await?.remove(&step.key))
    }

    async fn report_drift(
        &self,
        context: &StepContext<'_>,
        step: &Step,
        request: &CreateRequest,
        found: &Resource,
    ) {
        if step.kind.is_network() {
            return;
        }
        match self.cluster.drift(request, found).await {
            Ok(lines) => {
                for line in lines {
                    let message = format!("{}: {line}", found.describe());
                    tracing::warn!(step = %step.key, "drift: {message}");
                    self.progress.event(&ProgressEvent::Warning {
                        key: step.key.clone(),
                        message: message.clone(),
                    });
                    context.drift.lock().expect("drift mutex").push(message);
                }
            }
            Err(err) => {
                tracing::warn!(step = %step.key, error = %err, "could not check the reused resource for drift")
            }
        }
    }

    pub(crate) async fn describe(&self, kind: ResourceKind, id: &str) -> Result<Option<Resource>> {
        if kind.is_network() {
            self.network.describe(kind, id).await
        } else {
            self.cluster.describe(kind, id).await
        }
    }

    pub(crate) async fn wait_gone(
        &self,
        key: &str,
        resource: &Resource,
        timeout: Duration,
    ) -> Result<()> {
        let waiting_for = format!("{} {} to be deleted", resource.kind, resource.id);
        wait_for(
            key,
            &waiting_for,
            timeout,
            &self.waits,
            self.progress,
            || self.describe(resource.kind, &resource.id),
            |r| r.is_none_or(|r| !r.state.is_present()),
        )
        .await
        .map(|_| ())
    }
}
