//! Report numbers against a hand-made pipeline with known times.

use glrunner_gitlab_client::{Job, Pipeline, Report, WatchOutcome};
use serde_json::json;

fn at(secs: i64) -> String {
    jiff::Timestamp::from_second(1_700_000_000 + secs)
        .unwrap()
        .to_string()
}

fn job(
    id: u64,
    status: &str,
    started: Option<i64>,
    finished: Option<i64>,
    reason: Option<&str>,
) -> Job {
    serde_json::from_value(json!({
        "id": id, "name": format!("loadtest-a {id}/6"), "stage": "loadtest", "status": status,
        "tag_list": ["a"], "created_at": at(0),
        "started_at": started.map(at), "finished_at": finished.map(at),
        "failure_reason": reason, "allow_failure": false, "runner": null,
        "web_url": format!("https://example.com/-/jobs/{id}")
    }))
    .unwrap()
}

#[test]
fn report_matches_hand_computed_numbers() {
    let pipeline: Pipeline = serde_json::from_value(json!({
        "id": 7, "iid": 1, "project_id": 42, "status": "failed", "ref": "main", "sha": "abc",
        "created_at": at(0), "web_url": "https://example.com/-/pipelines/7"
    }))
    .unwrap();
    let jobs = vec![
        job(1, "success", Some(10), Some(70), None), // queue 10, run 60
        job(2, "success", Some(20), Some(50), None), // queue 20, run 30
        job(3, "failed", Some(30), Some(120), Some("script_failure")), // queue 30, run 90
        job(
            4,
            "failed",
            Some(40),
            Some(100),
            Some("runner_system_failure"),
        ), // queue 40, run 60
        job(5, "canceled", None, Some(110), None),   // never started
        job(
            6,
            "failed",
            None,
            Some(90),
            Some("stuck_or_timeout_failure"),
        ), // never started
    ];
    let r = Report::compute(&pipeline, &jobs, WatchOutcome::Finished, 17, 125.0);
    assert_eq!(r.total_jobs, 6);
    assert_eq!(r.by_status.get("success"), Some(&2));
    assert_eq!(r.by_status.get("failed"), Some(&3));
    assert_eq!(r.by_status.get("canceled"), Some(&1));
    assert_eq!(r.makespan_secs, Some(120.0));
    // queue samples 10,20,30,40: nearest rank p50 = 2nd = 20, p95 = 4th = 40
    let q = r.queue.unwrap();
    assert_eq!((q.count, q.p50, q.p95, q.max), (4, 20.0, 40.0, 40.0));
    // run samples 30,60,60,90: p50 = 60, p95 = 90
    let run = r.run.unwrap();
    assert_eq!(
        (run.count, run.p50, run.p95, run.max),
        (4, 60.0, 90.0, 90.0)
    );
    // 6 finished jobs in 2 minutes
    assert_eq!(r.jobs_per_minute, Some(3.0));
    assert_eq!(r.failures_by_reason.len(), 3);
    assert_eq!(r.failures_by_reason["script_failure"], 1);
    assert_eq!(r.failures_by_reason["runner_system_failure"], 1);
    assert_eq!(r.failures_by_reason["stuck_or_timeout_failure"], 1);
    assert!(r.has_failures());
    assert_eq!(r.requests, 17);

    let table = r.render_table();
    for needle in [
        "makespan",
        "120.0 s",
        "queue time",
        "20.0",
        "40.0",
        "script_failure",
        "API requests",
        "17",
    ] {
        assert!(table.contains(needle), "table lacks {needle:?}:\n{table}");
    }
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["makespan_secs"], json!(120.0));
    assert_eq!(v["queue"]["p95"], json!(40.0));
    assert_eq!(v["failures_by_reason"]["script_failure"], json!(1));
    assert_eq!(v["outcome"], json!("finished"));
}

#[test]
fn empty_pipeline_reports_no_numbers() {
    let pipeline: Pipeline =
        serde_json::from_value(json!({"id": 1, "status": "pending", "created_at": at(0)})).unwrap();
    let r = Report::compute(&pipeline, &[], WatchOutcome::TimedOut, 1, 1.0);
    assert_eq!(
        (r.makespan_secs, r.queue, r.run, r.jobs_per_minute),
        (None, None, None, None)
    );
    assert!(r.render_table().contains('-'));
}

#[test]
fn timeline_has_every_job_with_offsets_shard_and_reason() {
    let pipeline: Pipeline = serde_json::from_value(json!({
        "id": 7, "status": "failed", "created_at": at(0)
    }))
    .unwrap();
    let mut late = job(9, "failed", Some(40), Some(100), Some("script_failure"));
    late.created_at = jiff::Timestamp::from_second(1_700_000_005).unwrap();
    late.queued_duration = Some(25.0);
    late.tag_list = vec!["shard-2".into(), "extra".into()];
    let mut untagged = job(3, "canceled", None, Some(30), None);
    untagged.tag_list.clear();
    let unknown = job(4, "failed", None, Some(50), None);
    let r = Report::compute(
        &pipeline,
        &[late, untagged, unknown],
        WatchOutcome::Finished,
        3,
        1.0,
    );
    assert_eq!(r.created_at, pipeline.created_at);
    let ids: Vec<u64> = r.jobs.iter().map(|j| j.id).collect();
    assert_eq!(ids, [3, 4, 9], "sorted by id");
    let j = &r.jobs[2];
    assert_eq!(j.shard, "shard-2");
    assert_eq!(
        (
            j.created_secs,
            j.queued_secs,
            j.started_secs,
            j.finished_secs
        ),
        (5.0, 15.0, Some(40.0), Some(100.0))
    );
    assert_eq!((j.queue_secs(), j.run_secs()), (Some(35.0), Some(60.0)));
    assert_eq!(j.failure_reason.as_deref(), Some("script_failure"));
    assert_eq!(r.jobs[0].shard, "untagged");
    assert_eq!(r.jobs[0].failure_reason, None, "canceled is not a failure");
    assert_eq!(
        r.jobs[0].queued_secs, 0.0,
        "never started: queued at creation"
    );
    assert_eq!(r.jobs[1].failure_reason.as_deref(), Some("unknown"));
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["jobs"][2]["failure_reason"], json!("script_failure"));
}
