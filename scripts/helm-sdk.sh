#!/usr/bin/env bash
# Helm's real engine for the test suite, without a helm binary: PyPI helm-python-sdk (Helm v4's Go
# SDK as libhelm_c) in a virtualenv cached under $GLRUNNER_CACHE (default /var/cache/glrunner),
# behind a helm-compatible command line (scripts/helm_sdk_cli.py).
#   scripts/helm-sdk.sh install   create the virtualenv (pinned) unless present; prints
#                                 GLRUNNER_TEST_HELM=<path of the helm-compatible executable>
# The executable runs this checkout's helm_sdk_cli.py: one per checkout (named by a checksum of
# its path), since the cache is shared by every checkout on the machine.
# It emulates Helm 4 unless GLRUNNER_HELM_MAJOR=3 (or GLRUNNER_HELM_TAG) is set for it; see the
# docstring of scripts/helm_sdk_cli.py.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
SDK_VERSION=0.2.2
cache=${GLRUNNER_CACHE:-/var/cache/glrunner}
venv="$cache/helm-sdk-$SDK_VERSION"

install() {
  if ! "$venv/bin/python" -c "import helm_python" 2>/dev/null; then
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "helm-python-sdk==$SDK_VERSION" >&2
  fi
  # The executable glrunner's HelmCli runs: this checkout's CLI script on the virtualenv's python.
  local helm
  helm="$venv/bin/helm-$(printf '%s' "$here" | cksum | cut -d' ' -f1)"
  cat >"$helm.tmp" <<WRAPPER
#!/bin/sh
exec "$venv/bin/python" "$here/helm_sdk_cli.py" "\$@"
WRAPPER
  chmod 755 "$helm.tmp"
  mv "$helm.tmp" "$helm"
  "$helm" version --short >/dev/null
  echo "GLRUNNER_TEST_HELM=$helm"
}

case "${1:-}" in
  install) install ;;
  *) echo "usage: $0 install" >&2; exit 2 ;;
esac
