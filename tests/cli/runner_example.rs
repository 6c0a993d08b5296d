//! The `runner` example as a CI pipeline calls it: the token only from `GLRUNNER_RUNNER_TOKEN`,
//! exit 2 on bad input, never the token in its output; and, with Helm's real engine and a real
//! kube-apiserver (`GLRUNNER_TEST_HELM`, `GLRUNNER_TEST_KUBECONFIG`), install → status →
//! uninstall through the binary, and an upgrade that drains the shard's job pods first (pods
//! created directly in the API server with the executor's labels: it has no kubelet).

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
    // (arguments, environment, what the error must name)
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
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
        // Job disk (#25): beyond Fargate's 175 GiB, and ceilings beyond its largest pod.
        (
            &["values", "--ephemeral-storage", "200Gi"],
            &[],
            "--ephemeral-storage: \"200Gi\" is outside",
        ),
        (
            &["install", "--cpu-overwrite-max", "16"],
            &[],
            "--cpu-overwrite-max",
        ),
        (
            &["values", "--ephemeral-storage-overwrite-max", "1Ti"],
            &[],
            "--ephemeral-storage-overwrite-max",
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

/// `runner values` renders the job disk and the ceilings into the runner's config.
#[test]
fn values_carry_the_job_disk_and_the_overwrite_ceilings() {
    let out = run(
        "runner",
        &[
            "values",
            "--ephemeral-storage",
            "30Gi",
            "--cpu-overwrite-max",
            "2",
            "--memory-overwrite-max",
            "4Gi",
            "--ephemeral-storage-overwrite-max",
            "60Gi",
        ],
        &[],
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let values: serde_json::Value = serde_norway::from_str(&stdout).expect("values YAML");
    let config = values["runners"]["config"]
        .as_str()
        .expect("runners.config");
    for line in [
        "ephemeral_storage_request = \"30Gi\"",
        "ephemeral_storage_limit = \"30Gi\"",
        "cpu_request_overwrite_max_allowed = \"2\"",
        "cpu_limit_overwrite_max_allowed = \"2\"",
        "memory_request_overwrite_max_allowed = \"4Gi\"",
        "memory_limit_overwrite_max_allowed = \"4Gi\"",
        "ephemeral_storage_request_overwrite_max_allowed = \"60Gi\"",
        "ephemeral_storage_limit_overwrite_max_allowed = \"60Gi\"",
    ] {
        assert!(config.lines().any(|l| l == line), "{line} in {config}");
    }
}

#[test]
fn install_status_uninstall_through_the_binary_on_helms_real_engine() {
    let Some((helm, kubeconfig)) = crate::servers::helm_and_kubeconfig() else {
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

async fn kube_client(kubeconfig: &str) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("kube config");
    kube::Client::try_from(config).expect("kube client")
}

/// A job pod as GitLab Runner's Kubernetes executor labels it (unbound: Pending, no kubelet).
fn job_pod(name: &str, id_short: &str) -> k8s_openapi::api::core::v1::Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {
            "name": name,
            "labels": {
                "job.runner.gitlab.com/pod": name,
                "manager.runner.gitlab.com/id-short": id_short,
                "manager.runner.gitlab.com/name": "runner-drain-gitlab-runner-5fd7489954-x7k2p",
            },
            "annotations": {"job.runner.gitlab.com/id": "4242"},
        },
        "spec": {"containers": [{"name": "build", "image": "alpine:3.22"}]},
    }))
    .unwrap()
}

