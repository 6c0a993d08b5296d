#!/usr/bin/env python3
"""A helm-compatible command line on Helm's own engine (PyPI helm-python-sdk: Helm v4's Go SDK).

glrunner's tests drive their real `HelmCli` backend through it against a real kube-apiserver,
with no helm binary to download. It implements the subcommands glrunner runs, with helm's
`-o json` shapes:

    version [--short]
    upgrade NAME CHART [--install] [--create-namespace] [-f|--values FILE]... [--wait[=STRATEGY]]
            [--timeout DUR] [--history-max N] [--reset-values] [--version V] [--repo URL] [-o json]
    status NAME [-o json]                      (no "chart" field, like helm's)
    uninstall NAME [--wait[=STRATEGY]] [--timeout DUR]
    list [state filters] [-A|--all-namespaces] [--max N] [--filter RE] [-o json]
    history NAME [--max N] [-o json]
    rollback NAME [REVISION] [--wait[=STRATEGY]] [--timeout DUR] [--history-max N]
    get metadata NAME [-o json]                (Helm 3.13 and later)

**Which helm it is.** `GLRUNNER_HELM_MAJOR=3|4` (default 4, the engine's own major) picks the
helm CLI it emulates: 3 is helm v3.19.0, 4 is helm v4.2.4; `GLRUNNER_HELM_TAG=v3.8.0` (any tag in
`helm_flags.json`) picks one exactly. `helm version` answers that tag. The command line is parsed
with exactly the flags that tag's cobra commands define (`helm_flags.json`, derived from Helm's
source by `helm_flags_gen.py`; global flags from `pkg/cli/environment.go` `AddFlags`, klog's
hidden ones, cobra's `-h/--help`), the way pflag parses: any other flag is refused with pflag's
own text and exit status 1 (`Error: unknown flag: --all`, spf13/pflag v1.0.10 errors.go:40, printed
by cobra with its `Error:` prefix, spf13/cobra v1.10.1 command.go:1131). Behaviour that differs
between the majors follows that major's source: `helm list` shows only deployed and failed
releases unless asked for others on Helm 3 (helm v3.19.0 pkg/action/list.go `SetStateMask`),
every state on Helm 4 (helm/helm 8a73d9798, v4.0.0 pkg/action/list.go `SetStateMask`); `--wait`
is a switch on Helm 3 and takes a strategy on Helm 4 (v4.2.4 pkg/cmd/flags.go:58-98).

**Waiting.** The test apiserver has no kubelet, scheduler or controller-manager, so no pod ever
becomes Ready. By default `--wait` is accepted and not honoured (a real wait could only time out),
and an install or upgrade is deployed as soon as it is applied. With
`GLRUNNER_HELM_SDK_READY_AFTER=SECONDS` the engine really waits (`--wait` on install, upgrade,
rollback and uninstall): this process plays the Deployment controller and the kubelet for the
release's Deployments, marking them ready SECONDS after it started. Until then the release is
`pending-install`/`pending-upgrade`/`pending-rollback` in Helm's storage, written by the engine
itself; a process killed in that window leaves it so, as a killed helm does, and the engine
refuses the next upgrade ("another operation (install/upgrade/rollback) is in progress", helm
v4.2.4 pkg/action/action.go:73, pkg/action/upgrade.go:247). SECONDS beyond `--timeout` make the
wait time out, and the release is failed, as with helm.

Messages on stderr follow helm's wording for the cases glrunner classifies (not found, already
in progress, forbidden); other engine errors are passed through with helm's prefixes.
"""

from __future__ import annotations

import base64
import json
import os
import re
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from typing import Any, NoReturn

import helm_python as helm

HERE = os.path.dirname(os.path.abspath(__file__))
FLAGS_FILE = os.path.join(HERE, "helm_flags.json")
# The helm each major emulates: the newest tag of that major in helm_flags.json.
MAJOR_TAGS = {"3": "v3.19.0", "4": "v4.2.4"}
MAJOR_ENV = "GLRUNNER_HELM_MAJOR"
TAG_ENV = "GLRUNNER_HELM_TAG"
READY_AFTER_ENV = "GLRUNNER_HELM_SDK_READY_AFTER"

