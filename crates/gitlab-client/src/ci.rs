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
/// The `workflow: rules` condition of generated files: only API-triggered pipelines run.
pub const API_ONLY_RULE: &str = "$CI_PIPELINE_SOURCE == \"api\"";
/// What a commit message needs so that GitLab starts no push pipeline for it.
pub const SKIP_CI: &str = "[skip ci]";

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
    /// Render the jobs without `tags:`: only runners created with `run_untagged` take them
    /// (GitLab's `accepting_tags?`, app/models/ci/runner.rb). The shards' tags then only name
    /// the CI jobs; the reference tutorial's file was written so.
    pub untagged: bool,
    /// Every job restores and saves a cache of this many MB, one key per shard
    /// (`--cache-workload`); `None`: no `cache:`.
    pub cache_megabytes: Option<u32>,
}

/// The image matrix's default: three distros from ECR Public's mirror of Docker's official
/// images (tags from the images' pages on gallery.ecr.aws/docker/library/…), so that an image
/// swapped for another shows in the job's `/etc/os-release`.
pub const DEFAULT_IMAGE_MATRIX: &[&str] = &[
    "public.ecr.aws/docker/library/alpine:3.20",
    "public.ecr.aws/docker/library/debian:bookworm-slim",
    "public.ecr.aws/docker/library/ubuntu:24.04",
];

/// The directory the cache workload writes and caches, relative to `$CI_PROJECT_DIR`
/// (`cache:paths` must be inside the project directory: GitLab CI/CD YAML reference, `cache:paths`).
pub const CACHE_DIR: &str = "glrunner-cache";

