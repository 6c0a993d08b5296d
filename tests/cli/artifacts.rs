//! `--report-html`, `--junit`, `--metrics` of sandbox runs through the example binaries (issue 15):
//! the HTML rendered by headless Chromium (`GLRUNNER_TEST_CHROMIUM`), the JUnit file against the
//! JUnit schema (`GLRUNNER_TEST_JUNIT_XSD` + xmllint), the metrics file read the way GitLab reads
//! it, the size of a 1000-job page, and bad paths refused before anything runs.
//! `scripts/report-tools.sh install` (run by scripts/test.sh) installs Chromium, xmllint and the schema.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::{run, text};

/// The three artifacts of one sandbox run, in a temporary directory.
struct Artifacts {
    dir: tempfile::TempDir,
    out: Output,
}

impl Artifacts {
    fn html(&self) -> PathBuf {
        self.dir.path().join("report.html")
    }
    fn junit(&self) -> PathBuf {
        self.dir.path().join("junit.xml")
    }
    fn metrics(&self) -> PathBuf {
        self.dir.path().join("metrics.txt")
    }
    fn read(&self, path: PathBuf) -> String {
        std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{} was not written ({e}); stderr:\n{}",
                path.display(),
                text(&self.out.stderr)
            )
        })
    }
    fn report(&self) -> serde_json::Value {
        serde_json::from_slice(&self.out.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON document ({e}):\n{}",
                text(&self.out.stdout)
            )
        })
    }
}

/// Runs `example` on the sandbox with all three artifact flags and `--output json`.
fn sandbox_run(example: &str, args: &[&str]) -> Artifacts {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let (html, junit, metrics) = (path("report.html"), path("junit.xml"), path("metrics.txt"));
    let mut full = vec![
        "--output",
        "json",
        "--report-html",
        &html,
        "--junit",
        &junit,
        "--metrics",
        &metrics,
    ];
    full.extend_from_slice(args);
    let out = run(example, &full, &[]);
    Artifacts { dir, out }
}

/// 60 jobs on 3 shards, every 7th failing: exit 1, and the files are written all the same.
fn failing_loadtest() -> Artifacts {
    let a = sandbox_run(
        "loadtest",
        &["--jobs", "60", "--shards", "3", "--sandbox-fail-every", "7"],
    );
    assert_eq!(
        a.out.status.code(),
        Some(1),
        "failed jobs exit 1; stderr:\n{}",
        text(&a.out.stderr)
    );
    a
}

/// A tool from scripts/report-tools.sh: `None` (skip, with the reason printed) outside CI.
fn tool(var: &str) -> Option<PathBuf> {
    crate::servers::env(
        [var],
        "scripts/test.sh sets it; or export $(scripts/report-tools.sh install)",
    )
    .map(|[path]| PathBuf::from(path))
}

fn occurrences(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

/// The metrics file as GitLab's parser reads it (`Gitlab::Ci::Parsers::Metrics::Generic`):
/// everything after `#` dropped, blank lines skipped, the first word the name, the next the value.
fn gitlab_metrics(text: &str) -> BTreeMap<String, String> {
    let mut metrics = BTreeMap::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let (Some(name), Some(value)) = (words.next(), words.next()) else {
            continue;
        };
        metrics.entry(name.to_owned()).or_insert(value.to_owned());
    }
    metrics
}

#[test]
fn sandbox_loadtest_writes_html_junit_and_metrics_from_its_timeline() {
    let a = failing_loadtest();
    let report = a.report();
    let jobs = report["total_jobs"].as_u64().unwrap() as usize;
    let failed: usize = report["failures_by_reason"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap() as usize)
        .sum();
    assert_eq!(jobs, 60);
    assert!(failed > 0, "every 7th job fails: {report}");
    assert_eq!(report["jobs"].as_array().unwrap().len(), 60, "the timeline");

    let html = a.read(a.html());
    assert_eq!(
        occurrences(&html, "<g class=\"lane\""),
        3,
        "one lane per shard"
    );
    assert_eq!(occurrences(&html, "<g class=\"job"), 60, "one bar per job");
    assert_eq!(occurrences(&html, "<g class=\"job f\""), failed);
    assert_eq!(occurrences(&html, "<polyline class=\"series\""), 3);
    for marker in ["p50", "p95", "max"] {
        assert_eq!(
            occurrences(&html, &format!("data-marker=\"{marker}\"")),
            2,
            "{marker} on both histograms"
        );
    }
    assert!(html.contains("makespan"));
    for forbidden in ["<script", "<link", " src=", "url(", "@import", "@font-face"] {
        assert!(
            !html.contains(forbidden),
            "self-contained page has no {forbidden}"
        );
    }
    assert!(html.contains("default-src 'none'"), "CSP forbids requests");

    let junit = a.read(a.junit());
    assert_eq!(occurrences(&junit, "<testcase "), 60);
    assert_eq!(occurrences(&junit, "<testsuite "), 3);
    assert_eq!(
        occurrences(&junit, "<failure message=\"script_failure\""),
        failed
    );
    assert!(junit.contains(&format!("failures=\"{failed}\"")));

    let metrics = gitlab_metrics(&a.read(a.metrics()));
    assert_eq!(metrics["glrunner_loadtest_jobs"], "60");
    assert_eq!(metrics["glrunner_loadtest_failures"], failed.to_string());
    assert_eq!(
        metrics["glrunner_loadtest_failures_script_failure"],
        failed.to_string()
    );
    assert_eq!(
        metrics["glrunner_loadtest_makespan_seconds"],
        format!("{:.1}", report["makespan_secs"].as_f64().unwrap())
    );
    assert_eq!(
        metrics["glrunner_loadtest_queue_p95_seconds"],
        format!("{:.1}", report["queue"]["p95"].as_f64().unwrap())
    );
    assert_eq!(
        metrics["glrunner_loadtest_api_requests"],
        report["requests"].to_string()
    );
}