#[tokio::test]
async fn an_upgrade_waits_for_the_shards_job_pods_on_helms_real_engine() {
    use k8s_openapi::api::core::v1::{Namespace, Pod};
    use kube::Api;
    use kube::api::{DeleteParams, PostParams};

    let Some((helm, kubeconfig)) = crate::servers::helm_and_kubeconfig() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
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
    let ns = format!("glr-drain-{}", std::process::id());
    let chart_arg = chart.to_str().unwrap().to_string();
    let deploy = |cmd: &str, extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = [
            "--backend",
            "aws",
            "--output",
            "json",
            cmd,
            "--release",
            "runner-drain",
            "--namespace",
            &ns,
            "--helm",
            &helm,
            "--kubeconfig",
            &kubeconfig,
            "--gitlab-url",
            "https://gitlab.example.com",
            "--chart",
            &chart_arg,
            "--timeout",
            "60s",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let call = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run("runner", &args, &[("GLRUNNER_RUNNER_TOKEN", TOKEN)])
    };
    let json = |out: &std::process::Output| -> serde_json::Value {
        serde_json::from_str(&text(&out.stdout))
            .unwrap_or_else(|e| panic!("{e}: {}\n{}", text(&out.stdout), text(&out.stderr)))
    };

    let out = call(deploy("install", &[]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc = json(&out);
    assert_eq!(doc["drain"]["outcome"], "not_installed");
    assert_eq!(
        doc["runner"]["graceful_stop"]["drain_timeout_secs"], 3600,
        "helm stored the graceful stop: {doc}"
    );

    // Two jobs of this shard run (the token's short id is "example-S"), one of another shard,
    // and one pod that is not a job pod of any runner.
    let client = kube_client(&kubeconfig).await;
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    for (name, short) in [
        ("runner-example-s-job-1", "example-S"),
        ("runner-example-s-job-2", "example-S"),
        ("runner-other-job-1", "otherShrd"),
    ] {
        pods.create(&PostParams::default(), &job_pod(name, short))
            .await
            .unwrap();
    }

    // Waiting for the shard to drain runs out: exit 1, nothing upgraded, the flag to skip named.
    let out = call(deploy(
        "upgrade",
        &[
            "--wait-for-idle",
            "--drain-timeout",
            "2s",
            "--concurrent",
            "11",
        ],
    ));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("2 job pod(s)"), "{stderr}");
    assert!(stderr.contains("--force"), "{stderr}");
    assert!(
        stderr.contains("\"event\":\"drain_wait\""),
        "progress lines: {stderr}"
    );
    assert!(
        !stderr.contains("SuperSecret") && !stderr.contains("example-S"),
        "{stderr}"
    );
    let status = call(deploy_status(&ns, &helm, &kubeconfig));
    assert_eq!(json(&status)["revision"], 1, "nothing was upgraded");

    // The deployed manager stops gracefully: no wait, the roll lets the jobs finish.
    let out = call(deploy("upgrade", &["--concurrent", "12"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc = json(&out);
    assert_eq!(doc["revision"], 2);
    assert_eq!(doc["drain"]["outcome"], "graceful_stop");
    assert_eq!(doc["drain"]["running_at_start"], 2);
    assert_eq!(doc["drain"]["job_namespace"], ns.as_str());

    // --force: at once, and it says what was running.
    let out = call(deploy("upgrade", &["--force", "--concurrent", "13"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc = json(&out);
    assert_eq!(doc["drain"]["outcome"], "forced");
    assert_eq!(doc["drain"]["running_at_upgrade"], 2);

    // The jobs end while the upgrade waits: it goes ahead once the shard is idle.
    let waiting = {
        let args = deploy(
            "upgrade",
            &[
                "--wait-for-idle",
                "--drain-timeout",
                "2m",
                "--concurrent",
                "14",
            ],
        );
        // Started with its stderr read line by line: the jobs end once it reports its wait
        // (`drain_wait`), not after a fixed sleep a loaded machine may outlast.
        let (waiting_tx, waiting_rx) = tokio::sync::oneshot::channel::<()>();
        let child = tokio::task::spawn_blocking(move || {
            use std::io::BufRead as _;
            let mut child = std::process::Command::new(super::example("runner"))
                .args(&args)
                .env_remove("AWS_ENDPOINT_URL")
                .env_remove("AWS_REGION")
                .env("AWS_EC2_METADATA_DISABLED", "true")
                .env("GLRUNNER_RUNNER_TOKEN", TOKEN)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("runner example");
            let stderr = child.stderr.take().unwrap();
            let mut lines = Vec::new();
            let mut waiting_tx = Some(waiting_tx);
            for line in std::io::BufReader::new(stderr).lines() {
                let line = line.unwrap_or_default();
                if line.contains("\"event\":\"drain_wait\"")
                    && let Some(tx) = waiting_tx.take()
                {
                    let _ = tx.send(());
                }
                lines.push(line);
            }
            let mut out = child.wait_with_output().expect("runner example exits");
            out.stderr = lines.join("\n").into_bytes();
            out
        });
        tokio::time::timeout(std::time::Duration::from_secs(120), waiting_rx)
            .await
            .expect("the upgrade reports its wait")
            .expect("the upgrade reports its wait before it exits");
        // Waiting a while first, so the report's `waited_secs` has something to show.
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        child
    };
    for name in ["runner-example-s-job-1", "runner-example-s-job-2"] {
        pods.delete(name, &DeleteParams::default()).await.unwrap();
    }
    let out = waiting.await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc = json(&out);
    assert_eq!(doc["drain"]["outcome"], "drained", "{doc}");
    assert_eq!(doc["drain"]["running_at_start"], 2);
    assert_eq!(doc["drain"]["running_at_upgrade"], 0);
    assert!(
        doc["drain"]["waited_secs"].as_f64().unwrap() >= 1.0,
        "{doc}"
    );
    assert_eq!(doc["revision"], 4);

    let mut uninstall: Vec<String> = deploy_status(&ns, &helm, &kubeconfig);
    uninstall[4] = "uninstall".into();
    let out = call(uninstall);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let _ = Api::<Namespace>::all(client)
        .delete(&ns, &DeleteParams::default())
        .await;
}

/// `runner status` of the drain test's release.
fn deploy_status(ns: &str, helm: &str, kubeconfig: &str) -> Vec<String> {
    [
        "--backend",
        "aws",
        "--output",
        "json",
        "status",
        "--release",
        "runner-drain",
        "--namespace",
        ns,
        "--helm",
        helm,
        "--kubeconfig",
        kubeconfig,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}
