//! Job ServiceAccounts (#25) on a real kube-apiserver (`scripts/kube-apiserver.sh start DIR
//! --rbac` prints `GLRUNNER_TEST_KUBECONFIG=...`): the `ServiceAccountInstaller` conformance
//! suite on `KubeServiceAccounts`, and the runner's namespace Role, exactly as glrunner's typed
//! values render it, letting the runner's ServiceAccount `get` the job ServiceAccounts and
//! nothing more on them (GitLab Runner's Kubernetes executor docs, "Configure runner API
//! permissions": `serviceAccounts: get`). Skipped with a reason when the variable is unset,
//! except in CI.

use std::path::{Path, PathBuf};

use glrunner_runner_chart::conformance;
use glrunner_runner_chart::{
    KubeServiceAccounts, ROLE_ARN_ANNOTATION, RunnerValues, ServiceAccountInstaller,
};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};

const ENV: &str = "GLRUNNER_TEST_KUBECONFIG";

fn kubeconfig(test: &str) -> Option<PathBuf> {
    match std::env::var_os(ENV).filter(|v| !v.is_empty()) {
        Some(path) => Some(PathBuf::from(path)),
        None if std::env::var("CI").is_ok_and(|v| v == "true")
            || std::env::var_os("GLRUNNER_TEST_REQUIRE_SERVERS").is_some_and(|v| v == "1") =>
        {
            panic!(
                "{ENV} is unset in CI: run ./scripts/test.sh, which starts a kube-apiserver (scripts/kube-apiserver.sh)"
            )
        }
        None => {
            eprintln!(
                "skipping {test}: {ENV} is unset; start a kube-apiserver with `scripts/kube-apiserver.sh start DIR --rbac` and export the line it prints"
            );
            None
        }
    }
}

fn unique_ns(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{}-{}", std::process::id(), nanos % 1_000_000)
}

async fn admin(path: &Path, impersonate: Option<&str>) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(path).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    if let Some(user) = impersonate {
        config.auth_info.impersonate = Some(user.to_owned());
    }
    kube::Client::try_from(config).unwrap()
}

async fn create_ns(client: &kube::Client, ns: &str) {
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some(ns.to_owned()),
                    ..ObjectMeta::default()
                },
                ..Namespace::default()
            },
        )
        .await
        .unwrap();
}

async fn delete_ns(client: &kube::Client, ns: &str) {
    let _ = Api::<Namespace>::all(client.clone())
        .delete(ns, &DeleteParams::default())
        .await;
}

fn plain_sa(name: &str) -> ServiceAccount {
    ServiceAccount {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    }
}

#[tokio::test]
async fn service_account_conformance_on_a_real_apiserver() {
    let Some(path) = kubeconfig("service_account_conformance_on_a_real_apiserver") else {
        return;
    };
    let client = admin(&path, None).await;
    let ns = unique_ns("glr-jobsa");
    create_ns(&client, &ns).await;
    Api::<ServiceAccount>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &plain_sa("theirs"))
        .await
        .unwrap();
    let installer = KubeServiceAccounts::connect(Some(&path), None)
        .await
        .unwrap();
    conformance::run_service_account_suite(&installer, &ns, &format!("{ns}-missing"), "theirs")
        .await;

    // What the apiserver holds: the annotation IRSA reads, glrunner's labels and field manager,
    // and the foreign account untouched.
    let arn = "arn:aws:iam::123456789012:role/glrunner-deploy";
    installer
        .apply(&ns, &[("deploy".to_owned(), arn.to_owned())])
        .await
        .unwrap();
    let api = Api::<ServiceAccount>::namespaced(client.clone(), &ns);
    let sa = api.get("deploy").await.unwrap();
    assert_eq!(
        sa.metadata.annotations.clone().unwrap_or_default()[ROLE_ARN_ANNOTATION],
        arn
    );
    let labels = sa.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels["app.kubernetes.io/managed-by"], "glrunner");
    assert!(
        sa.metadata
            .managed_fields
            .unwrap_or_default()
            .iter()
            .any(|f| f.manager.as_deref() == Some("glrunner")
                && f.operation.as_deref() == Some("Apply")),
        "server-side apply by glrunner"
    );
    assert!(api.get_opt("theirs").await.unwrap().is_some());
    installer.remove(&ns, &["deploy".to_owned()]).await.unwrap();
    assert!(api.get_opt("deploy").await.unwrap().is_none());
    delete_ns(&client, &ns).await;
}