#[test]
fn metrics_are_valid_openmetrics_names_and_numbers() {
    let a = failing_loadtest();
    let raw = a.read(a.metrics());
    assert!(raw.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");
    let metrics = gitlab_metrics(&raw);
    let samples = raw.lines().filter(|l| !l.starts_with('#')).count();
    assert_eq!(metrics.len(), samples, "one sample line per name");
    for (name, value) in &metrics {
        let mut chars = name.chars();
        assert!(
            chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "metric name {name:?}"
        );
        assert!(
            value.parse::<f64>().is_ok_and(f64::is_finite),
            "{name} = {value:?}"
        );
    }
    for name in [
        "glrunner_loadtest_makespan_seconds",
        "glrunner_loadtest_queue_p50_seconds",
        "glrunner_loadtest_queue_p95_seconds",
        "glrunner_loadtest_jobs_per_minute",
        "glrunner_loadtest_failures",
        "glrunner_loadtest_api_requests",
    ] {
        assert!(metrics.contains_key(name), "{name} missing: {metrics:?}");
    }
}

/// xmllint's verdict on `doc` against the schema.
fn xmllint(xsd: &Path, doc: &Path) -> Output {
    Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(xsd)
        .arg(doc)
        .output()
        .expect("xmllint (Debian libxml2-utils; scripts/report-tools.sh installs it)")
}

#[test]
fn junit_validates_against_the_junit_schema() {
    let Some(xsd) = tool("GLRUNNER_TEST_JUNIT_XSD") else {
        return;
    };
    let a = failing_loadtest();
    // The validator must be able to say no: a test case without its required name.
    let broken = a.dir.path().join("broken.xml");
    std::fs::write(
        &broken,
        "<testsuites><testsuite name=\"s\" tests=\"1\" failures=\"0\" errors=\"0\"><testcase time=\"1\"/></testsuite></testsuites>",
    )
    .unwrap();
    assert!(
        !xmllint(&xsd, &broken).status.success(),
        "the schema rejects a nameless test case"
    );
    let out = xmllint(&xsd, &a.junit());
    assert!(
        out.status.success(),
        "JUnit file invalid:\n{}",
        text(&out.stderr)
    );
    assert_eq!(occurrences(&a.read(a.junit()), "<testcase "), 60);
}

/// Headless Chromium with the flags this machine's closed network needs and a fresh profile.
fn chromium(bin: &Path, profile: &Path, args: &[&str], page: &Path) -> Output {
    Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("cannot start chromium")
}

/// Console messages (errors, CSP violations, SVG attribute errors) in Chromium's log; the report
/// has no script, so any message at all is a fault.
fn console_messages(stderr: &[u8]) -> Vec<String> {
    text(stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_owned)
        .collect()
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert!(
        bytes.len() > 24 && bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "not a PNG"
    );
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&bytes[16..20]), be(&bytes[20..24]))
}

