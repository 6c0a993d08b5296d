//! The rules: what a job asks that this Fargate fleet cannot give, each with its source.

use std::path::{Path, PathBuf};

use glrunner_fargate::{FargateSize, quantity};
use glrunner_runner_chart::ContainerResources;
use glrunner_runner_chart::fleet::is_docker_hub;

use super::fleet::{FleetRunner, LintFleet};
use super::load::{Config, Location};
use super::resolve::Job;
use super::{Finding, LintedJob, Rule, Severity};

mod identity;

/// EKS on Fargate refuses privileged containers and has no GPUs.
const FARGATE_CONSIDERATIONS: &str = "Amazon EKS User Guide, Fargate considerations \
     (https://docs.aws.amazon.com/eks/latest/userguide/fargate.html#fargate-considerations): \
     \"Privileged containers aren't supported on Fargate\", \"GPUs aren't currently available on Fargate\"";

/// The vCPU/memory combinations Fargate runs, up to 16 vCPU / 120 GB (glrunner_fargate::size).
const FARGATE_POD_CONFIGURATION: &str = "Amazon EKS User Guide, Fargate Pod configuration \
     (https://docs.aws.amazon.com/eks/latest/userguide/fargate-pod-configuration.html): pod sizes \
     from 0.25 vCPU / 0.5 GB to 16 vCPU / 120 GB, requests + 256 MB rounded up";

/// Fargate's ephemeral storage: 20 GiB included, configurable up to 175 GiB per pod.
const FARGATE_STORAGE: &str = "AWS Containers blog, \"AWS Fargate adds support for larger \
     ephemeral volumes\" (https://aws.amazon.com/blogs/containers/amazon-eks-fargate-adds-support-for-larger-ephemeral-volumes/): \
     20 GiB by default, configurable up to 175 GiB per EKS Fargate pod";

/// Buildah (and Podman, which builds with it) needs user namespaces; Fargate disabled them.
const BUILDAH_ON_FARGATE: &str = "containers/buildah#6718 \
     (https://github.com/containers/buildah/issues/6718, March 2026): on the current Fargate \
     platform user namespaces are disabled (max_user_namespaces = 0), buildah fails with \
     \"unshare(CLONE_NEWUSER)\"";

/// Kaniko's repository was archived by Google in June 2025.
const KANIKO_ARCHIVED: &str = "GoogleContainerTools/kaniko \
     (https://github.com/GoogleContainerTools/kaniko): archived in June 2025, read-only, no \
     further releases or security fixes";

/// Docker Hub's pull limits per IP; Fargate pods egress through the stack's NAT gateway IP(s).
const DOCKER_HUB_LIMITS: &str = "Docker Docs, Docker Hub usage and limits \
     (https://docs.docker.com/docker-hub/usage/): unauthenticated pulls are rate-limited per \
     IP address, and every Fargate pod of the fleet pulls through the same NAT gateway IP(s) \
     with an empty image cache (glrunner#24)";

/// The Kubernetes executor's resource overwrites and their ceilings.
const OVERWRITES: &str = "GitLab Runner docs, Kubernetes executor, \"Overwrite container \
     resources\" (https://docs.gitlab.com/runner/executors/kubernetes/#overwrite-container-resources); \
     gitlab-runner executors/kubernetes/overwrites.go, evaluateMaxResourceOverwrite: without \
     `*_overwrite_max_allowed` the variable is ignored, above it the job fails";

/// How GitLab matches jobs to runners by tag.
const TAGS: &str = "GitLab CI/CD YAML reference, `tags` (https://docs.gitlab.com/ci/yaml/#tags): \
     a job runs only on a runner that has all of its tags; an untagged job only on a runner \
     that runs untagged jobs";

/// What to do with a job Fargate cannot run.
const ROUTE_ELSEWHERE: &str = "route this job to a runner that is not on Fargate by a tag \
     only that runner carries (e.g. `tags: [image-build]` on an EC2 runner with the Docker or \
     docker-autoscaler executor); Fargate cannot run it";

/// Ephemeral storage Fargate can give one pod: 175 GiB (glrunner_fargate::storage).
const FARGATE_MAX_STORAGE_MIB: u64 = glrunner_fargate::storage::MAX_STORAGE_MIB;

