//! Load-test `.gitlab-ci.yml` generation (≤200 per `parallel`, one tag per shard) and expansion.
//!
//! A [`LoadTestSpec`] lists shard tags with the number of jobs each shard's runner should
//! take (the fleet plan lives elsewhere; callers pass it in). [`LoadTestSpec::to_yaml`]
//! renders one pipeline: every shard gets one or more CI jobs tagged with only that shard's
//! tag, each `parallel` at most 200, all in one stage with `needs: []` so they queue at once.
//! [`expand`] turns a CI file back into the concrete jobs GitLab would create (`name i/N`),
//! which the in-memory backend uses to create pipelines and tests use to check the output.

use serde_norway::{Mapping, Value};

use crate::error::{Error, Result};

/// GitLab's upper bound for `parallel: N`.
pub const MAX_PARALLEL: u32 = 200;
/// Default image: Docker Hub's bash through the public ECR mirror (no Docker Hub pull limit).
pub const DEFAULT_IMAGE: &str = "public.ecr.aws/docker/library/bash";
/// Default upper bound for the number of jobs of one load test.
pub const DEFAULT_MAX_JOBS: u32 = 10_000;
/// The stage every load-test job runs in.
pub const STAGE: &str = "loadtest";

/// Jobs routed to one shard: the runner(s) registered with `tag` take them.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ShardTarget {
    /// The runner tag of the shard.
    pub tag: String,
    /// How many jobs this shard runs.
    pub jobs: u32,
}

impl ShardTarget {
    /// `jobs` jobs for the runner tagged `tag`.
    pub fn new(tag: impl Into<String>, jobs: u32) -> Self {
        Self {
            tag: tag.into(),
            jobs,
        }
    }
}

/// Splits `total` jobs over `tags` as evenly as possible (earlier tags get the remainder).
pub fn split_evenly(total: u32, tags: &[String]) -> Vec<ShardTarget> {
    if tags.is_empty() {
        return Vec::new();
    }
    let n = tags.len() as u32;
    tags.iter()
        .enumerate()
        .map(|(i, tag)| {
            ShardTarget::new(tag.clone(), total / n + u32::from((i as u32) < total % n))
        })
        .collect()
}

/// What to generate: shards, image(s), script.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoadTestSpec {
    /// Shards: tag and job count each. The total is the number of jobs.
    pub shards: Vec<ShardTarget>,
    /// Image of every job unless `images` is set.
    pub image: String,
    /// Optional image list: CI jobs cycle through it, to show each job's `image:` is honoured.
    pub images: Vec<String>,
    /// Script lines of every job.
    pub script: Vec<String>,
    /// Job-name prefix (`<prefix>-<tag>` / `<prefix>-<tag>-<k>`).
    pub job_prefix: String,
    /// Refuse more jobs than this.
    pub max_jobs: u32,
}

impl LoadTestSpec {
    /// A spec with explicit shards and the default image and script.
    pub fn new(shards: Vec<ShardTarget>) -> Self {
        Self {
            shards,
            image: DEFAULT_IMAGE.into(),
            images: Vec::new(),
            script: vec![
                "echo \"hello from $CI_JOB_NAME (node $CI_NODE_INDEX/$CI_NODE_TOTAL) on $CI_RUNNER_DESCRIPTION\"".into(),
                "head -n 1 /etc/os-release || true".into(),
            ],
            job_prefix: "loadtest".into(),
            max_jobs: DEFAULT_MAX_JOBS,
        }
    }

    /// `jobs` jobs spread evenly over `tags`.
    pub fn even(jobs: u32, tags: &[String]) -> Self {
        Self::new(split_evenly(jobs, tags))
    }

    /// Sets the image.
    #[must_use]
    pub fn with_image(mut self, image: impl Into<String>) -> Self {
        self.image = image.into();
        self
    }

    /// Sets the image list CI jobs cycle through.
    #[must_use]
    pub fn with_images(mut self, images: Vec<String>) -> Self {
        self.images = images;
        self
    }

    /// Sets the script.
    #[must_use]
    pub fn with_script(mut self, script: Vec<String>) -> Self {
        self.script = script;
        self
    }

    /// Sets the maximum number of jobs.
    #[must_use]
    pub fn with_max_jobs(mut self, max_jobs: u32) -> Self {
        self.max_jobs = max_jobs;
        self
    }

    /// Total jobs over all shards.
    pub fn total_jobs(&self) -> u64 {
        self.shards.iter().map(|s| u64::from(s.jobs)).sum()
    }

