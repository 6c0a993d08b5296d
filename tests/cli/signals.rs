//! Clean stops: real SIGINT/SIGTERM sent to the real example binaries at chosen points
//! (`GLRUNNER_TEST_HOLD_AT` freezes a sandbox run at an exact point until the signal arrives;
//! against moto the shim's creation delay leaves time to interrupt).

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::example;

/// A running example whose stderr lines are watched as they come.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: Vec<String>,
    stdout: std::thread::JoinHandle<String>,
}

/// What a stopped run left: exit code, stdout and every stderr line.
struct Stopped {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Running {
    fn start(name: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(example(name));
        cmd.args(args)
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_REGION")
            .env_remove("GLRUNNER_BACKEND")
            .env_remove("GITLAB_TOKEN")
            .env_remove("CI_SERVER_URL")
            .env_remove(HOLD)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run example {name}: {e}"));
        let (tx, lines) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut out = child.stdout.take().unwrap();
        let stdout = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = out.read_to_string(&mut text);
            text
        });
        Self {
            child,
            lines,
            stderr: Vec::new(),
            stdout,
        }
    }

    /// Waits (at most a minute) for a stderr line containing `needle`.
    fn wait_for(&mut self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            match self.lines.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    let hit = line.contains(needle);
                    self.stderr.push(line);
                    if hit {
                        return;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        let _ = self.child.kill();
        panic!(
            "never saw {needle:?} on stderr:\n{}",
            self.stderr.join("\n")
        );
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args(["-s", signal, &self.child.id().to_string()])
            .status()
            .expect("kill(1)");
        assert!(status.success(), "kill -s {signal} failed");
    }

    /// Waits (at most two minutes) for the exit and collects the output.
    fn finish(mut self) -> Stopped {
        let deadline = Instant::now() + Duration::from_secs(120);
        let code = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("did not exit after the signal:\n{}", self.stderr.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        self.stderr.extend(self.lines.iter());
        Stopped {
            code,
            stdout: self.stdout.join().unwrap(),
            stderr: self.stderr.join("\n"),
        }
    }
}

const HOLD: &str = "GLRUNNER_TEST_HOLD_AT";

#[test]
fn sandbox_provision_stops_on_sigterm_and_sigint_and_prints_what_exists() {
    for (signal, code) in [("TERM", 143), ("INT", 130)] {
        let mut run = Running::start("provision", &[], &[(HOLD, "step-done:cluster")]);
        run.wait_for("holding at step-done:cluster");
        run.signal(signal);
        let out = run.finish();
        assert_eq!(out.code, Some(code), "{}\n{}", out.stdout, out.stderr);
        assert!(
            out.stderr
                .contains(&format!("SIG{signal}: stopping cleanly")),
            "{}",
            out.stderr
        );
        assert!(
            out.stderr.contains("run the same command again"),
            "{}",
            out.stderr
        );
        assert!(
            out.stdout.contains("resource(s) of stack glrunner exist"),
            "{}",
            out.stdout
        );
        assert!(out.stdout.contains("cluster"), "{}", out.stdout);
        assert!(
            !out.stdout.contains("fargate-profile"),
            "no step starts after the stop: {}",
            out.stdout
        );
    }
}

#[test]
fn sandbox_loadtest_cancels_its_pipeline_on_sigterm_unless_kept() {
    let mut run = Running::start(
        "loadtest",
        &["--jobs", "400", "--output", "json"],
        &[(HOLD, "pipeline-created")],
    );
    run.wait_for("holding at pipeline-created");
    run.signal("TERM");
    let out = run.finish();
    assert_eq!(out.code, Some(143), "{}\n{}", out.stdout, out.stderr);
    let report: serde_json::Value =
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout));
    assert_eq!(report["outcome"], "interrupted", "{report}");
    assert_eq!(report["pipeline_status"], "canceled", "{report}");
    assert_eq!(
        report["total_jobs"], 400,
        "the partial report covers the pipeline"
    );
    assert!(out.stderr.contains("canceled pipeline"), "{}", out.stderr);

    let mut run = Running::start(
        "loadtest",
        &["--jobs", "40", "--keep-pipeline"],
        &[(HOLD, "pipeline-created")],
    );
    run.wait_for("holding at pipeline-created");
    run.signal("INT");
    let out = run.finish();
    assert_eq!(out.code, Some(130), "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("keeping pipeline"), "{}", out.stderr);
    assert!(!out.stderr.contains("canceled pipeline"), "{}", out.stderr);
}

#[test]
fn reap_watch_finishes_its_round_reports_and_exits_0_on_sigterm() {
    let run = Running::start(
        "reap",
        &["--watch", "--interval", "1s", "--output", "json"],
        &[],
    );
    std::thread::sleep(Duration::from_millis(1500));
    run.signal("TERM");
    let out = run.finish();
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("\"event\":\"stopped\""),
        "{}",
        out.stderr
    );
    assert!(
        !out.stdout.trim().is_empty(),
        "at least one round was reported"
    );
}