/// The job-level resource variables of the Kubernetes executor (overwrites.go constants).
const RESOURCE_VARIABLES: [&str; 18] = [
    "KUBERNETES_CPU_REQUEST",
    "KUBERNETES_CPU_LIMIT",
    "KUBERNETES_MEMORY_REQUEST",
    "KUBERNETES_MEMORY_LIMIT",
    "KUBERNETES_EPHEMERAL_STORAGE_REQUEST",
    "KUBERNETES_EPHEMERAL_STORAGE_LIMIT",
    "KUBERNETES_HELPER_CPU_REQUEST",
    "KUBERNETES_HELPER_CPU_LIMIT",
    "KUBERNETES_HELPER_MEMORY_REQUEST",
    "KUBERNETES_HELPER_MEMORY_LIMIT",
    "KUBERNETES_HELPER_EPHEMERAL_STORAGE_REQUEST",
    "KUBERNETES_HELPER_EPHEMERAL_STORAGE_LIMIT",
    "KUBERNETES_SERVICE_CPU_REQUEST",
    "KUBERNETES_SERVICE_CPU_LIMIT",
    "KUBERNETES_SERVICE_MEMORY_REQUEST",
    "KUBERNETES_SERVICE_MEMORY_LIMIT",
    "KUBERNETES_SERVICE_EPHEMERAL_STORAGE_REQUEST",
    "KUBERNETES_SERVICE_EPHEMERAL_STORAGE_LIMIT",
];

struct Ctx<'a> {
    job: &'a Job,
    config: &'a Config,
    home: Location,
    findings: Vec<Finding>,
}

/// The text of one finding, before its location.
struct Says {
    rule: Rule,
    severity: Severity,
    message: String,
    constraint: &'static str,
    source: &'static str,
    fix: String,
}

impl Ctx<'_> {
    fn push(&mut self, (file, line): Location, says: Says) {
        self.findings.push(Finding {
            job: self.job.name.clone(),
            file,
            line,
            rule: says.rule,
            severity: says.severity,
            message: says.message,
            constraint: says.constraint.to_owned(),
            source: says.source.to_owned(),
            fix: says.fix,
        });
    }

    fn has(&self, rule: Rule) -> bool {
        self.findings.iter().any(|f| f.rule == rule)
    }

    /// The line matching `pred`: in the job's own blocks (and what it inherits), else anywhere
    /// (the file defining the job first), else the job's own line.
    fn locate(&self, extra_keys: &[&str], pred: &dyn Fn(&str) -> bool) -> Location {
        let mut keys = self.job.keys();
        keys.extend_from_slice(extra_keys);
        let pred = |line: &str| !line.trim_start().starts_with('#') && pred(line);
        self.config
            .find_in(&keys, &pred)
            .or_else(|| self.find_anywhere_from(&self.home.0, &pred))
            .unwrap_or_else(|| self.home.clone())
    }

    fn find_anywhere_from(&self, home: &Path, pred: &dyn Fn(&str) -> bool) -> Option<Location> {
        self.config
            .files
            .iter()
            .find(|f| f.path == home)
            .and_then(|f| {
                f.lines
                    .iter()
                    .position(|l| pred(l))
                    .map(|i| (f.path.clone(), i + 1))
            })
            .or_else(|| self.config.find_anywhere(pred))
    }
}

/// Checks one job against the fleet.
pub(super) fn check(job: &Job, config: &Config, fleet: &LintFleet) -> (LintedJob, Vec<Finding>) {
    let home = config
        .key_location(&job.name)
        .unwrap_or_else(|| (PathBuf::from(".gitlab-ci.yml"), 1));
    let tags = job.tags();
    let serving: Vec<&FleetRunner> = fleet.runners_for(&tags).collect();
    // A trigger job starts a downstream pipeline on GitLab; no runner runs it
    // (CI/CD YAML reference, `trigger`).
    let trigger = job.body.contains_key("trigger");
    let linted = LintedJob {
        name: job.name.clone(),
        file: home.0.clone(),
        line: home.1,
        runners: serving.iter().map(|r| r.release.clone()).collect(),
        trigger,
    };
    if trigger {
        return (linted, Vec::new());
    }
    let mut ctx = Ctx {
        job,
        config,
        home,
        findings: Vec::new(),
    };
    docker_in_docker(&mut ctx);
    scripts(&mut ctx);
    gpu(&mut ctx);
    let runner = serving.first().copied().or(fleet.runners.first());
    resources(&mut ctx, runner);
    docker_hub(&mut ctx);
    identity::aws_without_identity(
        &mut ctx,
        &runner.map(|r| r.job_identity.clone()).unwrap_or_default(),
    );
    routing(&mut ctx, fleet, &tags, serving.is_empty());
    (linted, ctx.findings)
}

