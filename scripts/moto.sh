#!/usr/bin/env bash
# moto (AWS EC2/EKS/IAM/STS on loopback) with glrunner's EKS shim, for the test suite.
#   scripts/moto.sh install      pip-install moto[server] (pinned) unless present
#   scripts/moto.sh start DIR    start on a free port; prints GLRUNNER_TEST_MOTO_URL=...
#                                The shim starts in strict mode (GLRUNNER_SHIM_STRICT=0 turns it
#                                off; GLRUNNER_SHIM_CREATION_DELAY_S=N keeps new clusters, Fargate
#                                profiles and add-ons CREATING for N s;
#                                GLRUNNER_SHIM_EIP_AUTH_FAILURE_S=N (default 2) refuses ReleaseAddress
#                                with AuthFailure for N s after the address's NAT gateway is deleted);
#                                at run time:
#                                curl -X POST URL/glrunner-shim/config -d '{"creation_delay_s": 30}'
#   scripts/moto.sh config DIR JSON   change the running shim's strict-mode settings
#   scripts/moto.sh stop DIR     stop the server started in DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
MOTO_VERSION=5.2.1

install() {
  if python3 -c "import moto, flask" 2>/dev/null && [ "$(python3 -c 'import moto; print(moto.__version__)')" = "$MOTO_VERSION" ]; then
    return 0
  fi
  python3 -m pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" >&2
}

start() {
  local dir=$1
  mkdir -p "$dir"
  install
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  MOTO_IAM_LOAD_MANAGED_POLICIES=true nohup python3 "$here/moto_shim.py" 127.0.0.1 "$port" >"$dir/moto.log" 2>&1 &
  echo $! >"$dir/moto.pid"
  for _ in $(seq 1 100); do
    if curl -sf "http://127.0.0.1:$port/moto-api/" >/dev/null 2>&1; then
      echo "GLRUNNER_TEST_MOTO_URL=http://127.0.0.1:$port" | tee "$dir/moto.url"
      return 0
    fi
    sleep 0.2
  done
  echo "moto did not start; see $dir/moto.log" >&2
  tail -20 "$dir/moto.log" >&2 || true
  return 1
}

config() {
  local dir=$1 json=$2
  local url
  url=$(sed -n 's/^GLRUNNER_TEST_MOTO_URL=//p' "$dir/moto.url")
  curl -sf -X POST -H 'Content-Type: application/json' -d "$json" "$url/glrunner-shim/config"
  echo
}

stop() {
  local dir=$1
  [ -f "$dir/moto.pid" ] && kill "$(cat "$dir/moto.pid")" 2>/dev/null || true
  rm -f "$dir/moto.pid"
}

case "${1:-}" in
  install) install ;;
  start) start "${2:?usage: moto.sh start DIR}" ;;
  config) config "${2:?usage: moto.sh config DIR JSON}" "${3:?usage: moto.sh config DIR JSON}" ;;
  stop) stop "${2:?usage: moto.sh stop DIR}" ;;
  *) echo "usage: $0 install | start DIR | config DIR JSON | stop DIR" >&2; exit 2 ;;
esac