# helm list's state filters (pkg/action/list.go ListStates) by release status.
LIST_STATE_FLAGS = {
    "deployed": {"deployed"},
    "failed": {"failed"},
    "pending": {"pending-install", "pending-upgrade", "pending-rollback"},
    "superseded": {"superseded"},
    "uninstalled": {"uninstalled"},
    "uninstalling": {"uninstalling"},
}
ALL_STATES = set().union(*LIST_STATE_FLAGS.values())


def fail(message: str, code: int = 1) -> NoReturn:
    # cobra prints a command's error as "Error: <err>" (spf13/cobra v1.10.1 command.go:1131) and
    # helm exits 1 (helm v4.2.4 cmd/helm/helm.go main).
    print(f"Error: {message}", file=sys.stderr)
    sys.exit(code)


class Emulated:
    """The helm CLI being emulated: its tag and its flag table."""

    def __init__(self) -> None:
        with open(FLAGS_FILE, encoding="utf-8") as f:
            tables = json.load(f)["tables"]
        tag = os.environ.get(TAG_ENV, "").strip()
        if not tag:
            major = os.environ.get(MAJOR_ENV, "").strip() or "4"
            if major not in MAJOR_TAGS:
                fail(f"{MAJOR_ENV}={major!r}: this helm-compatible CLI emulates major 3 or 4", 64)
            tag = MAJOR_TAGS[major]
        if tag not in tables:
            fail(f"{TAG_ENV}={tag!r}: no flag table for it in {FLAGS_FILE} (have {', '.join(tables)})", 64)
        self.tag = tag
        self.major = int(tag.lstrip("v").split(".")[0])
        self.table = tables[tag]

    def flagset(self, command: str | None) -> dict[str, dict[str, Any]]:
        flags = dict(self.table["global"])
        if command is not None:
            flags.update(self.table["commands"][command]["flags"])
        else:
            flags["help"] = {"short": "h", "kind": "bool", "no_opt_default": "true"}
        return flags

    def command_names(self) -> dict[str, str]:
        """Name or alias of a top-level command -> its path in the table."""
        out: dict[str, str] = {}
        for path, spec in self.table["commands"].items():
            words = path.split()
            if len(words) == 1:
                out[words[0]] = path
                for alias in spec.get("aliases", []):
                    out[alias] = path
            else:
                out.setdefault(words[0], words[0])  # `get`: a parent of subcommands
        return out


GO_BOOLS = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
            "0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False}


class Args:
    """A command line parsed as pflag parses it (spf13/pflag v1.0.10 flag.go parseLongArg,
    parseSingleShortArg): `--name=value`, `--name value` (the next argument, whatever it is),
    `--name` alone only for flags with a default for no value (bools; `--wait` on Helm 4),
    `-abc` shorthand groups, `-nVALUE`, `-n=VALUE`, `--` ending the flags."""

    def __init__(self, argv: list[str], flags: dict[str, dict[str, Any]]) -> None:
        self.positional: list[str] = []
        self.values: dict[str, list[str]] = {}
        shorts = {f["short"]: name for name, f in flags.items() if f.get("short")}
        i = 0
        while i < len(argv):
            arg = argv[i]
            i += 1
            if arg == "--":
                self.positional.extend(argv[i:])
                break
            if not arg.startswith("-") or arg == "-":
                self.positional.append(arg)
                continue
            if arg.startswith("--"):
                name, eq, value = arg[2:].partition("=")
                if not name or name[0] in "-=":
                    fail(f"bad flag syntax: {arg}")
                flag = flags.get(name)
                if flag is None:
                    # spf13/pflag v1.0.10 errors.go:40 (v1.0.5 flag.go:978: the same text)
                    fail(f"unknown flag: --{name}")
                if not eq:
                    if flag.get("no_opt_default") is not None:
                        value = flag["no_opt_default"]
                    elif i < len(argv):
                        value = argv[i]
                        i += 1
                    else:
                        fail(f"flag needs an argument: --{name}")
                self.set(name, flag, value)
                continue
            shorthands = arg[1:]
            while shorthands:
                c = shorthands[0]
                name = shorts.get(c)
                if name is None:
                    # spf13/pflag v1.0.10 errors.go:44: Go's %q of a rune
                    fail(f"unknown shorthand flag: '{c}' in -{shorthands}")
                flag = flags[name]
                if len(shorthands) > 2 and shorthands[1] == "=":
                    value, shorthands = shorthands[2:], ""
                elif flag.get("no_opt_default") is not None:
                    value, shorthands = flag["no_opt_default"], shorthands[1:]
                elif len(shorthands) > 1:
                    value, shorthands = shorthands[1:], ""
                elif i < len(argv):
                    value, shorthands = argv[i], ""
                    i += 1
                else:
                    fail(f"flag needs an argument: '{c}' in -{shorthands}")
                self.set(name, flag, value)

    def set(self, name: str, flag: dict[str, Any], value: str) -> None:
        if flag.get("deprecated"):
            # pflag prints this on stderr and goes on (spf13/pflag v1.0.10 flag.go Set).
            print(f"Flag --{name} has been deprecated, {flag['deprecated']}", file=sys.stderr)
        if flag["kind"] == "bool" and value not in GO_BOOLS:
            shown = f"-{flag['short']}, --{name}" if flag.get("short") else f"--{name}"
            fail(f'invalid argument "{value}" for "{shown}" flag: strconv.ParseBool: parsing "{value}": invalid syntax')
        self.values.setdefault(name, []).append(value)

    def get(self, name: str, default: str | None = None) -> str | None:
        values = self.values.get(name)
        return values[-1] if values else default

    def all(self, name: str) -> list[str]:
        # StringSlice flags (--values) also split each value on commas.
        out: list[str] = []
        for value in self.values.get(name, []):
            out.extend(v for v in value.split(",") if v)
        return out

    def on(self, name: str) -> bool:
        value = self.get(name)
        return value is not None and GO_BOOLS.get(value, True)