fn docker_in_docker(ctx: &mut Ctx<'_>) {
    for service in ctx.job.services() {
        // `docker:dind`, `docker:27-dind`, `docker:dind-rootless` (still privileged: Docker's
        // docs for the rootless dind image require --privileged).
        if service.to_ascii_lowercase().contains("dind") {
            let at = ctx.locate(&[], &|l| l.contains(service.as_str()));
            ctx.push(
                at,
                Says {
                    rule: Rule::DockerInDocker,
                    severity: Severity::Error,
                    message: format!(
                        "service {service} runs a Docker daemon, which needs a privileged container"
                    ),
                    constraint: "Fargate does not run privileged containers",
                    source: FARGATE_CONSIDERATIONS,
                    fix: ROUTE_ELSEWHERE.to_owned(),
                },
            );
            return;
        }
    }
    if let Some(host) = ctx.job.variable("DOCKER_HOST") {
        let host = host.to_owned();
        let at = ctx.locate(&["variables"], &|l| l.contains("DOCKER_HOST"));
        ctx.push(
            at,
            Says {
                rule: Rule::DockerHost,
                severity: Severity::Error,
                message: format!(
                    "DOCKER_HOST={host} expects a Docker daemon (a dind service or the node's socket)"
                ),
                constraint: "Fargate does not run privileged containers and mounts no node socket",
                source: FARGATE_CONSIDERATIONS,
                fix: ROUTE_ELSEWHERE.to_owned(),
            },
        );
    }
}

/// The command words of a script line: each simple command's first word and the rest, with
/// assignments and prefixes such as `sudo` skipped.
fn commands(line: &str) -> Vec<Vec<&str>> {
    const PREFIXES: [&str; 12] = [
        "sudo", "exec", "time", "then", "do", "else", "if", "elif", "!", "command", "nohup", "env",
    ];
    line.split(['&', '|', ';', '(', ')', '`', '{', '}'])
        .map(|segment| {
            segment
                .split_whitespace()
                .skip_while(|w| PREFIXES.contains(w) || is_assignment(w) || *w == "$")
                .collect::<Vec<_>>()
        })
        .filter(|words| !words.is_empty())
        .collect()
}

fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

fn basename(word: &str) -> &str {
    word.rsplit('/').next().unwrap_or(word)
}

