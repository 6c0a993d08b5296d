//! Job disk and the ceilings of the Kubernetes executor's resource overwrites, sized for Fargate.
//!
//! GitLab Runner's settings (docs `docs/executors/kubernetes/_index.md`, "Configuration
//! settings": "CPU requests and limits", "Memory requests and limits", "Storage requests and
//! limits"; `common/config.go`, `KubernetesConfig`, the `toml:` tags):
//!
//! - `ephemeral_storage_request` / `ephemeral_storage_limit`: "The ephemeral storage request
//!   given to build containers" / "The ephemeral storage limit for build containers";
//! - `cpu_request_overwrite_max_allowed`, `cpu_limit_overwrite_max_allowed`,
//!   `memory_request_overwrite_max_allowed`, `memory_limit_overwrite_max_allowed`,
//!   `ephemeral_storage_request_overwrite_max_allowed`,
//!   `ephemeral_storage_limit_overwrite_max_allowed`: "The maximum amount that the ... can be
//!   written to for build containers. When empty, it disables the ... overwrite feature." A job
//!   overwrites with `KUBERNETES_CPU_REQUEST`, `KUBERNETES_CPU_LIMIT`, `KUBERNETES_MEMORY_*` and
//!   `KUBERNETES_EPHEMERAL_STORAGE_*` (docs, "Overwrite container resources"), and a value above
//!   its ceiling fails the job (`executors/kubernetes/overwrites.go`,
//!   `evaluateMaxResourceOverwrite`).
//!
//! Fargate's side (the `glrunner-fargate` crate's tables, not a second copy): a pod's CPU and
//! memory requests round up to one of [`FargateSize::all`] (at most 16 vCPU / 120 GB, EKS User
//! Guide "Fargate Pod configuration"), requests must equal limits ("All Amazon EKS Fargate Pods
//! run with guaranteed priority, so the requested CPU and memory must be equal to the limit for
//! all of the containers", same page), and its ephemeral storage is 20 GiB by default and up to
//! 175 GiB ([`glrunner_fargate::storage`]). So glrunner renders request = limit for storage and
//! equal request/limit ceilings, and refuses a ceiling that admits a job pod Fargate cannot run.

use std::collections::BTreeMap;

use glrunner_fargate::storage::{self, MAX_STORAGE_GIB};
use serde::{Deserialize, Serialize};

use crate::error::Invalid;
use crate::fargate::{FARGATE_OVERHEAD_MIB, FargateSize};
use crate::validate;
use crate::values::KubernetesExecutor;

/// The build container's ephemeral storage: `ephemeral_storage_request` and
/// `ephemeral_storage_limit`, which validation requires to be equal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EphemeralStorage {
    /// `ephemeral_storage_request`, e.g. `"30Gi"`.
    pub request: String,
    /// `ephemeral_storage_limit`, e.g. `"30Gi"`.
    pub limit: String,
}

impl EphemeralStorage {
    /// Request = limit = `quantity`.
    pub fn new(quantity: impl Into<String>) -> Self {
        let q = quantity.into();
        Self {
            request: q.clone(),
            limit: q,
        }
    }
}

/// The `*_overwrite_max_allowed` ceilings of the build container. `None`: the overwrite is
/// disabled (the runner ignores the job's variable). Validation requires each request ceiling
/// to equal its limit ceiling.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverwriteCeilings {
    /// `cpu_request_overwrite_max_allowed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_request: Option<String>,
    /// `cpu_limit_overwrite_max_allowed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_limit: Option<String>,
    /// `memory_request_overwrite_max_allowed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_request: Option<String>,
    /// `memory_limit_overwrite_max_allowed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit: Option<String>,
    /// `ephemeral_storage_request_overwrite_max_allowed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral_storage_request: Option<String>,
    /// `ephemeral_storage_limit_overwrite_max_allowed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral_storage_limit: Option<String>,
}