/// The cache key of a shard's jobs: one per shard, so that the shard's jobs share it.
pub fn cache_key(tag: &str) -> String {
    format!("glrunner-{tag}")
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
            untagged: false,
            cache_megabytes: None,
        }
    }

    /// Makes every job restore and save a cache of `megabytes` MB (one key per shard).
    #[must_use]
    pub fn with_cache_workload(mut self, megabytes: Option<u32>) -> Self {
        self.cache_megabytes = megabytes;
        self
    }

    /// Whether the jobs print their `/etc/os-release` for the image proof: with an image
    /// matrix ([`LoadTestSpec::images`]).
    pub fn proves_images(&self) -> bool {
        !self.images.is_empty()
    }

    /// The script lines every job runs: the os-release print first with an image matrix, then
    /// the spec's script, then the cache workload's file.
    pub fn job_script(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if self.proves_images() {
            lines.extend(crate::trace::os_release_script());
        }
        lines.extend(self.script.iter().cloned());
        if let Some(mb) = self.cache_megabytes {
            // `head -c` is in busybox and coreutils alike; an existing file (a cache hit) is kept,
            // so a hit shows as an unchanged file and a miss writes a new one.
            lines.push(format!(
                "mkdir -p {CACHE_DIR} && (test -s {CACHE_DIR}/blob || head -c {} /dev/urandom > {CACHE_DIR}/blob) && ls -l {CACHE_DIR}",
                u64::from(mb) * 1024 * 1024
            ));
        }
        lines
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

    /// Renders the jobs without `tags:` (see [`LoadTestSpec::untagged`]).
    #[must_use]
    pub fn untagged(mut self, yes: bool) -> Self {
        self.untagged = yes;
        self
    }

    /// Sets the maximum number of jobs.
    #[must_use]
    pub fn with_max_jobs(mut self, max_jobs: u32) -> Self {
        self.max_jobs = max_jobs;
        self
    }

    /// Splits the load test into pipelines of at most `max_per_pipeline` jobs each (GitLab's
    /// jobs-per-pipeline limit), filling them in shard order and splitting a shard across
    /// pipelines where needed. One part keeps the spec as it is; with several, part `k`'s
    /// job names start with `<prefix>-p<k>` so the jobs of all parts stay distinguishable.
    pub fn split_into_pipelines(&self, max_per_pipeline: u32) -> Result<Vec<LoadTestSpec>> {
        if max_per_pipeline == 0 {
            return Err(Error::invalid(
                "split",
                "load test",
                "the jobs-per-pipeline limit must be at least 1",
            ));
        }
        if self.total_jobs() <= u64::from(max_per_pipeline) {
            return Ok(vec![self.clone()]);
        }
        let mut parts: Vec<Vec<ShardTarget>> = vec![Vec::new()];
        let mut room = max_per_pipeline;
        for shard in self.shards.iter().filter(|s| s.jobs > 0) {
            let mut left = shard.jobs;
            while left > 0 {
                if room == 0 {
                    parts.push(Vec::new());
                    room = max_per_pipeline;
                }
                let take = left.min(room);
                parts
                    .last_mut()
                    .expect("parts starts non-empty")
                    .push(ShardTarget::new(shard.tag.clone(), take));
                left -= take;
                room -= take;
            }
        }
        Ok(parts
            .into_iter()
            .enumerate()
            .map(|(k, shards)| LoadTestSpec {
                shards,
                job_prefix: format!("{}-p{}", self.job_prefix, k + 1),
                ..self.clone()
            })
            .collect())
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
            if let Err(e) = crate::trace::ImageRef::parse(image) {
                return invalid(
                    "image",
                    format!(
                        "{e}; write REGISTRY/REPOSITORY:TAG, e.g. {}",
                        DEFAULT_IMAGE_MATRIX[0]
                    ),
                );
            }
        }
        let mut images = std::collections::BTreeSet::new();
        for image in &self.images {
            if !images.insert(image.as_str()) {
                return invalid("images", format!("{image:?} is listed twice"));
            }
        }
        if self.cache_megabytes == Some(0) || self.cache_megabytes.is_some_and(|mb| mb > 1024) {
            return invalid(
                "cache workload",
                "the cache size must be between 1 and 1024 MB".into(),
            );
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
        // Only `POST /pipeline` runs this file: the commit that writes it (and any later push,
        // schedule or web run) must not start a second pipeline of all N jobs.
        let mut rule = Mapping::new();
        rule.insert("if".into(), API_ONLY_RULE.into());
        let mut workflow = Mapping::new();
        workflow.insert("rules".into(), Value::Sequence(vec![Value::Mapping(rule)]));
        root.insert("workflow".into(), Value::Mapping(workflow));
        root.insert("stages".into(), Value::Sequence(vec![STAGE.into()]));
        let mut vars = Mapping::new();
        // Hello-world jobs need no checkout: skip the clone, which is most of a tiny job's time.
        vars.insert("GIT_STRATEGY".into(), "none".into());
        root.insert("variables".into(), Value::Mapping(vars));
        let script: Vec<Value> = self
            .job_script()
            .iter()
            .map(|l| Value::from(l.as_str()))
            .collect();
        for job in &plan {
            let mut m = Mapping::new();
            m.insert("stage".into(), STAGE.into());
            m.insert("image".into(), job.image.as_str().into());
            if !self.untagged {
                m.insert(
                    "tags".into(),
                    Value::Sequence(vec![job.tag.as_str().into()]),
                );
            }
            if job.parallel > 1 {
                m.insert("parallel".into(), Value::from(u64::from(job.parallel)));
            }
            m.insert("needs".into(), Value::Sequence(Vec::new()));
            if self.cache_megabytes.is_some() {
                // GitLab CI/CD YAML reference, `cache`: `key`, `paths`, `policy` (pull-push:
                // restore before the script, save after it).
                let mut cache = Mapping::new();
                cache.insert("key".into(), cache_key(&job.tag).into());
                cache.insert(
                    "paths".into(),
                    Value::Sequence(vec![format!("{CACHE_DIR}/").into()]),
                );
                cache.insert("policy".into(), CachePolicy::PullPush.as_str().into());
                m.insert("cache".into(), Value::Mapping(cache));
            }
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
    /// Its `cache:` (the job's, else `default:cache`), if any.
    pub cache: Option<JobCache>,
    /// Its `script:` lines.
    pub script: Vec<String>,
}

/// A job's `cache:` as the load test uses it (GitLab CI/CD YAML reference, `cache`:
/// `cache:key`, `cache:paths`, `cache:policy` of `pull`, `push` or `pull-push`, the default).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JobCache {
    /// `cache:key` (default `default`, GitLab's).
    pub key: String,
    /// `cache:paths`.
    pub paths: Vec<String>,
    /// `cache:policy`.
    pub policy: CachePolicy,
}

/// `cache:policy` (GitLab CI/CD YAML reference: "`pull-push` (default), `pull`, `push`").
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CachePolicy {
    /// Restore at the start and save at the end.
    PullPush,
    /// Restore only.
    Pull,
    /// Save only.
    Push,
}

impl CachePolicy {
    /// The YAML value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PullPush => "pull-push",
            Self::Pull => "pull",
            Self::Push => "push",
        }
    }

    /// Whether the job restores the cache.
    pub fn pulls(self) -> bool {
        self != Self::Push
    }

    /// Whether the job saves the cache.
    pub fn pushes(self) -> bool {
        self != Self::Pull
    }
}

