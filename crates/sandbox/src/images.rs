//! Per-image pulls (cold and warm registry cache), each job's log (its image's real `/etc/os-release`, the runner's cache lines), and the S3 cache's transfer and STS model.
//!
//! The runner simulator asks this module three things per job: how much longer the job
//! image's pull takes than the registry model says ([`SandboxImages::pull_extra`]: a pull
//! through a cold pull-through cache), how long the cache restore and save take and what they
//! find ([`SandboxImages::restore`], [`SandboxImages::save`]), and what the job's log says
//! ([`job_log`]), which the in-memory GitLab then serves at `GET /projects/:id/jobs/:id/trace`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

/// `/etc/os-release` of Docker's official `alpine:3.20` (alpine-baselayout, written by aports
/// main/alpine-base/APKBUILD; the file as `cat /etc/os-release` prints it in `alpine:3.20.3`).
pub const ALPINE_3_20: &str = "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.20.3\nPRETTY_NAME=\"Alpine Linux v3.20\"\nHOME_URL=\"https://alpinelinux.org/\"\nBUG_REPORT_URL=\"https://gitlab.alpinelinux.org/alpine/aports/-/issues\"\n";
/// `/etc/os-release` of `debian:bookworm-slim` (Debian base-files 12.4+deb12u*, `etc/os-release`).
pub const DEBIAN_12: &str = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\nHOME_URL=\"https://www.debian.org/\"\nSUPPORT_URL=\"https://www.debian.org/support\"\nBUG_REPORT_URL=\"https://bugs.debian.org/\"\n";
/// `/etc/os-release` of `ubuntu:24.04` (Ubuntu base-files 13ubuntu10.1, `etc/os-release`).
pub const UBUNTU_24_04: &str = "PRETTY_NAME=\"Ubuntu 24.04.1 LTS\"\nNAME=\"Ubuntu\"\nVERSION_ID=\"24.04\"\nVERSION=\"24.04.1 LTS (Noble Numbat)\"\nVERSION_CODENAME=noble\nID=ubuntu\nID_LIKE=debian\nHOME_URL=\"https://www.ubuntu.com/\"\nSUPPORT_URL=\"https://help.ubuntu.com/\"\nBUG_REPORT_URL=\"https://bugs.launchpad.net/ubuntu/\"\nPRIVACY_POLICY_URL=\"https://www.ubuntu.com/legal/terms-and-policies/privacy-policy\"\nUBUNTU_CODENAME=noble\nLOGO=ubuntu-logo\n";

/// The os-release an image ships, for the images the sandbox knows (by repository name and
/// tag); `bash` is built on alpine (Docker's official bash image, `FROM alpine`). `None`: an
/// image the sandbox has no file for, whose jobs print none.
pub fn os_release(image: &str) -> Option<&'static str> {
    let r = glrunner_gitlab_client::trace::ImageRef::parse(image).ok()?;
    let tag = r.tag.as_deref().unwrap_or("latest");
    match (r.name(), tag) {
        ("alpine", t) if t.starts_with("3.20") => Some(ALPINE_3_20),
        ("bash", _) => Some(ALPINE_3_20),
        ("debian", "bookworm" | "bookworm-slim" | "12" | "12-slim") => Some(DEBIAN_12),
        ("ubuntu", "24.04" | "noble") => Some(UBUNTU_24_04),
        _ => None,
    }
}

/// The image a "wrong image" fault runs instead of `image`: another distro of the default
/// matrix.
pub fn other_image(image: &str) -> &'static str {
    let m = glrunner_gitlab_client::ci::DEFAULT_IMAGE_MATRIX;
    if os_release(image) == Some(ALPINE_3_20) {
        m[1]
    } else {
        m[0]
    }
}

/// Compressed size (linux/amd64) of the default matrix's images, MB, for their pull time.
/// **Assumed**: Docker Hub's tag pages list about 3.6 MB for `alpine:3.20`, 28 MB for
/// `debian:bookworm-slim` and 29 MB for `ubuntu:24.04` (not fetched here; ECR Public mirrors the
/// same manifests). `None`: the pull model's own size for the image.
pub fn image_megabytes(image: &str) -> Option<f64> {
    match os_release(image)? {
        ALPINE_3_20 if !image.contains("bash") => Some(3.6),
        DEBIAN_12 => Some(28.0),
        UBUNTU_24_04 => Some(29.0),
        _ => None,
    }
}

