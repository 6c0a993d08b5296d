//! Benchmark (prints its numbers): the HTML report of a 1000-job sandbox load test — its size,
//! the time glrunner takes to render the three artifacts, and the time headless Chromium takes
//! to lay out and paint it, against a blank page measured in the same run (Chromium's own
//! start-up is most of either figure, so the difference is the report's cost).
//!
//! Targets (issue 15): under 1 MB and under a second of rendering for 1000 jobs.
//!
//! Run: `cargo run --release --example bench_report` (Chromium from `GLRUNNER_TEST_CHROMIUM`,
//! else `chromium` on PATH; `scripts/report-tools.sh install` installs it; without it only
//! the size and glrunner's render time are measured).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use clap::Parser;
use glrunner::artifacts::{html, junit, metrics};
use glrunner::cli::{GlobalArgs, OutputFormat};
use glrunner::commands::loadtest::{self, RunArgs};

#[derive(Debug, Parser)]
#[command(args_override_self = true)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(flatten)]
    run: RunArgs,
    /// Chromium runs per page (the median is reported).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn chromium_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("GLRUNNER_TEST_CHROMIUM").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let found = Command::new("sh")
        .args(["-c", "command -v chromium"])
        .output()
        .ok()?;
    let path = String::from_utf8_lossy(&found.stdout).trim().to_owned();
    (!path.is_empty()).then(|| PathBuf::from(path))
}

/// One headless screenshot of `page` (layout + paint of the whole window), timed.
fn screenshot(bin: &Path, dir: &Path, page: &Path, round: usize) -> Duration {
    let profile = dir.join(format!("profile-{round}"));
    let shot = dir.join(format!("shot-{round}.png"));
    let start = Instant::now();
    let out = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1100,2400",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("cannot start chromium");
    let elapsed = start.elapsed();
    assert!(
        out.status.success() && shot.exists(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    elapsed
}

fn main() {
    let args: Vec<String> = [
        "bench_report",
        "--jobs",
        "1000",
        "--shards",
        "5",
        "--sandbox-fail-every",
        "97",
        // A large account: the renderers are timed, not the model's quota.
        "--fargate-vcpu-quota",
        "4000",
    ]
    .into_iter()
    .map(String::from)
    .chain(std::env::args().skip(1))
    .collect();
    let mut command = <Cli as clap::CommandFactory>::command();
    let matches = command.clone().get_matches_from(args);
    let cli = <Cli as clap::FromArgMatches>::from_arg_matches(&matches)
        .unwrap_or_else(|e| e.format(&mut command).exit());
    // The bench renders a sandbox run: a real target named on the command line would be ignored.
    let refused = if cli.global.backend != glrunner::cli::Backend::Sandbox {
        Err(glrunner::cli::CliError::invalid(
            "--backend: bench_report renders a sandbox run only (drop --backend aws)",
        ))
    } else {
        glrunner::cli::targets::check(&cli.global, &matches)
    };
    if let Err(e) = refused {
        let code = e.code;
        glrunner::cli::finish(Err(e), cli.global.output);
        std::process::exit(i32::from(code));
    }
    let plan = loadtest::plan(&cli.global, &cli.run).expect("valid parameters");
    let rt = glrunner::cli::runtime(cli.global.backend).expect("runtime");
    let report = rt
        .block_on(loadtest::run_sandbox(&plan, &cli.run, OutputFormat::Json))
        .expect("sandbox run")
        .report;
    let context = loadtest::artifact_context(&cli.global, &cli.run, &plan);

    let rounds = 20;
    let start = Instant::now();
    let mut page = String::new();
    for _ in 0..rounds {
        page = html::render(&report, &context);
    }
    let html_time = start.elapsed() / rounds;
    let start = Instant::now();
    let (mut xml, mut txt) = (String::new(), String::new());
    for _ in 0..rounds {
        xml = junit::render(&report, &context);
        txt = metrics::render(&report, &context);
    }
    let other_time = start.elapsed() / rounds;
    println!(
        "1000-job sandbox run: {} jobs, {} shards, makespan {:.1} s (virtual clock)",
        report.total_jobs,
        plan.spec.shards.len(),
        report.makespan_secs.unwrap_or(0.0)
    );
    println!(
        "HTML report: {} bytes ({:.0}% of the 1 MB limit), rendered by glrunner in {:.2} ms",
        page.len(),
        page.len() as f64 / 10_000.0,
        html_time.as_secs_f64() * 1000.0
    );
    println!(
        "JUnit: {} bytes, metrics: {} bytes, both rendered in {:.2} ms",
        xml.len(),
        txt.len(),
        other_time.as_secs_f64() * 1000.0
    );

    let Some(bin) = chromium_binary() else {
        println!(
            "chromium not found: set GLRUNNER_TEST_CHROMIUM or run scripts/report-tools.sh install"
        );
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let report_page = dir.path().join("report.html");
    let blank_page = dir.path().join("blank.html");
    std::fs::write(&report_page, &page).unwrap();
    std::fs::write(
        &blank_page,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>blank</title></head><body></body></html>",
    )
    .unwrap();
    // Alternate the pages so a machine-wide slowdown hits both alike.
    let (mut blank, mut full) = (Vec::new(), Vec::new());
    for round in 0..cli.rounds.max(1) {
        blank.push(screenshot(&bin, dir.path(), &blank_page, 2 * round));
        full.push(screenshot(&bin, dir.path(), &report_page, 2 * round + 1));
    }
    let (blank, full) = (median(blank), median(full));
    let cost = full.saturating_sub(blank);
    println!(
        "Chromium headless screenshot (median of {}): blank page {:.3} s, report {:.3} s → the report costs {:.3} s ({:.2}x the blank page) — {} the 1 s target",
        cli.rounds.max(1),
        blank.as_secs_f64(),
        full.as_secs_f64(),
        cost.as_secs_f64(),
        full.as_secs_f64() / blank.as_secs_f64(),
        if cost < Duration::from_secs(1) {
            "within"
        } else {
            "OVER"
        }
    );
}