fn scripts(ctx: &mut Ctx<'_>) {
    let image = ctx.job.image().unwrap_or_default();
    for line in ctx.job.script_lines() {
        for words in commands(&line) {
            let word = words[0];
            let sub = words.iter().skip(1).find(|w| !w.starts_with('-')).copied();
            let rule = match basename(word) {
                "buildah" | "podman" => Some(Rule::Buildah),
                "executor" if word.ends_with("/kaniko/executor") || image.contains("kaniko") => {
                    Some(Rule::Kaniko)
                }
                "docker" | "docker-compose" => match sub {
                    None | Some("version" | "help" | "context" | "manifest") => None,
                    Some("build" | "buildx" | "builder") => Some(Rule::DockerBuild),
                    Some(_) if words.contains(&"build") => Some(Rule::DockerBuild),
                    Some(_) => Some(Rule::DockerDaemon),
                },
                _ => None,
            };
            let Some(rule) = rule else { continue };
            if ctx.has(rule) {
                continue;
            }
            let command = words.join(" ");
            let needle = line.trim().to_owned();
            let at = ctx.locate(&["before_script", "after_script"], &|l| {
                l.contains(needle.as_str())
            });
            let says = match rule {
                Rule::Buildah => Says {
                    rule,
                    severity: Severity::Error,
                    message: format!(
                        "`{command}` builds or runs containers with Buildah, which needs user namespaces"
                    ),
                    constraint: "Fargate disabled user namespaces in March 2026: Buildah and Podman fail there",
                    source: BUILDAH_ON_FARGATE,
                    fix: ROUTE_ELSEWHERE.to_owned(),
                },
                Rule::Kaniko => Says {
                    rule,
                    severity: Severity::Warning,
                    message: format!(
                        "`{command}` builds the image with Kaniko: it runs on Fargate today, but the project is archived"
                    ),
                    constraint: "Kaniko gets no releases or security fixes since June 2025",
                    source: KANIKO_ARCHIVED,
                    fix: "route image builds to a runner that is not on Fargate by tag (an EC2 runner \
                          with the Docker or docker-autoscaler executor); Buildah is no replacement on Fargate \
                          (containers/buildah#6718)"
                        .to_owned(),
                },
                Rule::DockerBuild => Says {
                    rule,
                    severity: Severity::Error,
                    message: format!(
                        "`{command}` builds an image with the Docker daemon (Docker-in-Docker, privileged)"
                    ),
                    constraint: "Fargate does not run privileged containers, so no Docker daemon runs there",
                    source: FARGATE_CONSIDERATIONS,
                    fix: ROUTE_ELSEWHERE.to_owned(),
                },
                _ => Says {
                    rule,
                    severity: Severity::Error,
                    message: format!("`{command}` talks to a Docker daemon (Docker-in-Docker, privileged)"),
                    constraint: "Fargate does not run privileged containers, so no Docker daemon runs there",
                    source: FARGATE_CONSIDERATIONS,
                    fix: ROUTE_ELSEWHERE.to_owned(),
                },
            };
            ctx.push(at, says);
        }
    }
    if !ctx.has(Rule::Kaniko) && image.contains("kaniko-project/executor") {
        let at = ctx.locate(&[], &|l| l.contains("kaniko-project/executor"));
        ctx.push(
            at,
            Says {
                rule: Rule::Kaniko,
                severity: Severity::Warning,
                message: format!(
                    "image {image} is Kaniko's: it runs on Fargate today, but the project is archived"
                ),
                constraint: "Kaniko gets no releases or security fixes since June 2025",
                source: KANIKO_ARCHIVED,
                fix: "route image builds to a runner that is not on Fargate by tag".to_owned(),
            },
        );
    }
}

fn gpu(ctx: &mut Ctx<'_>) {
    let image = ctx.job.image().unwrap_or_default().to_ascii_lowercase();
    let gpu_image = ["nvidia/cuda", "nvcr.io/", "nvidia/"]
        .iter()
        .any(|p| image.contains(p));
    let gpu_tag = ctx
        .job
        .tags()
        .into_iter()
        .find(|t| t.to_ascii_lowercase().contains("gpu"));
    let gpu_tool = ctx
        .job
        .script_lines()
        .into_iter()
        .find(|l| commands(l).iter().any(|w| basename(w[0]) == "nvidia-smi"));
    let gpu_variable = ctx.job.variable("NVIDIA_VISIBLE_DEVICES").is_some();
    let (what, needle) = if gpu_image {
        (
            format!("image {image} is a GPU (CUDA) image"),
            image.clone(),
        )
    } else if let Some(tag) = gpu_tag {
        (format!("tag {tag} asks for a GPU runner"), tag)
    } else if let Some(line) = gpu_tool {
        (
            format!("`{}` needs a GPU", line.trim()),
            line.trim().to_owned(),
        )
    } else if gpu_variable {
        (
            "NVIDIA_VISIBLE_DEVICES asks for a GPU".to_owned(),
            "NVIDIA_VISIBLE_DEVICES".to_owned(),
        )
    } else {
        return;
    };
    let at = ctx.locate(&["variables"], &|l| {
        l.to_ascii_lowercase()
            .contains(&needle.to_ascii_lowercase())
    });
    ctx.push(
        at,
        Says {
            rule: Rule::Gpu,
            severity: Severity::Error,
            message: what,
            constraint: "Fargate has no GPUs",
            source: FARGATE_CONSIDERATIONS,
            fix: "route this job to a GPU runner that is not on Fargate (e.g. EC2 GPU instances) by a tag only it carries"
                .to_owned(),
        },
    );
}

