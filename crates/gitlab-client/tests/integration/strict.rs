//! The in-memory GitLab is as strict as GitLab where glrunner depends on it, and the load-test
//! run ([`loadtest`]) passes against it: push pipelines, pipeline variables, the
//! jobs-per-pipeline limit, list shapes, runner status, new branches, early-end cancels.

use std::time::Duration;

use glrunner_gitlab_client::ci::{LoadTestSpec, ShardTarget};
use glrunner_gitlab_client::loadtest::{self, LoadTestRun, RunningPipelines};
use glrunner_gitlab_client::memory::{
    InMemoryGitLab, MemoryConfig, ONLINE_CONTACT_TIMEOUT, SimulatedRunner, SimulationConfig,
    simulate_runners,
};
use glrunner_gitlab_client::testing::{Faulty, GitLabArgs, GitLabCall, GitLabRule};
use glrunner_gitlab_client::watch::{WatchConfig, WatchEvent, watch_pipeline};
use glrunner_gitlab_client::{
    CommitAction, Error, FileAction, GitLabApi, GitLabApiExt, JobStatus, JobsQuery, NewCommit,
    NewPipeline, NewRunner, PipelineStatus, Project, ProjectRef, WatchOutcome,
};

const PLAIN_CI: &str = "hello:\n  tags: [a]\n  script: [echo hello]\n";

async fn project(gl: &InMemoryGitLab) -> (Project, ProjectRef) {
    let p = gl.get_or_create_project("sandbox/strict").await.unwrap();
    let r = ProjectRef::Id(p.id);
    (p, r)
}