fn cache_of(v: &Value) -> std::result::Result<Option<JobCache>, String> {
    let Some(m) = v.as_mapping() else {
        return Err("cache must be a mapping (key, paths, policy)".into());
    };
    let key = match m.get("key") {
        None => "default".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => {
            return Err("cache:key must be a string (cache:key:files is not supported)".into());
        }
    };
    let paths = match m.get("paths") {
        None => Vec::new(),
        Some(Value::Sequence(s)) => s
            .iter()
            .map(|p| {
                p.as_str()
                    .map(str::to_owned)
                    .ok_or("cache:paths must be strings")
            })
            .collect::<std::result::Result<_, _>>()?,
        Some(_) => return Err("cache:paths must be a list".into()),
    };
    let policy = match m.get("policy").and_then(Value::as_str) {
        None | Some("pull-push") => CachePolicy::PullPush,
        Some("pull") => CachePolicy::Pull,
        Some("push") => CachePolicy::Push,
        Some(other) => {
            return Err(format!(
                "cache:policy {other:?} is not pull, push or pull-push"
            ));
        }
    };
    Ok(Some(JobCache { key, paths, policy }))
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
    let default_cache = root
        .get("cache")
        .or_else(|| root.get("default").and_then(|d| d.get("cache")));
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
        let script: Vec<String> = match job.get("script") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Sequence(lines)) => lines
                .iter()
                .filter_map(|l| l.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        let cache = match job.get("cache").or(default_cache) {
            None => None,
            Some(v) => cache_of(v).map_err(|m| bad(format!("job {name:?}: {m}")))?,
        };
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
                cache: cache.clone(),
                script: script.clone(),
            });
        }
    }
    Ok(jobs)
}

/// True when a commit message asks GitLab to start no push pipeline: `[skip ci]` or
/// `[ci skip]`, any case, with ` `, `_` or `-` between the words (GitLab's own pattern).
pub fn message_skips_ci(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    ["ci", "skip"].iter().any(|first| {
        let second = if *first == "ci" { "skip" } else { "ci" };
        [' ', '_', '-']
            .iter()
            .any(|sep| lower.contains(&format!("[{first}{sep}{second}]")))
    })
}

/// Whether the file's `workflow: rules` let a pipeline run, given the pipeline's predefined
/// variables (`CI_PIPELINE_SOURCE`, `CI_COMMIT_BRANCH`, ...). As in GitLab: no workflow rules
/// → it runs; otherwise the first rule that matches decides (`when: never` → no pipeline,
/// anything else → runs), and no match → no pipeline.
///
/// Supported `if:` expressions: `$VAR == "value"`, `$VAR != "value"` (single or double
/// quotes, or `null`), a bare `$VAR` (set and non-empty), joined with `&&` and `||` (`&&`
/// binds tighter; no parentheses). Anything else is an error rather than a guess.
pub fn workflow_allows(
    yaml: &str,
    variables: &std::collections::BTreeMap<String, String>,
) -> Result<bool> {
    let bad = |msg: String| Error::invalid("evaluate", ".gitlab-ci.yml workflow:rules", msg);
    let root: Value =
        serde_norway::from_str(yaml).map_err(|e| bad(format!("not valid YAML: {e}")))?;
    let Some(rules) = root.get("workflow").and_then(|w| w.get("rules")) else {
        return Ok(true);
    };
    let rules = rules
        .as_sequence()
        .ok_or_else(|| bad("workflow:rules is not a list".into()))?;
    for rule in rules {
        let matched = match rule.get("if") {
            None => true,
            Some(Value::String(expr)) => eval_rule_expression(expr, variables).map_err(bad)?,
            Some(other) => return Err(bad(format!("`if: {other:?}` is not a string"))),
        };
        if matched {
            let when = rule.get("when").and_then(Value::as_str).unwrap_or("always");
            return Ok(when != "never");
        }
    }
    Ok(false)
}