/// A container's resources as the job asks them (a `KUBERNETES_<prefix>*` variable) or as the
/// runner sets them: (cpu millis, memory MiB, ephemeral storage MiB).
fn container(ctx: &Ctx<'_>, prefix: &str, runner: &ContainerResources) -> (u64, u64, u64, bool) {
    let value = |what: &str, parse: fn(&str) -> Result<u64, quantity::QuantityError>| {
        ["REQUEST", "LIMIT"]
            .iter()
            .filter_map(|kind| {
                ctx.job
                    .variable(&format!("KUBERNETES_{prefix}{what}_{kind}"))
            })
            .filter_map(|v| parse(v).ok())
            .max()
    };
    let cpu = value("CPU", quantity::cpu_millis);
    let memory = value("MEMORY", quantity::memory_mib);
    let storage = value("EPHEMERAL_STORAGE", quantity::memory_mib);
    let asked = cpu.is_some() || memory.is_some() || storage.is_some();
    (
        cpu.unwrap_or_else(|| quantity::cpu_millis(&runner.cpu).unwrap_or(0)),
        memory.unwrap_or_else(|| quantity::memory_mib(&runner.memory).unwrap_or(0)),
        storage.unwrap_or(0),
        asked,
    )
}

fn resources(ctx: &mut Ctx<'_>, runner: Option<&FleetRunner>) {
    let set: Vec<(&str, String)> = RESOURCE_VARIABLES
        .iter()
        .filter_map(|name| ctx.job.variable(name).map(|v| (*name, v.to_owned())))
        .collect();
    if set.is_empty() {
        return;
    }
    let default_runner = FleetRunner {
        release: String::new(),
        tags: Vec::new(),
        run_untagged: false,
        build: ContainerResources::new("0", "0"),
        helper: ContainerResources::new("0", "0"),
        service: ContainerResources::new("0", "0"),
        overwrite_max_allowed: Default::default(),
        job_identity: Default::default(),
    };
    let runner = runner.unwrap_or(&default_runner);
    let mut evaluable = Vec::new();
    for (name, value) in &set {
        let parse = parser_for(name);
        let at = ctx.locate(&["variables"], &|l| l.contains(name));
        if value.contains('$') || parse(value).is_err() {
            ctx.push(
                at,
                Says {
                    rule: Rule::NotEvaluated,
                    severity: Severity::Warning,
                    message: format!(
                        "{name}={value:?} is not a Kubernetes quantity the lint can evaluate"
                    ),
                    constraint: "the runner reads these variables as Kubernetes quantities",
                    source: OVERWRITES,
                    fix: "write a literal quantity (e.g. 2, 500m, 4Gi) to have it checked"
                        .to_owned(),
                },
            );
            continue;
        }
        evaluable.push((*name, value.clone(), at));
    }
    // The pod Fargate would have to run: build + helper + each service (EKS sizes the sum).
    let services = ctx.job.services().len() as u64;
    let build = container(ctx, "", &runner.build);
    let helper = container(ctx, "HELPER_", &runner.helper);
    let service = container(ctx, "SERVICE_", &runner.service);
    let cpu = build.0 + helper.0 + service.0 * services;
    let memory = build.1 + helper.1 + service.1 * services;
    let storage = build.2 + helper.2 + service.2 * services;
    let asked_compute = evaluable
        .iter()
        .any(|(n, _, _)| n.contains("CPU") || n.contains("MEMORY"));
    if asked_compute && FargateSize::for_requests(cpu, memory).is_none() {
        let (name, value, at) = evaluable
            .iter()
            .find(|(n, _, _)| n.contains("CPU") || n.contains("MEMORY"))
            .cloned()
            .unwrap_or_else(|| ("", String::new(), ctx.home.clone()));
        ctx.push(
            at,
            Says {
                rule: Rule::BeyondFargate,
                severity: Severity::Error,
                message: format!(
                    "{name}={value} makes a job pod of {} vCPU / {:.1} GiB (build, helper and services), \
                     beyond the largest Fargate pod, {}",
                    cpu as f64 / 1000.0,
                    memory as f64 / 1024.0,
                    FargateSize::LARGEST
                ),
                constraint: "a Fargate pod has at most 16 vCPU and 120 GB (less 256 MB for the kubelet)",
                source: FARGATE_POD_CONFIGURATION,
                fix: "lower the request to fit 16 vCPU / 120 GB, or route this job to a runner that is \
                      not on Fargate by tag"
                    .to_owned(),
            },
        );
    }
    if storage > FARGATE_MAX_STORAGE_MIB {
        let (name, value, at) = evaluable
            .iter()
            .find(|(n, _, _)| n.contains("EPHEMERAL_STORAGE"))
            .cloned()
            .unwrap_or_else(|| ("", String::new(), ctx.home.clone()));
        ctx.push(
            at,
            Says {
                rule: Rule::BeyondFargate,
                severity: Severity::Error,
                message: format!(
                    "{name}={value} asks for {:.1} GiB of ephemeral storage in one pod, beyond Fargate's 175 GiB",
                    storage as f64 / 1024.0
                ),
                constraint: "a Fargate pod has 20 GiB of ephemeral storage, configurable up to 175 GiB",
                source: FARGATE_STORAGE,
                fix: "lower the request to 175 GiB or less, keep large data in S3 or the runner cache, or \
                      route this job to a runner that is not on Fargate by tag"
                    .to_owned(),
            },
        );
    }
    for (name, value, at) in evaluable {
        let setting = format!(
            "{}_overwrite_max_allowed",
            name.trim_start_matches("KUBERNETES_").to_ascii_lowercase()
        );
        match runner.overwrite_max_allowed.get(name) {
            None => ctx.push(
                at,
                Says {
                    rule: Rule::OverwriteIgnored,
                    severity: Severity::Warning,
                    message: format!(
                        "{name}={value} is ignored: the fleet's runners set no {setting}, so the job gets \
                         the runner's own size (build {} / {}, helper {} / {})",
                        runner.build.cpu, runner.build.memory, runner.helper.cpu, runner.helper.memory
                    ),
                    constraint: "the Kubernetes executor applies a resource variable only up to its \
                                 *_overwrite_max_allowed ceiling, and ignores it without one",
                    source: OVERWRITES,
                    fix: format!(
                        "size the job for the runner's pod, or give the fleet a {setting} ceiling (`runner values \
                         {}`, request = limit) within Fargate's 16 vCPU / 120 GB and 175 GiB of storage",
                        ceiling_flag(name)
                    ),
                },
            ),
            Some(max) => {
                let parse = parser_for(name);
                if let (Ok(asked), Ok(ceiling)) = (parse(&value), parse(max))
                    && asked > ceiling
                {
                    ctx.push(
                        at,
                        Says {
                            rule: Rule::OverwriteTooHigh,
                            severity: Severity::Error,
                            message: format!(
                                "{name}={value} is above the runner's {setting} = {max}: the runner fails the job"
                            ),
                            constraint: "a resource variable above its *_overwrite_max_allowed ceiling fails \
                                         the job (\"is higher than limit allowed\")",
                            source: OVERWRITES,
                            fix: format!("lower {name} to {max} or less"),
                        },
                    );
                }
            }
        }
    }
}

