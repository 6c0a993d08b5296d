//! Generated `.gitlab-ci.yml`: exact job counts, `parallel` ≤ 200, one shard tag per job.

use std::collections::BTreeMap;

use glrunner_gitlab_client::ci::{self, LoadTestSpec, ShardTarget, split_evenly};
use proptest::prelude::*;
use serde_norway::Value;

fn tags(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("glrunner-shard-{i}")).collect()
}

/// Expands the YAML independently of `ci::expand`: per tag, how many jobs GitLab would create.
fn jobs_per_tag(yaml: &str, allowed: &[String]) -> BTreeMap<String, u64> {
    let root: Value = serde_norway::from_str(yaml).expect("generated YAML parses");
    let mut out = BTreeMap::new();
    for (key, job) in root.as_mapping().expect("mapping") {
        let key = key.as_str().unwrap();
        if key == "stages" || key == "variables" {
            continue;
        }
        if key == "workflow" {
            assert_eq!(
                job["rules"][0]["if"].as_str(),
                Some("$CI_PIPELINE_SOURCE == \"api\""),
                "only API pipelines run the file"
            );
            continue;
        }
        let parallel = match job.get("parallel") {
            None => 1,
            Some(v) => v.as_u64().expect("numeric parallel"),
        };
        assert!(
            (1..=200).contains(&parallel),
            "{key}: parallel {parallel} out of 1..=200"
        );
        let job_tags = job
            .get("tags")
            .and_then(Value::as_sequence)
            .expect("tags list");
        assert_eq!(
            job_tags.len(),
            1,
            "{key} is routed to exactly one shard tag"
        );
        let tag = job_tags[0].as_str().unwrap().to_owned();
        assert!(allowed.contains(&tag), "{key} uses unknown tag {tag}");
        assert_eq!(
            job.get("image").and_then(Value::as_str),
            Some(ci::DEFAULT_IMAGE)
        );
        assert!(
            job.get("script")
                .and_then(Value::as_sequence)
                .is_some_and(|s| !s.is_empty())
        );
        *out.entry(tag).or_insert(0) += parallel;
    }
    out
}

fn check(n: u32, shards: usize) {
    let tags = tags(shards);
    let spec = LoadTestSpec::even(n, &tags);
    let yaml = spec.to_yaml().unwrap();
    let per_tag = jobs_per_tag(&yaml, &tags);
    assert_eq!(
        per_tag.values().sum::<u64>(),
        u64::from(n),
        "{n} jobs over {shards} shards:\n{yaml}"
    );
    for shard in split_evenly(n, &tags).iter().filter(|s| s.jobs > 0) {
        assert_eq!(
            per_tag[&shard.tag],
            u64::from(shard.jobs),
            "jobs routed to {}",
            shard.tag
        );
    }
    let expanded = ci::expand(&yaml).unwrap();
    assert_eq!(expanded.len(), n as usize);
    let mut names: Vec<_> = expanded.iter().map(|j| j.name.clone()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), n as usize, "job names are unique");
}

#[test]
fn the_documented_sizes_expand_to_exactly_n_jobs() {
    for n in [1, 200, 201, 400, 1000] {
        for shards in [1, 2, 3, 5] {
            check(n, shards);
        }
    }
}

#[test]
fn one_job_has_no_parallel_and_201_splits() {
    let one = LoadTestSpec::even(1, &tags(1)).to_yaml().unwrap();
    let root: Value = serde_norway::from_str(&one).unwrap();
    assert!(
        root.get("loadtest-glrunner-shard-1")
            .is_some_and(|j| j.get("parallel").is_none()),
        "{one}"
    );
    let plan = LoadTestSpec::even(201, &tags(1)).plan().unwrap();
    assert_eq!(
        plan.iter().map(|j| j.parallel).collect::<Vec<_>>(),
        vec![101, 100]
    );
    let plan = LoadTestSpec::even(400, &tags(2)).plan().unwrap();
    assert_eq!(
        plan.iter()
            .map(|j| (j.tag.as_str(), j.parallel))
            .collect::<Vec<_>>(),
        vec![("glrunner-shard-1", 200), ("glrunner-shard-2", 200)]
    );
}

#[test]
fn explicit_uneven_shards_are_honoured() {
    let spec = LoadTestSpec::new(vec![
        ShardTarget::new("big", 450),
        ShardTarget::new("small", 20),
    ]);
    let per_tag = jobs_per_tag(&spec.to_yaml().unwrap(), &["big".into(), "small".into()]);
    assert_eq!(
        per_tag,
        BTreeMap::from([("big".into(), 450), ("small".into(), 20)])
    );
}

#[test]
fn invalid_specs_are_rejected() {
    let err = LoadTestSpec::even(0, &tags(2)).to_yaml().unwrap_err();
    assert!(err.to_string().contains("at least 1 job"), "{err}");
    let err = LoadTestSpec::even(20_001, &tags(2)).to_yaml().unwrap_err();
    assert!(err.to_string().contains("maximum"), "{err}");
    assert!(
        LoadTestSpec::new(vec![ShardTarget::new("a", 1), ShardTarget::new("a", 1)])
            .validate()
            .is_err()
    );
    assert!(LoadTestSpec::even(5, &[]).validate().is_err());
    assert!(ci::expand("job:\n  parallel: 201\n  script: [x]\n").is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn any_size_and_shard_count_expands_exactly(n in 1u32..=2500, shards in 1usize..=8) {
        check(n, shards);
    }
}