    /// Checks the spec: 1..=max_jobs jobs, at least one shard, valid unique tags, non-empty
    /// image(s) and script.
    pub fn validate(&self) -> Result<()> {
        let invalid = |what: &str, msg: String| {
            Err(Error::invalid("generate", format!("load-test {what}"), msg))
        };
        let total = self.total_jobs();
        if total == 0 {
            return invalid("job count", "the load test needs at least 1 job".into());
        }
        if total > u64::from(self.max_jobs) {
            return invalid(
                "job count",
                format!("{total} jobs is above the maximum of {}", self.max_jobs),
            );
        }
        let mut seen = std::collections::BTreeSet::new();
        for shard in &self.shards {
            validate_tag(&shard.tag)?;
            if !seen.insert(shard.tag.as_str()) {
                return invalid("shards", format!("tag {:?} is listed twice", shard.tag));
            }
        }
        for image in std::iter::once(&self.image).chain(&self.images) {
            if image.trim().is_empty() || image.chars().any(char::is_whitespace) {
                return invalid("image", format!("{image:?} is not an image reference"));
            }
        }
        if self.script.iter().all(|l| l.trim().is_empty()) {
            return invalid("script", "the script is empty".into());
        }
        Ok(())
    }

    /// The CI jobs to render, in order.
    pub fn plan(&self) -> Result<Vec<CiJob>> {
        self.validate()?;
        let mut out = Vec::new();
        for shard in self.shards.iter().filter(|s| s.jobs > 0) {
            let mut entries = shard.jobs.div_ceil(MAX_PARALLEL);
            if !self.images.is_empty() {
                entries = entries.max((self.images.len() as u32).min(shard.jobs));
            }
            for k in 0..entries {
                let count = shard.jobs / entries + u32::from(k < shard.jobs % entries);
                let name = if entries == 1 {
                    format!("{}-{}", self.job_prefix, shard.tag)
                } else {
                    format!("{}-{}-{}", self.job_prefix, shard.tag, k + 1)
                };
                let image = if self.images.is_empty() {
                    self.image.clone()
                } else {
                    self.images[out.len() % self.images.len()].clone()
                };
                out.push(CiJob {
                    name,
                    tag: shard.tag.clone(),
                    parallel: count,
                    image,
                });
            }
        }
        Ok(out)
    }

    /// Renders the `.gitlab-ci.yml`.
    pub fn to_yaml(&self) -> Result<String> {
        let plan = self.plan()?;
        let mut root = Mapping::new();
        root.insert("stages".into(), Value::Sequence(vec![STAGE.into()]));
        let mut vars = Mapping::new();
        // Hello-world jobs need no checkout: skip the clone, which is most of a tiny job's time.
        vars.insert("GIT_STRATEGY".into(), "none".into());
        root.insert("variables".into(), Value::Mapping(vars));
        let script: Vec<Value> = self
            .script
            .iter()
            .map(|l| Value::from(l.as_str()))
            .collect();
        for job in &plan {
            let mut m = Mapping::new();
            m.insert("stage".into(), STAGE.into());
            m.insert("image".into(), job.image.as_str().into());
            m.insert(
                "tags".into(),
                Value::Sequence(vec![job.tag.as_str().into()]),
            );
            if job.parallel > 1 {
                m.insert("parallel".into(), Value::from(u64::from(job.parallel)));
            }
            m.insert("needs".into(), Value::Sequence(Vec::new()));
            m.insert("interruptible".into(), true.into());
            m.insert("script".into(), Value::Sequence(script.clone()));
            root.insert(job.name.as_str().into(), Value::Mapping(m));
        }
        let body = serde_norway::to_string(&Value::Mapping(root))
            .map_err(|e| Error::backend("render", ".gitlab-ci.yml", e.to_string()))?;
        Ok(format!(
            "# Generated by glrunner: {} jobs over {} shard(s), parallel <= {MAX_PARALLEL} per job.\n{body}",
            self.total_jobs(),
            self.shards.iter().filter(|s| s.jobs > 0).count()
        ))
    }
}

/// One rendered CI job entry (expands to `parallel` concrete jobs).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CiJob {
    /// Job name.
    pub name: String,
    /// The shard tag it is routed to.
    pub tag: String,
    /// `parallel` value (1 renders without `parallel`).
    pub parallel: u32,
    /// Image.
    pub image: String,
}

fn validate_tag(tag: &str) -> Result<()> {
    if tag.is_empty()
        || tag.len() > 255
        || tag.contains(',')
        || tag.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(Error::invalid(
            "generate",
            "load-test shard tag",
            format!("{tag:?} is not a valid runner tag (1-255 characters, no spaces or commas)"),
        ));
    }
    Ok(())
}

/// A concrete job GitLab would create from a CI file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpandedJob {
    /// Name (`job` or `job i/N` for parallel jobs).
    pub name: String,
    /// Stage.
    pub stage: String,
    /// Required tags.
    pub tags: Vec<String>,
    /// Image, if any.
    pub image: Option<String>,
}

