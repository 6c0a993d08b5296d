//! Every command line `HelmCli` builds, checked against the flags Helm's own cobra commands
//! define for the helm version it talks to: `scripts/helm_flags.json`, derived from helm/helm's
//! source at v3.8.0, v3.19.0, v4.0.0 and v4.2.4 by `scripts/helm_flags_gen.py` (the same table
//! the helm-compatible CLI on Helm's engine parses with). The check parses as pflag does
//! (spf13/pflag v1.0.10 flag.go `parseLongArg`, `parseSingleShortArg`) and answers pflag's own
//! errors, so `--all` on Helm 4 is `unknown flag: --all`, as the real helm says.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use glrunner_runner_chart::{
    ChartSource, ChartVersion, HelmCli, ReleaseId, ReleaseManager, ReleaseSpec, RunnerValues,
};
use serde::Deserialize;

use super::fake_helm::FakeHelm;

#[derive(Debug, Deserialize)]
struct Tables {
    tables: BTreeMap<String, Table>,
}

#[derive(Debug, Deserialize)]
struct Table {
    source: String,
    global: BTreeMap<String, Flag>,
    commands: BTreeMap<String, Command>,
}

#[derive(Debug, Deserialize)]
struct Command {
    #[serde(default)]
    aliases: Vec<String>,
    flags: BTreeMap<String, Flag>,
}

#[derive(Debug, Clone, Deserialize)]
struct Flag {
    short: Option<String>,
    kind: String,
    no_opt_default: Option<String>,
    at: String,
}

/// `scripts/helm_flags.json` of the checkout the test runs in (read at run time: the build cache
/// is shared between checkouts).
fn tables() -> Tables {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
    let path = dir.join("../../scripts/helm_flags.json");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("helm_flags.json")
}

/// Go's strconv.ParseBool, which pflag's bool flags use.
fn go_bool(v: &str) -> bool {
    matches!(
        v,
        "1" | "t" | "T" | "TRUE" | "true" | "True" | "0" | "f" | "F" | "FALSE" | "false" | "False"
    )
}

impl Table {
    /// The command path `argv` runs (cobra's `Find`, skipping the root's flags and their values).
    fn command(&self, argv: &[String]) -> Result<(String, Vec<String>), String> {
        let takes_value = |f: Option<&Flag>| f.is_some_and(|f| f.no_opt_default.is_none());
        let short = |c: &str| self.global.values().find(|f| f.short.as_deref() == Some(c));
        let mut rest = argv.to_vec();
        let mut words = Vec::new();
        let mut i = 0;
        while i < rest.len() && rest[i] != "--" {
            let arg = &rest[i];
            if let Some(name) = arg.strip_prefix("--") {
                i += if !name.contains('=') && takes_value(self.global.get(name)) {
                    2
                } else {
                    1
                };
            } else if arg.len() > 1 && arg.starts_with('-') {
                i += if arg.len() == 2 && takes_value(short(&arg[1..])) {
                    2
                } else {
                    1
                };
            } else {
                words.push(rest.remove(i));
                let path = words.join(" ");
                let top = self
                    .commands
                    .iter()
                    .find(|(p, c)| **p == path || (words.len() == 1 && c.aliases.contains(&path)));
                if let Some((p, _)) = top {
                    return Ok((p.clone(), rest));
                }
                // `helm get` has had subcommands since v3.0.0 (cmd/helm/get.go); the tables
                // hold only those glrunner runs.
                let parent = words[0] == "get"
                    || self
                        .commands
                        .keys()
                        .any(|p| p.split(' ').next() == Some(&words[0]) && p.contains(' '));
                match (parent, words.as_slice()) {
                    (false, _) => return Err(format!("unknown command {path:?} for \"helm\"")),
                    (true, [parent, sub]) => {
                        return Err(format!("unknown command {sub:?} for \"helm {parent}\""));
                    }
                    _ => {}
                }
            }
        }
        Err(format!("no helm command in {argv:?}"))
    }

