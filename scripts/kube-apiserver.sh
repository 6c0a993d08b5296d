#!/usr/bin/env bash
# A real kube-apiserver + etcd on loopback, built from Debian packages (see ../shared/TESTING.md).
#
#   scripts/kube-apiserver.sh build        build kube-apiserver and fetch etcd into the cache (idempotent)
#   scripts/kube-apiserver.sh start DIR    start etcd + kube-apiserver, write DIR/kubeconfig, print
#                                          GLRUNNER_TEST_KUBECONFIG=DIR/kubeconfig
#   scripts/kube-apiserver.sh start DIR --rbac   the same with --authorization-mode=RBAC (the
#                                          kubeconfig's admin is in system:masters and keeps full access)
#   scripts/kube-apiserver.sh start DIR --eks-webhook URL   (combinable with --rbac) also accept
#                                          EKS bearer tokens, reviewed by the token webhook at URL
#                                          (the moto shim's /glrunner-shim/tokenreview plays EKS)
#   scripts/kube-apiserver.sh start DIR --eks-webhook URL --eks-token-lifetime SECONDS
#                                          the webhook refuses EKS tokens older than SECONDS
#                                          (EKS: 15 min), so a test can outlive one in seconds
#   scripts/kube-apiserver.sh start DIR --apiserver-flag FLAG   (repeatable, combinable) one more
#                                          kube-apiserver flag, e.g. --watch-cache-sizes=pods#0
#   scripts/kube-apiserver.sh stop DIR     stop what `start DIR` started (by the pids in DIR/pids)
#   scripts/kube-apiserver.sh stop-apiserver DIR    stop only the kube-apiserver (etcd keeps its data)
#   scripts/kube-apiserver.sh start-apiserver DIR   start it again with the same flags, port, certs
#                                          and etcd: a restart, as a control-plane upgrade does
#
# The cache lives outside the clone: ${GLRUNNER_CACHE:-/var/cache/glrunner}/kube/{bin,logs,src}.
# `build` needs root (apt) only when the cached binaries are missing; it logs to
# <cache>/kube/logs/build.log and prints one status line.
set -euo pipefail

CACHE="${GLRUNNER_CACHE:-/var/cache/glrunner}/kube"
BIN="$CACHE/bin"
APISERVER="$BIN/kube-apiserver"
ETCD="$BIN/etcd"
K8S_VERSION="v1.20.2"

die() { echo "kube-apiserver.sh: $*" >&2; exit 1; }