#[test]
fn html_renders_in_headless_chromium_without_console_errors() {
    let Some(bin) = tool("GLRUNNER_TEST_CHROMIUM") else {
        return;
    };
    let a = failing_loadtest();
    let failed = a.read(a.junit()).matches("<failure ").count();
    let dir = a.dir.path();

    // The console check must be able to fail: a page with a blocked request and an SVG error.
    let control = dir.join("control.html");
    std::fs::write(
        &control,
        "<!DOCTYPE html><html><head><meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'\"></head>\
         <body><img src=\"https://example.invalid/x.png\"><svg><rect width=\"-3\" height=\"1\"/></svg></body></html>",
    )
    .unwrap();
    let out = chromium(
        &bin,
        &dir.join("profile-control"),
        &["--dump-dom"],
        &control,
    );
    assert!(
        !console_messages(&out.stderr).is_empty(),
        "the control page's errors were not seen in Chromium's log:\n{}",
        text(&out.stderr)
    );

    // The DOM Chromium built from the report: the charts' series.
    let out = chromium(&bin, &dir.join("profile-dom"), &["--dump-dom"], &a.html());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dom = text(&out.stdout);
    assert_eq!(
        occurrences(&dom, "<g class=\"lane\""),
        3,
        "one lane per shard"
    );
    assert_eq!(occurrences(&dom, "<g class=\"job"), 60, "one bar per job");
    assert_eq!(occurrences(&dom, "<g class=\"job f\""), failed);
    assert_eq!(occurrences(&dom, "<polyline class=\"series\""), 3);
    assert_eq!(occurrences(&dom, "<svg "), 4, "four charts");
    assert_eq!(
        console_messages(&out.stderr),
        Vec::<String>::new(),
        "console messages while rendering the report"
    );

    // A screenshot, kept next to the report for a person to look at.
    let shot = dir.join("report.png");
    let out = chromium(
        &bin,
        &dir.join("profile-shot"),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1100,2400",
            "--hide-scrollbars",
        ],
        &a.html(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(console_messages(&out.stderr), Vec::<String>::new());
    let png = std::fs::read(&shot).expect("the screenshot was written");
    assert_eq!(png_size(&png), (1100, 2400));
    if let Some(keep) = std::env::var_os("GLRUNNER_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
}

#[test]
fn a_1000_job_html_report_stays_under_1_mb() {
    // A large account: the report's size is under test, not the model's quota.
    let a = sandbox_run(
        "loadtest",
        &[
            "--jobs",
            "1000",
            "--shards",
            "5",
            "--fargate-vcpu-quota",
            "4000",
        ],
    );
    assert!(a.out.status.success(), "{}", text(&a.out.stderr));
    let html = a.read(a.html());
    assert!(html.len() < 1_000_000, "{} bytes for 1000 jobs", html.len());
    assert_eq!(occurrences(&html, "<g class=\"lane\""), 5);
    assert_eq!(occurrences(&html, "<g class=\"job"), 1000);
    assert_eq!(occurrences(&a.read(a.junit()), "<testcase "), 1000);
}

#[test]
fn unwritable_artifact_paths_exit_2_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/dir/report.html");
    let missing = missing.to_str().unwrap();
    let existing_dir = dir.path().to_str().unwrap();
    let same = dir.path().join("same.txt");
    let same = same.to_str().unwrap();
    let cases: [(&[&str], &str); 3] = [
        (&["--report-html", missing], "--report-html"),
        (&["--junit", existing_dir], "--junit"),
        (&["--metrics", same, "--junit", same], "--metrics"),
    ];
    for (args, flag) in cases {
        let out = run("loadtest", args, &[]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        let stderr = text(&out.stderr);
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("pipeline"),
            "nothing ran for {args:?}: {stderr}"
        );
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing was written"
    );
}

#[test]
fn sandbox_full_flow_writes_the_artifacts_with_its_phases() {
    let a = sandbox_run("full_flow", &["--jobs", "300", "--max-per-release", "100"]);
    assert!(a.out.status.success(), "{}", text(&a.out.stderr));
    let report = a.report();
    assert_eq!(report["load_test"]["total_jobs"], 300);
    assert!(
        report.get("load_test_report").is_none(),
        "the timeline stays out of the JSON document"
    );
    let html = a.read(a.html());
    assert_eq!(
        occurrences(&html, "<g class=\"lane\""),
        3,
        "3 shards of 100"
    );
    assert_eq!(occurrences(&html, "<g class=\"job"), 300);
    let phases = report["phases"].as_array().unwrap();
    assert_eq!(occurrences(&html, "<tr class=\"phase\">"), phases.len());
    for phase in phases {
        let name = phase["phase"].as_str().unwrap();
        assert!(
            html.contains(&format!("<tr class=\"phase\"><td>{name}</td>")),
            "phase {name} in the HTML"
        );
    }
    assert!(html.contains("hung pods reaped"));
    // The queue time by Pending class: the JSON's rows, one HTML row each, every job once.
    let classes = report["load_test"]["queue_by_class"].as_array().unwrap();
    assert!(!classes.is_empty(), "{report:#}");
    assert_eq!(
        occurrences(&html, "<tr class=\"pending-class\""),
        classes.len()
    );
    let mut grouped = 0;
    for c in classes {
        let (class, jobs) = (c["class"].as_str().unwrap(), c["jobs"].as_u64().unwrap());
        assert!(
            html.contains(&format!(
                "<tr class=\"pending-class\" data-class=\"{class}\" data-jobs=\"{jobs}\">"
            )),
            "class {class} in the HTML"
        );
        grouped += jobs;
    }
    assert_eq!(grouped, 300);
    assert_eq!(occurrences(&a.read(a.junit()), "<testcase "), 300);
    let metrics = gitlab_metrics(&a.read(a.metrics()));
    assert_eq!(metrics["glrunner_loadtest_jobs"], "300");
    assert_eq!(
        metrics["glrunner_reaped_pods"],
        report["reap"]["reaped"].to_string()
    );
    let load_test_secs = phases.iter().find(|p| p["phase"] == "load-test").unwrap()["secs"]
        .as_f64()
        .unwrap();
    assert_eq!(
        metrics["glrunner_phase_load_test_seconds"],
        format!("{load_test_secs:.1}")
    );
}

#[test]
fn full_flow_failing_after_the_load_test_still_writes_them() {
    let a = sandbox_run("full_flow", &["--jobs", "100", "--inject-fault", "reap"]);
    assert_eq!(a.out.status.code(), Some(1), "{}", text(&a.out.stderr));
    let html = a.read(a.html());
    assert!(
        html.contains("<td>reap</td><td class=\"status-failed\">failed</td>"),
        "the failed phase is shown"
    );
    assert_eq!(occurrences(&a.read(a.junit()), "<testcase "), 100);

    // Failing before any pipeline ran: nothing to draw, said so, nothing written.
    let b = sandbox_run("full_flow", &["--jobs", "100", "--inject-fault", "project"]);
    assert_eq!(b.out.status.code(), Some(1), "{}", text(&b.out.stderr));
    assert!(
        text(&b.out.stderr).contains("not written"),
        "{}",
        text(&b.out.stderr)
    );
    assert!(!b.html().exists() && !b.junit().exists() && !b.metrics().exists());
}

#[test]
fn the_readme_ci_example_is_a_valid_gitlab_ci_file_publishing_all_three() {
    let readme = include_str!("../../README.md");
    let start = readme
        .find("```yaml\nloadtest:")
        .expect("README has the loadtest CI example")
        + "```yaml\n".len();
    let yaml = &readme[start..start + readme[start..].find("```").unwrap()];
    for needle in [
        "--report-html loadtest.html",
        "--junit loadtest-junit.xml",
        "--metrics metrics.txt",
        "junit: loadtest-junit.xml",
        "metrics: metrics.txt",
        "paths: [loadtest.html]",
        "when: always",
    ] {
        assert!(yaml.contains(needle), "{needle:?} in\n{yaml}");
    }
    let Some(check) = tool("GLRUNNER_TEST_CHECK_JSONSCHEMA") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let validate = |yaml: &str| {
        let file = dir.path().join(".gitlab-ci.yml");
        std::fs::write(&file, yaml).unwrap();
        Command::new(&check)
            .args(["--builtin-schema", "vendor.gitlab-ci"])
            .arg(&file)
            .output()
            .unwrap()
    };
    // The validator must be able to say no: reports under an unknown key.
    assert!(
        !validate("loadtest:\n  script: [x]\n  artifacts:\n    report:\n      junit: j.xml\n")
            .status
            .success()
    );
    let out = validate(yaml);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// `--images --cache-workload`: the HTML page has the image proof per image (each proved)
/// and the cache per shard, and the JSON report carries the same under `traces`.
#[test]
fn html_shows_the_image_proof_and_the_cache_per_shard() {
    let a = sandbox_run(
        "loadtest",
        &[
            "--jobs",
            "90",
            "--shards",
            "2",
            "--images",
            "--cache-workload",
            "2",
        ],
    );
    assert_eq!(a.out.status.code(), Some(0), "{}", text(&a.out.stderr));
    let html = a.read(a.html());
    assert!(html.contains("<section id=\"images\">"), "{html}");
    for image in glrunner_gitlab_client::ci::DEFAULT_IMAGE_MATRIX {
        assert!(
            html.contains(&format!(
                "<tr class=\"image\" data-verdict=\"proved\"><td>{image}</td>"
            )),
            "{image}"
        );
    }
    assert_eq!(html.matches("<tr class=\"cache\"").count(), 2, "two shards");
    let report = a.report();
    assert_eq!(report["traces"]["images"].as_array().map(Vec::len), Some(3));
    assert_eq!(report["traces"]["cache"].as_array().map(Vec::len), Some(2));
}
