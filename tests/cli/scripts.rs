//! scripts/test.sh requires its servers: each start's exit status is checked and its variable
//! required (`start_server` in scripts/servers.sh, the function test.sh uses).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    // The checkout's directory at run time: the build cache is shared between checkouts, so this
    // binary may have been built in another one.
    std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
}

/// Sources scripts/servers.sh and runs `script` in bash with `path_prefix` first on PATH.
fn bash(script: &str, path_prefix: Option<&Path>) -> Output {
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(format!("set -euo pipefail; . scripts/servers.sh; {script}"))
        .current_dir(root());
    if let Some(dir) = path_prefix {
        let path = std::env::var("PATH").unwrap_or_default();
        cmd.env("PATH", format!("{}:{path}", dir.display()));
    }
    cmd.output().expect("bash")
}

#[test]
fn a_server_that_fails_to_start_fails_the_run() {
    // The real moto start, with a python3 that cannot run: moto.sh exits non-zero.
    let stubs = tempfile::tempdir().unwrap();
    let python = stubs.path().join("python3");
    std::fs::write(&python, "#!/bin/sh\nexit 1\n").unwrap();
    let mut perms = std::fs::metadata(&python).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&python, perms).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = bash(
        &format!(
            "start_server moto GLRUNNER_TEST_MOTO_URL scripts/moto.sh start {}; echo started",
            dir.path().display()
        ),
        Some(stubs.path()),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("started"));
    assert!(stderr.contains("moto did not start"), "{stderr}");
}

#[test]
fn a_start_without_its_variable_fails_and_a_good_one_exports_it() {
    let out = bash("start_server fake GLRUNNER_TEST_FAKE_URL echo ready", None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("printed no GLRUNNER_TEST_FAKE_URL"));

    let out = bash(
        "start_server fake GLRUNNER_TEST_FAKE_URL echo GLRUNNER_TEST_FAKE_URL=http://127.0.0.1:1; \
         echo \"got $GLRUNNER_TEST_FAKE_URL\"",
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("got http://127.0.0.1:1"));
}

/// The composition library carries no command line and no virtual clock into an embedder's
/// build: `cargo tree -p glrunner-flow -e normal` (default features) has no clap, indicatif or
/// tokio's `test-util`, and the sandbox depends on the flow, never the reverse.
#[test]
fn the_flow_crate_s_tree_has_no_cli_and_no_test_clock() {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let root = std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let tree = |args: &[&str]| {
        let out = std::process::Command::new(&cargo)
            .current_dir(&root)
            .args([
                "tree",
                "--offline",
                "--prefix",
                "none",
                "-p",
                "glrunner-flow",
            ])
            .args(args)
            .output()
            .expect("cargo runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let crates = tree(&["-e", "normal"]);
    for banned in ["clap ", "indicatif ", "glrunner-sandbox ", "glrunner v"] {
        assert!(
            !crates.lines().any(|l| l.starts_with(banned)),
            "glrunner-flow depends on {banned}:\n{crates}"
        );
    }
    let tokio = tree(&["-e", "normal,features", "-i", "tokio"]);
    assert!(
        !tokio
            .lines()
            .any(|l| l.starts_with("tokio feature \"test-util\"")),
        "tokio's test-util reaches glrunner-flow:\n{tokio}"
    );
}