/// The runner's Role as the typed values render it (`rbac.rules`), bound in the job namespace
/// to the manager's ServiceAccount as the chart binds it (`runners.jobNamespace`): the manager
/// may `get` a job ServiceAccount, and may not list, watch, create, change or delete one.
#[tokio::test]
async fn the_runners_role_may_get_job_service_accounts_and_nothing_more() {
    let Some(path) = kubeconfig("the_runners_role_may_get_job_service_accounts_and_nothing_more")
    else {
        return;
    };
    let client = admin(&path, None).await;
    let ns = unique_ns("glr-rbac");
    let jobs = format!("{ns}-jobs");
    create_ns(&client, &ns).await;
    create_ns(&client, &jobs).await;
    let values = RunnerValues::new("https://gitlab.example.com/")
        .with_job_namespace(&jobs)
        .with_job_service_accounts(["deploy"]);
    let chart = values.to_chart_values().unwrap();
    let rules: Vec<PolicyRule> = serde_json::from_value(chart["rbac"]["rules"].clone()).unwrap();
    assert_eq!(chart["runners"]["jobNamespace"], jobs.as_str());
    Api::<Role>::namespaced(client.clone(), &jobs)
        .create(
            &PostParams::default(),
            &Role {
                metadata: ObjectMeta {
                    name: Some("gitlab-runner".into()),
                    ..ObjectMeta::default()
                },
                rules: Some(rules),
            },
        )
        .await
        .unwrap();
    Api::<RoleBinding>::namespaced(client.clone(), &jobs)
        .create(
            &PostParams::default(),
            &RoleBinding {
                metadata: ObjectMeta {
                    name: Some("gitlab-runner".into()),
                    ..ObjectMeta::default()
                },
                role_ref: RoleRef {
                    api_group: Some("rbac.authorization.k8s.io".into()),
                    kind: "Role".into(),
                    name: "gitlab-runner".into(),
                },
                subjects: Some(vec![Subject {
                    kind: "ServiceAccount".into(),
                    name: "gitlab-runner".into(),
                    namespace: Some(ns.clone()),
                    ..Subject::default()
                }]),
            },
        )
        .await
        .unwrap();
    Api::<ServiceAccount>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &plain_sa("gitlab-runner"))
        .await
        .unwrap();
    let installer = KubeServiceAccounts::connect(Some(&path), None)
        .await
        .unwrap();
    installer
        .apply(
            &jobs,
            &[(
                "deploy".to_owned(),
                "arn:aws:iam::123456789012:role/glrunner-deploy".to_owned(),
            )],
        )
        .await
        .unwrap();

    let runner = format!("system:serviceaccount:{ns}:gitlab-runner");
    let allowed = |verb: &'static str, namespace: String| {
        let client = client.clone();
        let runner = runner.clone();
        let sa_ns = ns.clone();
        async move {
            let review = SubjectAccessReview {
                spec: SubjectAccessReviewSpec {
                    user: Some(runner),
                    groups: Some(vec![
                        "system:serviceaccounts".into(),
                        format!("system:serviceaccounts:{sa_ns}"),
                    ]),
                    resource_attributes: Some(ResourceAttributes {
                        namespace: Some(namespace),
                        verb: Some(verb.into()),
                        resource: Some("serviceaccounts".into()),
                        name: Some("deploy".into()),
                        ..ResourceAttributes::default()
                    }),
                    ..SubjectAccessReviewSpec::default()
                },
                ..SubjectAccessReview::default()
            };
            Api::<SubjectAccessReview>::all(client)
                .create(&PostParams::default(), &review)
                .await
                .unwrap()
                .status
                .expect("reviewed")
                .allowed
        }
    };
    assert!(allowed("get", jobs.clone()).await, "the runner may get it");
    for verb in ["list", "watch", "create", "update", "patch", "delete"] {
        assert!(
            !allowed(verb, jobs.clone()).await,
            "the runner may {verb} serviceaccounts: more than it needs"
        );
    }
    assert!(
        !allowed("get", ns.clone()).await,
        "the Role lives in the job namespace only"
    );

    // And for real, as the runner (impersonation): the get works, a list is forbidden.
    let as_runner = admin(&path, Some(&runner)).await;
    let api = Api::<ServiceAccount>::namespaced(as_runner, &jobs);
    let sa = api
        .get("deploy")
        .await
        .expect("the runner gets the job ServiceAccount");
    assert!(
        sa.metadata
            .annotations
            .unwrap_or_default()
            .contains_key(ROLE_ARN_ANNOTATION)
    );
    match api.list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("the runner listed serviceaccounts: {other:?}"),
    }
    delete_ns(&client, &ns).await;
    delete_ns(&client, &jobs).await;
}