usage() {
    sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# Bump when the build recipe changes, so cached binaries from an older recipe are rebuilt.
RECIPE="k8s-$K8S_VERSION+reflect2-1.0.2"
have_binaries() { [[ -x "$APISERVER" && -x "$ETCD" && "$(cat "$BIN/recipe" 2>/dev/null)" == "$RECIPE" ]]; }

# Adds deb-src entries mirroring the deb822 "Types: deb" sources, unless some deb-src already exists.
enable_deb_src() {
    if grep -rqsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null; then
        return 0
    fi
    local src=/etc/apt/sources.list.d/debian.sources
    [[ -f "$src" ]] || die "no deb-src configured and $src not found; add a deb-src line for the Debian archive"
    sed -E 's/^Types:[[:space:]]*deb[[:space:]]*$/Types: deb-src/' "$src" >/etc/apt/sources.list.d/glrunner-deb-src.sources
}

do_build() {
    mkdir -p "$CACHE/logs" "$BIN"
    local log="$CACHE/logs/build.log"
    exec 9>"$CACHE/.build.lock"
    flock 9 # one build at a time; a second caller waits and then finds the cache filled
    if have_binaries; then
        echo "kube-apiserver.sh: cached $APISERVER ($K8S_VERSION) and $ETCD"
        return 0
    fi
    [[ $(id -u) -eq 0 ]] || die "build must run as root (apt-get) while the cache $BIN is empty"
    echo "kube-apiserver.sh: building kube-apiserver $K8S_VERSION from Debian sources (~10-18 min); log: $log"
    local rc=0
    set +e
    (
        set -ex
        export DEBIAN_FRONTEND=noninteractive
        enable_deb_src
        apt-get update -q
        apt-get install -y -q --no-install-recommends golang-1.19-go make rsync openssl curl dpkg-dev \
            golang-github-modern-go-reflect2-dev
        # etcd: unpack the package instead of installing it so no system service starts.
        if [[ ! -x "$ETCD" ]]; then
            local etcd_dir="$CACHE/src/etcd"
            rm -rf "$etcd_dir" && mkdir -p "$etcd_dir"
            (cd "$etcd_dir" && apt-get download etcd-server && dpkg -x etcd-server_*.deb x)
            install -m 0755 "$etcd_dir/x/usr/bin/etcd" "$ETCD.tmp" && mv "$ETCD.tmp" "$ETCD"
        fi
        if [[ ! -x "$APISERVER" || "$(cat "$BIN/recipe" 2>/dev/null)" != "$RECIPE" ]]; then
            local src_dir="$CACHE/src/kubernetes"
            rm -rf "$src_dir" && mkdir -p "$src_dir"
            (cd "$src_dir" && apt-get source --download-only kubernetes)
            local orig
            orig=$(ls "$src_dir"/kubernetes_*.orig.tar.gz | head -n1)
            tar -C "$src_dir" -xzf "$orig"
            local tree
            tree=$(find "$src_dir" -mindepth 1 -maxdepth 1 -type d -name 'kubernetes-*' | head -n1)
            [[ -d "$tree/cmd/kube-apiserver" ]] || die "unexpected source layout in $src_dir"
            # Kubernetes 1.20 vendors modern-go/reflect2 1.0.1, whose map iteration crashes the
            # apiserver (SIGSEGV in json-iterator) when built with Go >= 1.18; 1.0.2 fixes it.
            rm -rf "$tree/vendor/github.com/modern-go/reflect2"
            cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 "$tree/vendor/github.com/modern-go/reflect2"
            (
                cd "$tree"
                mkdir -p .go/src/k8s.io
                ln -sfn ../../.. .go/src/k8s.io/kubernetes
                export GOPATH="$PWD/.go" GOROOT=/usr/lib/go-1.19 PATH="/usr/lib/go-1.19/bin:$PATH" \
                    GOCACHE="$CACHE/src/gocache" CGO_ENABLED=0 GOPROXY=off GO111MODULE=off GOFLAGS= \
                    KUBE_GIT_VERSION="$K8S_VERSION" KUBE_GIT_MAJOR=1 KUBE_GIT_MINOR=20 \
                    KUBE_GIT_TREE_STATE=clean KUBE_GIT_COMMIT=faecb196815e248d3ecfb03c680a4507229c2a56
                nice -n 5 make WHAT=cmd/kube-apiserver
            )
            install -m 0755 "$tree/_output/bin/kube-apiserver" "$APISERVER.tmp" && mv "$APISERVER.tmp" "$APISERVER"
            echo "$RECIPE" >"$BIN/recipe"
            rm -rf "$src_dir" "$CACHE/src/gocache" # 3 GB of build tree; the binary is all we need
        fi
    ) >>"$log" 2>&1
    rc=$?
    set -e
    [[ $rc -eq 0 ]] || die "build failed (exit $rc); see the end of $log"
    have_binaries || die "build finished but binaries are missing; see $log"
    echo "kube-apiserver.sh: built $APISERVER ($K8S_VERSION) and $ETCD"
}

free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
        return
    fi
    local port
    while :; do # no python: a random high port nobody listens on
        port=$((20000 + RANDOM % 40000))
        ss -Hltn "sport = :$port" 2>/dev/null | grep -q . || { echo "$port"; return; }
    done
}

