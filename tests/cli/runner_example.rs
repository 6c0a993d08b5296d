//! The `runner` example as a CI pipeline calls it: the token only from `GLRUNNER_RUNNER_TOKEN`,
//! exit 2 on bad input, never the token in its output; and, with Helm's real engine and a real
//! kube-apiserver (`GLRUNNER_TEST_HELM`, `GLRUNNER_TEST_KUBECONFIG`), install → status →
//! uninstall through the binary.

use super::{run, text};

const TOKEN: &str = "glrt-example-SuperSecretValue0123456789";

#[test]
fn sandbox_install_takes_the_token_from_the_environment_and_never_prints_it() {
    let out = run(
        "runner",
        &[
            "--output",
            "json",
            "install",
            "--release",
            "runner-a",
            "--namespace",
            "ci",
        ],
        &[("GLRUNNER_RUNNER_TOKEN", TOKEN)],
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON document");
    assert_eq!(doc["name"], "runner-a");
    assert_eq!(doc["state"], "deployed");
    assert!(
        !stdout.contains("SuperSecret") && !stderr.contains("SuperSecret"),
        "the token was printed"
    );
}

#[test]
fn bad_tokens_and_flags_exit_2_and_name_the_variable_or_flag() {
    let cases: &[(&[&str], &[(&str, &str)], &str)] = &[
        // On aws the token is required.
        (
            &[
                "--backend",
                "aws",
                "install",
                "--gitlab-url",
                "https://gitlab.example.com",
            ],
            &[],
            "GLRUNNER_RUNNER_TOKEN",
        ),
        // A legacy registration token is refused, without echoing it.
        (
            &["install"],
            &[("GLRUNNER_RUNNER_TOKEN", "GR1348941legacySecretValue")],
            "GLRUNNER_RUNNER_TOKEN",
        ),
        (
            &["install", "--job-namespace", "Bad_NS"],
            &[],
            "--job-namespace",
        ),
        (
            &["install", "--concurrent", "5", "--request-concurrency", "9"],
            &[],
            "--request-concurrency",
        ),
    ];
    for (args, env, needle) in cases {
        let mut env = env.to_vec();
        if !env.iter().any(|(k, _)| *k == "GLRUNNER_RUNNER_TOKEN") {
            env.push(("GLRUNNER_RUNNER_TOKEN", ""));
        }
        let out = run("runner", args, &env);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(!stderr.contains("legacySecretValue"), "{stderr}");
    }
}

#[test]
fn install_status_uninstall_through_the_binary_on_helms_real_engine() {
    let get = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let (Some(helm), Some(kubeconfig)) =
        (get("GLRUNNER_TEST_HELM"), get("GLRUNNER_TEST_KUBECONFIG"))
    else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!(
                "GLRUNNER_TEST_HELM and GLRUNNER_TEST_KUBECONFIG must be set in CI (./scripts/test.sh)"
            );
        }
        eprintln!(
            "skipping: set GLRUNNER_TEST_HELM (scripts/helm-sdk.sh install) and GLRUNNER_TEST_KUBECONFIG"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // The smallest chart with the official chart's name and version: one ConfigMap.
    let chart = dir.path().join("gitlab-runner");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::write(
        chart.join("Chart.yaml"),
        "apiVersion: v2\nname: gitlab-runner\nversion: 0.86.0\nappVersion: 18.9.0\n",
    )
    .unwrap();
    std::fs::write(
        chart.join("templates/configmap.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\ndata:\n  concurrent: {{ .Values.concurrent | quote }}\n",
    )
    .unwrap();
    let ns = format!("glr-bin-{}", std::process::id());
    let chart_arg = chart.to_str().unwrap().to_string();
    let common = |cmd: &'static str| -> Vec<String> {
        [
            "--backend",
            "aws",
            "--output",
            "json",
            cmd,
            "--release",
            "runner-bin",
            "--namespace",
            &ns,
            "--helm",
            &helm,
            "--kubeconfig",
            &kubeconfig,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let call = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run("runner", &args, &[("GLRUNNER_RUNNER_TOKEN", TOKEN)])
    };
    let mut install = common("install");
    install.extend(
        [
            "--gitlab-url",
            "https://gitlab.example.com",
            "--chart",
            &chart_arg,
            "--concurrent",
            "30",
            "--timeout",
            "60s",
        ]
        .map(String::from),
    );
    let out = call(install);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["revision"], 1);
    assert_eq!(
        doc["runner"]["concurrent"], 30,
        "read back from helm: {doc}"
    );
    assert!(!stdout.contains("SuperSecret"));

    let out = call(common("status"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(doc["chart_version"], "0.86.0");

    let out = call(common("uninstall"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(doc["removal"], "removed");
    let out = call(common("status"));
    assert_eq!(out.status.code(), Some(1), "gone: {}", text(&out.stdout));
}
