#!/usr/bin/env python3
"""Derives the flags of the helm subcommands glrunner runs from Helm's own cobra definitions.

    scripts/helm_flags_gen.py HELM_GIT_DIR KLOG_GIT_DIR TAG... > scripts/helm_flags.json

HELM_GIT_DIR is a clone of github.com/helm/helm (bare is fine), KLOG_GIT_DIR one of
github.com/kubernetes/klog (helm adds klog's flags to its own, hidden). For each TAG it reads, at
that tag and nothing else:

- the command constructors (`cmd/helm/*.go` before v4, `pkg/cmd/*.go` from v4.0.0): every
  `f.XxxVar[P](&v, "name", "s", ...)`, `f.Xxx[P]("name", ...)`, `cmd.Flags().Var[P](v, name, ...)`
  in the constructor and in the package's helper functions it calls (`addChartPathOptionsFlags`,
  `bindOutputFlag`, `AddWaitFlag`, ...), `Lookup("name").NoOptDefVal = ...`, `MarkDeprecated`,
  `MarkHidden`; string constants used as names (`outputFlag`) are resolved;
- the root command's persistent flags: `settings.AddFlags` (`pkg/cli/environment.go`) and
  `addKlogFlags` (klog's `InitFlags` at the klog version in helm's `go.mod`, names with `_`
  turned into `-`, one-letter names also a shorthand: pflag `PFlagFromGoFlag`);
- cobra's own `-h/--help`, which cobra adds to every command (`InitDefaultHelpFlag`).

Each flag records where it is defined (`file:line` at the tag), whether it takes a value
(`bool`/`optional` flags take one only as `--name=value`: pflag's NoOptDefVal), and that value.
The output is what scripts/helm_sdk_cli.py parses with and what glrunner's tests check its
command lines against; regenerate it, never edit it by hand.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

# The subcommands glrunner runs (crates/runner-chart/src/helm.rs), by cobra path, and their
# constructors. `get metadata` exists from v3.13.0 (helm/helm cmd/helm/get_metadata.go).
COMMANDS = {
    "version": "newVersionCmd",
    "upgrade": "newUpgradeCmd",
    "status": "newStatusCmd",
    "uninstall": "newUninstallCmd",
    "list": "newListCmd",
    "history": "newHistoryCmd",
    "rollback": "newRollbackCmd",
    "get metadata": "newGetMetadataCmd",
}

# pflag types whose flags take no value unless given as --name=value (NoOptDefVal "true").
BOOL_TYPES = {"Bool", "BoolP", "BoolVar", "BoolVarP"}


def git(gitdir: str, *args: str) -> str:
    return subprocess.run(
        ["git", f"--git-dir={gitdir}", *args], check=True, capture_output=True, text=True
    ).stdout


def show(gitdir: str, tag: str, path: str) -> str:
    return git(gitdir, "show", f"{tag}:{path}")


def split_args(text: str, start: int) -> tuple[list[str], int]:
    """The top-level comma-separated arguments of the call whose '(' is at text[start]."""
    depth, i, args, cur = 0, start, [], []
    while i < len(text):
        c = text[i]
        if c in "\"'`":
            end = i + 1
            while end < len(text) and text[end] != c:
                end += 2 if c != "`" and text[end] == "\\" else 1
            cur.append(text[i : end + 1])
            i = end + 1
            continue
        if c in "([{":
            depth += 1
            if depth > 1:
                cur.append(c)
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                args.append("".join(cur).strip())
                return args, i
            cur.append(c)
        elif c == "," and depth == 1:
            args.append("".join(cur).strip())
            cur = []
        else:
            cur.append(c)
        i += 1
    raise ValueError("unbalanced call")


def go_string(expr: str, consts: dict[str, str]) -> str | None:
    expr = expr.strip()
    if len(expr) >= 2 and expr[0] == expr[-1] and expr[0] in "\"`":
        return json.loads(expr) if expr[0] == '"' else expr[1:-1]
    return consts.get(expr)


class Package:
    """The non-test Go files of one directory at one tag: functions, string constants."""

    def __init__(self, gitdir: str, tag: str, directory: str) -> None:
        self.funcs: dict[str, tuple[str, int, str]] = {}  # name -> (file, first line, body)
        self.consts: dict[str, str] = {}
        names = git(gitdir, "ls-tree", "--name-only", f"{tag}:{directory}").split()
        for name in names:
            if not name.endswith(".go") or name.endswith("_test.go"):
                continue
            path = f"{directory}/{name}"
            text = show(gitdir, tag, path)
            for m in re.finditer(r'^\s*(?:const\s+)?(\w+)\s*(?:string\s*)?=\s*"([^"]*)"', text, re.M):
                self.consts.setdefault(m.group(1), m.group(2))
            for m in re.finditer(r"^func (\([^)]*\) )?(\w+)\(", text, re.M):
                end = text.find("\n}", m.start())
                body = text[m.start() : end + 2]
                line = text.count("\n", 0, m.start()) + 1
                if m.group(1) is None:  # package functions only, not methods
                    self.funcs[m.group(2)] = (path, line, body)

    def flags(self, func: str, seen: set[str] | None = None) -> dict[str, dict[str, Any]]:
        """Flags defined by `func` and the helpers it calls (constructors of other commands excluded)."""
        seen = seen if seen is not None else set()
        if func in seen or func not in self.funcs:
            return {}
        seen.add(func)
        path, first, body = self.funcs[func]
        out: dict[str, dict[str, Any]] = {}
        call = re.compile(
            r"\.(Bool|String|Int|Uint|Int64|Duration|Float32|Float64|StringSlice|StringArray|StringToString|Count|)(Var)?(P)?\("
        )
        for m in call.finditer(body):
            typ, var, short_form = m.group(1), m.group(2), m.group(3)
            if not var and not typ:
                continue  # a bare `.(` or `.P(`, not a flag definition
            receiver = body[max(0, m.start() - 40) : m.start()]
            if not re.search(r"(\bf|\bfs|\bflags|Flags\(\)|PersistentFlags\(\))$", receiver):
                continue
            try:
                args, _ = split_args(body, m.end() - 1)
            except ValueError:
                continue
            offset = 1 if var else 0
            if len(args) <= offset:
                continue
            name = go_string(args[offset], self.consts)
            if name is None:
                continue
            short = go_string(args[offset + 1], self.consts) if short_form else None
            kind = "bool" if typ == "Bool" else "value"
            line = first + body.count("\n", 0, m.start())
            out[name] = {
                "short": short or None,
                "kind": kind,
                "type": typ + (var or "") + (short_form or ""),
                "no_opt_default": "true" if kind == "bool" else None,
                "at": f"{path}:{line}",
            }
        for m in re.finditer(r'Lookup\(("[^"]+"|\w+)\)\.NoOptDefVal\s*=\s*(.+)', body):
            name = go_string(m.group(1), self.consts)
            if name in out:
                raw = m.group(2).strip()
                value = go_string(raw, self.consts)
                if value is None:  # string(kube.StatusWatcherStrategy): resolved below by the caller
                    value = raw
                out[name]["kind"] = "optional"
                out[name]["no_opt_default"] = value
                out[name]["no_opt_default_at"] = f"{path}:{first + body.count(chr(10), 0, m.start())}"
        for m in re.finditer(r'MarkDeprecated\(("[^"]+"|\w+),\s*("(?:[^"\\]|\\.)*")', body):
            name = go_string(m.group(1), self.consts)
            if name in out:
                out[name]["deprecated"] = json.loads(m.group(2))
        for m in re.finditer(r'MarkHidden\(("[^"]+"|\w+)\)', body):
            name = go_string(m.group(1), self.consts)
            if name in out:
                out[name]["hidden"] = True
        for m in re.finditer(r"(?<![.\w])([a-zA-Z_]\w*)\(", body):
            callee = m.group(1)
            if callee != func and callee in self.funcs and not re.fullmatch(r"[nN]ew\w*Cmd", callee):
                for name, flag in self.flags(callee, seen).items():
                    out.setdefault(name, flag)
        return out


def use_line(body: str) -> tuple[str | None, list[str]]:
    use = re.search(r'Use:\s*"([^"]*)"', body)
    aliases = re.search(r"Aliases:\s*\[\]string\{([^}]*)\}", body)
    names = re.findall(r'"([^"]+)"', aliases.group(1)) if aliases else []
    return (use.group(1) if use else None), names


def go_mod_version(gitdir: str, tag: str, module: str) -> str:
    m = re.search(rf"^\s*{re.escape(module)} (v\S+)", show(gitdir, tag, "go.mod"), re.M)
    if not m:
        raise SystemExit(f"{module} not in go.mod at {tag}")
    return m.group(1)


def env_flags(gitdir: str, tag: str) -> dict[str, dict[str, Any]]:
    path = "pkg/cli/environment.go"
    text = show(gitdir, tag, path)
    start = text.index("func (s *EnvSettings) AddFlags(")
    body = text[start : text.index("\n}", start)]
    first = text.count("\n", 0, start) + 1
    out: dict[str, dict[str, Any]] = {}
    for m in re.finditer(r'fs\.(\w+?)(Var)(P)?\(&[^,]+,\s*"([^"]+)"(?:,\s*"([^"]*)")?', body):
        typ, name = m.group(1), m.group(4)
        kind = "bool" if typ == "Bool" else "value"
        out[name] = {
            "short": m.group(5) if m.group(3) else None,
            "kind": kind,
            "type": typ + "Var" + (m.group(3) or ""),
            "no_opt_default": "true" if kind == "bool" else None,
            "at": f"{path}:{first + body.count(chr(10), 0, m.start())}",
        }
    return out


def klog_flags(klog_dir: str, version: str) -> dict[str, dict[str, Any]]:
    text = show(klog_dir, version, "klog.go")
    out: dict[str, dict[str, Any]] = {}
    for m in re.finditer(r'(?:flagset|commandLine)\.(\w*?)Var\(&[^,]+,\s*"([^"]+)"', text):
        typ, raw = m.group(1), m.group(2)
        name = raw.replace("_", "-")
        kind = "bool" if typ == "Bool" else "value"
        out[name] = {
            "short": name if len(name) == 1 else None,
            "kind": kind,
            "type": f"go flag {typ or 'Var'}",
            "no_opt_default": "true" if kind == "bool" else None,
            "hidden": True,
            "at": f"kubernetes/klog {version} klog.go:{text.count(chr(10), 0, m.start()) + 1}",
        }
    return out


def table(gitdir: str, klog_dir: str, tag: str) -> dict[str, Any]:
    directory = "pkg/cmd" if tag.startswith("v4") or tag.startswith("v5") else "cmd/helm"
    pkg = Package(gitdir, tag, directory)
    # kube.StatusWatcherStrategy and friends: the wait strategies' string values.
    kube_consts: dict[str, str] = {}
    try:
        for name in git(gitdir, "ls-tree", "--name-only", f"{tag}:pkg/kube").split():
            if name.endswith(".go") and not name.endswith("_test.go"):
                for m in re.finditer(r'^\s*(\w+)\s+WaitStrategy\s*=\s*"([^"]*)"', show(gitdir, tag, f"pkg/kube/{name}"), re.M):
                    kube_consts[f"string(kube.{m.group(1)})"] = m.group(2)
    except subprocess.CalledProcessError:
        pass
    root = "newRootCmdWithConfig" if "newRootCmdWithConfig" in pkg.funcs else "newRootCmd"
    root_body = pkg.funcs[root][2]
    persistent: dict[str, dict[str, Any]] = {}
    if "settings.AddFlags(flags)" in root_body:
        persistent.update(env_flags(gitdir, tag))
    klog = None
    if "addKlogFlags(flags)" in root_body:
        klog = go_mod_version(gitdir, tag, "k8s.io/klog/v2")
        for name, flag in klog_flags(klog_dir, klog).items():
            persistent.setdefault(name, flag)  # addKlogFlags skips names already defined
    cobra = go_mod_version(gitdir, tag, "github.com/spf13/cobra")
    pflag = go_mod_version(gitdir, tag, "github.com/spf13/pflag")
    commands: dict[str, Any] = {}
    for path, ctor in COMMANDS.items():
        if ctor not in pkg.funcs:
            continue
        file, line, body = pkg.funcs[ctor]
        use, aliases = use_line(body)
        flags = pkg.flags(ctor)
        for flag in flags.values():
            if flag.get("no_opt_default") in kube_consts:
                flag["no_opt_default"] = kube_consts[flag["no_opt_default"]]
        flags.setdefault(
            "help",
            {"short": "h", "kind": "bool", "type": "BoolP", "no_opt_default": "true",
             "at": f"spf13/cobra {cobra} command.go (InitDefaultHelpFlag)"},
        )
        commands[path] = {"use": use, "aliases": aliases, "constructor": f"{file}:{line}",
                          "flags": dict(sorted(flags.items()))}
    return {
        "source": f"helm/helm {tag} ({directory}/*.go, pkg/cli/environment.go AddFlags)",
        "commit": git(gitdir, "rev-list", "-n1", tag).strip(),
        "cobra": cobra,
        "pflag": pflag,
        "klog": klog,
        "global": dict(sorted(persistent.items())),
        "commands": commands,
    }


def main(argv: list[str]) -> None:
    if len(argv) < 3:
        raise SystemExit(__doc__)
    gitdir, klog_dir, tags = argv[0], argv[1], argv[2:]
    out = {
        "generated_by": "scripts/helm_flags_gen.py " + " ".join(["HELM_GIT_DIR", "KLOG_GIT_DIR", *tags]),
        "note": "derived from Helm's cobra definitions at each tag; regenerate, do not edit",
        "tables": {tag: table(gitdir, klog_dir, tag) for tag in tags},
    }
    json.dump(out, sys.stdout, indent=1, sort_keys=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1:])