fn eval_rule_expression(
    expr: &str,
    variables: &std::collections::BTreeMap<String, String>,
) -> std::result::Result<bool, String> {
    if expr.contains('(') || expr.contains("=~") || expr.contains("!~") {
        return Err(format!("unsupported expression {expr:?}"));
    }
    let value_of = |name: &str| variables.get(name).map(String::as_str);
    let literal = |raw: &str| -> std::result::Result<Option<String>, String> {
        let raw = raw.trim();
        if raw == "null" {
            return Ok(None);
        }
        for q in ['"', '\''] {
            if let Some(inner) = raw.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
                return Ok(Some(inner.to_owned()));
            }
        }
        Err(format!("{raw:?} is not a quoted string in {expr:?}"))
    };
    let variable = |raw: &str| -> std::result::Result<String, String> {
        let name = raw
            .trim()
            .strip_prefix('$')
            .ok_or_else(|| format!("{:?} is not a variable ($NAME) in {expr:?}", raw.trim()))?;
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!("{name:?} is not a variable name in {expr:?}"));
        }
        Ok(name.to_owned())
    };
    let comparison = |term: &str| -> std::result::Result<bool, String> {
        if let Some((lhs, rhs)) = term.split_once("!=") {
            let name = variable(lhs)?;
            return Ok(value_of(&name).map(str::to_owned) != literal(rhs)?);
        }
        if let Some((lhs, rhs)) = term.split_once("==") {
            let name = variable(lhs)?;
            return Ok(value_of(&name).map(str::to_owned) == literal(rhs)?);
        }
        let name = variable(term)?;
        Ok(value_of(&name).is_some_and(|v| !v.is_empty()))
    };
    let mut any = false;
    for alternative in expr.split("||") {
        let mut all = true;
        for term in alternative.split("&&") {
            all &= comparison(term)?;
        }
        any |= all;
    }
    Ok(any)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn skip_ci_markers() {
        for m in ["x [skip ci]", "[ci skip] x", "A [Skip-CI]", "[ci_skip]"] {
            assert!(message_skips_ci(m), "{m}");
        }
        for m in ["skip ci", "[skipci]", "load test", "[ci]skip"] {
            assert!(!message_skips_ci(m), "{m}");
        }
    }

    /// An untagged spec (the reference tutorial's file) renders its jobs without `tags:`; its
    /// tags only name the CI jobs, 200 per `parallel`.
    #[test]
    fn untagged_jobs_carry_no_tags() {
        let spec = LoadTestSpec::new(vec![ShardTarget::new("eks-fargate", 400)]).untagged(true);
        let yaml = spec.to_yaml().unwrap();
        assert!(!yaml.contains("tags:"), "{yaml}");
        let jobs = expand(&yaml).unwrap();
        assert_eq!(jobs.len(), 400);
        assert!(jobs.iter().all(|j| j.tags.is_empty()), "{:?}", jobs[0]);
        let tagged = LoadTestSpec::new(vec![ShardTarget::new("eks-fargate", 400)]);
        let jobs = expand(&tagged.to_yaml().unwrap()).unwrap();
        assert!(jobs.iter().all(|j| j.tags == ["eks-fargate"]));
    }

    #[test]
    fn generated_workflow_runs_only_api_pipelines() {
        let yaml = LoadTestSpec::even(3, &["a".into()]).to_yaml().unwrap();
        for (source, runs) in [
            ("api", true),
            ("push", false),
            ("web", false),
            ("schedule", false),
        ] {
            assert_eq!(
                workflow_allows(&yaml, &vars(&[("CI_PIPELINE_SOURCE", source)])).unwrap(),
                runs,
                "{source}"
            );
        }
    }

    #[test]
    fn workflow_rules_semantics() {
        let no_rules = "job:\n  script: [echo]\n";
        assert!(workflow_allows(no_rules, &vars(&[])).unwrap());
        let never_push = "workflow:\n  rules:\n    - if: $CI_PIPELINE_SOURCE == 'push'\n      when: never\n    - when: always\n";
        assert!(!workflow_allows(never_push, &vars(&[("CI_PIPELINE_SOURCE", "push")])).unwrap());
        assert!(workflow_allows(never_push, &vars(&[("CI_PIPELINE_SOURCE", "api")])).unwrap());
        let both = "workflow:\n  rules:\n    - if: $CI_PIPELINE_SOURCE == \"api\" && $CI_COMMIT_BRANCH || $FORCE\n";
        assert!(
            workflow_allows(
                both,
                &vars(&[("CI_PIPELINE_SOURCE", "api"), ("CI_COMMIT_BRANCH", "main")])
            )
            .unwrap()
        );
        assert!(!workflow_allows(both, &vars(&[("CI_PIPELINE_SOURCE", "api")])).unwrap());
        assert!(workflow_allows(both, &vars(&[("FORCE", "1")])).unwrap());
        let unsupported = "workflow:\n  rules:\n    - if: $CI_COMMIT_BRANCH =~ /^main/\n";
        assert!(workflow_allows(unsupported, &vars(&[])).is_err());
    }

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
    fn splits_into_pipelines_under_the_limit() {
        let tags: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let spec = LoadTestSpec::even(1200, &tags);
        let parts = spec.split_into_pipelines(500).unwrap();
        let sizes: Vec<u64> = parts.iter().map(LoadTestSpec::total_jobs).collect();
        assert_eq!(sizes, vec![500, 500, 200]);
        let mut names = std::collections::BTreeSet::new();
        for part in &parts {
            for job in expand(&part.to_yaml().unwrap()).unwrap() {
                assert!(names.insert(job.name.clone()), "{} twice", job.name);
            }
        }
        assert_eq!(names.len(), 1200);
        // Every shard keeps its jobs: 400 per tag over all parts.
        for tag in &tags {
            let n: u32 = parts
                .iter()
                .flat_map(|p| &p.shards)
                .filter(|s| &s.tag == tag)
                .map(|s| s.jobs)
                .sum();
            assert_eq!(n, 400, "{tag}");
        }
        assert_eq!(spec.split_into_pipelines(1200).unwrap(), vec![spec.clone()]);
        assert!(spec.split_into_pipelines(0).is_err());
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