/// What the sandbox's images and cache do.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ImageModel {
    /// Every job image comes through a pull-through cache (ECR): the first pull of each image
    /// imports it from upstream (cold), later ones are served by the cache (warm). Off: only
    /// images named by their private ECR path (the stack's cache paths) are; every other pull
    /// goes to its registry as the pull model times it (no extra).
    pub pull_through_cache: bool,
    /// What a cold pull-through pull costs on top of the registry model: ECR fetching the
    /// manifest and layers from upstream before it serves them. **Assumed** (no published
    /// figure; AWS's ECR user guide, "Pull through cache", only says the first pull imports).
    pub cold_import: Duration,
    /// The fleet has a shared cache ([`runners.cache`] of type s3): without it the runner
    /// extracts and archives only locally ("No URL provided", gitlab-runner
    /// commands/helpers/cache_extractor.go line 642 and cache_archiver.go line 448).
    pub shared_cache: bool,
    /// S3 request latency before the first byte of a cache object. **Assumed** (S3's
    /// "Best practices design patterns: optimizing Amazon S3 performance" gives 100–200 ms
    /// first-byte latency for small objects).
    pub cache_latency: Duration,
    /// Cache object throughput, MB/s, per transfer through the S3 gateway endpoint. **Assumed**
    /// (a 0.25 vCPU Fargate task's network share is not published; 40 MB/s).
    pub cache_megabytes_per_second: f64,
    /// The runner caches the STS credentials per object and direction for up to 55 minutes
    /// (`assumeRoleCredCache`, gitlab-runner cache/s3v2/s3.go lines 95-111 and 312-326;
    /// `DisableAssumeRoleCredentialsCaching`, cache/cacheconfig/cacheconfig.go line 49). Off:
    /// each transfer with `RoleARN` set costs one `AssumeRole` (s3.go line 364), the burst
    /// gitlab-runner MR 6549 describes for a shared key.
    pub sts_credential_caching: bool,
    /// The n-th job to run (1-based) runs another image than its own (a fault for the image
    /// proof's tests).
    pub wrong_image_job: Option<u64>,
}

impl Default for ImageModel {
    fn default() -> Self {
        Self {
            pull_through_cache: false,
            cold_import: Duration::from_secs(8),
            shared_cache: true,
            cache_latency: Duration::from_millis(150),
            cache_megabytes_per_second: 40.0,
            sts_credential_caching: false,
            wrong_image_job: None,
        }
    }
}

/// Pulls of one image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImagePulls {
    /// Through a cold cache (the first) or straight from upstream.
    pub cold: u64,
    /// Served by a warm pull-through cache.
    pub warm: u64,
}

/// What the images and the cache did in the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ImageStats {
    /// Pulls per image.
    pub pulls: BTreeMap<String, ImagePulls>,
    /// Cache restores that found the key.
    pub cache_hits: u64,
    /// Cache restores that found nothing.
    pub cache_misses: u64,
    /// Cache objects uploaded.
    pub cache_uploads: u64,
    /// STS `AssumeRole` calls the cache transfers cost.
    pub sts_calls: u64,
    /// Jobs the wrong-image fault ran with another image: (job id, its image, the one run).
    pub wrong_images: Vec<(u64, String, String)>,
}

#[derive(Debug, Default)]
struct State {
    stats: ImageStats,
    /// Cache objects by key: MB.
    objects: BTreeMap<String, f64>,
    /// (key, upload) → when its STS credentials were fetched.
    credentials: BTreeMap<(String, bool), tokio::time::Instant>,
    jobs_run: u64,
}

/// The sandbox world's images and cache.
#[derive(Debug, Default)]
pub struct SandboxImages {
    model: ImageModel,
    state: Mutex<State>,
}

/// How long a cached STS credential is reused (s3.go: `min(max(timeout, 1m), 55m)`).
const CREDENTIAL_REUSE: Duration = Duration::from_secs(55 * 60);

