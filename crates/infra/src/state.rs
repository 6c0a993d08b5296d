//! The local state file: a cache of what was created, written atomically under an exclusive lock.
//!
//! The cache is never the truth: apply and teardown always rediscover resources by tag. It
//! exists so a person (or a later phase) can see what a stack holds without AWS calls, and its
//! lock keeps two runs on the same stack from interleaving. It never holds secrets.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::resource::{Resource, ResourceKind};
use crate::spec::StackName;

/// One resource as cached in the state file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateEntry {
    /// Kind.
    pub kind: ResourceKind,
    /// Backend id.
    pub id: String,
    /// ARN, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
}

/// Contents of `<state-dir>/<stack>.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackState {
    /// Format version.
    pub version: u32,
    /// Stack name.
    pub stack: String,
    /// Region.
    pub region: String,
    /// Resources by step key.
    pub resources: BTreeMap<String, StateEntry>,
    /// Kubeconfig written for the cluster, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<PathBuf>,
}

/// An open, locked state file. The lock is released when this value is dropped.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    state: Mutex<StackState>,
    // Held for the lifetime of the value: the OS releases the lock on close.
    _lock: File,
}

fn state_err(path: &Path, message: impl Into<String>) -> Error {
    Error::State {
        path: path.display().to_string(),
        message: message.into(),
    }
}

impl StateFile {
    /// Path of the state file of a stack.
    pub fn path_for(dir: &Path, stack: &StackName) -> PathBuf {
        dir.join(format!("{stack}.json"))
    }

    /// Opens (creating the directory) and locks the state of `stack`. Fails at once with
    /// [`Error::Conflict`] if another run holds the lock.
    pub fn open(dir: &Path, stack: &StackName, region: &str) -> Result<Self> {
        fs::create_dir_all(dir)
            .map_err(|e| state_err(dir, format!("cannot create the state directory: {e}")))?;
        let path = Self::path_for(dir, stack);
        let lock_path = dir.join(format!("{stack}.lock"));
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| state_err(&lock_path, format!("cannot open the lock file: {e}")))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(Error::Conflict {
                    action: "lock the state file".into(),
                    resource: format!("stack {stack}"),
                    message: format!(
                        "another glrunner run holds {}; wait for it to finish",
                        lock_path.display()
                    ),
                });
            }
            Err(fs::TryLockError::Error(e)) => {
                return Err(state_err(&lock_path, format!("cannot lock: {e}")));
            }
        }
        let state = match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<StackState>(&bytes).map_err(|e| {
                state_err(
                    &path,
                    format!("cannot parse ({e}); it is only a cache: delete it and run again"),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => StackState {
                version: 1,
                stack: stack.to_string(),
                region: region.to_string(),
                ..StackState::default()
            },
            Err(e) => return Err(state_err(&path, format!("cannot read: {e}"))),
        };
        Ok(Self {
            path,
            state: Mutex::new(state),
            _lock: lock,
        })
    }

    /// The state file path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A copy of the current contents.
    pub fn snapshot(&self) -> StackState {
        self.state.lock().expect("state mutex").clone()
    }

    /// Records a resource under its step key and writes the file.
    pub fn record(&self, key: &str, resource: &Resource) -> Result<()> {
        let mut state = self.state.lock().expect("state mutex");
        state.resources.insert(
            key.to_string(),
            StateEntry {
                kind: resource.kind,
                id: resource.id.clone(),
                arn: resource.arn.clone(),
            },
        );
        self.write_locked(&state)
    }

    /// Forgets a resource and writes the file.
    pub fn forget(&self, key: &str) -> Result<()> {
        let mut state = self.state.lock().expect("state mutex");
        if state.resources.remove(key).is_some() {
            self.write_locked(&state)?;
        }
        Ok(())
    }

    /// Records the kubeconfig path and writes the file.
    pub fn set_kubeconfig(&self, path: &Path) -> Result<()> {
        let mut state = self.state.lock().expect("state mutex");
        state.kubeconfig = Some(path.to_path_buf());
        self.write_locked(&state)
    }

    /// Deletes the state file (after a complete teardown). The lock file stays.
    pub fn remove(&self) -> Result<()> {
        match fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(state_err(&self.path, format!("cannot remove: {e}"))),
        }
    }

    /// Atomic replace through a uniquely named temporary file (mode 0600, removed on error).
    fn write_locked(&self, state: &StackState) -> Result<()> {
        let bytes =
            serde_json::to_vec_pretty(state).map_err(|e| state_err(&self.path, e.to_string()))?;
        crate::kubeconfig::write_private(&self.path, &bytes)
            .map_err(|e| state_err(&self.path, format!("cannot write: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::ResourceState;

    fn res(id: &str) -> Resource {
        Resource {
            kind: ResourceKind::Vpc,
            id: id.into(),
            key: "vpc".into(),
            arn: None,
            state: ResourceState::Available,
        }
    }

    #[test]
    fn records_survive_reopen_and_lock_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let stack = StackName::new("st").unwrap();
        {
            let state = StateFile::open(dir.path(), &stack, "us-east-1").unwrap();
            state.record("vpc", &res("vpc-1")).unwrap();
            let second = StateFile::open(dir.path(), &stack, "us-east-1").unwrap_err();
            assert!(matches!(second, Error::Conflict { .. }), "{second}");
            assert!(!dir.path().join("st.json.tmp").exists());
        }
        let state = StateFile::open(dir.path(), &stack, "us-east-1").unwrap();
        assert_eq!(state.snapshot().resources["vpc"].id, "vpc-1");
        state.remove().unwrap();
        assert!(!StateFile::path_for(dir.path(), &stack).exists());
    }

    #[test]
    fn corrupt_file_names_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let stack = StackName::new("st").unwrap();
        fs::write(dir.path().join("st.json"), b"{not json").unwrap();
        let err = StateFile::open(dir.path(), &stack, "us-east-1")
            .unwrap_err()
            .to_string();
        assert!(err.contains("delete it and run again"), "{err}");
    }
}
