//! The `reap` example as CI pipelines and CronJobs call it: the sandbox demo fleet, `--watch`
//! rounds, bad input, the `rbac` manifest, and — against the real kube-apiserver in RBAC mode —
//! applying that manifest and reaping as its ServiceAccount through impersonation.

use std::collections::BTreeMap;
use std::time::Duration;

use glrunner_janitor::conformance::PodFixtures;
use glrunner_janitor::k8s::KubePodApi;
use glrunner_janitor::k8s::fixtures::KubeFixtures;
use glrunner_janitor::memory::NewPod;
use glrunner_janitor::{Error, ListQuery, PodApi};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::Value;

use super::{run, text};

/// Every JSON document on stdout (`--output json` prints one per round).
fn json_documents(stdout: &[u8]) -> Vec<Value> {
    serde_json::Deserializer::from_slice(stdout)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .expect("stdout is JSON documents")
}

#[test]
fn sandbox_round_reaps_the_demo_fleets_hung_pods() {
    let out = run("reap", &["--output", "json"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let docs = json_documents(&out.stdout);
    assert_eq!(docs.len(), 1);
    let report = &docs[0];
    assert_eq!(report["backend"], "memory");
    assert_eq!(report["dry_run"], false);
    let by_reason: BTreeMap<String, u64> =
        serde_json::from_value(report["reaped_by_reason"].clone()).unwrap();
    assert_eq!(
        by_reason,
        BTreeMap::from([
            ("finished".into(), 2),
            ("past_job_timeout".into(), 2),
            ("pending_too_long".into(), 3),
            ("stuck_terminating".into(), 1),
        ])
    );
    // The runner managers and the name-alike are never job pods: the label selector leaves them out.
    let reaped: Vec<&str> = report["reaped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        reaped.iter().all(|n| n.starts_with("runner-3lj4ihzt1-")),
        "{reaped:?}"
    );

    let human = run("reap", &["--dry-run"], &[]);
    assert_eq!(human.status.code(), Some(0));
    let stdout = text(&human.stdout);
    assert!(stdout.contains("DRY RUN, nothing deleted"), "{stdout}");
    assert!(stdout.contains("would force"), "{stdout}");
}

#[test]
fn watch_prints_one_report_per_round_and_stops_after_the_asked_rounds() {
    let out = run(
        "reap",
        &[
            "--watch",
            "--interval",
            "1s",
            "--rounds",
            "3",
            "--output",
            "json",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let docs = json_documents(&out.stdout);
    assert_eq!(docs.len(), 3, "one report per round");
    let deleted: Vec<usize> = docs
        .iter()
        .map(|d| {
            d["reaped"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["action"] == "deleted" || p["action"] == "terminating")
                .count()
        })
        .collect();
    assert!(deleted[0] > 0, "the first round reaps: {deleted:?}");
    assert_eq!(&deleted[1..], [0, 0], "later rounds find nothing new");
}

#[test]
fn bad_input_exits_2_naming_the_flag() {
    for (args, needle) in [
        (&["--namespace", "Bad_NS"][..], "--namespace"),
        (&["--grace", "soon"], "--grace"),
        (&["--concurrency", "0"], "--concurrency"),
        (&["--watch", "--interval", "never"], "--interval"),
        (&["--interval", "5m"], "--watch"),
        (&["--kubeconfig", "/nonexistent/kc"], "--kubeconfig"),
        (
            &["--backend", "aws", "--kubeconfig", "/nonexistent/kc"],
            "kubeconfig",
        ),
        (&["rbac", "--namespace", "Bad_NS"], "namespace"),
    ] {
        let out = run("reap", args, &[]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?} should name {needle}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{args:?}: nothing printed on stdout");
    }
}

fn documents(yaml: &str) -> Vec<DynamicObject> {
    yaml.split("---\n")
        .map(|d| serde_norway::from_str(d).expect("a manifest document"))
        .collect()
}

#[test]
fn rbac_prints_one_role_and_binding_per_namespace_and_no_cluster_scope() {
    let out = run("reap", &["rbac", "-n", "gitlab-runner", "-n", "jobs"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let docs = documents(&text(&out.stdout));
    let kinds: Vec<(String, String)> = docs
        .iter()
        .map(|d| {
            (
                d.types.as_ref().unwrap().kind.clone(),
                d.metadata.namespace.clone().unwrap(),
            )
        })
        .collect();
    let expected = [
        ("ServiceAccount", "gitlab-runner"),
        ("Role", "gitlab-runner"),
        ("RoleBinding", "gitlab-runner"),
        ("Role", "jobs"),
        ("RoleBinding", "jobs"),
    ]
    .map(|(k, n)| (k.to_owned(), n.to_owned()));
    assert_eq!(kinds, expected);
    assert_eq!(
        docs[1].data["rules"][0]["verbs"],
        serde_json::json!(["get", "list", "watch", "delete"])
    );
}

/// Server-side applies every document of a manifest as the admin.
async fn apply(client: &kube::Client, yaml: &str) {
    for doc in documents(yaml) {
        let types = doc.types.clone().expect("apiVersion and kind");
        let gvk = GroupVersionKind::try_from(&types).unwrap();
        let resource = ApiResource::from_gvk(&gvk);
        let ns = doc.metadata.namespace.clone().unwrap();
        let name = doc.metadata.name.clone().unwrap();
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &resource);
        api.patch(
            &name,
            &PatchParams::apply("glrunner-tests").force(),
            &Patch::Apply(&doc),
        )
        .await
        .unwrap_or_else(|e| panic!("apply {} {ns}/{name}: {e}", types.kind));
    }
}

/// A kubeconfig acting as `user` through impersonation (`as:`), from the admin's.
fn impersonating(admin: &str, user: &str) -> String {
    let mut out = String::new();
    for line in admin.lines() {
        out.push_str(line);
        out.push('\n');
        if line.trim_start().starts_with("token:") {
            out.push_str(&format!("    as: {user}\n"));
        }
    }
    assert!(out.contains("as: "), "admin kubeconfig has a token user");
    out
}

/// Every pod of `namespace`, by name.
async fn pod_names(api: &KubePodApi, namespace: &str) -> Vec<String> {
    let query = ListQuery {
        namespace: namespace.to_owned(),
        label_selector: None,
        page_size: 100,
    };
    let mut names: Vec<String> = api
        .list_pods(&query)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn rbac_manifest_lets_the_service_account_reap_its_namespaces_and_nothing_else() {
    let Some(path) = crate::servers::kubeconfig() else {
        return;
    };
    let path = std::path::PathBuf::from(path);
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&path).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    let admin = kube::Client::try_from(config).unwrap();
    let fixtures = KubeFixtures::new(admin.clone());
    let tag = format!(
        "{:x}",
        std::process::id()
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
    );
    let (runner_ns, jobs_ns, foreign_ns) = (
        format!("rb-{tag}-runner"),
        format!("rb-{tag}-jobs"),
        format!("rb-{tag}-foreign"),
    );
    for ns in [&runner_ns, &jobs_ns, &foreign_ns] {
        fixtures.create_namespace(ns).await.unwrap();
    }

    // The binary's manifest, applied as the admin.
    let out = run("reap", &["rbac", "-n", &runner_ns, "-n", &jobs_ns], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    apply(&admin, &text(&out.stdout)).await;

    let dir = tempfile::tempdir().unwrap();
    let sa = format!("system:serviceaccount:{runner_ns}:glrunner-janitor");
    let sa_kubeconfig = dir.path().join("janitor.kubeconfig");
    std::fs::write(
        &sa_kubeconfig,
        impersonating(&std::fs::read_to_string(&path).unwrap(), &sa),
    )
    .unwrap();

    // Least privilege is only testable when the server enforces RBAC.
    let sa_config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&sa_kubeconfig).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    let as_sa = KubePodApi::from_config(sa_config).unwrap();
    match as_sa.list_pods(&ListQuery::job_pods(&foreign_ns)).await {
        Err(Error::PermissionDenied { .. }) => {}
        Ok(_) => {
            assert!(
                !crate::servers::required(),
                "the test kube-apiserver does not enforce RBAC: start it with `scripts/kube-apiserver.sh start DIR --rbac`"
            );
            eprintln!("skipping: the kube-apiserver runs without RBAC (start it with --rbac)");
            return;
        }
        Err(other) => panic!("impersonated list: {other}"),
    }
    let admin_pods = KubePodApi::from_kubeconfig(Some(&path), None)
        .await
        .unwrap();

    // Hung job pods (Pending, unbound: deleted at once) in every namespace, and a runner manager.
    for (i, ns) in [&runner_ns, &jobs_ns, &foreign_ns].into_iter().enumerate() {
        for job in 0..2u64 {
            fixtures
                .create_pod(NewPod::job(ns, "mgr", 7, 100 * i as u64 + job))
                .await
                .unwrap();
        }
    }
    let mut manager = NewPod::manager(&runner_ns, "gitlab-runner", "abcde");
    manager.node_name = None;
    let manager = fixtures.create_pod(manager).await.unwrap();
    // Older than --pending-timeout 1s + --grace 1s.
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let kc = sa_kubeconfig.to_str().unwrap();
    let common = [
        "--backend",
        "aws",
        "--kubeconfig",
        kc,
        "--pending-timeout",
        "1s",
        "--grace",
        "1s",
        "--check-manager",
        "--output",
        "json",
    ];
    let mut args = common.to_vec();
    args.extend(["-n", runner_ns.as_str(), "-n", jobs_ns.as_str()]);
    let out = run("reap", &args, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report = &json_documents(&out.stdout)[0];
    assert_eq!(report["reaped"].as_array().unwrap().len(), 4, "{report}");
    assert!(report["errors"].as_array().unwrap().is_empty(), "{report}");
    assert_eq!(
        pod_names(&admin_pods, &runner_ns).await,
        std::slice::from_ref(&manager.name),
        "manager kept"
    );
    assert!(
        pod_names(&admin_pods, &jobs_ns).await.is_empty(),
        "job pods reaped"
    );

    // A namespace the manifest does not cover: forbidden, exit 1, nothing deleted.
    let mut args = common.to_vec();
    args.extend(["-n", foreign_ns.as_str()]);
    let out = run("reap", &args, &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("permission denied") && stderr.contains(&foreign_ns),
        "{stderr}"
    );
    assert_eq!(pod_names(&admin_pods, &foreign_ns).await.len(), 2);
}

/// The GitLab flags of `reap --backend aws`: bad values, a missing `GITLAB_TOKEN` and flags that
/// need others are invalid input (exit 2) naming the flag or the variable, before any cluster or
/// GitLab is contacted (the kubeconfig does not exist; the URL answers nothing).
#[test]
fn gitlab_flags_are_checked_before_anything_is_contacted() {
    let aws = [
        "--backend",
        "aws",
        "--kubeconfig",
        "/nonexistent/kc",
        "--gitlab-url",
        "https://gitlab.example.com",
    ];
    let metrics = ["--metrics-addr", "127.0.0.1:0"];
    /// Extra arguments, environment, what stderr must name.
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case<'_>] = &[
        // The token comes from the environment only.
        (&[], &[("GITLAB_TOKEN", "")], "GITLAB_TOKEN"),
        (&[], &[("GITLAB_TOKEN", "   ")], "GITLAB_TOKEN"),
        (
            &["--gitlab-project", "group/ci", "--shard", "ci-1=t"],
            &[("GITLAB_TOKEN", "glpat-x")],
            "--metrics-addr",
        ),
        (
            &["--gitlab-project", "group/ci"],
            &[("GITLAB_TOKEN", "glpat-x")],
            "--shard",
        ),
        (
            &["--shard", "ci-1=t"],
            &[("GITLAB_TOKEN", "glpat-x")],
            "--gitlab-project",
        ),
        (
            &["--gitlab-project", "group/ci", "--shard", "ci-1"],
            &[("GITLAB_TOKEN", "glpat-x")],
            "--shard",
        ),
        (
            &["--gitlab-project", "group/ci", "--shard", "Bad_Release=t"],
            &[("GITLAB_TOKEN", "glpat-x")],
            "--shard",
        ),
        (
            &["--gitlab-project", "group/ci", "--shard", "ci-1=a,,b"],
            &[("GITLAB_TOKEN", "glpat-x")],
            "--shard",
        ),
        (
            &[
                "--gitlab-project",
                "group/ci",
                "--shard",
                "ci-1=t",
                "--shard-untagged=-x",
            ],
            &[("GITLAB_TOKEN", "glpat-x")],
            "--shard-untagged",
        ),
        (
            &["--gitlab-project", "not a path!", "--shard", "ci-1=t"],
            &[("GITLAB_TOKEN", "glpat-x")],
            "--gitlab-project",
        ),
    ];
    for (extra, env, needle) in cases {
        let mut args = aws.to_vec();
        args.extend_from_slice(extra);
        if extra.contains(&"--gitlab-project") && *needle != "--metrics-addr" {
            args.extend_from_slice(&metrics);
        }
        let out = run("reap", &args, env);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?} should name {needle}: {stderr}"
        );
        assert!(
            !stderr.contains("glpat-x"),
            "{args:?}: the token is never printed: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{args:?}: nothing printed on stdout");
    }
    // Valid GitLab flags get past the checks: the failure is then the (missing) kubeconfig.
    let mut args = aws.to_vec();
    args.extend([
        "--gitlab-project",
        "group/ci",
        "--gitlab-project",
        "42",
        "--shard",
        "ci-1=glrunner-1",
        "--shard",
        "ci-1=extra",
        "--shard-untagged",
        "ci-2",
    ]);
    args.extend_from_slice(&metrics);
    let out = run("reap", &args, &[("GITLAB_TOKEN", "glpat-x")]);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("kubeconfig"), "{stderr}");
    assert!(!stderr.contains("glpat-x"), "{stderr}");
    // On the sandbox the GitLab URL names a real target: refused.
    let out = run(
        "reap",
        &["--gitlab-url", "https://gitlab.example.com"],
        &[("GITLAB_TOKEN", "glpat-x")],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    // The flags are documented.
    let help = text(&run("reap", &["--help"], &[]).stdout);
    for flag in [
        "--gitlab-project",
        "--shard <RELEASE=TAG[,TAG...]>",
        "--shard-untagged",
    ] {
        assert!(help.contains(flag), "--help documents {flag}: {help}");
    }
}

/// `reap --once --backend aws --gitlab-url`: the one-shot reaper asks GitLab (the HTTP double,
/// through the real client) about each job pod, reaps the pod whose job GitLab says succeeded
/// and keeps the one whose job is still pending; the token travels in the environment only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_on_aws_cross_checks_job_pods_with_gitlab() {
    use glrunner_gitlab_client::ci::{LoadTestSpec, ShardTarget};
    use glrunner_gitlab_client::memory::InMemoryGitLab;
    use glrunner_gitlab_client::{GitLabApi, GitLabApiExt, JobStatus, NewPipeline, ProjectRef};

    let Some(path) = crate::servers::kubeconfig() else {
        return;
    };
    let path = std::path::PathBuf::from(path);
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&path).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    let admin = kube::Client::try_from(config).unwrap();
    let fixtures = KubeFixtures::new(admin.clone());

    const TOKEN: &str = "glpat-reap-cross-check-1";
    let gl = InMemoryGitLab::default();
    let project = gl.get_or_create_project("sandbox/ci").await.unwrap();
    let pref = ProjectRef::Id(project.id);
    let yaml = LoadTestSpec::new(vec![ShardTarget::new("t", 2)])
        .to_yaml()
        .unwrap();
    gl.put_file(&pref, "main", ".gitlab-ci.yml", &yaml, "ci")
        .await
        .unwrap();
    let pipeline = gl
        .create_pipeline(&pref, &NewPipeline::new("main"))
        .await
        .unwrap();
    let jobs = gl.all_pipeline_jobs(&pref, pipeline.id).await.unwrap();
    let (done, waiting) = (jobs[0].id, jobs[1].id);
    gl.force_job_status(done, JobStatus::Success).unwrap();
    let server = glrunner_gitlab_client::testing::serve(gl.clone(), TOKEN).await;

    let ns = format!(
        "gl-{:x}",
        std::process::id()
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
    );
    fixtures.create_namespace(&ns).await.unwrap();
    let finished = fixtures
        .create_pod(NewPod::job(
            &ns,
            "ci-1-gitlab-runner-5fd7489954-jx682",
            project.id,
            done,
        ))
        .await
        .unwrap();
    let pending = fixtures
        .create_pod(NewPod::job(
            &ns,
            "ci-1-gitlab-runner-5fd7489954-jx682",
            project.id,
            waiting,
        ))
        .await
        .unwrap();
    // Evidence counts only past --grace after creation; both stay within --pending-timeout.
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let kc = path.to_str().unwrap().to_owned();
    let uri = server.uri();
    let ns_arg = ns.clone();
    let out = tokio::task::spawn_blocking(move || {
        run(
            "reap",
            &[
                "--backend",
                "aws",
                "--kubeconfig",
                &kc,
                "-n",
                &ns_arg,
                "--grace",
                "1s",
                "--pending-timeout",
                "10m",
                "--once",
                "--gitlab-url",
                &uri,
                "--output",
                "json",
            ],
            &[("GITLAB_TOKEN", TOKEN)],
        )
    })
    .await
    .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains(TOKEN) && !text(&out.stdout).contains(TOKEN));
    let report = &json_documents(&out.stdout)[0];
    let reaped: Vec<&str> = report["reaped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(reaped, [finished.name.as_str()], "{report}");
    let by_reason = report["reaped_by_reason"].as_object().unwrap();
    assert_eq!(by_reason.len(), 1, "{report}");
    assert!(
        by_reason.contains_key("gitlab_job_finished"),
        "reaped because GitLab says the job finished: {report}"
    );
    let api = KubePodApi::from_kubeconfig(Some(&path), None)
        .await
        .unwrap();
    assert_eq!(
        pod_names(&api, &ns).await,
        std::slice::from_ref(&pending.name)
    );
    assert!(gl.requests() >= 2, "GitLab was asked about both jobs");
}