do_start() {
    local dir="${1:-}" authz=AlwaysAllow webhook="" lifetime="" extra=()
    [[ -n "$dir" ]] || usage
    shift
    while [[ $# -gt 0 ]]; do
        case "$1" in
        --rbac) authz=RBAC ;;
        --eks-webhook)
            [[ -n "${2:-}" ]] || die "--eks-webhook needs the webhook's URL"
            webhook=$2
            shift
            ;;
        --eks-token-lifetime)
            [[ "${2:-}" =~ ^[0-9]+$ ]] || die "--eks-token-lifetime needs whole seconds"
            lifetime=$2
            shift
            ;;
        --apiserver-flag)
            [[ "${2:-}" == --* ]] || die "--apiserver-flag needs a kube-apiserver flag (--name=value)"
            extra+=("$2")
            shift
            ;;
        *) die "unknown start option $1; the options are --rbac, --eks-webhook URL, --eks-token-lifetime SECONDS and --apiserver-flag FLAG" ;;
        esac
        shift
    done
    if [[ -n "$lifetime" ]]; then
        [[ -n "$webhook" ]] || die "--eks-token-lifetime needs --eks-webhook URL"
        # The shim reads the lifetime from the webhook's path (scripts/shim_eks_auth.py).
        webhook="${webhook%/}/$lifetime"
    fi
    have_binaries || die "no cached binaries in $BIN; run: $0 build"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    [[ ! -s "$dir/pids" ]] || die "$dir/pids exists: already started? run: $0 stop $dir"
    rm -rf "$dir/etcd-data" "$dir/certs" # a fresh, empty cluster each start
    mkdir -p "$dir/certs" "$dir/etcd-data"

    local etcd_port peer_port api_port token
    etcd_port=$(free_port)
    peer_port=$(free_port)
    api_port=$(free_port)
    token=$(openssl rand -hex 24)
    openssl genrsa -out "$dir/sa.key" 2048 2>/dev/null
    openssl rsa -in "$dir/sa.key" -pubout -out "$dir/sa.pub" 2>/dev/null
    printf '%s,admin,admin-uid,system:masters\n' "$token" >"$dir/tokens.csv"
    chmod 600 "$dir/tokens.csv" "$dir/sa.key"

    "$ETCD" --name default --data-dir "$dir/etcd-data" \
        --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
        --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
        --initial-cluster "default=http://127.0.0.1:$peer_port" \
        >"$dir/etcd.log" 2>&1 &
    echo "$!" >"$dir/pids"

    local i
    for i in $(seq 1 40); do
        curl -sf "http://127.0.0.1:$etcd_port/health" >/dev/null 2>&1 && break
        sleep 0.25
    done

    local webhook_flags=()
    if [[ -n "$webhook" ]]; then
        # A token the static file does not know goes to the webhook, as EKS sends it to its
        # authenticator; a short cache so a test's fresh access entry counts within seconds.
        cat >"$dir/eks-webhook.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: eks-auth
  cluster:
    server: $webhook
users:
- name: kube-apiserver
contexts:
- name: eks-auth
  context:
    cluster: eks-auth
    user: kube-apiserver
current-context: eks-auth
EOF
        webhook_flags=(--authentication-token-webhook-config-file="$dir/eks-webhook.kubeconfig"
            --authentication-token-webhook-version=v1 --authentication-token-webhook-cache-ttl=5s)
    fi

    local api_cmd=("$APISERVER" --etcd-servers="http://127.0.0.1:$etcd_port"
        --bind-address=127.0.0.1 --secure-port="$api_port" --advertise-address=127.0.0.1
        --cert-dir="$dir/certs" --endpoint-reconciler-type=none --service-cluster-ip-range=10.96.0.0/24
        --service-account-issuer=https://kubernetes.default.svc.cluster.local
        --service-account-key-file="$dir/sa.pub" --service-account-signing-key-file="$dir/sa.key"
        --authorization-mode="$authz" --token-auth-file="$dir/tokens.csv"
        --disable-admission-plugins=ServiceAccount "${webhook_flags[@]}" "${extra[@]}")
    # Kept for start-apiserver: a restart reuses the flags, the port, the certs and etcd.
    printf '%q ' "${api_cmd[@]}" >"$dir/apiserver.cmd"
    echo "$api_port" >"$dir/apiserver.port"
    echo "$etcd_port" >"$dir/etcd.port"
    "${api_cmd[@]}" >"$dir/kube-apiserver.log" 2>&1 &
    echo "$!" >>"$dir/pids"

    if ! wait_ready "$dir"; then
        do_stop "$dir" || true
        die "kube-apiserver not ready within 60 s; see $dir/kube-apiserver.log and $dir/etcd.log"
    fi

    cat >"$dir/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: glrunner-test
  cluster:
    server: https://127.0.0.1:$api_port
    certificate-authority: $dir/certs/apiserver.crt
