//! Job logs read back: the parsers on real GitLab job logs (fixtures/traces, sources in
//! SOURCES.md), and the image proof of a load test on the e2e tests' Python double, whose
//! runners write each job's log with its image's `/etc/os-release`.

use std::time::Duration;

use glrunner_gitlab_client::ci::{DEFAULT_IMAGE_MATRIX, LoadTestSpec, ShardTarget};
use glrunner_gitlab_client::loadtest::{self, LoadTestRun, RunningPipelines};
use glrunner_gitlab_client::sample::ImageVerdict;
use glrunner_gitlab_client::trace::{
    CacheTrace, OsRelease, RestoreOutcome, SaveOutcome, lines, os_release_script,
};
use glrunner_gitlab_client::watch::WatchConfig;
use glrunner_gitlab_client::{GitLabApi, GitLabApiExt, NewRunner, ProjectRef, WatchOutcome};

use super::rules::{PyDouble, client};

fn fixture(name: &str) -> String {
    let root =
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
    let path = std::path::Path::new(&root)
        .join("tests/fixtures/traces")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// gitlab-runner's own corpus: a restore that found nothing, one second of `restore_cache`.
#[test]
fn a_runner_log_restore_that_found_nothing_is_a_miss() {
    let c = CacheTrace::from_trace(&fixture("runner-corpus-restore-miss.log"));
    assert_eq!(c.restore_key.as_deref(), Some("unit test 1/8-v13-12-0-2"));
    assert_eq!(c.restore, Some(RestoreOutcome::Miss));
    assert_eq!(c.restore_secs, Some(1.0));
    assert_eq!(c.save, None);
}

/// The same corpus: `Uploading cache.zip to …` and `Created cache` are an upload.
#[test]
fn a_runner_log_upload_is_an_upload() {
    let c = CacheTrace::from_trace(&fixture("runner-corpus-save-upload.log"));
    assert_eq!(c.save_key.as_deref(), Some("unit test 1/8-v13-12-0-2"));
    assert_eq!(c.save, Some(SaveOutcome::Uploaded));
    assert_eq!(c.save_secs, Some(1.0));
    assert_eq!(c.restore, None);
}

/// A GitLab.com log with `FF_TIMESTAMPS`: a hit, timed to the microsecond by the prefixes
/// (26.436 s to the millisecond), not by the markers' whole seconds (27 s).
#[test]
fn a_timestamped_gitlab_com_log_hit_is_timed_by_its_prefixes() {
    let text = fixture("gitlab-com-restore-hit-timestamps.log");
    let c = CacheTrace::from_trace(&text);
    assert_eq!(c.restore_key.as_deref(), Some("v0-23-0-protected"));
    assert_eq!(c.restore, Some(RestoreOutcome::Hit));
    let secs = c.restore_secs.unwrap();
    assert_eq!(secs, 26.436, "milliseconds");
    let plain = lines(&text);
    assert!(
        plain.iter().all(|l| !l.text.contains('\u{1b}')),
        "{plain:?}"
    );
    assert!(
        plain
            .iter()
            .any(|l| l.text == "Checking cache for v0-23-0-protected...")
    );
}

/// `cache:policy: pull` leaves "Not uploading cache … due to policy" in `archive_cache`.
#[test]
fn a_pull_policy_save_is_skipped() {
    let c = CacheTrace::from_trace(&fixture("gitlab-com-save-skipped-by-policy.log"));
    assert_eq!(c.save_key.as_deref(), Some("main-protected"));
    assert_eq!(c.save, Some(SaveOutcome::SkippedByPolicy));
    assert_eq!(c.save_secs, Some(0.0));
}

/// The runner's own "No URL provided" lines (no shared cache) read as local-only.
#[test]
fn no_shared_cache_reads_as_local_only() {
    let log = "Checking cache for k...\nNo URL provided, cache will not be downloaded from shared cache server. Instead a local version of cache will be extracted.\nSuccessfully extracted cache\nCreating cache k...\nNo URL provided, cache will not be uploaded to shared cache server. Cache will be stored only locally.\nCreated cache\n";
    let c = CacheTrace::from_trace(log);
    assert_eq!(c.restore, Some(RestoreOutcome::LocalOnly));
    assert_eq!(c.save, Some(SaveOutcome::LocalOnly));
}

/// The os-release block is read between the markers, not from the echoed command line.
#[test]
fn the_os_release_block_is_read_between_its_markers() {
    let cmd = &os_release_script()[0];
    let log = format!(
        "\u{1b}[32;1m$ {cmd}\u{1b}[0;m\nglrunner-os-release-begin\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\nID=debian\nglrunner-os-release-end\n"
    );
    let os = OsRelease::from_trace(&log).unwrap();
    assert_eq!(os.id, "debian");
    assert_eq!(os.version_id.as_deref(), Some("12"));
    assert_eq!(os.version_codename.as_deref(), Some("bookworm"));
    assert!(OsRelease::from_trace("$ cat /etc/os-release\nID=alpine\n").is_none());
}

/// A load test of the default image matrix on the Python double: the double runs each job
/// with its image and serves its log, so every sampled job is proved; with the wrong-image
/// fault on the first job to start, the report names that job, its image and the one it ran.
#[tokio::test]
async fn the_image_matrix_on_the_python_double_proves_each_image_and_names_a_wrong_one() {
    for wrong in [None, Some(1u64)] {
        let py = PyDouble::start();
        if let Some(n) = wrong {
            py.post("/double/config", serde_json::json!({"wrong_image_job": n}))
                .await;
        }
        let http = client(&py.url);
        let project = http.get_or_create_project("double/images").await.unwrap();
        let runner = http
            .create_runner(&NewRunner::project(
                project.id,
                "images",
                vec!["images".into()],
            ))
            .await
            .unwrap();
        py.post(
            &format!("/double/runners/{}", runner.id),
            serde_json::json!({"manager": true}),
        )
        .await;
        let images: Vec<String> = DEFAULT_IMAGE_MATRIX.iter().map(|s| s.to_string()).collect();
        let spec = LoadTestSpec::new(vec![ShardTarget::new("images", 9)])
            .with_images(images.clone())
            .with_cache_workload(Some(1));
        let watch = WatchConfig::default()
            .with_intervals(
                Duration::from_millis(200),
                Duration::from_millis(200),
                Duration::from_millis(500),
            )
            .with_max_requests_per_minute(100_000)
            .with_timeout(Duration::from_secs(60));
        let outcome = loadtest::run(
            &http,
            &project,
            &LoadTestRun::new(spec),
            &watch,
            &RunningPipelines::default(),
            &mut |_| {},
        )
        .await
        .unwrap_or_else(|f| panic!("{}", f.error));
        let report = outcome.report;
        assert_eq!(report.outcome, WatchOutcome::Finished);
        let traces = report.traces.as_ref().expect("logs were sampled");
        assert_eq!(traces.images.len(), 3);
        assert!(traces.traces_read >= 3, "{traces:?}");
        // The cache: one key for the shard, the first restore misses, a later one hits.
        assert_eq!(traces.cache.len(), 1);
        assert_eq!(traces.cache[0].key.as_deref(), Some("glrunner-images"));
        assert_eq!(traces.cache[0].uploads, traces.cache[0].sampled);
        match wrong {
            None => {
                assert!(
                    traces
                        .images
                        .iter()
                        .all(|i| i.verdict == ImageVerdict::Proved),
                    "{:?}",
                    traces.images
                );
                assert!(!report.has_failures(), "{}", report.render_table());
            }
            Some(_) => {
                assert!(report.has_failures());
                let m = &traces.mismatches;
                assert_eq!(m.len(), 1, "{m:?}");
                let jobs = http
                    .all_pipeline_jobs(&ProjectRef::Id(project.id), report.pipeline_id)
                    .await
                    .unwrap();
                let first = jobs.iter().map(|j| j.id).min().unwrap();
                assert_eq!(
                    m[0].job_id, first,
                    "the first job to start ran the wrong image"
                );
                assert_eq!(m[0].expected_image, images[0]);
                assert_eq!(m[0].ran, images[1]);
                let text = m[0].to_string();
                assert!(
                    text.contains(&m[0].job_name)
                        && text.contains(&images[0])
                        && text.contains(&images[1]),
                    "{text}"
                );
                assert!(report.render_table().contains("MISMATCH"));
            }
        }
        let log = http
            .job_trace(&ProjectRef::Id(project.id), report.jobs[0].id)
            .await
            .unwrap();
        assert!(
            log.contains("Using Kubernetes executor with image"),
            "{log}"
        );
    }
}
