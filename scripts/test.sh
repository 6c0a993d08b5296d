#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs and starts what the tests need (moto with
# the EKS shim; a kube-apiserver + etcd built from Debian's sources, cached outside the
# clone; Helm's real engine from PyPI's helm-python-sdk), runs `cargo test --workspace --all-features` (every crate's mocks included), and
# stops the servers again.
#
# Build outputs are cached outside the clone (CARGO_TARGET_DIR, default
# /var/cache/glrunner/target when writable), so repeated runs rebuild only what changed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

cache=${GLRUNNER_CACHE:-/var/cache/glrunner}
if mkdir -p "$cache" 2>/dev/null && [ -w "$cache" ]; then
  export GLRUNNER_CACHE=$cache
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$cache/target}
fi
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
# Incremental state is several GB per edit of the workspace and buys nothing on a clean CI
# clone; without it the cache stays at the size of the built artifacts.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}

run_dir=$(mktemp -d /tmp/glrunner-test.XXXXXX)
# Every process this run starts inherits the marker, so the leftover check below counts only
# this run's servers, not those of another checkout's run on the same machine.
export GLRUNNER_TEST_RUN_DIR=$run_dir
cleanup() {
  "$root/scripts/moto.sh" stop "$run_dir/moto" || true
  "$root/scripts/kube-apiserver.sh" stop "$run_dir/kube" >/dev/null 2>&1 || true
  rm -rf "$run_dir"
}
trap cleanup EXIT

log() { echo "[test.sh] $*" >&2; }

# Start the slow, independent preparations side by side: the apiserver build (first run only,
# ~10 min), moto's install, and the Rust build of every test binary.
log "preparing kube-apiserver (cached under $GLRUNNER_CACHE/kube after the first run)"
"$root/scripts/kube-apiserver.sh" build > "$run_dir/kube-build.out" 2>&1 &
kube_build=$!
log "installing moto"
"$root/scripts/moto.sh" install
log "installing Helm's engine (PyPI helm-python-sdk behind a helm-compatible CLI, cached under $GLRUNNER_CACHE)"
# Each start's exit status is checked and its variable required; the tests then fail (never
# skip) when a server or tool they need is missing.
. "$root/scripts/servers.sh"
export GLRUNNER_TEST_REQUIRE_SERVERS=1
start_server helm-sdk GLRUNNER_TEST_HELM "$root/scripts/helm-sdk.sh" install || exit 1
log "building the workspace and its tests"
cargo test --workspace --all-features --no-run --quiet
if ! wait "$kube_build"; then
  cat "$run_dir/kube-build.out" >&2
  log "kube-apiserver build failed"
  exit 1
fi
cat "$run_dir/kube-build.out" >&2
# After the apiserver build: both use apt-get, which allows one installer at a time.
log "installing chromium, xmllint and the JUnit schema (load-test artifact tests)"
report_tools=$("$root/scripts/report-tools.sh" install) || { log "report tools did not install"; exit 1; }
for line in $report_tools; do export "$line"; done
log "report tools: $report_tools"

start_server moto GLRUNNER_TEST_MOTO_URL "$root/scripts/moto.sh" start "$run_dir/moto" || exit 1
# --rbac: the admin keeps full access; the janitor's RBAC test acts as a ServiceAccount with least privilege.
# --eks-webhook: EKS tokens are reviewed by the moto shim, which lets in the principals that have an
# access entry on a moto cluster pointed at this apiserver (the e2e test with provisioning).
start_server kube-apiserver GLRUNNER_TEST_KUBECONFIG "$root/scripts/kube-apiserver.sh" start "$run_dir/kube" \
  --rbac --eks-webhook "$GLRUNNER_TEST_MOTO_URL/glrunner-shim/tokenreview" || exit 1

cargo test --workspace --all-features "$@"

# The fault suite's benchmark-style summary (cases, faults injected, leftovers, duplicates): the
# same suite the flow tests assert on, printed for the CI log; it fails the run on a leftover.
log "fault suite summary"
"${CARGO_TARGET_DIR:-$root/target}/debug/examples/fault_suite"

# Every test that starts a server stops it, also when it fails: once this script has stopped its
# own servers, a kube-apiserver, etcd, moto or GitLab double still running fails the run.
cleanup
trap - EXIT
left=""
for pid in $(pgrep -f 'kube-apiserver|etcd --data-dir|moto_shim|gitlab_double' || true); do
  if tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null | grep -qxF "GLRUNNER_TEST_RUN_DIR=$run_dir"; then
    left="$left$(ps -o pid=,args= -p "$pid")"$'\n'
  fi
done
if [ -n "$left" ]; then
  log "servers left running by the tests:"
  printf '%s\n' "$left" >&2
  exit 1
fi
