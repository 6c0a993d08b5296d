#!/usr/bin/env bash
# Sourced by scripts/test.sh: start a test server and export the variable it prints, or fail.
#   start_server NAME VAR COMMAND...   runs COMMAND; fails (exit 1, naming the server) when it
#                                      exits non-zero or prints no VAR=... line; else exports it.
# The test gates read GLRUNNER_TEST_REQUIRE_SERVERS=1 (set by test.sh): a server that did not
# start makes its tests fail instead of skip.

start_server() {
  local name=$1 var=$2
  shift 2
  local out status line
  out=$("$@") && status=0 || status=$?
  if [ "$status" -ne 0 ]; then
    echo "[test.sh] $name did not start (exit $status): $*" >&2
    return 1
  fi
  line=$(printf '%s\n' "$out" | grep "^$var=" | tail -1 || true)
  if [ -z "$line" ] || [ "$line" = "$var=" ]; then
    echo "[test.sh] $name started but printed no $var=...; output was:" >&2
    printf '%s\n' "$out" >&2
    return 1
  fi
  export "${line?}"
  echo "[test.sh] $name: ${line}" >&2
}
