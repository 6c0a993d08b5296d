//! Property tests of `FleetPlan` up to 10,000 jobs: every job routed to exactly one shard, no
//! shard above its `concurrent` or the cap, the sum is N, no CI job's `parallel` above 200.

use std::collections::HashSet;

use glrunner_runner_chart::fleet::MAX_PARALLEL;
use glrunner_runner_chart::{FleetPlan, FleetRequest, RunnerValues};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_job_is_routed_to_exactly_one_shard(jobs in 1u32..=10_000, cap in 1u32..=1_000, probes in proptest::collection::vec(any::<u32>(), 16)) {
        let plan = FleetPlan::new(&FleetRequest::new(jobs).with_max_per_release(cap)).unwrap();
        prop_assert_eq!(plan.total_jobs, jobs);
        prop_assert_eq!(plan.shards.len() as u32, jobs.div_ceil(cap), "fewest releases");
        // Contiguous, in order, starting at 0 and ending at N: each job is in exactly one range.
        let mut next = 0;
        for (i, shard) in plan.shards.iter().enumerate() {
            prop_assert_eq!(shard.index, i as u32 + 1);
            prop_assert_eq!(shard.first_job, next);
            prop_assert!(shard.jobs >= 1);
            next += shard.jobs;
        }
        prop_assert_eq!(next, jobs, "the sum is N");
        // Spot checks of the lookup against a brute-force count.
        for p in probes {
            let job = p % jobs;
            let owners = plan.shards.iter().filter(|s| s.contains(job)).count();
            prop_assert_eq!(owners, 1);
            prop_assert!(plan.shard_for_job(job).unwrap().contains(job));
        }
        prop_assert!(plan.shard_for_job(jobs).is_none());
    }

    #[test]
    fn no_shard_exceeds_its_concurrent_its_cap_or_200_per_parallel_job(jobs in 1u32..=10_000, cap in 1u32..=2_000) {
        let plan = FleetPlan::new(&FleetRequest::new(jobs).with_max_per_release(cap)).unwrap();
        let mut tags = HashSet::new();
        let mut releases = HashSet::new();
        for shard in &plan.shards {
            prop_assert!(shard.jobs <= shard.concurrent);
            prop_assert!(shard.concurrent <= cap);
            prop_assert!(!shard.parallel.is_empty());
            prop_assert!(shard.parallel.iter().all(|p| (1..=MAX_PARALLEL).contains(p)), "{:?}", shard.parallel);
            prop_assert_eq!(shard.parallel.iter().sum::<u32>(), shard.jobs);
            prop_assert!(tags.insert(shard.tag.clone()), "duplicate tag");
            prop_assert!(releases.insert(shard.release.clone()), "duplicate release");
        }
        // Balanced: batches differ by at most one job.
        let (min, max) = (plan.shards.iter().map(|s| s.jobs).min().unwrap(), plan.largest_batch());
        prop_assert!(max - min <= 1);
        prop_assert_eq!(plan.routes().iter().map(|(_, n)| n).sum::<u32>(), jobs);
    }

    #[test]
    fn per_shard_values_pass_their_own_validation(jobs in 1u32..=2_000) {
        let plan = FleetPlan::new(&FleetRequest::new(jobs)).unwrap();
        let values = plan.release_values(&RunnerValues::new("https://gitlab.example.com/")).unwrap();
        for (shard, v) in values {
            prop_assert!(v.validate_for(shard.jobs, glrunner_runner_chart::fleet::DEFAULT_EXPECTED_POD_START).is_ok());
            prop_assert_eq!(v.runner_tags, vec![shard.tag]);
        }
    }
}

#[test]
fn ten_thousand_jobs() {
    let plan = FleetPlan::new(&FleetRequest::new(10_000)).unwrap();
    assert_eq!(plan.shards.len(), 50);
    assert!(
        plan.shards
            .iter()
            .all(|s| s.jobs == 200 && s.parallel == [200])
    );
    assert_eq!(plan.shards.last().unwrap().release, "gitlab-runner-50");
}