impl OverwriteCeilings {
    /// Request ceiling = limit ceiling for each resource given.
    pub fn equal(cpu: Option<&str>, memory: Option<&str>, ephemeral_storage: Option<&str>) -> Self {
        let own = |v: Option<&str>| v.map(str::to_owned);
        Self {
            cpu_request: own(cpu),
            cpu_limit: own(cpu),
            memory_request: own(memory),
            memory_limit: own(memory),
            ephemeral_storage_request: own(ephemeral_storage),
            ephemeral_storage_limit: own(ephemeral_storage),
        }
    }

    /// No ceiling set: every resource overwrite is disabled.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// Each ceiling by the CI variable it bounds (`KUBERNETES_CPU_REQUEST` →
    /// `cpu_request_overwrite_max_allowed`'s value), as the CI-file lint reads them.
    pub fn by_variable(&self) -> BTreeMap<String, String> {
        self.entries()
            .into_iter()
            .filter_map(|(var, _, v)| v.map(|v| (var.to_owned(), v.to_owned())))
            .collect()
    }

    /// (CI variable, config.toml key, value) for every ceiling.
    fn entries(&self) -> [(&'static str, &'static str, Option<&str>); 6] {
        [
            (
                "KUBERNETES_CPU_REQUEST",
                "cpu_request_overwrite_max_allowed",
                self.cpu_request.as_deref(),
            ),
            (
                "KUBERNETES_CPU_LIMIT",
                "cpu_limit_overwrite_max_allowed",
                self.cpu_limit.as_deref(),
            ),
            (
                "KUBERNETES_MEMORY_REQUEST",
                "memory_request_overwrite_max_allowed",
                self.memory_request.as_deref(),
            ),
            (
                "KUBERNETES_MEMORY_LIMIT",
                "memory_limit_overwrite_max_allowed",
                self.memory_limit.as_deref(),
            ),
            (
                "KUBERNETES_EPHEMERAL_STORAGE_REQUEST",
                "ephemeral_storage_request_overwrite_max_allowed",
                self.ephemeral_storage_request.as_deref(),
            ),
            (
                "KUBERNETES_EPHEMERAL_STORAGE_LIMIT",
                "ephemeral_storage_limit_overwrite_max_allowed",
                self.ephemeral_storage_limit.as_deref(),
            ),
        ]
    }
}

/// The largest job pod the executor's defaults and overwrite ceilings allow (build at its
/// ceiling, helper at its default; no services): what a job may make Fargate bill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct JobPodCeiling {
    /// The Fargate size of that pod.
    pub size: FargateSize,
    /// Its ephemeral-storage requests, MiB (0: Fargate's included 20 GiB).
    pub storage_mib: u64,
}

impl JobPodCeiling {
    /// Whole GB of ephemeral storage Fargate bills for it beyond the included 20 GiB.
    pub fn billed_storage_gb(&self) -> u64 {
        storage::billed_storage_gb(self.storage_mib)
    }
}

/// Parses an ephemeral-storage quantity into MiB (rounded up): at least 1Mi, at most 175 GiB.
pub fn storage_mib(field: &str, q: &str) -> Result<u64, Invalid> {
    let fix = format!(
        "use a number with a unit, e.g. \"30Gi\" (at most {MAX_STORAGE_GIB}Gi: a Fargate pod has 20 GiB \
         by default, configurable up to {MAX_STORAGE_GIB} GiB)"
    );
    let mib = glrunner_fargate::quantity::memory_mib(q).map_err(|e| {
        Invalid::new(
            field,
            format!("{q:?} is not a storage quantity: {}", e.reason),
            fix.clone(),
        )
    })?;
    if mib == 0 || !storage::fits_fargate(mib) {
        return Err(Invalid::new(
            field,
            format!(
                "{q:?} is outside the ephemeral storage a Fargate pod can request (1Mi to {MAX_STORAGE_GIB}Gi)"
            ),
            fix,
        ));
    }
    Ok(mib)
}

impl KubernetesExecutor {
    /// The build container's ephemeral-storage request in MiB (0 when unset or unparsable).
    pub fn ephemeral_storage_mib(&self) -> u64 {
        self.ephemeral_storage
            .as_ref()
            .and_then(|s| glrunner_fargate::quantity::memory_mib(&s.request).ok())
            .unwrap_or(0)
    }