contexts:
- name: glrunner-test
  context:
    cluster: glrunner-test
    user: admin
current-context: glrunner-test
users:
- name: admin
  user:
    token: $token
EOF
    chmod 600 "$dir/kubeconfig"
    echo "GLRUNNER_TEST_KUBECONFIG=$dir/kubeconfig"
}

# Waits (at most 60 s) until the apiserver of DIR answers /readyz; fails if it exits or never does.
wait_ready() {
    local dir=$1 port token i
    port=$(cat "$dir/apiserver.port")
    token=$(cut -d, -f1 "$dir/tokens.csv")
    for i in $(seq 1 120); do
        if curl -sf --cacert "$dir/certs/apiserver.crt" -H "Authorization: Bearer $token" \
            "https://127.0.0.1:$port/readyz" >/dev/null 2>&1; then
            return 0
        fi
        kill -0 "$(tail -n1 "$dir/pids")" 2>/dev/null || return 1
        sleep 0.5
    done
    return 1
}

# Stops only the apiserver of DIR (the last pid); etcd and its data stay.
do_stop_apiserver() {
    local dir="${1:-}"
    [[ -n "$dir" && -s "$dir/pids" ]] || die "nothing started in ${dir:-?}"
    [[ $(wc -l <"$dir/pids") -eq 2 ]] || die "the apiserver of $dir is not running"
    local pid
    pid=$(tail -n1 "$dir/pids")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
    head -n1 "$dir/pids" >"$dir/pids.tmp" && mv "$dir/pids.tmp" "$dir/pids"
    echo "kube-apiserver of $dir stopped (etcd keeps running)"
}

# Starts the apiserver of DIR again, as `start` did, on the same port and etcd.
do_start_apiserver() {
    local dir="${1:-}"
    [[ -n "$dir" && -s "$dir/apiserver.cmd" && -s "$dir/pids" ]] || die "nothing started in ${dir:-?}"
    [[ $(wc -l <"$dir/pids") -eq 1 ]] || die "the apiserver of $dir is already running"
    # `exec`: the background job IS the apiserver, so the pid recorded below is the one `stop`
    # kills (without it, $! was a subshell and the apiserver outlived the suite).
    eval "exec $(cat "$dir/apiserver.cmd")" >>"$dir/kube-apiserver.log" 2>&1 &
    echo "$!" >>"$dir/pids"
    wait_ready "$dir" || die "kube-apiserver not ready again within 60 s; see $dir/kube-apiserver.log"
    echo "kube-apiserver of $dir ready again"
}

do_stop() {
    local dir="${1:-}"
    [[ -n "$dir" ]] || usage
    [[ -f "$dir/pids" ]] || { echo "kube-apiserver.sh: nothing to stop in $dir" >&2; return 0; }
    local pid
    # apiserver first (last line), then etcd
    for pid in $(tac "$dir/pids"); do
        kill "$pid" 2>/dev/null || true
    done
    for pid in $(tac "$dir/pids"); do
        for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        kill -9 "$pid" 2>/dev/null || true
    done
    rm -f "$dir/pids"
}

case "${1:-}" in
build) do_build ;;
start)
    shift
    do_start "$@"
    ;;
stop) do_stop "${2:-}" ;;
stop-apiserver) do_stop_apiserver "${2:-}" ;;
start-apiserver) do_start_apiserver "${2:-}" ;;
*) usage ;;
esac