def duration_seconds(raw: str) -> int:
    """Go durations as helm takes them (Go's time.ParseDuration): 300s, 5m, 1h30m, 0."""
    total = 0.0
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", raw)
    if raw == "0":
        return 0
    if raw.isdigit():
        fail(f'invalid argument "{raw}" for "--timeout" flag: time: missing unit in duration "{raw}"')
    if not parts or "".join(n + u for n, u in parts) != raw:
        fail(f'invalid argument "{raw}" for "--timeout" flag: time: invalid duration "{raw}"')
    for number, unit in parts:
        total += float(number) * units[unit]
    return max(1, int(total))


def config(args: Args, namespace: str | None = None) -> helm.Config:
    return helm.Config(
        kubeconfig_path=args.get("kubeconfig"),
        kube_context=args.get("kube-context"),
        namespace=namespace or namespace_of(args),
    )


def namespace_of(args: Args) -> str:
    return args.get("namespace") or "default"


def go_time(raw: str | None) -> str:
    return raw or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def release_json(cfg: helm.Config, summary: dict[str, Any], with_chart: bool) -> dict[str, Any]:
    """A release as `helm status|upgrade -o json` prints it (chart only for install/upgrade)."""
    name = summary["name"]
    config_values = cfg.get_values(name)
    out: dict[str, Any] = {
        "name": name,
        "info": {
            "first_deployed": go_time(summary.get("first_deployed") or summary.get("deployed_at")),
            "last_deployed": go_time(summary.get("deployed_at")),
            "deleted": "",
            "description": summary.get("description", ""),
            "status": summary.get("status", "unknown"),
        },
    }
    if with_chart:
        out["chart"] = {
            "metadata": {
                "name": summary.get("chart_name", ""),
                "version": summary.get("chart_version", ""),
                "appVersion": summary.get("app_version", ""),
                "apiVersion": "v2",
            }
        }
    out["config"] = config_values
    out["manifest"] = summary.get("manifest", "")
    out["version"] = summary.get("revision", 0)
    out["namespace"] = summary.get("namespace", "")
    return out


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout)
    sys.stdout.write("\n")


def output(args: Args, value: Any, text: str) -> None:
    if (args.get("output") or "table") == "json":
        print_json(value)
    else:
        print(text)