const RESERVED: &[&str] = &[
    "stages",
    "variables",
    "default",
    "include",
    "workflow",
    "image",
    "services",
    "cache",
    "before_script",
    "after_script",
];

/// Expands a CI file into concrete jobs, as GitLab does for the subset load tests use:
/// top-level jobs (hidden `.jobs` skipped), `parallel: N` (1..=200) as `name i/N`, `tags`,
/// `image` (string or `{name:}`), `stage` (default `test`). Rejects `parallel: matrix`.
pub fn expand(yaml: &str) -> Result<Vec<ExpandedJob>> {
    let bad = |msg: String| Error::invalid("expand", ".gitlab-ci.yml", msg);
    let root: Value =
        serde_norway::from_str(yaml).map_err(|e| bad(format!("not valid YAML: {e}")))?;
    let root = root
        .as_mapping()
        .ok_or_else(|| bad("the top level is not a mapping".into()))?;
    let image_of = |v: Option<&Value>| -> Option<String> {
        match v? {
            Value::String(s) => Some(s.clone()),
            Value::Mapping(m) => m.get("name").and_then(Value::as_str).map(str::to_owned),
            _ => None,
        }
    };
    let default_image = image_of(root.get("image"))
        .or_else(|| image_of(root.get("default").and_then(|d| d.get("image"))));
    let mut jobs = Vec::new();
    for (key, value) in root {
        let Some(name) = key.as_str() else {
            return Err(bad(format!("job key {key:?} is not a string")));
        };
        if name.starts_with('.') || RESERVED.contains(&name) {
            continue;
        }
        let job = value
            .as_mapping()
            .ok_or_else(|| bad(format!("job {name:?} is not a mapping")))?;
        if !job.contains_key("script") && !job.contains_key("trigger") {
            return Err(bad(format!("job {name:?} has no script")));
        }
        let parallel = match job.get("parallel") {
            None => 1,
            Some(Value::Number(n)) => match n.as_u64() {
                Some(p) if (1..=u64::from(MAX_PARALLEL)).contains(&p) => p,
                _ => {
                    return Err(bad(format!(
                        "job {name:?}: parallel must be between 1 and {MAX_PARALLEL}, got {n}"
                    )));
                }
            },
            Some(_) => {
                return Err(bad(format!(
                    "job {name:?}: only a numeric parallel is supported"
                )));
            }
        };
        let tags = match job.get("tags") {
            None => Vec::new(),
            Some(Value::Sequence(s)) => s
                .iter()
                .map(|t| {
                    t.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| bad(format!("job {name:?}: tags must be strings")))
                })
                .collect::<Result<_>>()?,
            Some(_) => return Err(bad(format!("job {name:?}: tags must be a list"))),
        };
        let stage = job
            .get("stage")
            .and_then(Value::as_str)
            .unwrap_or("test")
            .to_owned();
        let image = image_of(job.get("image")).or_else(|| default_image.clone());
        for i in 1..=parallel {
            let job_name = if parallel == 1 && !job.contains_key("parallel") {
                name.to_owned()
            } else {
                format!("{name} {i}/{parallel}")
            };
            jobs.push(ExpandedJob {
                name: job_name,
                stage: stage.clone(),
                tags: tags.clone(),
                image: image.clone(),
            });
        }
    }
    Ok(jobs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_evenly_keeps_the_total() {
        let tags: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let s = split_evenly(401, &tags);
        assert_eq!(
            s.iter().map(|s| s.jobs).collect::<Vec<_>>(),
            vec![134, 134, 133]
        );
    }

    #[test]
    fn images_cycle_over_entries() {
        let spec = LoadTestSpec::new(vec![ShardTarget::new("a", 3)]).with_images(vec![
            "alpine:3".into(),
            "busybox:1".into(),
            "bash:5".into(),
        ]);
        let plan = spec.plan().unwrap();
        assert_eq!(plan.len(), 3);
        let images: Vec<_> = expand(&spec.to_yaml().unwrap())
            .unwrap()
            .into_iter()
            .map(|j| j.image.unwrap())
            .collect();
        assert_eq!(images, vec!["alpine:3", "busybox:1", "bash:5"]);
    }

    #[test]
    fn rejects_zero_and_too_many() {
        assert!(LoadTestSpec::even(0, &["a".into()]).validate().is_err());
        assert!(
            LoadTestSpec::even(11, &["a".into()])
                .with_max_jobs(10)
                .validate()
                .is_err()
        );
        assert!(
            LoadTestSpec::new(vec![ShardTarget::new("a b", 1)])
                .validate()
                .is_err()
        );
    }
}