#[test]
fn sandbox_full_flow_cleans_up_on_sigterm_and_a_second_signal_stops_at_once() {
    let mut run = Running::start(
        "full_flow",
        &["--output", "json"],
        &[(HOLD, "phase-done:releases")],
    );
    run.wait_for("holding at phase-done:releases");
    run.signal("TERM");
    let out = run.finish();
    assert_eq!(out.code, Some(143), "{}\n{}", out.stdout, out.stderr);
    let report: serde_json::Value =
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout));
    assert_eq!(report["failure"]["phase"], "load-test", "{report}");
    assert_eq!(report["failure"]["cleaned_up"], true, "{report}");
    assert_eq!(report["teardown"]["leftovers"]["total"], 0, "{report}");
    assert!(
        report["teardown"]["releases_removed"].as_u64() > Some(0),
        "the releases this run made were removed: {report}"
    );

    // A second signal during the cleanup stops at once and says so.
    let mut run = Running::start("full_flow", &[], &[(HOLD, "phase-done:releases,deleted:")]);
    run.wait_for("holding at phase-done:releases");
    run.signal("INT");
    run.wait_for("holding at deleted:");
    run.signal("INT");
    let out = run.finish();
    assert_eq!(out.code, Some(130), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("second SIGINT: stopping at once"),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout.trim().is_empty(),
        "no report after an abort: {}",
        out.stdout
    );
}

/// SIGTERM during `provision` and `teardown` on moto, each followed by a re-run: nothing
/// duplicated, nothing left.
#[test]
fn provision_and_teardown_on_moto_stop_on_sigterm_and_resume() {
    let Some(url) = crate::servers::moto_url() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().to_str().unwrap();
    let env = |hold: &'static str| {
        vec![
            ("AWS_ENDPOINT_URL", url.clone()),
            ("AWS_ACCESS_KEY_ID", "x".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "x".to_owned()),
            ("AWS_MAX_ATTEMPTS", "2".to_owned()),
            (HOLD, hold.to_owned()),
        ]
    };
    let common = [
        "--backend",
        "aws",
        "--region",
        "us-east-1",
        "--stack",
        "sig-moto",
        "--state-dir",
        state,
        "--output",
        "json",
    ];
    let start = |name: &str, hold: &'static str, extra: &[&str]| {
        let env = env(hold);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Running::start(name, &[&common[..], extra].concat(), &env)
    };

    let mut run = start("provision", "step-done:vpc", &[]);
    run.wait_for("holding at step-done:vpc");
    run.signal("TERM");
    let out = run.finish();
    assert_eq!(out.code, Some(143), "{}\n{}", out.stdout, out.stderr);
    let stopped: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(stopped["interrupted"], true, "{stopped}");
    let existing = stopped["existing"].as_array().unwrap().len();
    assert!((1..16).contains(&existing), "{stopped}");
    assert!(
        dir.path().join("sig-moto.json").exists(),
        "the state was saved"
    );

    let out = start("provision", "", &[]).finish();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let resumed: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let steps = resumed["applied"]["steps"].as_array().unwrap();
    let created = steps.iter().filter(|s| s["created"] == true).count();
    assert!(
        created < steps.len(),
        "the re-run reused what the stopped run made"
    );
    let plan = start("teardown", "", &["--dry-run"]).finish();
    let plan: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    let mut keys = std::collections::BTreeMap::new();
    for r in plan["deleted"].as_array().unwrap() {
        let key = r["key"].as_str().unwrap_or_default().to_owned();
        if !key.is_empty() {
            *keys.entry(key).or_insert(0) += 1;
        }
    }
    assert!(keys.values().all(|n| *n == 1), "a duplicate: {keys:?}");

    let mut run = start("teardown", "deleted:", &[]);
    run.wait_for("holding at deleted:");
    run.signal("TERM");
    let out = run.finish();
    assert_eq!(out.code, Some(143), "{}\n{}", out.stdout, out.stderr);
    let out = start("teardown", "", &[]).finish();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let plan = start("teardown", "", &["--dry-run"]).finish();
    let plan: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    assert!(
        plan["deleted"].as_array().unwrap().is_empty(),
        "left: {plan}"
    );
}

