//! `KubeTokenSecrets` against a real kube-apiserver (`scripts/kube-apiserver.sh start DIR` prints
//! `GLRUNNER_TEST_KUBECONFIG=...`). Skipped with a reason when the variable is unset, except in CI.

use std::collections::BTreeMap;
use std::path::PathBuf;

use glrunner_runner_chart::conformance;
use glrunner_runner_chart::secret::{MANAGED_BY_LABEL, REGISTRATION_TOKEN_KEY, RUNNER_TOKEN_KEY};
use glrunner_runner_chart::{
    InMemoryTokenSecrets, KubeTokenSecrets, RunnerToken, SecretOutcome, SecretRef, TokenSecrets,
};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{DeleteParams, PostParams};

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
                "skipping {test}: {ENV} is unset; start a kube-apiserver with `scripts/kube-apiserver.sh start DIR` and export the line it prints"
            );
            None
        }
    }
}

/// A namespace name unique to this test run.
fn unique_ns(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{}-{}", std::process::id(), nanos % 1_000_000)
}

async fn store(path: &PathBuf) -> (KubeTokenSecrets, kube::Client) {
    let store = KubeTokenSecrets::connect(Some(path), None)
        .await
        .expect("connect with the test kubeconfig");
    let kc = kube::config::Kubeconfig::read_from(path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    (store, kube::Client::try_from(config).unwrap())
}

async fn delete_ns(client: &kube::Client, ns: &str) {
    let _ = Api::<Namespace>::all(client.clone())
        .delete(ns, &DeleteParams::default())
        .await;
}

#[test]
fn in_memory_secret_conformance() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(conformance::run_secret_suite(
        &InMemoryTokenSecrets::new(),
        "mem",
    ));
}

#[tokio::test]
async fn secret_conformance_on_a_real_apiserver() {
    let Some(path) = kubeconfig("secret_conformance_on_a_real_apiserver") else {
        return;
    };
    let (store, client) = store(&path).await;
    let prefix = unique_ns("glr-conf");
    conformance::run_secret_suite(&store, &prefix).await;
    delete_ns(&client, &format!("{prefix}-secret")).await;
}

/// Reads the raw Secret as the chart's pod would see it.
async fn raw(client: &kube::Client, secret: &SecretRef) -> Secret {
    Api::<Secret>::namespaced(client.clone(), &secret.namespace)
        .get(&secret.name)
        .await
        .expect("secret exists")
}

fn data(s: &Secret) -> BTreeMap<String, Vec<u8>> {
    s.data
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect()
}

#[tokio::test]
async fn the_secret_is_created_updated_and_left_correct_on_a_real_apiserver() {
    let Some(path) =
        kubeconfig("the_secret_is_created_updated_and_left_correct_on_a_real_apiserver")
    else {
        return;
    };
    let (store, client) = store(&path).await;
    let ns = unique_ns("glr-secret");
    let secret = SecretRef::new(&ns, "gitlab-runner-token");
    let first = RunnerToken::new("glrt-first-AAAAAAAAAAAAAAAAAAAA").unwrap();
    let second = RunnerToken::new("glrt-second-BBBBBBBBBBBBBBBBBBBB").unwrap();

    // Created, in a namespace that did not exist yet.
    assert_eq!(
        store.ensure(&secret, &first).await.unwrap(),
        SecretOutcome::Created
    );
    let s = raw(&client, &secret).await;
    assert_eq!(s.type_.as_deref(), Some("Opaque"));
    assert_eq!(
        data(&s),
        BTreeMap::from([
            (
                RUNNER_TOKEN_KEY.to_string(),
                first.expose_secret().as_bytes().to_vec()
            ),
            (REGISTRATION_TOKEN_KEY.to_string(), vec![])
        ])
    );
    assert_eq!(
        s.metadata
            .labels
            .as_ref()
            .unwrap()
            .get(MANAGED_BY_LABEL.0)
            .map(String::as_str),
        Some(MANAGED_BY_LABEL.1)
    );
    let rv_created = s.metadata.resource_version.clone();

    // Unchanged: no write at all (resourceVersion stays).
    assert_eq!(
        store.ensure(&secret, &first).await.unwrap(),
        SecretOutcome::Unchanged
    );
    assert_eq!(
        raw(&client, &secret).await.metadata.resource_version,
        rv_created
    );

    // Updated to the new token, registration key still present and empty.
    assert_eq!(
        store.ensure(&secret, &second).await.unwrap(),
        SecretOutcome::Updated
    );
    let s = raw(&client, &secret).await;
    assert_eq!(
        data(&s).get(RUNNER_TOKEN_KEY).unwrap(),
        second.expose_secret().as_bytes()
    );
    assert_eq!(
        data(&s).get(REGISTRATION_TOKEN_KEY).unwrap(),
        &Vec::<u8>::new()
    );
    assert_ne!(s.metadata.resource_version, rv_created);

    // A hand-made Secret (no glrunner label) is neither written over nor deleted.
    let api = Api::<Secret>::namespaced(client.clone(), &ns);
    let foreign = SecretRef::new(&ns, "hand-made");
    let foreign_data = BTreeMap::from([
        (
            RUNNER_TOKEN_KEY.to_string(),
            ByteString(b"glrt-old".to_vec()),
        ),
        ("leftover".to_string(), ByteString(b"x".to_vec())),
    ]);
    api.create(
        &PostParams::default(),
        &Secret {
            metadata: ObjectMeta {
                name: Some(foreign.name.clone()),
                ..ObjectMeta::default()
            },
            data: Some(foreign_data.clone()),
            ..Secret::default()
        },
    )
    .await
    .unwrap();
    let before = raw(&client, &foreign).await;
    let e = store.ensure(&foreign, &first).await.unwrap_err();
    assert_eq!(e.kind(), glrunner_runner_chart::ErrorKind::Conflict, "{e}");
    assert!(e.to_string().contains("--secret-name"), "{e}");
    let e = store.delete(&foreign).await.unwrap_err();
    assert_eq!(e.kind(), glrunner_runner_chart::ErrorKind::Conflict, "{e}");
    assert_eq!(
        store.ownership(&foreign).await.unwrap(),
        glrunner_runner_chart::Ownership::Foreign
    );
    let after = raw(&client, &foreign).await;
    assert_eq!(after.data, Some(foreign_data), "untouched");
    assert_eq!(
        after.metadata.resource_version,
        before.metadata.resource_version
    );
    let read = store.get(&secret).await.unwrap().unwrap();
    assert_eq!(read.token, second);
    assert!(read.registration_key_empty && read.managed_by_glrunner);
    assert!(!format!("{read:?}").contains("BBBB"), "token in Debug");
    // Labelled with its release when the reference names one.
    let labelled = SecretRef::new(&ns, "with-release").for_release("runner-7");
    store.ensure(&labelled, &first).await.unwrap();
    let labels = raw(&client, &labelled).await.metadata.labels.unwrap();
    assert_eq!(
        labels[glrunner_runner_chart::secret::RELEASE_LABEL],
        "runner-7"
    );
    assert!(store.delete(&labelled).await.unwrap());

    // Deleted, idempotently.
    assert!(store.delete(&secret).await.unwrap());
    assert!(!store.delete(&secret).await.unwrap());
    assert!(store.get(&secret).await.unwrap().is_none());
    delete_ns(&client, &ns).await;
}