#[tokio::test]
async fn a_commit_starts_a_push_pipeline_unless_skip_ci_or_workflow_rules_say_no() {
    let gl = InMemoryGitLab::default();
    let (p, pref) = project(&gl).await;
    gl.put_file(
        &pref,
        "main",
        ".gitlab-ci.yml",
        PLAIN_CI,
        "add CI [skip ci]",
    )
    .await
    .unwrap();
    assert!(gl.pipelines(p.id).is_empty(), "[skip ci] starts nothing");
    gl.put_file(
        &pref,
        "main",
        ".gitlab-ci.yml",
        &format!("{PLAIN_CI}# 2\n"),
        "change CI [ci skip]",
    )
    .await
    .unwrap();
    assert!(gl.pipelines(p.id).is_empty(), "[ci skip] starts nothing");
    gl.put_file(
        &pref,
        "main",
        ".gitlab-ci.yml",
        &format!("{PLAIN_CI}# 3\n"),
        "change CI",
    )
    .await
    .unwrap();
    let pipelines = gl.pipelines(p.id);
    assert_eq!(pipelines.len(), 1, "a plain commit starts a push pipeline");
    assert_eq!(pipelines[0].source.as_deref(), Some("push"));
    // The generated file runs only API pipelines: its commit starts none, even without [skip ci].
    let generated = LoadTestSpec::even(5, &["a".into()]).to_yaml().unwrap();
    gl.put_file(&pref, "main", ".gitlab-ci.yml", &generated, "load test")
        .await
        .unwrap();
    assert_eq!(gl.pipelines(p.id).len(), 1);
    let api = gl
        .create_pipeline(&pref, &NewPipeline::new("main"))
        .await
        .unwrap();
    assert_eq!(api.source.as_deref(), Some("api"));
    // A file whose rules exclude the API is refused as GitLab does.
    let push_only = "workflow:\n  rules:\n    - if: $CI_PIPELINE_SOURCE == \"push\"\nhello:\n  script: [echo]\n";
    gl.put_file(
        &pref,
        "main",
        ".gitlab-ci.yml",
        push_only,
        "push only [skip ci]",
    )
    .await
    .unwrap();
    let err = gl
        .create_pipeline(&pref, &NewPipeline::new("main"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("filtered out by workflow rules"),
        "{err}"
    );
}

#[tokio::test]
async fn pipeline_variables_can_be_refused_like_gitlab_com() {
    let gl = InMemoryGitLab::new(MemoryConfig::default().with_refuse_pipeline_variables(true));
    let (_, pref) = project(&gl).await;
    let yaml = LoadTestSpec::even(2, &["a".into()]).to_yaml().unwrap();
    gl.put_file(&pref, "main", ".gitlab-ci.yml", &yaml, "ci")
        .await
        .unwrap();
    let err = gl
        .create_pipeline(
            &pref,
            &NewPipeline::new("main").variable("GLRUNNER_LOADTEST", "1"),
        )
        .await
        .unwrap_err();
    assert!(err.is_pipeline_variables_refused(), "{err}");
    gl.create_pipeline(&pref, &NewPipeline::new("main"))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_jobs_per_pipeline_limit_refuses_and_the_file_left_behind_triggers_nothing() {
    let gl = InMemoryGitLab::new(MemoryConfig::default().with_max_jobs_per_pipeline(Some(500)));
    let (p, pref) = project(&gl).await;
    let run = LoadTestRun::new(LoadTestSpec::even(600, &["a".into(), "b".into()]));
    let err = loadtest::start(&gl, &p, &run, &RunningPipelines::default())
        .await
        .unwrap_err();
    assert!(err.is_pipeline_size_exceeded(), "{err}");
    assert!(err.to_string().contains("--max-jobs-per-pipeline"), "{err}");
    assert!(gl.pipelines(p.id).is_empty());
    // Anyone's later push to the branch starts nothing from the file glrunner left.
    gl.commit_files(
        &pref,
        &NewCommit {
            branch: "main".into(),
            start_branch: None,
            commit_message: "unrelated change".into(),
            actions: vec![CommitAction {
                action: FileAction::Create,
                file_path: "notes.md".into(),
                content: Some("x".into()),
            }],
        },
    )
    .await
    .unwrap();
    assert!(
        gl.pipelines(p.id).is_empty(),
        "no pipeline from a later push"
    );
}

#[tokio::test]
async fn runner_lists_carry_no_tags_and_details_do() {
    let gl = InMemoryGitLab::default();
    let (p, pref) = project(&gl).await;
    let created = gl
        .create_runner(&NewRunner::project(
            p.id,
            "stack/stack-runner-1",
            vec!["t1".into()],
        ))
        .await
        .unwrap();
    let list = gl.list_runners(&pref).await.unwrap();
    let entry = serde_json::to_value(&list[0]).unwrap();
    assert!(
        entry.get("tag_list").is_none(),
        "list entries have no tags: {entry}"
    );
    assert!(entry.get("contacted_at").is_none(), "{entry}");
    let details = gl.get_runner(created.id).await.unwrap();
    assert_eq!(details.tag_list, vec!["t1"]);
    assert!(gl.get_runner(999_999).await.unwrap_err().is_not_found());
}

#[tokio::test(start_paused = true)]
async fn runners_are_online_only_after_their_manager_contacted_gitlab() {
    let gl = InMemoryGitLab::default();
    let (p, pref) = project(&gl).await;
    let r = gl
        .create_runner(&NewRunner::project(p.id, "r", vec!["a".into()]))
        .await
        .unwrap();
    let d = gl.get_runner(r.id).await.unwrap();
    assert_eq!(d.status.as_deref(), Some("never_contacted"));
    assert!(!d.is_online());
    assert_eq!(gl.list_runners(&pref).await.unwrap()[0].online, Some(false));
    gl.runner_contacted(r.id).unwrap();
    let d = gl.get_runner(r.id).await.unwrap();
    assert!(d.is_online() && d.contacted_at.is_some(), "{d:?}");
    tokio::time::sleep(ONLINE_CONTACT_TIMEOUT + Duration::from_secs(1)).await;
    assert_eq!(
        gl.get_runner(r.id).await.unwrap().status.as_deref(),
        Some("offline"),
        "no contact for two hours"
    );
    gl.request_jobs(r.id, 1).unwrap();
    assert!(
        gl.get_runner(r.id).await.unwrap().is_online(),
        "asking for jobs is a contact"
    );
}

#[tokio::test(start_paused = true)]
async fn waiting_for_runners_names_the_ones_that_never_contacted_gitlab() {
    use glrunner_gitlab_client::runners::wait_until_online;
    let gl = InMemoryGitLab::default();
    let (p, _) = project(&gl).await;
    let up = gl
        .create_runner(&NewRunner::project(p.id, "up", vec!["a".into()]))
        .await
        .unwrap();
    let down = gl
        .create_runner(&NewRunner::project(
            p.id,
            "stack/stack-runner-2",
            vec!["b".into()],
        ))
        .await
        .unwrap();
    let contact = {
        let gl = gl.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(20)).await;
            gl.runner_contacted(up.id).unwrap();
        })
    };
    let mut polls = 0;
    let err = wait_until_online(
        &gl,
        &[up.id, down.id],
        Duration::from_secs(60),
        Duration::from_secs(5),
        &mut |_| polls += 1,
    )
    .await
    .unwrap_err();
    contact.await.unwrap();
    assert_eq!(err.not_online.len(), 1);
    let text = err.to_string();
    assert!(
        text.contains(&format!("runner {}", down.id))
            && text.contains("stack/stack-runner-2")
            && text.contains("never_contacted"),
        "{text}"
    );
    assert!(polls >= 2, "progress after every poll");
    gl.runner_contacted(down.id).unwrap();
    let online = wait_until_online(
        &gl,
        &[up.id, down.id],
        Duration::from_secs(60),
        Duration::from_secs(5),
        &mut |_| {},
    )
    .await
    .unwrap();
    assert_eq!(online.len(), 2);
}