/// A cache restore's result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Restore {
    /// The key was there.
    pub hit: bool,
    /// How long the `restore_cache` section took.
    pub time: Duration,
}

impl SandboxImages {
    /// A world's images and cache under `model`.
    pub fn new(model: ImageModel) -> Self {
        Self {
            model,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The model.
    pub fn model(&self) -> &ImageModel {
        &self.model
    }

    /// The image the next job runs instead of `image` (the wrong-image fault), and whether
    /// it is the wrong one.
    pub fn image_to_run(&self, job_id: u64, image: &str) -> String {
        let mut st = self.lock();
        st.jobs_run += 1;
        if self.model.wrong_image_job == Some(st.jobs_run) {
            let other = other_image(image).to_owned();
            st.stats
                .wrong_images
                .push((job_id, image.to_owned(), other.clone()));
            return other;
        }
        image.to_owned()
    }

    /// Extra pull time of `image` on top of the registry model, counting the pull cold or warm.
    pub fn pull_extra(&self, image: &str) -> Duration {
        let mut st = self.lock();
        let pulls = st.stats.pulls.entry(image.to_owned()).or_default();
        let through_cache = self.model.pull_through_cache
            || crate::model::Registry::of(image) == crate::model::Registry::PrivateEcr;
        if !through_cache {
            pulls.cold += 1;
            return Duration::ZERO;
        }
        if pulls.cold == 0 {
            pulls.cold += 1;
            self.model.cold_import
        } else {
            pulls.warm += 1;
            Duration::ZERO
        }
    }

    fn transfer(&self, megabytes: f64) -> Duration {
        self.model.cache_latency
            + Duration::from_secs_f64(
                megabytes.max(0.0) / self.model.cache_megabytes_per_second.max(0.01),
            )
    }

    fn sts(&self, st: &mut State, key: &str, upload: bool) {
        let now = tokio::time::Instant::now();
        if self.model.sts_credential_caching
            && st
                .credentials
                .get(&(key.to_owned(), upload))
                .is_some_and(|t| now.duration_since(*t) < CREDENTIAL_REUSE)
        {
            return;
        }
        st.credentials.insert((key.to_owned(), upload), now);
        st.stats.sts_calls += 1;
    }

    /// A job restores `key`: a hit downloads the object, a miss finds none (one STS call
    /// either way, the download URL's credentials).
    pub fn restore(&self, key: &str) -> Restore {
        let mut st = self.lock();
        if !self.model.shared_cache {
            st.stats.cache_misses += 1;
            return Restore {
                hit: false,
                time: Duration::from_millis(50),
            };
        }
        self.sts(&mut st, key, false);
        match st.objects.get(key).copied() {
            Some(mb) => {
                st.stats.cache_hits += 1;
                Restore {
                    hit: true,
                    time: self.transfer(mb),
                }
            }
            None => {
                st.stats.cache_misses += 1;
                Restore {
                    hit: false,
                    time: self.model.cache_latency,
                }
            }
        }
    }

    /// A job saves `megabytes` under `key`; returns how long the `archive_cache` section takes.
    pub fn save(&self, key: &str, megabytes: f64) -> Duration {
        let mut st = self.lock();
        if !self.model.shared_cache {
            return Duration::from_millis(200);
        }
        self.sts(&mut st, key, true);
        st.objects.insert(key.to_owned(), megabytes);
        st.stats.cache_uploads += 1;
        self.transfer(megabytes)
    }

    /// What happened so far.
    pub fn stats(&self) -> ImageStats {
        self.lock().stats.clone()
    }
}

/// What one job did, for its log.
#[derive(Debug, Clone)]
pub struct JobLog<'a> {
    /// The runner's description.
    pub runner: &'a str,
    /// The image the job ran.
    pub image: &'a str,
    /// The job's script lines (echoed as `$ line`).
    pub script: &'a [String],
    /// Unix seconds (fractional) the job's pod ran from.
    pub started: f64,
    /// Seconds the script ran.
    pub script_secs: f64,
    /// The cache: key, restore, save time, bucket URL.
    pub cache: Option<CacheLog<'a>>,
    /// The shared cache exists.
    pub shared_cache: bool,
}

/// A job's cache steps, for its log.
#[derive(Debug, Clone)]
pub struct CacheLog<'a> {
    /// `cache:key`.
    pub key: &'a str,
    /// The restore's result.
    pub restore: Restore,
    /// The save's time.
    pub save: Duration,
    /// `cache:paths`.
    pub paths: &'a [String],
}