/// The `runner` flag that sets the build container's ceiling bounding `variable`
/// (`--cpu-overwrite-max`, `--memory-overwrite-max`, `--ephemeral-storage-overwrite-max`);
/// helper and service ceilings have none.
fn ceiling_flag(variable: &str) -> &'static str {
    let build = !variable.contains("HELPER_") && !variable.contains("SERVICE_");
    match () {
        _ if !build => "no flag for helper or service ceilings yet",
        _ if variable.contains("EPHEMERAL_STORAGE") => "--ephemeral-storage-overwrite-max",
        _ if variable.contains("CPU") => "--cpu-overwrite-max",
        _ => "--memory-overwrite-max",
    }
}

/// How a resource variable's value parses: CPU in millicores, memory and storage in MiB.
fn parser_for(variable: &str) -> fn(&str) -> Result<u64, quantity::QuantityError> {
    if variable.contains("CPU") {
        quantity::cpu_millis
    } else {
        quantity::memory_mib
    }
}

/// ECR Public's mirror of a Docker official image (`ruby:3.3` → `public.ecr.aws/docker/library/ruby:3.3`);
/// `None` for other Docker Hub images.
pub(super) fn ecr_public_mirror(image: &str) -> Option<String> {
    let path = image
        .strip_prefix("docker.io/")
        .or_else(|| image.strip_prefix("index.docker.io/"))
        .unwrap_or(image);
    let name = path.strip_prefix("library/").unwrap_or(path);
    (!name.contains('/')).then(|| format!("public.ecr.aws/docker/library/{name}"))
}

