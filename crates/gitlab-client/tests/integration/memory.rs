//! The in-memory backend: conformance suite, runner simulator interface, pagination, 429s, clock.

use std::time::Duration;

use glrunner_gitlab_client::ci::{LoadTestSpec, ShardTarget};
use glrunner_gitlab_client::conformance;
use glrunner_gitlab_client::memory::{InMemoryGitLab, JobOutcome, MemoryConfig, VirtualClock};
use glrunner_gitlab_client::{
    Error, GitLabApi, GitLabApiExt, JobStatus, JobsQuery, NewPipeline, NewRunner, PipelineStatus,
    ProjectRef,
};

#[tokio::test]
async fn conformance_suite() {
    let gl = InMemoryGitLab::default();
    conformance::run_all(&gl, "conf").await.unwrap();
}

struct Fixture {
    gl: InMemoryGitLab,
    project: ProjectRef,
    pipeline: u64,
}

async fn fixture(shards: Vec<ShardTarget>, untagged: usize) -> Fixture {
    let gl = InMemoryGitLab::with_clock(
        MemoryConfig::default(),
        VirtualClock::new("2026-01-01T00:00:00Z".parse().unwrap()),
    );
    let project = gl.get_or_create_project("sandbox/sim").await.unwrap();
    let project = ProjectRef::Id(project.id);
    let mut yaml = LoadTestSpec::new(shards).to_yaml().unwrap();
    for i in 0..untagged {
        yaml.push_str(&format!(
            "untagged-{i}:\n  stage: loadtest\n  script: [echo]\n"
        ));
    }
    gl.put_file(&project, "main", ".gitlab-ci.yml", &yaml, "ci")
        .await
        .unwrap();
    let pipeline = gl
        .create_pipeline(&project, &NewPipeline::new("main"))
        .await
        .unwrap()
        .id;
    Fixture {
        gl,
        project,
        pipeline,
    }
}

async fn runner(f: &Fixture, tags: &[&str], untagged: bool) -> u64 {
    let pid = match f.project {
        ProjectRef::Id(id) => id,
        _ => unreachable!(),
    };
    let new = NewRunner::project(pid, "r", tags.iter().map(|t| t.to_string()).collect())
        .run_untagged(untagged);
    f.gl.create_runner(&new).await.unwrap().id
}

#[tokio::test]
async fn runners_take_only_jobs_matching_their_tags() {
    let f = fixture(vec![ShardTarget::new("a", 3), ShardTarget::new("b", 2)], 1).await;
    let a = runner(&f, &["a"], false).await;
    let b = runner(&f, &["b", "extra"], false).await;
    let any = runner(&f, &["zzz"], true).await;
    let got_a = f.gl.request_jobs(a, 10).unwrap();
    assert_eq!(got_a.len(), 3);
    assert!(
        got_a
            .iter()
            .all(|j| j.tags == vec!["a".to_owned()] && j.runner_id == a)
    );
    let got_b = f.gl.request_jobs(b, 10).unwrap();
    assert_eq!(got_b.len(), 2, "tags must be a subset of the runner's tags");
    let got_any = f.gl.request_jobs(any, 10).unwrap();
    assert_eq!(
        got_any.len(),
        1,
        "only the untagged job goes to the run_untagged runner"
    );
    assert!(got_any[0].tags.is_empty());
    assert_eq!(f.gl.pending_jobs(), 0);
}

#[tokio::test]
async fn jobs_with_several_tags_go_to_runners_holding_all_of_them_in_any_order() {
    let f = fixture(vec![ShardTarget::new("unused", 1)], 0).await;
    let yaml =
        "two:\n  script: [echo]\n  tags: [y, x]\nthree:\n  script: [echo]\n  tags: [x, z, y]\n";
    f.gl.put_file(&f.project, "main", ".gitlab-ci.yml", yaml, "ci [skip ci]")
        .await
        .unwrap();
    f.gl.create_pipeline(&f.project, &NewPipeline::new("main"))
        .await
        .unwrap();
    let only_x = runner(&f, &["x"], true).await;
    assert!(f.gl.request_jobs(only_x, 10).unwrap().is_empty());
    let x_y = runner(&f, &["x", "y"], false).await;
    let got = f.gl.request_jobs(x_y, 10).unwrap();
    assert_eq!(
        got.iter().map(|j| j.name.as_str()).collect::<Vec<_>>(),
        ["two"]
    );
    // More tags than the subset lookup covers: the scan finds the job all the same.
    let many: Vec<String> = (0..12)
        .map(|i| format!("t{i}"))
        .chain(["z", "y", "x"].map(String::from))
        .collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let wide = runner(&f, &many, false).await;
    let got = f.gl.request_jobs(wide, 10).unwrap();
    assert_eq!(
        got.iter().map(|j| j.name.as_str()).collect::<Vec<_>>(),
        ["three"]
    );
}

