#!/usr/bin/env bash
# Tools the load-test artifact tests use (issue 15), installed from the package registries and
# cached under $GLRUNNER_CACHE (default /var/cache/glrunner):
#   - Debian's chromium (headless rendering of the HTML report) and libxml2-utils (xmllint);
#   - the JUnit XML schema pytest vendors from Jenkins' xunit plugin (junit-10.xsd), taken from
#     pytest's source distribution on PyPI;
#   - check-jsonschema from PyPI (it vendors GitLab's .gitlab-ci.yml schema), for the README's
#     CI example.
#   scripts/report-tools.sh install   install what is missing; prints the test variables, one
#                                     a line (GLRUNNER_TEST_CHROMIUM=…, GLRUNNER_TEST_JUNIT_XSD=…)
set -euo pipefail
cache=${GLRUNNER_CACHE:-/var/cache/glrunner}
PYTEST_SDIST_VERSION=8.3.5
CHECK_JSONSCHEMA_VERSION=0.39.0

apt_install() {
  # Keep the downloaded .debs in the cache so a reinstall on this machine needs no download.
  local archives=$cache/apt-archives
  mkdir -p "$archives/partial"
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "[report-tools] apt-get install ${missing[*]}" >&2
  if ! DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -o Dir::Cache::archives="$archives" install -y -q --no-install-recommends "${missing[@]}" >&2; then
    apt-get -o DPkg::Lock::Timeout=600 update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -o Dir::Cache::archives="$archives" install -y -q --no-install-recommends "${missing[@]}" >&2
  fi
}

junit_xsd() {
  local dir=$cache/junit-xsd
  local xsd=$dir/junit-10.xsd
  if [ ! -s "$xsd" ]; then
    mkdir -p "$dir"
    local tmp
    tmp=$(mktemp -d)
    python3 -m pip download --quiet --disable-pip-version-check --no-deps --no-binary :all: \
      "pytest==$PYTEST_SDIST_VERSION" -d "$tmp" >&2
    tar -xzf "$tmp/pytest-$PYTEST_SDIST_VERSION.tar.gz" -C "$tmp" \
      "pytest-$PYTEST_SDIST_VERSION/testing/example_scripts/junit-10.xsd"
    mv "$tmp/pytest-$PYTEST_SDIST_VERSION/testing/example_scripts/junit-10.xsd" "$xsd.tmp"
    mv "$xsd.tmp" "$xsd"
    rm -rf "$tmp"
  fi
  echo "$xsd"
}

check_jsonschema() {
  if ! command -v check-jsonschema >/dev/null 2>&1 \
    || [ "$(check-jsonschema --version | awk '{print $NF}')" != "$CHECK_JSONSCHEMA_VERSION" ]; then
    python3 -m pip install --quiet --disable-pip-version-check "check-jsonschema==$CHECK_JSONSCHEMA_VERSION" >&2
  fi
  command -v check-jsonschema
}

install() {
  apt_install chromium libxml2-utils fonts-dejavu-core
  local xsd cjs
  xsd=$(junit_xsd)
  cjs=$(check_jsonschema)
  echo "GLRUNNER_TEST_CHROMIUM=$(command -v chromium)"
  echo "GLRUNNER_TEST_JUNIT_XSD=$xsd"
  echo "GLRUNNER_TEST_CHECK_JSONSCHEMA=$cjs"
}

case "${1:-}" in
  install) install ;;
  *) echo "usage: $0 install" >&2; exit 2 ;;
esac