#[tokio::test]
async fn commits_to_a_missing_branch_need_a_start_branch() {
    let gl = InMemoryGitLab::default();
    let (p, pref) = project(&gl).await;
    let commit = |branch: &str, start: Option<&str>| NewCommit {
        branch: branch.into(),
        start_branch: start.map(str::to_owned),
        commit_message: "x [skip ci]".into(),
        actions: vec![CommitAction {
            action: FileAction::Create,
            file_path: "f".into(),
            content: Some("x".into()),
        }],
    };
    let err = gl
        .commit_files(&pref, &commit("feature", None))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("only create or edit files when you are on a branch"),
        "{err}"
    );
    gl.commit_files(&pref, &commit("feature", Some("main")))
        .await
        .unwrap();
    assert!(
        gl.file(p.id, "feature", "README.md").is_some(),
        "started from main"
    );
    // put_file finds the branch missing and starts it from the default branch.
    gl.put_file(&pref, "other", ".gitlab-ci.yml", PLAIN_CI, "ci [skip ci]")
        .await
        .unwrap();
    assert!(gl.get_branch(&pref, "other").await.is_ok());
}

#[tokio::test]
async fn only_documented_scopes_are_accepted() {
    let gl = InMemoryGitLab::default();
    let (_, pref) = project(&gl).await;
    let yaml = LoadTestSpec::even(2, &["a".into()]).to_yaml().unwrap();
    gl.put_file(&pref, "main", ".gitlab-ci.yml", &yaml, "ci")
        .await
        .unwrap();
    let p = gl
        .create_pipeline(&pref, &NewPipeline::new("main"))
        .await
        .unwrap();
    let err = gl
        .list_pipeline_jobs(
            &pref,
            p.id,
            &JobsQuery::page(1).scope(&[JobStatus::Preparing]),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("scope does not have a valid value"),
        "{err}"
    );
}

/// A 250-job pipeline with `n` runners of `concurrent` each, on a paused clock.
async fn pipeline_with_jobs(gl: &InMemoryGitLab, jobs: u32) -> (ProjectRef, u64, Vec<u64>) {
    let (_, pref) = project(gl).await;
    let yaml = LoadTestSpec::even(jobs, &["a".into()]).to_yaml().unwrap();
    gl.put_file(&pref, "main", ".gitlab-ci.yml", &yaml, "ci")
        .await
        .unwrap();
    let p = gl
        .create_pipeline(&pref, &NewPipeline::new("main"))
        .await
        .unwrap();
    let ids = gl
        .all_pipeline_jobs(&pref, p.id)
        .await
        .unwrap()
        .iter()
        .map(|j| j.id)
        .collect();
    (pref, p.id, ids)
}