#[tokio::test]
async fn runner_limit_bounds_concurrency() {
    let f = fixture(vec![ShardTarget::new("a", 5)], 0).await;
    let a = runner(&f, &["a"], false).await;
    f.gl.set_runner_limit(a, Some(2)).unwrap();
    let first = f.gl.request_jobs(a, 10).unwrap();
    assert_eq!(first.len(), 2);
    assert!(f.gl.request_jobs(a, 10).unwrap().is_empty(), "no free slot");
    f.gl.finish_job(first[0].job_id, JobOutcome::Success)
        .unwrap();
    assert_eq!(f.gl.request_jobs(a, 10).unwrap().len(), 1);
    assert_eq!(f.gl.running_jobs(a), 2);
    assert_eq!(
        f.gl.request_jobs(a, 0).unwrap().len(),
        0,
        "max 0 takes nothing"
    );
}

#[tokio::test(start_paused = true)]
async fn jobs_move_pending_running_finished_with_virtual_timestamps() {
    let f = fixture(vec![ShardTarget::new("a", 2)], 0).await;
    let a = runner(&f, &["a"], false).await;
    let p = f.gl.get_pipeline(&f.project, f.pipeline).await.unwrap();
    assert_eq!(p.status, PipelineStatus::Pending);
    assert_eq!(p.created_at.to_string(), "2026-01-01T00:00:00Z");
    tokio::time::sleep(Duration::from_secs(10)).await;
    let jobs = f.gl.request_jobs(a, 2).unwrap();
    assert_eq!(jobs[0].started_at.to_string(), "2026-01-01T00:00:10Z");
    assert_eq!(
        f.gl.get_pipeline(&f.project, f.pipeline)
            .await
            .unwrap()
            .status,
        PipelineStatus::Running
    );
    tokio::time::sleep(Duration::from_secs(50)).await;
    f.gl.finish_job(jobs[0].job_id, JobOutcome::Success)
        .unwrap();
    let failed =
        f.gl.finish_job(
            jobs[1].job_id,
            JobOutcome::Failed {
                reason: "script_failure".into(),
            },
        )
        .unwrap();
    assert_eq!(failed.failure_reason.as_deref(), Some("script_failure"));
    assert_eq!(failed.duration, Some(50.0));
    assert_eq!(failed.queued_duration, Some(10.0));
    assert!(matches!(
        f.gl.finish_job(jobs[1].job_id, JobOutcome::Success),
        Err(Error::Conflict { .. })
    ));
    let p = f.gl.get_pipeline(&f.project, f.pipeline).await.unwrap();
    assert_eq!(p.status, PipelineStatus::Failed);
    assert_eq!(p.finished_at.unwrap().to_string(), "2026-01-01T00:01:00Z");
    assert_eq!(f.gl.running_jobs(a), 0);
}

#[tokio::test]
async fn pagination_defaults_and_scope() {
    let f = fixture(vec![ShardTarget::new("a", 45)], 0).await;
    let q = JobsQuery {
        page: 1,
        per_page: 0,
        scope: vec![],
    };
    let page =
        f.gl.list_pipeline_jobs(&f.project, f.pipeline, &q)
            .await
            .unwrap();
    assert_eq!(
        (
            page.items.len(),
            page.next_page,
            page.total,
            page.total_pages
        ),
        (20, Some(2), Some(45), Some(3))
    );
    let last =
        f.gl.list_pipeline_jobs(&f.project, f.pipeline, &JobsQuery { page: 3, ..q })
            .await
            .unwrap();
    assert_eq!((last.items.len(), last.next_page), (5, None));
    let a = runner(&f, &["a"], false).await;
    f.gl.request_jobs(a, 7).unwrap();
    let running =
        f.gl.list_pipeline_jobs(
            &f.project,
            f.pipeline,
            &JobsQuery::page(1).scope(&[JobStatus::Running]),
        )
        .await
        .unwrap();
    assert_eq!(running.total, Some(7));
}

