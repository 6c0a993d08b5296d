//! The conformance suite against a real GitLab (ignored; needs GITLAB_URL and GITLAB_TOKEN).
//!
//! It covers for real: exactly one pipeline per load test (the generated file's
//! `workflow: rules`, `[skip ci]`, push pipelines otherwise), runner tags read from
//! `GET /runners/:id` (list entries carry none), and a runner no manager contacted is not
//! online.

use glrunner_gitlab_client::{HttpGitLab, conformance};

#[tokio::test]
#[ignore = "needs a real GitLab: set GITLAB_URL and GITLAB_TOKEN (scope api); creates and deletes projects"]
async fn conformance_against_real_gitlab() {
    if std::env::var("GITLAB_URL").is_err() || std::env::var("GITLAB_TOKEN").is_err() {
        panic!("set GITLAB_URL and GITLAB_TOKEN to run this test against a real GitLab");
    }
    let gl = HttpGitLab::builder()
        .from_env()
        .build()
        .expect("GITLAB_URL / GITLAB_TOKEN are valid");
    let prefix = format!("glrunner-conf-{}", jiff::Timestamp::now().as_second());
    // Push pipelines are created asynchronously: give them 20 s to (not) appear.
    conformance::run_all_settling(&gl, &prefix, std::time::Duration::from_secs(20))
        .await
        .unwrap();
}