    /// Parses `argv` as helm's pflag would, with the global flags and those of its command;
    /// pflag's error text for the first flag it would refuse.
    fn check(&self, argv: &[String]) -> Result<String, String> {
        let (path, rest) = self.command(argv)?;
        let mut flags = self.global.clone();
        flags.extend(self.commands[&path].flags.clone());
        let by_short: BTreeMap<char, (&String, &Flag)> = flags
            .iter()
            .filter_map(|(n, f)| Some((f.short.as_deref()?.chars().next()?, (n, f))))
            .collect();
        let bool_ok = |name: &str, flag: &Flag, value: &str| {
            if flag.kind == "bool" && !go_bool(value) {
                Err(format!(
                    "invalid argument {value:?} for \"--{name}\" flag: strconv.ParseBool: parsing {value:?}: invalid syntax"
                ))
            } else {
                Ok(())
            }
        };
        let mut it = rest.iter();
        while let Some(arg) = it.next() {
            if arg == "--" {
                break;
            }
            if let Some(long) = arg.strip_prefix("--") {
                let (name, value) = match long.split_once('=') {
                    Some((n, v)) => (n, Some(v.to_string())),
                    None => (long, None),
                };
                let flag = flags
                    .get(name)
                    .ok_or_else(|| format!("unknown flag: --{name}"))?;
                let value = match value {
                    Some(v) => v,
                    None => match &flag.no_opt_default {
                        Some(d) => d.clone(),
                        None => it
                            .next()
                            .cloned()
                            .ok_or_else(|| format!("flag needs an argument: --{name}"))?,
                    },
                };
                bool_ok(name, flag, &value)?;
            } else if let Some(group) = arg.strip_prefix('-').filter(|g| !g.is_empty()) {
                let chars: Vec<char> = group.chars().collect();
                let mut k = 0;
                while k < chars.len() {
                    let c = chars[k];
                    let (name, flag) = by_short
                        .get(&c)
                        .ok_or_else(|| format!("unknown shorthand flag: '{c}' in -{group}"))?;
                    if chars.len() > k + 2 && chars[k + 1] == '=' {
                        let value: String = chars[k + 2..].iter().collect();
                        bool_ok(name, flag, &value)?;
                        break;
                    } else if flag.no_opt_default.is_some() {
                        k += 1;
                    } else if k + 1 < chars.len() {
                        break;
                    } else {
                        it.next()
                            .ok_or_else(|| format!("flag needs an argument: '{c}' in -{group}"))?;
                        break;
                    }
                }
            }
        }
        Ok(path)
    }
}

#[test]
fn the_check_refuses_what_helm_refuses() {
    let t = tables();
    let argv = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
    let v3 = &t.tables["v3.19.0"];
    let v4 = &t.tables["v4.2.4"];
    assert_eq!(v3.check(&argv("list --all --max 0")), Ok("list".into()));
    // helm/helm 8a73d9798 removed `--all` in v4.0.0 (pkg/cmd/list.go).
    assert_eq!(
        v4.check(&argv("list --all --max 0")),
        Err("unknown flag: --all".into())
    );
    assert_eq!(
        v4.check(&argv("ls -a")),
        Err("unknown shorthand flag: 'a' in -a".into())
    );
    assert_eq!(
        v3.check(&argv("upgrade r c --wait=watcher")),
        Err(
            "invalid argument \"watcher\" for \"--wait\" flag: strconv.ParseBool: parsing \"watcher\": invalid syntax"
                .into()
        )
    );
    assert_eq!(
        v4.check(&argv("--kubeconfig k upgrade r c --wait=watcher -n ns")),
        Ok("upgrade".into())
    );
    assert_eq!(
        v3.check(&argv("upgrade r c --server-side auto")),
        Err("unknown flag: --server-side".into())
    );
    assert_eq!(
        t.tables["v3.8.0"].check(&argv("get metadata r")),
        Err("unknown command \"metadata\" for \"helm get\"".into()),
        "`helm get metadata` came with v3.13.0"
    );
    assert_eq!(
        v3.check(&argv("status r --timeout")),
        Err("unknown flag: --timeout".into())
    );
    // Each table says where it comes from, and each flag where it is defined.
    for (tag, table) in &t.tables {
        assert!(
            table.source.starts_with(&format!("helm/helm {tag} ")),
            "{tag}: {}",
            table.source
        );
        assert!(
            table.global["namespace"]
                .at
                .starts_with("pkg/cli/environment.go:")
        );
    }
}