    /// The largest job pod the defaults and the overwrite ceilings allow; `None` when a
    /// quantity does not parse or the pod exceeds the largest Fargate size (validation says which).
    pub fn largest_job_pod(&self) -> Option<JobPodCeiling> {
        let parse_cpu = |q: &str| validate::cpu_millis("", q).ok().map(u64::from);
        let parse_mem = |q: &str| validate::memory_mib("", q).ok();
        let larger = |default: u64, ceiling: Option<&str>, parse: &dyn Fn(&str) -> Option<u64>| {
            Some(match ceiling {
                Some(c) => default.max(parse(c)?),
                None => default,
            })
        };
        let cpu = larger(
            parse_cpu(&self.build.cpu)?,
            self.overwrite_max.cpu_request.as_deref(),
            &parse_cpu,
        )?;
        let memory = larger(
            parse_mem(&self.build.memory)?,
            self.overwrite_max.memory_request.as_deref(),
            &parse_mem,
        )?;
        let storage_mib = larger(
            self.ephemeral_storage_mib(),
            self.overwrite_max.ephemeral_storage_request.as_deref(),
            &|q| storage_mib("", q).ok(),
        )?;
        let size = FargateSize::for_requests(
            cpu + parse_cpu(&self.helper.cpu)?,
            memory + parse_mem(&self.helper.memory)?,
        )?;
        Some(JobPodCeiling { size, storage_mib })
    }

    /// The job disk's and the ceilings' problems, each naming the field and the fix.
    pub(crate) fn job_disk_issues(&self) -> Vec<Invalid> {
        let mut issues = Vec::new();
        const GUARANTEED: &str = "Fargate runs every pod as Guaranteed and sizes it by its requests: \
             requests must equal limits (EKS User Guide, Fargate Pod configuration)";
        if let Some(disk) = &self.ephemeral_storage {
            let field = "executor.ephemeral_storage";
            let request = storage_mib(field, &disk.request).map_err(|i| issues.push(i));
            let limit = if disk.limit == disk.request {
                request
            } else {
                storage_mib(field, &disk.limit).map_err(|i| issues.push(i))
            };
            if let (Ok(r), Ok(l)) = (request, limit)
                && r != l
            {
                issues.push(Invalid::new(
                    field,
                    format!(
                        "ephemeral_storage_request {:?} differs from ephemeral_storage_limit {:?}; {GUARANTEED}",
                        disk.request, disk.limit
                    ),
                    format!("set both to {:?}", disk.limit),
                ));
            }
        }
        let c = &self.overwrite_max;
        let pairs = [
            ("cpu", &c.cpu_request, &c.cpu_limit),
            ("memory", &c.memory_request, &c.memory_limit),
            (
                "ephemeral_storage",
                &c.ephemeral_storage_request,
                &c.ephemeral_storage_limit,
            ),
        ];
        for (what, request, limit) in pairs {
            let field = format!("executor.overwrite_max.{what}");
            if request != limit {
                issues.push(Invalid::new(
                    &field,
                    format!(
                        "{what}_request_overwrite_max_allowed ({}) and {what}_limit_overwrite_max_allowed ({}) differ: \
                         a job could raise one without the other; {GUARANTEED}",
                        request.as_deref().unwrap_or("unset"),
                        limit.as_deref().unwrap_or("unset"),
                    ),
                    "set both ceilings to the same quantity (or neither)",
                ));
            }
            let distinct = if request == limit {
                None
            } else {
                limit.as_ref()
            };
            for q in request.iter().chain(distinct) {
                let parsed = match what {
                    "cpu" => validate::cpu_millis(&field, q).map(u64::from),
                    "memory" => validate::memory_mib(&field, q),
                    _ => storage_mib(&field, q),
                };
                issues.extend(parsed.err());
            }
        }
        if !issues.is_empty() {
            return issues;
        }
        // The largest pod the ceilings admit must be one Fargate runs.
        let parse_cpu = |q: &str| validate::cpu_millis("", q).ok().map(u64::from);
        let parse_mem = |q: &str| validate::memory_mib("", q).ok();
        let (Some(helper_cpu), Some(helper_mem)) =
            (parse_cpu(&self.helper.cpu), parse_mem(&self.helper.memory))
        else {
            return issues; // the helper's own check reports it
        };
        let largest = FargateSize::LARGEST;
        if let Some(cpu) = c.cpu_request.as_deref().and_then(parse_cpu)
            && cpu + helper_cpu > u64::from(largest.vcpu_millis)
        {
            let max = u64::from(largest.vcpu_millis) - helper_cpu;
            issues.push(Invalid::new(
                "executor.overwrite_max.cpu",
                format!(
                    "a job at this ceiling plus the {}m helper needs {}m, beyond the largest Fargate pod ({largest})",
                    helper_cpu,
                    cpu + helper_cpu
                ),
                format!("use at most {max}m"),
            ));
        }
        if let Some(mem) = c.memory_request.as_deref().and_then(parse_mem)
            && mem + helper_mem + FARGATE_OVERHEAD_MIB > largest.memory_mib
        {
            let max = largest.memory_mib - FARGATE_OVERHEAD_MIB - helper_mem;
            issues.push(Invalid::new(
                "executor.overwrite_max.memory",
                format!(
                    "a job at this ceiling plus the {helper_mem}Mi helper and Fargate's {FARGATE_OVERHEAD_MIB}Mi \
                     needs {}Mi, beyond the largest Fargate pod ({largest})",
                    mem + helper_mem + FARGATE_OVERHEAD_MIB
                ),
                format!("use at most {max}Mi"),
            ));
        }
        let disk = self.ephemeral_storage_mib();
        if let Some(max) = c.ephemeral_storage_request.as_deref()
            && let Ok(max_mib) = storage_mib("", max)
            && max_mib < disk
        {
            issues.push(Invalid::new(
                "executor.overwrite_max.ephemeral_storage",
                format!(
                    "{max} is below the job's own ephemeral storage ({}Mi): no job could keep the default",
                    disk
                ),
                "use a ceiling at least as large as --ephemeral-storage",
            ));
        }
        issues
    }

