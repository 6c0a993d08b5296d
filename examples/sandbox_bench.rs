//! `sandbox_bench`: the sandbox's modelled makespans of both runner profiles beside the reference
//! tutorial's published figures, the sensitivity of the 400-job makespan to each model
//! parameter (±50 %), what the model says stops the reference beyond 400 jobs, and the
//! simulator's wall time per 1,000 jobs at 1k, 10k and 50k jobs.
//!
//! ```text
//! cargo run --example sandbox_bench              # everything
//! cargo run --example sandbox_bench -- scale     # only the cost table (sizes may follow)
//! cargo run --example sandbox_bench -- scale --without-parking   # also the cost without idle parking
//! ```
//!
//! Every makespan and queue time it prints is a model (see `glrunner::sandbox::model`); only the
//! wall times are measurements, of the simulator itself.

use glrunner::cli::Backend;
use glrunner::sandbox::bench::{
    ScaleRun, beyond_four_hundred, modelled_run, scale_run, sensitivity,
};
use glrunner::sandbox::{FleetModel, RunnerProfile};

fn secs(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |s| format!("{s:.0}s"))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let compare = args.iter().any(|a| a == "--without-parking");
    let only_scale = args.first().map(String::as_str) == Some("scale");
    let sizes: Vec<u32> = args.iter().skip(1).filter_map(|a| a.parse().ok()).collect();
    let sizes = if sizes.is_empty() {
        vec![1_000, 10_000, 50_000]
    } else {
        sizes
    };
    let runtime = glrunner::cli::runtime(Backend::Sandbox).expect("tokio runtime");
    runtime.block_on(async {
        if !only_scale {
            println!("MODELLED makespans (sandbox model, virtual clock; not measurements)");
            println!(
                "  {:>5}  {:<9} {:>9} {:>10} {:>10} {:>7} {:<13} {:>10}",
                "jobs", "profile", "makespan", "queue p50", "queue p95", "failed", "limited by", "published"
            );
            for jobs in [200, 400, 1000] {
                let mut pair = Vec::new();
                for profile in [RunnerProfile::Reference, RunnerProfile::Tuned] {
                    let r = modelled_run(jobs, profile, FleetModel::default()).await;
                    println!(
                        "  {:>5}  {:<9} {:>9} {:>10} {:>10} {:>7} {:<13} {:>10}",
                        jobs,
                        profile.as_str(),
                        secs(r.makespan_secs),
                        secs(r.queue_p50_secs),
                        secs(r.queue_p95_secs),
                        r.failed_jobs,
                        r.limit.map_or("-", |l| l.as_str()),
                        secs(r.published_secs),
                    );
                    pair.push(r.makespan_secs);
                }
                if let [Some(reference), Some(tuned)] = pair[..] {
                    println!(
                        "  {:>5}  tuned / reference makespan: {:.2} ({:+.0}s)",
                        jobs,
                        tuned / reference,
                        tuned - reference
                    );
                }
            }
            println!("  published: 200 jobs just under 2 min, 400 jobs (two releases) just over 3 min, beyond 400 hung");

            let beyond = beyond_four_hundred().await;
            println!("\nBEYOND 400 (the tutorial's five releases of concurrent 300, reference profile, modelled)");
            println!(
                "  makespan {}, {} of {} jobs failed, limited by {}; quota not binding: {} failed",
                secs(beyond.run.makespan_secs),
                beyond.run.failed_jobs,
                beyond.jobs,
                beyond.run.limit.map_or("-", |l| l.as_str()),
                beyond.quota_not_binding.failed_jobs
            );
            println!("  {}", beyond.finding());

            let (baseline, rows) = sensitivity(400, RunnerProfile::Reference).await;
            println!(
                "\nSENSITIVITY of the modelled 400-job reference makespan (baseline {}) to each parameter at 0.5x / 1.5x",
                secs(baseline)
            );
            for (i, row) in rows.iter().enumerate() {
                println!(
                    "  {:<28} {:>7} {:>7}   swing {:>4.0}s{}",
                    row.parameter,
                    secs(row.at_half),
                    secs(row.at_one_and_a_half),
                    row.swing_secs,
                    if i == 0 { "   <- moves it most" } else { "" }
                );
            }
        }
        println!("\nCOST of the simulator (measured, debug or release as built; quota not binding)");
        let variants: &[(bool, &str)] = if compare {
            &[(true, "idle managers parked"), (false, "without idle parking")]
        } else {
            &[(true, "idle managers parked")]
        };
        for &(parking, label) in variants {
            println!("  {label}:");
            let mut runs: Vec<ScaleRun> = Vec::new();
            for &jobs in &sizes {
                let run = scale_run(jobs, parking).await;
                println!(
                    "  {:>6} jobs: {:>7.2}s wall, {:>7} CPU, {:>7.1} ms CPU per 1,000 jobs, {:.2} empty request tasks per job{}",
                    jobs,
                    run.wall_secs,
                    run.cpu_secs.map_or_else(|| "-".to_owned(), |c| format!("{c:.2}s")),
                    run.ms_per_1000_jobs(),
                    run.stats.empty_request_tasks as f64 / f64::from(jobs.max(1)),
                    if run.failed_jobs > 0 { format!(" ({} failed)", run.failed_jobs) } else { String::new() }
                );
                runs.push(run);
            }
            if let (Some(first), Some(last)) = (runs.first(), runs.last())
                && runs.len() > 1
            {
                println!(
                    "  cost per 1,000 jobs at {} / at {}: {:.2} (1.00 = linear)",
                    last.jobs,
                    first.jobs,
                    last.ms_per_1000_jobs() / first.ms_per_1000_jobs()
                );
            }
        }
    });
}
