#!/usr/bin/env python3
"""A helm-compatible command line on Helm's own engine (PyPI helm-python-sdk: Helm v4's Go SDK).

glrunner's tests drive their real `HelmCli` backend through it against a real kube-apiserver,
with no helm binary to download. It implements the subset glrunner calls, with helm's flags and
helm's `-o json` shapes:

    version [--short]
    upgrade NAME CHART [--install] [--create-namespace] [-f|--values FILE]... [--wait[=STRATEGY]]
            [--timeout DUR] [--history-max N] [--reset-values] [--version V] [--repo URL]
            [--server-side MODE] [-o json]
    status NAME [-o json]                      (no "chart" field, like helm's)
    uninstall NAME [--wait[=STRATEGY]] [--timeout DUR]
    list [--all] [-A|--all-namespaces] [--max N (default 256, 0 = all)] [--filter RE] [-o json]
    get metadata NAME [-o json]
    global: --kubeconfig PATH, --kube-context NAME, -n|--namespace NS

Differences from the helm CLI, on purpose:
- `--wait` is accepted and not honoured: the test apiserver has no kubelet, scheduler or
  controller-manager, so no pod ever becomes Ready and a real wait could only time out.
- Messages on stderr follow helm's wording for the cases glrunner classifies (not found,
  already in progress, forbidden); other engine errors are passed through with helm's prefixes.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import datetime, timezone
from typing import Any, NoReturn

import helm_python as helm

DEFAULT_LIST_MAX = 256


def fail(message: str, code: int = 1) -> NoReturn:
    print(f"Error: {message}", file=sys.stderr)
    sys.exit(code)


def duration_seconds(raw: str) -> int:
    """Go durations as helm takes them: 300s, 5m, 1h30m, 90 (seconds)."""
    if raw.isdigit():
        return int(raw)
    total = 0.0
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", raw)
    if not parts or "".join(n + u for n, u in parts) != raw:
        fail(f'invalid argument "{raw}" for "--timeout" flag: time: invalid duration "{raw}"')
    for number, unit in parts:
        total += float(number) * units[unit]
    return max(1, int(total))


class Args:
    """helm-style flags: `--flag value`, `--flag=value`, booleans, repeated --values."""

    VALUED = {
        "--kubeconfig", "--kube-context", "--namespace", "-n", "--values", "-f", "--timeout",
        "--history-max", "--version", "--repo", "--output", "-o", "--max", "--filter",
        "--server-side", "--revision",
    }

    def __init__(self, argv: list[str]) -> None:
        self.positional: list[str] = []
        self.flags: dict[str, list[str]] = {}
        it = iter(argv)
        for arg in it:
            if arg.startswith("-") and arg != "-":
                name, eq, value = arg.partition("=")
                if eq:
                    self.flags.setdefault(name, []).append(value)
                elif name in self.VALUED:
                    try:
                        self.flags.setdefault(name, []).append(next(it))
                    except StopIteration:
                        fail(f"flag needs an argument: {name}")
                else:
                    self.flags.setdefault(name, []).append("true")
            else:
                self.positional.append(arg)

    def get(self, *names: str, default: str | None = None) -> str | None:
        for name in names:
            if name in self.flags:
                return self.flags[name][-1]
        return default

    def all(self, *names: str) -> list[str]:
        out: list[str] = []
        for name in names:
            out.extend(self.flags.get(name, []))
        return out

    def has(self, name: str) -> bool:
        return name in self.flags


def config(args: Args, namespace: str | None = None) -> helm.Config:
    return helm.Config(
        kubeconfig_path=args.get("--kubeconfig"),
        kube_context=args.get("--kube-context"),
        namespace=namespace or args.get("--namespace", "-n", default="default"),
    )


def namespace_of(args: Args) -> str:
    return args.get("--namespace", "-n", default="default") or "default"


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


def exists(cfg: helm.Config, name: str) -> bool:
    try:
        cfg.status(name)
        return True
    except helm.HelmNotFoundError:
        return False


def cmd_version(args: Args) -> None:
    version = helm.helm_sdk_version()
    if args.has("--short"):
        print(f"{version}+ghelm-python-sdk")
    else:
        print(f'version.BuildInfo{{Version:"{version}", GitCommit:"helm-python-sdk", GitTreeState:"clean", GoVersion:"libhelm_c"}}')


def cmd_upgrade(args: Args) -> None:
    if len(args.positional) != 2:
        fail('"helm upgrade" requires 2 arguments\n\nUsage:  helm upgrade [RELEASE] [CHART] [flags]')
    name, chart = args.positional
    ns = namespace_of(args)
    values = load_values(args.all("--values", "-f"))
    timeout = duration_seconds(args.get("--timeout", default="300s") or "300s")
    history = args.get("--history-max")
    chart_opts = {
        "chart_repo_url": args.get("--repo"),
        "chart_version": args.get("--version"),
    }
    with config(args) as cfg:
        if exists(cfg, name):
            try:
                summary = cfg.upgrade(
                    chart, name, values, namespace=ns, timeout=timeout,
                    max_history=int(history) if history else None,
                    reset_values=args.has("--reset-values"), **chart_opts,
                )
            except helm.HelmError as e:
                fail(f"UPGRADE FAILED: {e.detail}")
        elif args.has("--install"):
            try:
                summary = cfg.install(
                    chart, name, values, namespace=ns, timeout=timeout,
                    create_namespace=args.has("--create-namespace"), **chart_opts,
                )
            except helm.HelmError as e:
                fail(f"INSTALLATION FAILED: {e.detail}")
        else:
            fail(f'UPGRADE FAILED: "{name}" has no deployed releases')
        output(args, release_json(cfg, cfg.status(name) | {"manifest": summary.get("manifest", "")}, True),
               f'Release "{name}" has been upgraded. Happy Helming!')


def output(args: Args, value: Any, text: str) -> None:
    if args.get("--output", "-o", default="table") == "json":
        print_json(value)
    else:
        print(text)


def cmd_status(args: Args) -> None:
    name = args.positional[0]
    with config(args) as cfg:
        try:
            summary = cfg.status(name)
        except helm.HelmNotFoundError:
            fail("release: not found")
        output(args, release_json(cfg, summary, False), f"NAME: {name}\nSTATUS: {summary.get('status')}")


def cmd_uninstall(args: Args) -> None:
    name = args.positional[0]
    timeout = duration_seconds(args.get("--timeout", default="300s") or "300s")
    with config(args) as cfg:
        try:
            cfg.uninstall(name, timeout=timeout)
        except helm.HelmNotFoundError:
            fail(f"uninstall: Release not loaded: {name}: release: not found")
        except helm.HelmError as e:
            fail(f"uninstallation completed with 1 error(s): {e.detail}")
    print(f'release "{name}" uninstalled')


def cmd_list(args: Args) -> None:
    limit = int(args.get("--max", default=str(DEFAULT_LIST_MAX)) or DEFAULT_LIST_MAX)
    all_ns = args.has("--all-namespaces") or args.has("-A")
    with config(args) as cfg:
        items = cfg.list(
            all_states=args.has("--all") or args.has("-a"),
            all_namespaces=all_ns,
            limit=limit if limit > 0 else None,
            name_filter=args.get("--filter", "-f"),
        )
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


def cmd_get(args: Args) -> None:
    if not args.positional or args.positional[0] != "metadata" or len(args.positional) != 2:
        fail("only `get metadata NAME` is implemented by this helm-compatible CLI", 64)
    name = args.positional[1]
    with config(args) as cfg:
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
        "namespace": meta.get("namespace", namespace_of(args)),
        "revision": meta.get("revision", 0),
        "status": meta.get("status", ""),
        "deployedAt": meta.get("deployedAt", meta.get("deployed_at", "")),
    }
    output(args, value, f"NAME: {value['name']}\nVERSION: {value['version']}")


COMMANDS = {
    "version": cmd_version,
    "upgrade": cmd_upgrade,
    "status": cmd_status,
    "uninstall": cmd_uninstall,
    "list": cmd_list,
    "ls": cmd_list,
    "get": cmd_get,
}


def main(argv: list[str]) -> None:
    # Global flags may come before the command, as with helm.
    rest = Args(argv)
    command = rest.positional.pop(0) if rest.positional else ""
    if command not in COMMANDS:
        fail(f'unknown command "{command}" for "helm" (this helm-compatible CLI implements {", ".join(sorted(COMMANDS))})', 64)
    if command not in ("version", "list", "ls", "get") and not rest.positional:
        fail(f'"helm {command}" requires 1 argument')
    try:
        COMMANDS[command](rest)
    except helm.HelmKubeError as e:
        fail(f"Kubernetes cluster unreachable: {e.detail}")
    except helm.HelmError as e:
        fail(str(e.detail))


if __name__ == "__main__":
    main(sys.argv[1:])
