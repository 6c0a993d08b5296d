#!/usr/bin/env bash
# Helm's real engine for the test suite, without a helm binary: PyPI helm-python-sdk (Helm v4's Go
# SDK as libhelm_c) in a virtualenv cached under $GLRUNNER_CACHE (default /var/cache/glrunner),
# behind a helm-compatible command line (scripts/helm_sdk_cli.py).
#   scripts/helm-sdk.sh install   create the virtualenv (pinned) unless present; prints
#                                 GLRUNNER_TEST_HELM=<path of the helm-compatible executable>
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
  # The executable glrunner's HelmCli runs: the CLI script on the virtualenv's python.
  cat >"$venv/bin/helm" <<WRAPPER
#!/bin/sh
exec "$venv/bin/python" "$here/helm_sdk_cli.py" "\$@"
WRAPPER
  chmod 755 "$venv/bin/helm"
  "$venv/bin/helm" version --short >/dev/null
  echo "GLRUNNER_TEST_HELM=$venv/bin/helm"
}

case "${1:-}" in
  install) install ;;
  *) echo "usage: $0 install" >&2; exit 2 ;;
esac
