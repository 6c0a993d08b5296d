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