/// One line as a runner with `FF_TIMESTAMPS` writes it: `<RFC 3339 date> 00O <text>`
/// (gitlab-runner common/buildlogger/internal/timestamper/timestamper.go lines 42-50), so that
/// the cache's times read back below a second.
fn stamped(out: &mut String, at: f64, text: &str) {
    let micros = (at * 1e6).round() as i64;
    let stamp = jiff::Timestamp::from_microsecond(micros)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
        .unwrap_or_default();
    for line in text.lines() {
        out.push_str(&format!("{stamp} 00O {line}\n"));
    }
}

/// Section markers as the runner writes them (`section_start:%v:%s\r` + ANSI clear,
/// gitlab-runner helpers/build_section.go line 19), the unix second of `at`.
fn section(out: &mut String, edge: &str, at: f64, name: &str) {
    stamped(
        out,
        at,
        &format!("section_{edge}:{}:{name}\r\u{1b}[0K", at.floor() as i64),
    );
}

/// The job's log as the runner would write it: the executor and image (gitlab-runner
/// executors/kubernetes/kubernetes.go line 454), the cache restore with the runner's messages
/// (sources in `glrunner_gitlab_client::trace::CacheTrace::from_trace`), the script with the
/// image's real `/etc/os-release` where the load test prints it, the cache save, and `Job
/// succeeded` (common/build.go line 1455). Stage titles from common/build.go lines 777-789.
pub fn job_log(job: &JobLog<'_>) -> String {
    use glrunner_gitlab_client::trace::{OS_RELEASE_BEGIN, OS_RELEASE_END};
    let mut out = String::new();
    let mut t = job.started;
    let o = &mut out;
    stamped(
        o,
        t,
        &format!("Running with gitlab-runner (sandbox)\n  on {}", job.runner),
    );
    section(o, "start", t, "prepare_executor");
    stamped(o, t, "Preparing the \"kubernetes\" executor");
    stamped(
        o,
        t,
        &format!("Using Kubernetes executor with image {} ...", job.image),
    );
    section(o, "end", t, "prepare_executor");
    if let Some(c) = &job.cache {
        section(o, "start", t, "restore_cache");
        stamped(o, t, "Restoring cache");
        stamped(o, t, &format!("Checking cache for {}...", c.key));
        if !job.shared_cache {
            stamped(
                o,
                t,
                "No URL provided, cache will not be downloaded from shared cache server. Instead a local version of cache will be extracted.",
            );
            stamped(
                o,
                t,
                "WARNING: Cache file does not exist\nFailed to extract cache",
            );
        } else if c.restore.hit {
            stamped(
                o,
                t,
                &format!(
                    "Downloading cache from https://glrunner-cache.s3.amazonaws.com/runner/project/{}",
                    c.key
                ),
            );
            t += c.restore.time.as_secs_f64();
            stamped(o, t, "Successfully extracted cache");
        } else {
            t += c.restore.time.as_secs_f64();
            stamped(
                o,
                t,
                "WARNING: file does not exist\nFailed to extract cache",
            );
        }
        section(o, "end", t, "restore_cache");
    }
    section(o, "start", t, "step_script");
    stamped(o, t, "Executing \"step_script\" stage of the job script");
    for line in job.script {
        stamped(o, t, &format!("$ {line}"));
        if line.contains(OS_RELEASE_BEGIN) {
            stamped(o, t, OS_RELEASE_BEGIN);
            match os_release(job.image) {
                Some(os) => stamped(o, t, os),
                None => stamped(
                    o,
                    t,
                    "cat: can't open '/etc/os-release': No such file or directory",
                ),
            }
            stamped(o, t, OS_RELEASE_END);
        }
    }
    t += job.script_secs;
    section(o, "end", t, "step_script");
    if let Some(c) = &job.cache {
        section(o, "start", t, "archive_cache");
        stamped(o, t, "Saving cache for successful job");
        stamped(o, t, &format!("Creating cache {}...", c.key));
        for p in c.paths {
            stamped(
                o,
                t,
                &format!("{p}: found 2 matching artifact files and directories"),
            );
        }
        if job.shared_cache {
            stamped(
                o,
                t,
                &format!(
                    "Uploading cache.zip to https://glrunner-cache.s3.amazonaws.com/runner/project/{}",
                    c.key
                ),
            );
        } else {
            stamped(
                o,
                t,
                "No URL provided, cache will not be uploaded to shared cache server. Cache will be stored only locally.",
            );
        }
        t += c.save.as_secs_f64();
        stamped(o, t, "Created cache");
        section(o, "end", t, "archive_cache");
    }
    stamped(o, t, "Job succeeded");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use glrunner_gitlab_client::trace::{CacheTrace, OsRelease, RestoreOutcome, SaveOutcome};

    #[test]
    fn the_log_reads_back_as_the_image_and_cache_it_shows() {
        let script = glrunner_gitlab_client::trace::os_release_script();
        let paths = vec!["glrunner-cache/".to_owned()];
        let log = job_log(&JobLog {
            runner: "r",
            image: "public.ecr.aws/docker/library/debian:bookworm-slim",
            script: &script,
            started: 1_700_000_000.0,
            script_secs: 1.0,
            cache: Some(CacheLog {
                key: "glrunner-a",
                restore: Restore {
                    hit: true,
                    time: Duration::from_secs(3),
                },
                save: Duration::from_secs(2),
                paths: &paths,
            }),
            shared_cache: true,
        });
        let os = OsRelease::from_trace(&log).unwrap();
        assert_eq!(
            (os.id.as_str(), os.version_id.as_deref()),
            ("debian", Some("12"))
        );
        let c = CacheTrace::from_trace(&log);
        assert_eq!(c.restore, Some(RestoreOutcome::Hit));
        assert_eq!(c.restore_secs, Some(3.0));
        assert_eq!(c.save, Some(SaveOutcome::Uploaded));
        assert_eq!(c.save_secs, Some(2.0));
    }

    #[test]
    fn a_pull_through_cache_is_cold_once_per_image() {
        let direct = SandboxImages::new(ImageModel::default());
        assert_eq!(direct.pull_extra("alpine:3.20"), Duration::ZERO);
        let cached = SandboxImages::new(ImageModel {
            pull_through_cache: true,
            ..ImageModel::default()
        });
        let cold = cached.model().cold_import;
        assert_eq!(cached.pull_extra("alpine:3.20"), cold);
        assert_eq!(cached.pull_extra("alpine:3.20"), Duration::ZERO);
        assert_eq!(cached.pull_extra("ubuntu:24.04"), cold);
        let stats = cached.stats();
        assert_eq!(stats.pulls["alpine:3.20"], ImagePulls { cold: 1, warm: 1 });
        assert_eq!(stats.pulls["ubuntu:24.04"], ImagePulls { cold: 1, warm: 0 });
    }

    #[test]
    fn the_wrong_image_fault_swaps_one_job_for_another_distro() {
        let images = SandboxImages::new(ImageModel {
            wrong_image_job: Some(2),
            ..ImageModel::default()
        });
        let alpine = glrunner_gitlab_client::ci::DEFAULT_IMAGE_MATRIX[0];
        assert_eq!(images.image_to_run(1, alpine), alpine);
        assert_ne!(images.image_to_run(2, alpine), alpine);
        assert_eq!(images.image_to_run(3, alpine), alpine);
        assert_eq!(images.stats().wrong_images.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_shared_key_costs_sts_calls_per_transfer_unless_cached() {
        let images = SandboxImages::new(ImageModel::default());
        assert!(!images.restore("k").hit);
        images.save("k", 4.0);
        assert!(images.restore("k").hit);
        images.save("k", 4.0);
        assert_eq!(images.stats().sts_calls, 4, "one per transfer");
        let cached = SandboxImages::new(ImageModel {
            sts_credential_caching: true,
            ..ImageModel::default()
        });
        for _ in 0..10 {
            cached.restore("k");
            cached.save("k", 4.0);
        }
        assert_eq!(cached.stats().sts_calls, 2, "one per key and direction");
    }
}