fn docker_hub(ctx: &mut Ctx<'_>) {
    let mut images: Vec<(String, &str)> = Vec::new();
    if let Some(image) = ctx.job.image() {
        images.push((image, "image"));
    }
    // A dind service cannot run at all (docker-in-docker): no second finding for its registry.
    images.extend(
        ctx.job
            .services()
            .into_iter()
            .filter(|s| !s.to_ascii_lowercase().contains("dind"))
            .map(|s| (s, "service")),
    );
    for (image, what) in images {
        // Images named through variables are resolved by GitLab at run time.
        if image.contains('$') || image.is_empty() || !is_docker_hub(&image) {
            continue;
        }
        let fix = match ecr_public_mirror(&image) {
            Some(mirror) => format!(
                "pull it through the stack's pull-through cache (glrunner#24) or use ECR Public's mirror of \
                 Docker's official images: {mirror}"
            ),
            None => "pull it through the stack's pull-through cache for Docker Hub (glrunner#24), or copy it \
                     to ECR, GitLab's registry or ECR Public"
                .to_owned(),
        };
        let at = ctx.locate(&[], &|l| {
            l.contains(image.as_str())
                && (l.contains("image") || l.contains("name:") || l.trim_start().starts_with('-'))
        });
        ctx.push(
            at,
            Says {
                rule: Rule::DockerHubImage,
                severity: Severity::Warning,
                message: format!(
                    "{what} {image} comes from Docker Hub and bypasses the pull-through cache"
                ),
                constraint: "every Fargate job pod pulls on an empty cache through the NAT gateway; Docker \
                             Hub's per-IP pull limit fails a burst of jobs with `toomanyrequests`",
                source: DOCKER_HUB_LIMITS,
                fix,
            },
        );
    }
}

fn routing(ctx: &mut Ctx<'_>, fleet: &LintFleet, tags: &[String], unserved: bool) {
    if fleet.runners.is_empty() || !unserved {
        return;
    }
    let at = if tags.is_empty() {
        ctx.home.clone()
    } else {
        ctx.locate(&["default"], &|l| l.trim_start().starts_with("tags:"))
    };
    let fleet_tags = fleet.all_tags().join(", ");
    if tags.iter().any(|t| t.contains('$')) {
        ctx.push(
            at,
            Says {
                rule: Rule::NotEvaluated,
                severity: Severity::Warning,
                message: format!(
                    "tags {} use CI variables, which the lint cannot evaluate",
                    tags.join(", ")
                ),
                constraint: "a job runs only on a runner carrying all of its tags",
                source: TAGS,
                fix: format!("make sure the tags expand to one of the fleet's: {fleet_tags}"),
            },
        );
        return;
    }
    let says = if tags.is_empty() {
        Says {
            rule: Rule::UntaggedJob,
            severity: Severity::Error,
            message: "the job has no tags and no runner of the fleet takes untagged jobs: it stays pending"
                .to_owned(),
            constraint: "a runner takes untagged jobs only with run_untagged",
            source: TAGS,
            fix: format!(
                "add `tags:` with one of the fleet's tags ({fleet_tags}), or run a fleet whose runners take \
                 untagged jobs (--runner-profile reference)"
            ),
        }
    } else {
        Says {
            rule: Rule::UnservedTags,
            severity: Severity::Error,
            message: format!(
                "no runner of the fleet carries all of the tags {}: the job stays pending",
                tags.join(", ")
            ),
            constraint: "a job runs only on a runner carrying all of its tags",
            source: TAGS,
            fix: format!(
                "use one of the fleet's tags ({fleet_tags}), or keep these tags for a runner outside this fleet"
            ),
        }
    };
    ctx.push(at, says);
}