#[tokio::test(start_paused = true)]
async fn preparing_and_other_active_statuses_count_as_active() {
    let gl = InMemoryGitLab::default();
    let (pref, pipeline, ids) = pipeline_with_jobs(&gl, 250).await;
    for (id, status) in ids.iter().zip([
        JobStatus::Preparing,
        JobStatus::Canceling,
        JobStatus::Scheduled,
        JobStatus::WaitingForResource,
    ]) {
        gl.force_job_status(*id, status).unwrap();
    }
    let mut first = None;
    let cfg = WatchConfig::default().with_timeout(Duration::from_secs(30));
    let report = watch_pipeline(&gl, &pref, pipeline, &cfg, &mut |e| {
        if let WatchEvent::Progress(p) = e {
            first.get_or_insert(p.clone());
        }
    })
    .await
    .unwrap();
    let first = first.expect("a progress event");
    assert_eq!(first.total_jobs, 250);
    assert_eq!(
        first.finished_jobs, 0,
        "no active status counts as finished: {first:?}"
    );
    assert_eq!(first.active_by_status.values().sum::<usize>(), 250);
    assert_eq!(report.outcome, WatchOutcome::TimedOut);
}

#[tokio::test(start_paused = true)]
async fn a_long_retry_after_is_capped_at_the_deadline() {
    let gl = InMemoryGitLab::default();
    let (pref, pipeline, _) = pipeline_with_jobs(&gl, 3).await;
    gl.throttle_next(1, Duration::from_secs(3600));
    let start = tokio::time::Instant::now();
    let cfg = WatchConfig::default().with_timeout(Duration::from_secs(120));
    let report = watch_pipeline(&gl, &pref, pipeline, &cfg, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(report.outcome, WatchOutcome::TimedOut);
    let waited = start.elapsed();
    assert!(
        waited < Duration::from_secs(121),
        "the hour-long Retry-After was cut at the 120 s deadline, waited {waited:?}"
    );
}

/// The in-memory GitLab with one simulated runner per tag (fast pod starts).
async fn world(
    config: MemoryConfig,
    tags: &[&str],
) -> (
    InMemoryGitLab,
    Project,
    glrunner_gitlab_client::memory::SimulatorHandle,
) {
    let gl = InMemoryGitLab::new(config);
    let (p, _) = project(&gl).await;
    let mut runners = Vec::new();
    for tag in tags {
        let r = gl
            .create_runner(&NewRunner::project(
                p.id,
                format!("r-{tag}"),
                vec![(*tag).to_owned()],
            ))
            .await
            .unwrap();
        runners.push(SimulatedRunner {
            runner_id: r.id,
            concurrent: 200,
        });
    }
    let sim = simulate_runners(gl.clone(), SimulationConfig::new(runners));
    (gl, p, sim)
}

#[tokio::test(start_paused = true)]
async fn a_load_test_runs_exactly_one_pipeline_without_variables() {
    let config = MemoryConfig::default()
        .with_refuse_pipeline_variables(true)
        .with_max_jobs_per_pipeline(Some(500));
    let (gl, p, _sim) = world(config, &["a", "b", "c"]).await;
    let tags: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    let run = LoadTestRun::new(LoadTestSpec::even(450, &tags));
    let outcome = loadtest::run(
        &gl,
        &p,
        &run,
        &WatchConfig::default(),
        &RunningPipelines::default(),
        &mut |_| {},
    )
    .await
    .unwrap();
    assert_eq!(outcome.report.outcome, WatchOutcome::Finished);
    assert_eq!(outcome.report.total_jobs, 450);
    assert_eq!(outcome.report.by_status["success"], 450);
    let pipelines = gl.pipelines(p.id);
    assert_eq!(pipelines.len(), 1, "exactly one pipeline: {pipelines:?}");
    assert_eq!(pipelines[0].source.as_deref(), Some("api"));
    assert!(outcome.cancel.canceled.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_load_test_above_the_limit_runs_as_several_pipelines_reported_as_one() {
    let config = MemoryConfig::default().with_max_jobs_per_pipeline(Some(500));
    let (gl, p, _sim) = world(config, &["a", "b", "c"]).await;
    let tags: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    let run =
        LoadTestRun::new(LoadTestSpec::even(1200, &tags)).with_max_jobs_per_pipeline(Some(500));
    let outcome = loadtest::run(
        &gl,
        &p,
        &run,
        &WatchConfig::default(),
        &RunningPipelines::default(),
        &mut |_| {},
    )
    .await
    .unwrap();
    assert_eq!(gl.pipelines(p.id).len(), 3);
    assert_eq!(outcome.report.pipelines.len(), 3);
    assert_eq!(outcome.report.total_jobs, 1200);
    assert_eq!(outcome.report.by_status["success"], 1200);
    assert_eq!(outcome.report.pipeline_status, "success");
    // The part branches glrunner made are gone once their pipelines ended; the user's stays.
    let project = ProjectRef::Id(p.id);
    for part in ["main-glrunner-part-2", "main-glrunner-part-3"] {
        assert!(
            matches!(
                gl.get_branch(&project, part).await,
                Err(glrunner_gitlab_client::Error::NotFound { .. })
            ),
            "{part} is left"
        );
    }
    assert!(gl.get_branch(&project, "main").await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_load_test_that_times_out_cancels_its_pipeline_unless_kept() {
    for keep in [false, true] {
        // No runner takes the jobs.
        let (gl, p, _sim) = world(MemoryConfig::default(), &[]).await;
        let run = LoadTestRun::new(LoadTestSpec::new(vec![ShardTarget::new("a", 10)]))
            .with_keep_pipeline(keep);
        let running = RunningPipelines::default();
        let cfg = WatchConfig::default().with_timeout(Duration::from_secs(60));
        let outcome = loadtest::run(&gl, &p, &run, &cfg, &running, &mut |_| {})
            .await
            .unwrap();
        assert_eq!(outcome.report.outcome, WatchOutcome::TimedOut);
        let status = gl.pipelines(p.id)[0].status;
        if keep {
            assert!(outcome.cancel.canceled.is_empty());
            assert_eq!(status, PipelineStatus::Pending, "--keep-pipeline leaves it");
        } else {
            assert_eq!(outcome.cancel.canceled, vec![outcome.report.pipeline_id]);
            assert_eq!(status, PipelineStatus::Canceled);
        }
        assert!(running.ids().is_empty());
    }
}

#[tokio::test(start_paused = true)]
async fn an_error_after_the_pipeline_exists_cancels_it() {
    let (gl, p, _sim) = world(MemoryConfig::default(), &[]).await;
    let run = LoadTestRun::new(LoadTestSpec::new(vec![ShardTarget::new("a", 10)]));
    // The watch's first request fails with something no layer retries.
    let failing =
        Faulty::new(gl.clone()).with_rule(GitLabRule::on(GitLabCall::ListPipelineJobs, |args| {
            let GitLabArgs::ListPipelineJobs { pipeline_id, .. } = args else {
                unreachable!("the rule is on job listings")
            };
            Error::Backend {
                action: "list jobs of",
                resource: format!("pipeline {pipeline_id}"),
                status: Some(500),
                message: "HTTP 500".into(),
                source: None,
            }
        }));
    let failure = loadtest::run(
        &failing,
        &p,
        &run,
        &WatchConfig::default(),
        &RunningPipelines::default(),
        &mut |_| {},
    )
    .await
    .unwrap_err();
    assert_eq!(failure.cancel.canceled.len(), 1, "{failure}");
    assert_eq!(gl.pipelines(p.id)[0].status, PipelineStatus::Canceled);
    assert!(
        failure.to_string().contains("canceled pipeline"),
        "{failure}"
    );
}