/// SIGKILL (no clean stop: nothing saved, no cleanup) of `provision` and `teardown` on moto at
/// seeded random points — right after a step's resource was made but before the state file
/// recorded it, or right after a deletion — each followed by a re-run: the re-run finds what
/// the killed run made by its tags, nothing is duplicated, and after the last teardown nothing
/// of the stack is left.
#[test]
fn provision_and_teardown_on_moto_killed_at_random_points_then_rerun_leave_nothing() {
    let Some(url) = crate::servers::moto_url() else {
        return;
    };
    let seed: u64 = std::env::var("GLRUNNER_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(13);
    let mut rng = fastrand::Rng::with_seed(seed);
    // Steps of the moto plan, in the order apply reaches them.
    let steps = [
        "vpc",
        "role/cluster",
        "role/fargate",
        "subnet/",
        "igw",
        "eip/",
        "nat/",
        "rt/",
        "cluster",
        "fargate-profile",
    ];
    let mut points: Vec<&str> = Vec::new();
    while points.len() < 2 {
        let p = steps[rng.usize(..steps.len())];
        if !points.contains(&p) {
            points.push(p);
        }
    }
    eprintln!("seed {seed}: killing provision at {points:?}");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().to_str().unwrap();
    let stack = format!("kill-{}", std::process::id() % 100_000);
    let common = [
        "--backend",
        "aws",
        "--region",
        "us-east-1",
        "--stack",
        &stack,
        "--state-dir",
        state,
        "--output",
        "json",
    ];
    let start = |name: &str, hold: &str, extra: &[&str]| {
        let env = [
            ("AWS_ENDPOINT_URL", url.as_str()),
            ("AWS_ACCESS_KEY_ID", "x"),
            ("AWS_SECRET_ACCESS_KEY", "x"),
            ("AWS_MAX_ATTEMPTS", "2"),
            (HOLD, hold),
        ];
        Running::start(name, &[&common[..], extra].concat(), &env)
    };
    let kill_at = |name: &str, point: &str| {
        let mut run = start(name, point, &[]);
        run.wait_for("holding at ");
        run.signal("KILL");
        let out = run.finish();
        assert_eq!(out.code, None, "killed by a signal: {}", out.stderr);
    };
    let no_duplicates = || {
        let plan = start("teardown", "", &["--dry-run"]).finish();
        let plan: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
        let mut keys = std::collections::BTreeMap::new();
        for r in plan["deleted"].as_array().unwrap() {
            let key = r["key"].as_str().unwrap_or_default().to_owned();
            if !key.is_empty() {
                *keys.entry(key).or_insert(0) += 1;
            }
        }
        assert!(keys.values().all(|n| *n == 1), "a duplicate: {keys:?}");
        keys.len()
    };
    for point in &points {
        kill_at("provision", &format!("step-done:{point}"));
        no_duplicates();
    }
    let out = start("provision", "", &[]).finish();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let resources = no_duplicates();
    assert!(resources >= 10, "the whole stack: {resources}");

    // Teardown killed right after a seeded kind of resource was deleted, then run again.
    let kinds = [
        "Fargate profile",
        "EKS cluster",
        "NAT gateway",
        "subnet",
        "internet gateway",
        "VPC",
    ];
    let kind = kinds[rng.usize(..kinds.len())];
    eprintln!("seed {seed}: killing teardown after deleting a {kind}");
    kill_at("teardown", &format!("deleted:{kind}"));
    no_duplicates();
    let out = start("teardown", "", &[]).finish();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let plan = start("teardown", "", &["--dry-run"]).finish();
    let plan: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    assert!(
        plan["deleted"].as_array().unwrap().is_empty(),
        "left: {plan}"
    );
}

/// Two CI jobs run `provision` of one stack at once on moto from separate state directories
/// (the local lock cannot help): both succeed, nothing is made twice, one teardown removes it
/// all.
#[test]
fn two_provisions_of_one_stack_at_once_on_moto_make_one_stack() {
    let Some(url) = crate::servers::moto_url() else {
        return;
    };
    let stack = format!("twin-{}", std::process::id() % 100_000);
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let env = [
        ("AWS_ENDPOINT_URL", url.as_str()),
        ("AWS_ACCESS_KEY_ID", "x"),
        ("AWS_SECRET_ACCESS_KEY", "x"),
        ("AWS_MAX_ATTEMPTS", "2"),
    ];
    let start = |name: &str, dir: &std::path::Path, extra: &[&str]| {
        let args = [
            "--backend",
            "aws",
            "--region",
            "us-east-1",
            "--stack",
            &stack,
            "--state-dir",
            dir.to_str().unwrap(),
            "--output",
            "json",
        ];
        Running::start(name, &[&args[..], extra].concat(), &env)
    };
    let a = start("provision", dir_a.path(), &[]);
    let b = start("provision", dir_b.path(), &[]);
    let (a, b) = (a.finish(), b.finish());
    assert_eq!(a.code, Some(0), "first: {}", a.stderr);
    assert_eq!(b.code, Some(0), "second: {}", b.stderr);
    let waited = [&a, &b]
        .iter()
        .any(|o| o.stderr.contains("another run is provisioning"));
    eprintln!("a run waited for the other: {waited}");
    let plan = start("teardown", dir_a.path(), &["--dry-run"]).finish();
    let plan: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    let mut keys = std::collections::BTreeMap::new();
    for r in plan["deleted"].as_array().unwrap() {
        let key = r["key"].as_str().unwrap_or_default().to_owned();
        if !key.is_empty() {
            *keys.entry(key).or_insert(0) += 1;
        }
    }
    assert!(keys.len() >= 10, "one whole stack: {keys:?}");
    assert!(keys.values().all(|n| *n == 1), "a duplicate: {keys:?}");
    let out = start("teardown", dir_a.path(), &[]).finish();
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let plan = start("teardown", dir_b.path(), &["--dry-run"]).finish();
    let plan: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    assert!(
        plan["deleted"].as_array().unwrap().is_empty(),
        "left: {plan}"
    );
}