/// `GET /projects/:id/jobs` as GitLab paginates it: no counts (`without_count: true`,
/// lib/api/ci/jobs.rb), a next page only while more jobs follow, `per_page` 0 meaning GitLab's
/// default of 20; the pending listing follows jobs as runners take them and as tests force them;
/// only documented scopes; another project's jobs never appear.
#[tokio::test]
async fn project_jobs_are_uncounted_pages_newest_first() {
    let f = fixture(
        vec![ShardTarget::new("a", 25), ShardTarget::new("b", 20)],
        3,
    )
    .await;
    let other = f.gl.get_or_create_project("sandbox/other").await.unwrap();
    let yaml = LoadTestSpec::new(vec![ShardTarget::new("a", 5)])
        .to_yaml()
        .unwrap();
    let other = ProjectRef::Id(other.id);
    f.gl.put_file(&other, "main", ".gitlab-ci.yml", &yaml, "ci")
        .await
        .unwrap();
    f.gl.create_pipeline(&other, &NewPipeline::new("main"))
        .await
        .unwrap();
    let q = JobsQuery {
        page: 1,
        per_page: 0,
        scope: vec![JobStatus::Pending],
    };
    let first = f.gl.list_project_jobs(&f.project, &q).await.unwrap();
    assert_eq!(
        (
            first.items.len(),
            first.next_page,
            first.total,
            first.total_pages
        ),
        (20, Some(2), None, None)
    );
    let third =
        f.gl.list_project_jobs(
            &f.project,
            &JobsQuery {
                page: 3,
                ..q.clone()
            },
        )
        .await
        .unwrap();
    assert_eq!((third.items.len(), third.next_page), (8, None));
    let all =
        f.gl.project_jobs_up_to(&f.project, &[JobStatus::Pending], 100)
            .await
            .unwrap();
    assert_eq!((all.items.len(), all.truncated), (48, false));
    let pipeline_ids: Vec<u64> =
        f.gl.all_pipeline_jobs(&f.project, f.pipeline)
            .await
            .unwrap()
            .iter()
            .map(|j| j.id)
            .collect();
    assert_eq!(
        all.items.iter().map(|j| j.id).collect::<Vec<_>>(),
        pipeline_ids,
        "this project's jobs only, newest first like the pipeline's listing"
    );
    let untagged = all.items.iter().filter(|j| j.tag_list.is_empty()).count();
    assert_eq!(untagged, 3);

    let a = runner(&f, &["a"], false).await;
    let taken = f.gl.request_jobs(a, 10).unwrap();
    let pending =
        f.gl.project_jobs_up_to(&f.project, &[JobStatus::Pending], 100)
            .await
            .unwrap();
    assert_eq!(pending.items.len(), 38, "taken jobs are no longer pending");
    assert!(
        pending
            .items
            .iter()
            .all(|j| taken.iter().all(|t| t.job_id != j.id))
    );
    let running =
        f.gl.project_jobs_up_to(&f.project, &[JobStatus::Running], 100)
            .await
            .unwrap();
    assert_eq!(running.items.len(), 10);
    let both =
        f.gl.project_jobs_up_to(&f.project, &[JobStatus::Pending, JobStatus::Running], 100)
            .await
            .unwrap();
    assert_eq!(both.items.len(), 48);
    f.gl.force_job_status(taken[0].job_id, JobStatus::Pending)
        .unwrap();
    let pending =
        f.gl.project_jobs_up_to(&f.project, &[JobStatus::Pending], 100)
            .await
            .unwrap();
    assert_eq!(
        pending.items.len(),
        39,
        "a job forced back to pending is listed as pending"
    );

    let bounded = f.gl.project_jobs_up_to(&f.project, &[], 7).await.unwrap();
    assert_eq!((bounded.items.len(), bounded.truncated), (7, true));
    assert_eq!(bounded.items[0].id, all.items[0].id, "newest first");

    let err =
        f.gl.list_project_jobs(
            &f.project,
            &JobsQuery::page(1).scope(&[JobStatus::Preparing]),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidInput { .. })
            && err
                .to_string()
                .contains("scope does not have a valid value"),
        "{err}"
    );
    let missing =
        f.gl.list_project_jobs(&ProjectRef::Path("sandbox/missing".into()), &q)
            .await
            .unwrap_err();
    assert!(matches!(missing, Error::NotFound { .. }), "{missing}");
}

#[tokio::test(start_paused = true)]
async fn rate_limit_answers_429_like_gitlab() {
    let gl = InMemoryGitLab::new(MemoryConfig::default().with_rate_limit_per_minute(Some(3)));
    for _ in 0..3 {
        gl.current_user().await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(20)).await;
    let err = gl.current_user().await.unwrap_err();
    assert!(matches!(err, Error::Throttled { .. }), "{err:?}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(40)));
    tokio::time::sleep(Duration::from_secs(40)).await;
    gl.current_user().await.unwrap();
    gl.throttle_next(1, Duration::from_secs(5));
    assert_eq!(
        gl.current_user().await.unwrap_err().retry_after(),
        Some(Duration::from_secs(5))
    );
    assert_eq!(gl.requests(), 6);
}

#[tokio::test]
async fn pipeline_input_errors() {
    let gl = InMemoryGitLab::default();
    let p = gl.get_or_create_project("sandbox/empty").await.unwrap();
    let pref = ProjectRef::Id(p.id);
    let err = gl
        .create_pipeline(&pref, &NewPipeline::new("main"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Missing CI config file"), "{err}");
    let err = gl
        .create_pipeline(&pref, &NewPipeline::new("nope"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Reference not found"), "{err}");
    assert!(
        gl.get_or_create_project("no-such-group/x")
            .await
            .unwrap_err()
            .is_not_found()
    );
    gl.add_group("team");
    assert_eq!(
        gl.get_or_create_project("team/x")
            .await
            .unwrap()
            .path_with_namespace,
        "team/x"
    );
}

#[tokio::test]
async fn runner_token_maps_back_to_the_runner() {
    let gl = InMemoryGitLab::default();
    let p = gl.get_or_create_project("sandbox/tok").await.unwrap();
    let created = gl
        .create_runner(&NewRunner::project(p.id, "release-1", vec!["a".into()]))
        .await
        .unwrap();
    assert_eq!(gl.runner_id_for_token(&created.token), Some(created.id));
    assert!(format!("{created:?}").contains("glrt-****"));
}
