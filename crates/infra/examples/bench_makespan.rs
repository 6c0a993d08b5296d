//! Benchmark (prints its numbers): provisioning makespan of glrunner's plan against a staged,
//! sequential plan modelled on the reference workflow, both on the in-memory cloud with the
//! published durations (virtual clock, so the figures are exact and the run takes milliseconds).
//!
//! Baseline: every step waits for the previous one (Terraform's staged `-target` applies:
//! VPC, then the cluster, then one Fargate profile per namespace, then add-ons).
//!
//! Run: `cargo run -p glrunner-infra --example bench_makespan`

use std::collections::HashMap;
use std::time::Instant;

use glrunner_infra::memory::InMemoryCloud;
use glrunner_infra::plan::StepAction;
use glrunner_infra::{ApplyReport, Engine, Plan, StackName, StackSpec, Step};

fn staged_baseline(plan: &Plan) -> Plan {
    let mut steps: Vec<Step> = Vec::new();
    for step in &plan.steps {
        let mut expanded = vec![step.clone()];
        // The reference created one Fargate profile per namespace.
        if let StepAction::FargateProfile {
            cluster,
            name,
            role,
            subnets,
            selectors,
        } = &step.action
        {
            expanded = selectors
                .iter()
                .map(|selector| {
                    let mut one = step.clone();
                    one.key = format!("fargate-profile/{}", selector.namespace);
                    one.description = format!("create Fargate profile for {}", selector.namespace);
                    one.action = StepAction::FargateProfile {
                        cluster: cluster.clone(),
                        name: format!("{name}-{}", selector.namespace),
                        role: role.clone(),
                        subnets: subnets.clone(),
                        selectors: vec![selector.clone()],
                    };
                    one
                })
                .collect();
        }
        for mut one in expanded {
            // Everything strictly after the previous step, which keeps the original deps satisfied.
            one.depends_on = steps
                .last()
                .map(|prev| vec![prev.key.clone()])
                .unwrap_or_default();
            steps.push(one);
        }
    }
    // Steps that referenced the single profile now follow the last per-namespace profile anyway.
    Plan {
        steps,
        ..plan.clone()
    }
}

fn critical_path(plan: &Plan, report: &ApplyReport) -> Vec<(String, f64)> {
    let timing: HashMap<&str, (f64, f64)> = report
        .steps
        .iter()
        .map(|s| (s.key.as_str(), (s.started_s, s.finished_s)))
        .collect();
    let mut key = report
        .steps
        .iter()
        .max_by(|a, b| a.finished_s.total_cmp(&b.finished_s))
        .map(|s| s.key.clone());
    let mut path = Vec::new();
    while let Some(k) = key {
        let (start, end) = timing[k.as_str()];
        path.push((k.clone(), end - start));
        key = plan.step(&k).and_then(|step| {
            step.depends_on
                .iter()
                .max_by(|a, b| timing[a.as_str()].1.total_cmp(&timing[b.as_str()].1))
                .cloned()
        });
    }
    path.reverse();
    path
}

async fn measure(plan: &Plan) -> ApplyReport {
    let cloud = InMemoryCloud::default();
    Engine::new(&cloud, &cloud)
        .apply(plan)
        .await
        .expect("apply on the in-memory cloud")
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime");
    let wall = Instant::now();
    runtime.block_on(async {
        let spec = StackSpec::new(StackName::new("bench").expect("valid"), "us-east-1");
        let cloud = InMemoryCloud::default();
        let ours = glrunner_infra::plan_stack(&spec, &cloud)
            .await
            .expect("plan");
        let baseline = staged_baseline(&ours);
        let ours_report = measure(&ours).await;
        let baseline_report = measure(&baseline).await;
        let minutes = |s: f64| s / 60.0;
        println!(
            "MODELLED provisioning makespan on the in-memory cloud (published AWS durations, virtual clock; not a measurement)"
        );
        println!(
            "  glrunner plan ({} steps, {} waves): {:6.1} min",
            ours.steps.len(),
            ours.waves().len(),
            minutes(ours_report.makespan_s)
        );
        println!(
            "  staged sequential baseline ({} steps):  {:6.1} min",
            baseline.steps.len(),
            minutes(baseline_report.makespan_s)
        );
        println!(
            "  ratio baseline / glrunner (modelled): {:.2}x",
            baseline_report.makespan_s / ours_report.makespan_s
        );
        println!("  critical path of the glrunner plan:");
        for (key, secs) in critical_path(&ours, &ours_report) {
            println!("    {key:<28} {:6.1} min", minutes(secs));
        }
    });
    println!(
        "  (wall time of this benchmark: {:.0} ms)",
        wall.elapsed().as_secs_f64() * 1000.0
    );
}