def load_values(files: list[str]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for path in files:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            fail(f"open {path}: {e.strerror}")
        merged = deep_merge(merged, helm.values_from_yaml(text) or {})
    return merged


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def history_of(cfg: helm.Config, name: str) -> list[dict[str, Any]] | None:
    try:
        return cfg.history(name)
    except helm.HelmNotFoundError:
        return None


class Readiness:
    """Plays the Deployment controller and the kubelet for one release while the engine waits.

    Only with GLRUNNER_HELM_SDK_READY_AFTER: from that many seconds after this process started,
    the release's Deployments (those Helm annotates `meta.helm.sh/release-name`) get the status
    a controller writes once every replica is ready and available, so the engine's `watcher`
    wait (kstatus: observedGeneration, updated/ready/available replicas, the Available and
    Progressing=NewReplicaSetAvailable conditions) sees them Current."""

    STARTED = time.monotonic()

    def __init__(self, args: Args, name: str, namespace: str) -> None:
        self.name, self.namespace = name, namespace
        self.after = ready_after()
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        if self.after is not None:
            self.api = KubeApi(args.get("kubeconfig"), args.get("kube-context"))

    def __enter__(self) -> "Readiness":
        if self.after is not None:
            self.thread = threading.Thread(target=self.run, daemon=True)
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=5)

    def run(self) -> None:
        assert self.after is not None
        delay = self.STARTED + self.after - time.monotonic()
        if delay > 0 and self.stop.wait(delay):
            return
        path = f"/apis/apps/v1/namespaces/{self.namespace}/deployments"
        while not self.stop.is_set():
            try:
                for d in self.api.get(path).get("items", []):
                    meta = d.get("metadata", {})
                    if (meta.get("annotations") or {}).get("meta.helm.sh/release-name") != self.name:
                        continue
                    if (d.get("status") or {}).get("observedGeneration") == meta.get("generation"):
                        continue
                    replicas = (d.get("spec") or {}).get("replicas", 1)
                    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
                    status = {
                        "observedGeneration": meta.get("generation"),
                        "replicas": replicas, "updatedReplicas": replicas,
                        "readyReplicas": replicas, "availableReplicas": replicas,
                        "conditions": [
                            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                             "lastUpdateTime": now, "lastTransitionTime": now},
                            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                             "lastUpdateTime": now, "lastTransitionTime": now},
                        ],
                    }
                    self.api.merge_patch(f"{path}/{meta['name']}/status", {"status": status})
            except (OSError, urllib.error.URLError, ValueError, KeyError, subprocess.SubprocessError) as e:
                print(f"helm_sdk_cli: readiness: {e}", file=sys.stderr)
            self.stop.wait(0.2)


def ready_after() -> float | None:
    raw = os.environ.get(READY_AFTER_ENV, "").strip()
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        fail(f"{READY_AFTER_ENV}={raw!r} is not a number of seconds", 64)


