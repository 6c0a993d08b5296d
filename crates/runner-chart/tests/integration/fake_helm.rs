//! A fake `helm` executable: records argv, environment and the values files it is handed, and
//! answers `upgrade`/`status`/`list`/`uninstall`/`history`/`rollback` from a small state
//! directory. A release can be left pending, as a killed helm leaves it: `upgrade` then answers
//! Helm's errPending (helm v4.2.4 pkg/action/action.go:73, pkg/action/upgrade.go:246-248) until a
//! `rollback` or an `uninstall`.

use std::path::{Path, PathBuf};

/// One recorded invocation.
#[derive(Debug, Clone)]
pub struct Call {
    pub argv: Vec<String>,
    pub env: String,
    /// (path it was given, content at call time, octal mode at call time)
    pub values: Option<(PathBuf, String, String)>,
}

impl Call {
    pub fn has(&self, arg: &str) -> bool {
        self.argv.iter().any(|a| a == arg)
    }

    /// The value following flag `flag`.
    pub fn flag(&self, flag: &str) -> Option<&str> {
        self.argv
            .iter()
            .position(|a| a == flag)
            .and_then(|i| self.argv.get(i + 1))
            .map(String::as_str)
    }

    /// Positional arguments (flags and their values removed).
    pub fn positional(&self) -> Vec<&str> {
        const WITH_VALUE: [&str; 12] = [
            "--namespace",
            "--values",
            "-f",
            "--version",
            "--timeout",
            "--history-max",
            "--output",
            "--kubeconfig",
            "--kube-context",
            "--repo",
            "--max",
            "--filter",
        ];
        let mut out = Vec::new();
        let mut skip = false;
        for a in &self.argv {
            if skip {
                skip = false;
            } else if WITH_VALUE.contains(&a.as_str()) {
                skip = true;
            } else if !a.starts_with("--") {
                out.push(a.as_str());
            }
        }
        out
    }
}

pub struct FakeHelm {
    pub dir: tempfile::TempDir,
}

const SCRIPT: &str = r#"#!/bin/sh
STATE='@STATE@'
mkdir -p "$STATE/calls" "$STATE/releases"
n=$(ls "$STATE/calls" | wc -l)
call="$STATE/calls/$(printf '%04d' "$n")"
mkdir -p "$call"
printf '%s\n' "$@" > "$call/argv"
env > "$call/env"
ns=default; install=0; values=""; positional=""; all_ns=0; prev=""; max=256; filter=""
for a in "$@"; do
  case "$prev" in
    --namespace) ns="$a"; prev=""; continue;;
    --values|-f) values="$a"; prev=""; continue;;
    --max) max="$a"; prev=""; continue;;
    --filter) filter="$a"; prev=""; continue;;
    --version|--timeout|--history-max|--output|--kubeconfig|--kube-context|--repo) prev=""; continue;;
  esac
  case "$a" in
    --namespace|--values|-f|--version|--timeout|--history-max|--output|--kubeconfig|--kube-context|--repo|--max|--filter) prev="$a";;
    --install) install=1;;
    --all-namespaces) all_ns=1;;
    -*) ;;
    *) positional="$positional $a";;
  esac
done
if [ -n "$values" ]; then
  cp "$values" "$call/values.yaml"
  stat -c %a "$values" > "$call/values.mode"
  printf '%s' "$values" > "$call/values.path"
fi
# `helm version` (asked once per client) never consumes a planned failure.
case "$positional" in " version"*) is_version=1;; *) is_version=0;; esac
if [ -f "$STATE/fail-next" ] && [ "$is_version" = 0 ]; then
  cat "$STATE/fail-next" >&2
  rm -f "$STATE/fail-next"
  exit 1
