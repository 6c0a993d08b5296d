//! The job pods' disk and the runners' resource-overwrite ceilings, as a flow run sets them:
//! [`JobDisk`] is applied to every release's values ([`glrunner_runner_chart::job_disk`] renders
//! and validates them against Fargate's sizes), and the cost projection prices the largest job
//! pod it allows ([`crate::cost`]).

use glrunner_runner_chart::{EphemeralStorage, OverwriteCeilings, RunnerValues};
use serde::Serialize;

use crate::Error;

/// The build container's ephemeral storage and overwrite ceilings for every release of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct JobDisk {
    /// `ephemeral_storage_request` = `_limit` of the build container, e.g. `30Gi`; `None`:
    /// Fargate's included 20 GiB.
    pub ephemeral_storage: Option<String>,
    /// The `*_overwrite_max_allowed` ceilings (request = limit); empty: jobs cannot resize.
    pub ceilings: OverwriteCeilings,
}

impl JobDisk {
    /// Storage and ceilings, each request equal to its limit.
    pub fn new(
        ephemeral_storage: Option<&str>,
        cpu_max: Option<&str>,
        memory_max: Option<&str>,
        ephemeral_storage_max: Option<&str>,
    ) -> Self {
        Self {
            ephemeral_storage: ephemeral_storage.map(str::to_owned),
            ceilings: OverwriteCeilings::equal(cpu_max, memory_max, ephemeral_storage_max),
        }
    }

    /// Nothing set: the values keep Fargate's default disk and no overwrite.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// `values` with this disk and these ceilings (unchanged when [`Self::is_empty`]).
    pub fn apply(&self, values: RunnerValues) -> RunnerValues {
        if self.is_empty() {
            return values;
        }
        values
            .with_ephemeral_storage(self.ephemeral_storage.clone().map(EphemeralStorage::new))
            .with_overwrite_ceilings(self.ceilings.clone())
    }

    /// Checks the disk and the ceilings on `values` (the run's template with them applied):
    /// the first problem as invalid input naming the `runner` flag that sets it and the fix.
    pub fn validate(&self, values: &RunnerValues) -> Result<(), Error> {
        let issue = values.issues().into_iter().find(|i| {
            i.field == "executor.ephemeral_storage" || i.field.starts_with("executor.overwrite_max")
        });
        match issue {
            None => Ok(()),
            Some(i) => Err(Error::invalid(
                flag_for(&i.field),
                format!("{} (fix: {})", i.problem, i.fix),
            )),
        }
    }
}

/// The command-line flag that sets a job-disk field of the runner values.
pub fn flag_for(field: &str) -> &str {
    match field {
        "executor.ephemeral_storage" => "--ephemeral-storage",
        "executor.overwrite_max.cpu" => "--cpu-overwrite-max",
        "executor.overwrite_max.memory" => "--memory-overwrite-max",
        "executor.overwrite_max.ephemeral_storage" => "--ephemeral-storage-overwrite-max",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use glrunner_infra::{StackName, StackSpec};

    use super::*;
    use crate::FlowConfig;

    fn config(disk: JobDisk) -> FlowConfig {
        let spec = StackSpec::new(StackName::new("disk").unwrap(), "us-east-1");
        let mut c = FlowConfig::new(spec, "sandbox/loadtest", 10);
        c.job_disk = disk;
        c
    }

    #[test]
    fn bad_sizes_are_refused_before_anything_runs_naming_the_flag() {
        let e = config(JobDisk::new(Some("200Gi"), None, None, None))
            .validate("https://gitlab.example.com/")
            .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("--ephemeral-storage"), "{text}");
        assert!(text.contains("175"), "{text}");
        let e = config(JobDisk::new(None, Some("17"), None, None))
            .validate("https://gitlab.example.com/")
            .unwrap_err();
        assert!(e.to_string().contains("--cpu-overwrite-max"), "{e}");
        config(JobDisk::new(
            Some("30Gi"),
            Some("4"),
            Some("8Gi"),
            Some("60Gi"),
        ))
        .validate("https://gitlab.example.com/")
        .unwrap();
    }
}