    /// The `[runners.kubernetes]` keys of the job disk and the ceilings: (key, value).
    pub(crate) fn job_disk_toml(&self) -> Vec<(&'static str, String)> {
        let mut keys = Vec::new();
        if let Some(disk) = &self.ephemeral_storage {
            keys.push(("ephemeral_storage_request", disk.request.clone()));
            keys.push(("ephemeral_storage_limit", disk.limit.clone()));
        }
        for (_, key, value) in self.overwrite_max.entries() {
            if let Some(v) = value {
                keys.push((key, v.to_owned()));
            }
        }
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RunnerValues;

    fn values() -> RunnerValues {
        RunnerValues::new("https://gitlab.example.com/").with_concurrent(10)
    }

    fn fields(v: &RunnerValues) -> Vec<String> {
        v.issues().into_iter().map(|i| i.field).collect()
    }

    #[test]
    fn storage_and_ceilings_render_into_the_runner_config() {
        let v = values()
            .with_ephemeral_storage(Some(EphemeralStorage::new("30Gi")))
            .with_overwrite_ceilings(OverwriteCeilings::equal(
                Some("2"),
                Some("4Gi"),
                Some("50Gi"),
            ));
        v.validate().unwrap();
        let table: toml::Table = toml::from_str(&v.runners_config()).unwrap();
        let k = &table["runners"][0]["kubernetes"];
        for (key, want) in [
            ("ephemeral_storage_request", "30Gi"),
            ("ephemeral_storage_limit", "30Gi"),
            ("cpu_request_overwrite_max_allowed", "2"),
            ("cpu_limit_overwrite_max_allowed", "2"),
            ("memory_request_overwrite_max_allowed", "4Gi"),
            ("memory_limit_overwrite_max_allowed", "4Gi"),
            ("ephemeral_storage_request_overwrite_max_allowed", "50Gi"),
            ("ephemeral_storage_limit_overwrite_max_allowed", "50Gi"),
        ] {
            assert_eq!(k[key].as_str(), Some(want), "{key} in {k}");
        }
        let largest = v.executor.largest_job_pod().unwrap();
        // 2 vCPU + 250m helper → 4 vCPU; 4Gi + 256Mi + 256Mi → 8 GB at 4 vCPU.
        assert_eq!(
            largest.size,
            FargateSize::for_requests(2250, 4096 + 256).unwrap()
        );
        assert_eq!(largest.storage_mib, 50 * 1024);
        assert_eq!(largest.billed_storage_gb(), 40); // 50 + 5 (10%) + 5 − 20 included
        assert_eq!(
            v.executor.overwrite_max.by_variable()["KUBERNETES_EPHEMERAL_STORAGE_LIMIT"],
            "50Gi"
        );
    }

    #[test]
    fn nothing_set_renders_nothing_and_the_largest_pod_is_the_default() {
        let v = values();
        let config = v.runners_config();
        assert!(!config.contains("ephemeral_storage"), "{config}");
        assert!(!config.contains("overwrite_max_allowed"), "{config}");
        let largest = v.executor.largest_job_pod().unwrap();
        assert_eq!(Some(largest.size), v.executor.job_pod_size(0));
        assert_eq!(largest.billed_storage_gb(), 0);
    }

    #[test]
    fn storage_beyond_175_gib_or_unequal_is_refused() {
        let big = values().with_ephemeral_storage(Some(EphemeralStorage::new("176Gi")));
        let e = big.validate().unwrap_err();
        assert_eq!(fields(&big), ["executor.ephemeral_storage"]);
        assert!(e.to_string().contains("175"), "{e}");
        let mut unequal = values();
        unequal.executor.ephemeral_storage = Some(EphemeralStorage {
            request: "10Gi".into(),
            limit: "30Gi".into(),
        });
        let e = unequal.validate().unwrap_err();
        assert!(e.to_string().contains("requests must equal limits"), "{e}");
        assert!(e.to_string().contains("set both to \"30Gi\""), "{e}");
        let junk = values().with_ephemeral_storage(Some(EphemeralStorage::new("lots")));
        assert_eq!(fields(&junk), ["executor.ephemeral_storage"]);
        values()
            .with_ephemeral_storage(Some(EphemeralStorage::new("175Gi")))
            .validate()
            .unwrap();
    }

    #[test]
    fn ceilings_must_fit_the_largest_fargate_pod_and_pair_up() {
        let cpu =
            values().with_overwrite_ceilings(OverwriteCeilings::equal(Some("16"), None, None));
        let e = cpu.validate().unwrap_err();
        assert_eq!(fields(&cpu), ["executor.overwrite_max.cpu"]);
        assert!(e.to_string().contains("use at most 15750m"), "{e}");
        cpu.clone()
            .with_overwrite_ceilings(OverwriteCeilings::equal(Some("15750m"), None, None))
            .validate()
            .unwrap();
        let mem =
            values().with_overwrite_ceilings(OverwriteCeilings::equal(None, Some("120Gi"), None));
        let e = mem.validate().unwrap_err();
        assert_eq!(fields(&mem), ["executor.overwrite_max.memory"]);
        // 120 GiB − 256 MiB overhead − 256 MiB helper.
        assert!(e.to_string().contains("use at most 122368Mi"), "{e}");
        let disk =
            values().with_overwrite_ceilings(OverwriteCeilings::equal(None, None, Some("200Gi")));
        assert_eq!(fields(&disk), ["executor.overwrite_max.ephemeral_storage"]);
        let mut half = values();
        half.executor.overwrite_max.cpu_request = Some("2".into());
        let e = half.validate().unwrap_err();
        assert_eq!(fields(&half), ["executor.overwrite_max.cpu"]);
        assert!(
            e.to_string()
                .contains("cpu_limit_overwrite_max_allowed (unset)"),
            "{e}"
        );
        // 1 vCPU with 59 GiB: Fargate rounds the pod up to 8 vCPU / 60 GB, which runs.
        values()
            .with_overwrite_ceilings(OverwriteCeilings::equal(Some("1"), Some("59Gi"), None))
            .validate()
            .unwrap();
        let below = values()
            .with_ephemeral_storage(Some(EphemeralStorage::new("40Gi")))
            .with_overwrite_ceilings(OverwriteCeilings::equal(None, None, Some("30Gi")));
        assert_eq!(fields(&below), ["executor.overwrite_max.ephemeral_storage"]);
    }
}