class KubeApi:
    """Just enough of a Kubernetes client (the stdlib, the kubeconfig's server, CA and token,
    token file, exec credential plugin or client certificate) for Readiness."""

    def __init__(self, kubeconfig: str | None, context: str | None) -> None:
        path = kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0] or os.path.expanduser("~/.kube/config")
        with open(path, encoding="utf-8") as f:
            kc = helm.values_from_yaml(f.read()) or {}
        ctx_name = context or kc.get("current-context")
        ctx = next(c["context"] for c in kc.get("contexts", []) if c["name"] == ctx_name)
        cluster = next(c["cluster"] for c in kc.get("clusters", []) if c["name"] == ctx["cluster"])
        user = next((u["user"] for u in kc.get("users", []) if u["name"] == ctx.get("user")), {}) or {}
        self.server = cluster["server"].rstrip("/")
        base = os.path.dirname(os.path.abspath(path))
        tls = ssl.create_default_context()
        if cluster.get("insecure-skip-tls-verify"):
            tls.check_hostname = False
            tls.verify_mode = ssl.CERT_NONE
        elif cluster.get("certificate-authority-data"):
            tls.load_verify_locations(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
        elif cluster.get("certificate-authority"):
            tls.load_verify_locations(cafile=os.path.join(base, cluster["certificate-authority"]))
        cert, key = user.get("client-certificate"), user.get("client-key")
        if user.get("client-certificate-data"):
            cert = self.temp(base64.b64decode(user["client-certificate-data"]))
            key = self.temp(base64.b64decode(user["client-key-data"]))
        if cert and key:
            tls.load_cert_chain(os.path.join(base, cert), os.path.join(base, key))
        self.tls = tls
        self.exec = user.get("exec")
        self.exec_expiry: datetime | None = None
        self.token = user.get("token")
        if not self.token and user.get("tokenFile"):
            with open(os.path.join(base, user["tokenFile"]), encoding="utf-8") as f:
                self.token = f.read().strip()

    def bearer(self) -> str | None:
        """The token to send: from the exec credential plugin when the user has one, run again
        once the last credential's expirationTimestamp has passed, as client-go does (the
        client-go credential plugins doc,
        https://kubernetes.io/docs/reference/access-authn-authz/authentication/#client-go-credential-plugins:
        the command with the entry's `env` over the caller's and KUBERNETES_EXEC_INFO, the
        ExecCredential read from stdout, cached "until the expiry time is reached")."""
        if not self.exec:
            return self.token
        if self.token and self.exec_expiry and datetime.now(timezone.utc) < self.exec_expiry:
            return self.token
        env = dict(os.environ)
        env.update({e["name"]: e["value"] for e in self.exec.get("env") or []})
        env["KUBERNETES_EXEC_INFO"] = json.dumps({
            "apiVersion": self.exec["apiVersion"], "kind": "ExecCredential",
            "spec": {"interactive": False},
        })
        out = subprocess.run([self.exec["command"], *(self.exec.get("args") or [])], env=env,
                             stdin=subprocess.DEVNULL, capture_output=True, check=True, timeout=60)
        status = json.loads(out.stdout)["status"]
        self.token = status["token"]
        expiry = status.get("expirationTimestamp")
        self.exec_expiry = datetime.fromisoformat(expiry.replace("Z", "+00:00")) if expiry else None
        return self.token

    @staticmethod
    def temp(data: bytes) -> str:
        fd, name = tempfile.mkstemp(prefix="helm-sdk-cli-")
        os.write(fd, data)
        os.close(fd)
        return name

    def request(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Any:
        req = urllib.request.Request(self.server + path, method=method)
        token = self.bearer()
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            req.add_header("Content-Type", content_type)
        with urllib.request.urlopen(req, data=data, context=self.tls, timeout=10) as resp:
            return json.loads(resp.read() or b"{}")

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def merge_patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, body, "application/merge-patch+json")


class Cli:
    def __init__(self, emulated: Emulated, args: Args) -> None:
        self.em = emulated
        self.args = args

    def wait_strategy(self) -> str | None:
        """The engine's wait for this command, or None when --wait is not honoured."""
        value = self.args.get("wait")
        if value is None or ready_after() is None:
            return None
        if self.em.major >= 4:
            # helm v4.2.4 pkg/cmd/flags.go:82-98: watcher, legacy, hookOnly; true/false deprecated.
            if value == "true":
                value = "watcher"
            if value == "false":
                return None
            if value not in ("watcher", "legacy", "hookOnly"):
                fail(f'invalid argument "{value}" for "--wait" flag: invalid wait input "{value}". Valid inputs are watcher, hookOnly, and legacy')
            return None if value == "hookOnly" else value
        # Helm 3's --wait is a switch; the engine's legacy waiter needs the ReplicaSets a
        # controller-manager creates, so the status watcher stands in for it.
        return "watcher" if self.args.on("wait") else None

    def timeout(self) -> int:
        return duration_seconds(self.args.get("timeout") or "300s")

    def version(self) -> None:
        commit = self.em.table["commit"]
        if self.args.on("short"):
            print(f"{self.em.tag}+g{commit[:7]}")
        else:
            print(f'version.BuildInfo{{Version:"{self.em.tag}", GitCommit:"{commit}", GitTreeState:"clean", '
                  f'GoVersion:"libhelm_c (helm-python-sdk, engine {helm.helm_sdk_version()})"}}')

    def upgrade(self) -> None:
        args = self.args
        if len(args.positional) != 2:
            fail('"helm upgrade" requires 2 arguments\n\nUsage:  helm upgrade [RELEASE] [CHART] [flags]')
        name, chart = args.positional
        ns = namespace_of(args)
        values = load_values(args.all("values"))
        timeout = self.timeout()
        wait = self.wait_strategy()
        history = args.get("history-max")
        chart_opts = {"chart_repo_url": args.get("repo"), "chart_version": args.get("version")}
        with config(args) as cfg, Readiness(args, name, ns):
            versions = history_of(cfg, name)
            # helm upgrade --install installs when there is no release or only an uninstalled
            # one, else upgrades (helm v4.2.4 pkg/cmd/upgrade.go RunE, isReleaseUninstalled).
            if not versions or versions[-1].get("status") == "uninstalled":
                if not args.on("install"):
                    fail(f'UPGRADE FAILED: "{name}" has no deployed releases')
                try:
                    summary = cfg.install(
                        chart, name, values, namespace=ns, timeout=timeout, wait=wait,
                        create_namespace=args.on("create-namespace"), **chart_opts,
                    )
                except helm.HelmError as e:
                    fail(f"INSTALLATION FAILED: {e.detail}")
            else:
                try:
                    summary = cfg.upgrade(
                        chart, name, values, namespace=ns, timeout=timeout, wait=wait,
                        max_history=int(history) if history else None,
                        reset_values=args.on("reset-values"), **chart_opts,
                    )
                except helm.HelmError as e:
                    fail(f"UPGRADE FAILED: {e.detail}")
            output(args, release_json(cfg, cfg.status(name) | {"manifest": summary.get("manifest", "")}, True),
                   f'Release "{name}" has been upgraded. Happy Helming!')

    def status(self) -> None:
        name = self.one_release("status")
        with config(self.args) as cfg:
            try:
                summary = cfg.status(name)
            except helm.HelmNotFoundError:
                fail("release: not found")
            output(self.args, release_json(cfg, summary, False), f"NAME: {name}\nSTATUS: {summary.get('status')}")

    def uninstall(self) -> None:
        name = self.one_release("uninstall")
        with config(self.args) as cfg:
            try:
                cfg.uninstall(name, timeout=self.timeout(), wait=self.wait_strategy())
            except helm.HelmNotFoundError:
                fail(f"uninstall: Release not loaded: {name}: release: not found")
            except helm.HelmError as e:
                fail(f"uninstallation completed with 1 error(s): {e.detail}")
        print(f'release "{name}" uninstalled')

    def list(self) -> None:
        args = self.args
        limit = int(args.get("max") or "256")
        wanted: set[str] = set()
        for flag, states in LIST_STATE_FLAGS.items():
            if args.on(flag):
                wanted |= states
        if self.em.major < 4 and args.on("all"):
            wanted = set(ALL_STATES)
        if not wanted:
            # The default: helm v3.19.0 pkg/action/list.go SetStateMask "Apply a default"
            # (deployed and failed); helm v4.0.0 pkg/action/list.go SetStateMask (every state).
            wanted = set(ALL_STATES) if self.em.major >= 4 else {"deployed", "failed"}
        with config(args) as cfg:
            items = cfg.list(
                all_states=True,
                all_namespaces=args.on("all-namespaces"),
                name_filter=args.get("filter"),
            )
        items = [i for i in items if i.get("status") in wanted]
        items.sort(key=lambda i: (i["name"], i["namespace"]))
        if limit > 0:
            items = items[:limit]
        rows = [
            {
                "name": i["name"],
                "namespace": i["namespace"],
                "revision": str(i["revision"]),
                "updated": i.get("deployed_at", ""),
                "status": i["status"],
                "chart": f'{i.get("chart_name", "")}-{i.get("chart_version", "")}',
                "app_version": i.get("app_version", ""),
            }
            for i in items
        ]
        output(args, rows, "\n".join(r["name"] for r in rows))

    def history(self) -> None:
        name = self.one_release("history")
        limit = int(self.args.get("max") or "256")
        with config(self.args) as cfg:
            versions = history_of(cfg, name)
        if not versions:
            fail("release: not found")
        versions = versions[-limit:] if limit > 0 else versions
        rows = [
            {
                "revision": v.get("revision", 0),
                "updated": go_time(v.get("deployed_at")),
                "status": v.get("status", ""),
                "chart": f'{v.get("chart_name", "")}-{v.get("chart_version", "")}',
                "app_version": v.get("app_version", ""),
                "description": v.get("description", ""),
            }
            for v in versions
        ]
        output(self.args, rows, "\n".join(f"{r['revision']}\t{r['status']}" for r in rows))

    def rollback(self) -> None:
        args = self.args
        if not 1 <= len(args.positional) <= 2:
            fail('"helm rollback" requires at least 1 argument\n\nUsage:  helm rollback <RELEASE> [REVISION] [flags]')
        name = args.positional[0]
        revision = None
        if len(args.positional) == 2:
            try:
                revision = int(args.positional[1])
            except ValueError:
                fail(f'could not convert revision to a number: strconv.Atoi: parsing "{args.positional[1]}": invalid syntax')
        with config(args) as cfg, Readiness(args, name, namespace_of(args)):
            try:
                cfg.rollback(name, version=revision, timeout=self.timeout(), wait=self.wait_strategy())
            except helm.HelmNotFoundError:
                fail("release: not found")
        print("Rollback was a success! Happy Helming!")

    def get_metadata(self) -> None:
        name = self.one_release("get metadata")
        with config(self.args) as cfg:
            try:
                meta = cfg.get_metadata(name)
            except helm.HelmNotFoundError:
                fail("release: not found")
        value = {
            "name": meta.get("name", name),
            "chart": meta.get("chart", meta.get("chart_name", "")),
            "version": meta.get("version", meta.get("chart_version", "")),
            "appVersion": meta.get("appVersion", meta.get("app_version", "")),
            "annotations": meta.get("annotations"),
            "dependencies": meta.get("dependencies"),
            "namespace": meta.get("namespace", namespace_of(self.args)),
            "revision": meta.get("revision", 0),
            "status": meta.get("status", ""),
            "deployedAt": meta.get("deployedAt", meta.get("deployed_at", "")),
        }
        output(self.args, value, f"NAME: {value['name']}\nVERSION: {value['version']}")

    def one_release(self, command: str) -> str:
        if len(self.args.positional) != 1:
            fail(f'"helm {command}" requires 1 argument')
        return self.args.positional[0]


def split_command(em: Emulated, argv: list[str]) -> tuple[str | None, list[str]]:
    """The command path and the arguments without its words, as cobra's Find strips flags: with
    the root's flags, so a valued flag's separate value is not taken for a command word."""
    names = em.command_names()
    root_flags = em.flagset(None)
    shorts = {f["short"]: n for n, f in root_flags.items() if f.get("short")}

    def takes_value(flag: dict[str, Any] | None) -> bool:
        return flag is not None and flag.get("no_opt_default") is None

    rest = list(argv)
    words: list[str] = []
    i = 0
    while i < len(rest) and rest[i] != "--":
        arg = rest[i]
        if arg.startswith("--"):
            i += 2 if "=" not in arg and takes_value(root_flags.get(arg[2:])) else 1
        elif arg.startswith("-") and arg != "-":
            i += 2 if len(arg) == 2 and takes_value(root_flags.get(shorts.get(arg[1], ""))) else 1
        else:
            words.append(rest.pop(i))
            top = names.get(words[0])
            if top is None:
                fail(f'unknown command "{words[0]}" for "helm"\nRun \'helm --help\' for usage.')
            if top in em.table["commands"]:
                return top, rest
            if len(words) == 2:
                path = " ".join(words)
                if path not in em.table["commands"]:
                    fail(f'unknown command "{words[1]}" for "helm {words[0]}"\nRun \'helm {words[0]} --help\' for usage.')
                return path, rest
    if words:
        fail(f'"helm {words[0]}" requires a subcommand')
    return None, rest


def main(argv: list[str]) -> None:
    em = Emulated()
    command, rest = split_command(em, argv)
    args = Args(rest, em.flagset(command))
    if args.on("help") or command is None:
        print(f"helm-compatible CLI ({em.tag}) on Helm's engine; commands: {', '.join(em.table['commands'])}")
        return
    cli = Cli(em, args)
    run = {
        "version": cli.version,
        "upgrade": cli.upgrade,
        "status": cli.status,
        "uninstall": cli.uninstall,
        "list": cli.list,
        "history": cli.history,
        "rollback": cli.rollback,
        "get metadata": cli.get_metadata,
    }[command]
    try:
        run()
    except helm.HelmKubeError as e:
        fail(f"Kubernetes cluster unreachable: {e.detail}")
    except helm.HelmError as e:
        fail(str(e.detail))


if __name__ == "__main__":
    main(sys.argv[1:])
