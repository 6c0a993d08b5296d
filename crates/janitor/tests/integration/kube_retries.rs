//! The kube-rs backend makes exactly one HTTP request per call: kube's default retry layer
//! (429/503/504, up to 15 retries with delays growing to 1000 s) is off, so every call stays
//! bounded and the status maps to the error category at once. An HTTP double (wiremock) stands in
//! for an API server that answers 429, 503 or 504.

use std::time::Duration;

use glrunner_janitor::k8s::KubePodApi;
use glrunner_janitor::{Error, ListQuery, PodApi};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A `Status` body as the API server sends with an error code.
fn status(code: u16, reason: &str) -> ResponseTemplate {
    ResponseTemplate::new(code)
        .insert_header("Retry-After", "1")
        .set_body_json(serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": format!("injected {code}"), "reason": reason, "code": code,
        }))
}

async fn api_for(server: &MockServer, dir: &std::path::Path) -> KubePodApi {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\ncontexts:\n\
             - name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: t\n",
            server.uri()
        ),
    )
    .unwrap();
    KubePodApi::from_kubeconfig(Some(&path), None)
        .await
        .unwrap()
}

#[tokio::test]
async fn throttling_and_unavailability_fail_after_one_request() {
    let dir = std::env::temp_dir().join(format!("janitor-retries-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (code, reason) in [
        (429u16, "TooManyRequests"),
        (503, "ServiceUnavailable"),
        (504, "Timeout"),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(status(code, reason))
            .mount(&server)
            .await;
        let api = api_for(&server, &dir).await;
        // Guard only: with kube's retry layer on, this call would take minutes.
        let result = tokio::time::timeout(
            Duration::from_secs(20),
            api.list_pods(&ListQuery::job_pods("gitlab-runner")),
        )
        .await
        .unwrap_or_else(|_| panic!("HTTP {code}: the list call was retried"));
        let err = result.unwrap_err();
        let requests = server.received_requests().await.unwrap();
        assert_eq!(requests.len(), 1, "HTTP {code}: one request, no retry");
        match code {
            429 => assert!(matches!(err, Error::Throttled { .. }), "{err:?}"),
            504 => assert!(matches!(err, Error::Timeout { .. }), "{err:?}"),
            _ => assert!(matches!(err, Error::Backend { .. }), "{err:?}"),
        }
        assert!(err.to_string().contains("gitlab-runner"), "{err}");
    }
    std::fs::remove_dir_all(dir).ok();
}