fn spec(chart: ChartSource) -> ReleaseSpec {
    let values = RunnerValues::new("https://gitlab.example.com/")
        .with_concurrent(20)
        .with_runner_tags(["glrunner-1"]);
    ReleaseSpec::new("gitlab-runner-1", "ci", values)
        .with_chart(chart)
        .with_timeout(Duration::from_secs(120))
}

/// Runs every operation `HelmCli` has against the fake helm answering as helm `tag`, and returns
/// the command lines it issued.
async fn command_lines(tag: &str) -> Vec<Vec<String>> {
    let fake = FakeHelm::new();
    fake.set_version(&format!("{tag}+gfake"));
    let helm = HelmCli::builder()
        .with_program(fake.program())
        .with_kubeconfig(fake.kubeconfig())
        .with_context("test-ctx")
        .build()
        .unwrap();
    let repo = spec(ChartSource::Repo {
        version: ChartVersion::default(),
    });
    let oci = spec(ChartSource::Oci {
        reference: "oci://registry.example.com/charts/gitlab-runner".into(),
        version: ChartVersion::default(),
    });
    let local = spec(ChartSource::Path {
        path: "chart".into(),
    });
    helm.ensure(&repo).await.unwrap();
    helm.ensure(&oci).await.unwrap();
    helm.upgrade(&local).await.unwrap();
    helm.status(&repo.id()).await.unwrap();
    helm.status(&ReleaseId::new("ci", "absent")).await.unwrap();
    helm.list(Some("ci")).await.unwrap();
    helm.list(None).await.unwrap();
    helm.uninstall(&repo.id(), Duration::from_secs(60))
        .await
        .unwrap();
    helm.uninstall(&repo.id(), Duration::from_secs(60))
        .await
        .unwrap();
    // Releases left pending by a killed helm, long ago: a pending upgrade is rolled back
    // (`history`, `rollback`), a pending install uninstalled, and the upgrade goes on.
    helm.ensure(&repo).await.unwrap();
    helm.ensure(&repo).await.unwrap();
    fake.set_pending("ci", &repo.name, "pending-upgrade", "2000-01-01T00:00:00Z");
    assert_eq!(helm.ensure(&repo).await.unwrap().revision, 4);
    helm.uninstall(&repo.id(), Duration::from_secs(60))
        .await
        .unwrap();
    helm.ensure(&repo).await.unwrap();
    fake.set_pending("ci", &repo.name, "pending-install", "2000-01-01T00:00:00Z");
    assert_eq!(helm.ensure(&repo).await.unwrap().revision, 1);
    fake.calls().into_iter().map(|c| c.argv).collect()
}

#[tokio::test]
async fn every_command_line_uses_only_flags_of_the_helm_it_runs() {
    let t = tables();
    assert!(
        ["v3.8.0", "v3.19.0", "v4.0.0", "v4.2.4"]
            .iter()
            .all(|tag| t.tables.contains_key(*tag)),
        "{:?}",
        t.tables.keys()
    );
    let mut refused = Vec::new();
    let mut seen = BTreeMap::new();
    for (tag, table) in &t.tables {
        let lines = command_lines(tag).await;
        let mut commands = std::collections::BTreeSet::new();
        for argv in &lines {
            match table.check(argv) {
                Ok(path) => {
                    commands.insert(path);
                }
                Err(e) => refused.push(format!("helm {tag} ({}): {argv:?}: {e}", table.source)),
            }
        }
        seen.insert(tag.clone(), (commands, lines));
    }
    assert!(refused.is_empty(), "{}", refused.join("\n"));
    for (tag, (commands, lines)) in &seen {
        for expected in [
            "version",
            "upgrade",
            "status",
            "list",
            "uninstall",
            "history",
            "rollback",
        ] {
            assert!(
                commands.contains(expected),
                "{tag}: no {expected} in {lines:?}"
            );
        }
    }
}