fi
set -- $positional
sub="$1"
# Like helm: install/upgrade print the chart, `status` strips it.
release_json() {
  printf '{"name":"%s","namespace":"%s","version":%s,"info":{"status":"deployed","description":"fake"},"chart":{"metadata":{"name":"gitlab-runner","version":"0.86.0","appVersion":"18.9.0"}}}\n' "$1" "$2" "$3"
}
status_json() {
  state=deployed; since=""
  if [ -f "$STATE/pending/$2/$1" ]; then state=$(sed -n 1p "$STATE/pending/$2/$1"); since=$(sed -n 2p "$STATE/pending/$2/$1"); fi
  printf '{"name":"%s","namespace":"%s","version":%s,"info":{"status":"%s","last_deployed":"%s","description":"fake"}}\n' "$1" "$2" "$3" "$state" "$since"
}
case "$sub" in
  version) cat "$STATE/version" 2>/dev/null || echo 'v3.16.0+gfake';;
  get)
    name="$3"; f="$STATE/releases/$ns/$name"
    if [ "$2" != metadata ]; then echo "fake helm: unknown get $2" >&2; exit 64; fi
    if [ -f "$f" ]; then printf '{"name":"%s","chart":"gitlab-runner","version":"0.86.0","appVersion":"18.9.0","namespace":"%s","revision":%s,"status":"deployed"}\n' "$name" "$ns" "$(cat "$f")";
    else echo "Error: release: not found" >&2; exit 1; fi;;
  repo) echo "fake: repo $2 ok";;
  upgrade)
    name="$2"; f="$STATE/releases/$ns/$name"
    if [ -f "$STATE/pending/$ns/$name" ]; then
      echo "Error: UPGRADE FAILED: another operation (install/upgrade/rollback) is in progress" >&2; exit 1
    fi
    if [ -f "$f" ]; then rev=$(( $(cat "$f") + 1 ));
    elif [ "$install" = 1 ]; then rev=1;
    else echo "Error: UPGRADE FAILED: \"$name\" has no deployed releases" >&2; exit 1; fi
    mkdir -p "$STATE/releases/$ns"; echo "$rev" > "$f"
    release_json "$name" "$ns" "$rev";;
  status)
    name="$2"; f="$STATE/releases/$ns/$name"
    if [ -f "$f" ]; then status_json "$name" "$ns" "$(cat "$f")";
    else echo "Error: release: not found" >&2; exit 1; fi;;
  history)
    # The newest revision pending (if left so), the one before it deployed, older ones superseded.
    name="$2"; f="$STATE/releases/$ns/$name"
    if [ ! -f "$f" ]; then echo "Error: release: not found" >&2; exit 1; fi
    cur=$(cat "$f"); sep=""; printf '['
    for rev in $(seq 1 "$cur"); do
      state=superseded
      if [ "$rev" = "$cur" ]; then
        state=deployed
        [ -f "$STATE/pending/$ns/$name" ] && state=$(sed -n 1p "$STATE/pending/$ns/$name")
      elif [ "$rev" = $((cur - 1)) ] && [ -f "$STATE/pending/$ns/$name" ]; then state=deployed; fi
      printf '%s{"revision":%s,"updated":"2000-01-01T00:00:00Z","status":"%s","chart":"gitlab-runner-0.86.0","app_version":"18.9.0","description":"fake"}' "$sep" "$rev" "$state"
      sep=","
    done
    printf ']\n';;
  rollback)
    name="$2"; f="$STATE/releases/$ns/$name"
    if [ ! -f "$f" ]; then echo "Error: release: not found" >&2; exit 1; fi
    rm -f "$STATE/pending/$ns/$name"; echo $(( $(cat "$f") + 1 )) > "$f"
    echo "Rollback was a success! Happy Helming!";;
  uninstall)
    name="$2"; f="$STATE/releases/$ns/$name"
    rm -f "$STATE/pending/$ns/$name"
    if [ -f "$f" ]; then rm -f "$f"; echo "release \"$name\" uninstalled";
    else echo "Error: uninstall: Release not loaded: $name: release: not found" >&2; exit 1; fi;;
  list)
    # Helm's --max defaults to 256 (0 = no limit); --filter is a regular expression on names.
    sep=""; printf '['; shown=0
    for d in "$STATE"/releases/*; do
      [ -d "$d" ] || continue
      rns=$(basename "$d")
      if [ "$all_ns" = 0 ] && [ "$rns" != "$ns" ]; then continue; fi
      for f in "$d"/*; do
        [ -f "$f" ] || continue
        rname=$(basename "$f")
        if [ -n "$filter" ] && ! printf '%s' "$rname" | grep -Eq "$filter"; then continue; fi
        if [ "$max" != 0 ] && [ "$shown" -ge "$max" ]; then break 2; fi
        printf '%s{"name":"%s","namespace":"%s","revision":"%s","updated":"now","status":"deployed","chart":"gitlab-runner-0.86.0","app_version":"18.9.0"}' "$sep" "$rname" "$rns" "$(cat "$f")"
        sep=","; shown=$((shown + 1))
      done
    done
    printf ']\n';;
  *) echo "fake helm: unknown command $sub" >&2; exit 64;;
esac
"#;

impl FakeHelm {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state");
        std::fs::create_dir_all(&state).expect("state dir");
        let script = SCRIPT.replace("@STATE@", &state.display().to_string());
        let path = dir.path().join("helm");
        std::fs::write(&path, script).expect("write fake helm");
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        Self { dir }
    }

    pub fn program(&self) -> PathBuf {
        self.dir.path().join("helm")
    }

    /// A kubeconfig file helm is pointed at (the fake never reads it).
    pub fn kubeconfig(&self) -> PathBuf {
        let p = self.dir.path().join("kubeconfig");
        if !p.exists() {
            std::fs::write(&p, "apiVersion: v1\nkind: Config\n").expect("kubeconfig");
        }
        p
    }

    /// `helm version --short` answers this from now on.
    pub fn set_version(&self, short: &str) {
        std::fs::write(self.dir.path().join("state/version"), format!("{short}\n"))
            .expect("version");
    }

    /// Puts `count` deployed releases `r-0001..` into `namespace`, as if installed earlier.
    pub fn seed_releases(&self, namespace: &str, count: usize) {
        let dir = self.dir.path().join("state/releases").join(namespace);
        std::fs::create_dir_all(&dir).expect("releases dir");
        for i in 1..=count {
            std::fs::write(dir.join(format!("r-{i:04}")), "1\n").expect("release");
        }
    }

    /// Leaves release `name` in `namespace` in `state` (`pending-install`, `pending-upgrade`, ...)
    /// since `since` (RFC 3339), as a helm killed during that operation leaves it.
    pub fn set_pending(&self, namespace: &str, name: &str, state: &str, since: &str) {
        let dir = self.dir.path().join("state/pending").join(namespace);
        std::fs::create_dir_all(&dir).expect("pending dir");
        std::fs::write(dir.join(name), format!("{state}\n{since}\n")).expect("pending");
    }

    /// The next helm call fails with this stderr.
    pub fn fail_next(&self, stderr: &str) {
        std::fs::write(self.dir.path().join("state/fail-next"), stderr).expect("fail-next");
    }

    pub fn calls(&self) -> Vec<Call> {
        let calls_dir = self.dir.path().join("state/calls");
        let mut dirs: Vec<PathBuf> = match std::fs::read_dir(&calls_dir) {
            Ok(rd) => rd.map(|e| e.expect("entry").path()).collect(),
            Err(_) => return Vec::new(),
        };
        dirs.sort();
        dirs.iter().map(|d| read_call(d)).collect()
    }

    /// Every byte the fake saw: argv, environment and values files of every call.
    pub fn everything_seen(&self) -> String {
        self.calls()
            .iter()
            .map(|c| {
                format!(
                    "{}\n{}\n{}",
                    c.argv.join("\n"),
                    c.env,
                    c.values.as_ref().map(|v| v.1.as_str()).unwrap_or("")
                )
            })
            .collect()
    }
}

fn read_call(d: &Path) -> Call {
    let argv = std::fs::read_to_string(d.join("argv"))
        .expect("argv")
        .lines()
        .map(str::to_string)
        .collect();
    let env = std::fs::read_to_string(d.join("env")).expect("env");
    let values = std::fs::read_to_string(d.join("values.path"))
        .ok()
        .map(|p| {
            (
                PathBuf::from(p),
                std::fs::read_to_string(d.join("values.yaml")).expect("values copy"),
                std::fs::read_to_string(d.join("values.mode"))
                    .expect("values mode")
                    .trim()
                    .to_string(),
            )
        });
    Call { argv, env, values }
}
