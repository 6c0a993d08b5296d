//! The mockall mocks (feature `mock`) stand in for both traits, e.g. to check call order.

use glrunner_runner_chart::{
    MockReleaseManager, MockTokenSecrets, ReleaseSpec, ReleaseState, ReleaseStatus, RunnerToken,
    RunnerValues, SecretOutcome, deploy_runner,
};
use mockall::Sequence;

#[tokio::test]
async fn deploy_writes_the_secret_before_the_release() {
    let mut seq = Sequence::new();
    let mut secrets = MockTokenSecrets::new();
    let mut releases = MockReleaseManager::new();
    secrets
        .expect_ensure()
        .withf(|secret, _| secret.name == "gitlab-runner-token" && secret.namespace == "ci")
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_, _| Ok(SecretOutcome::Created));
    releases
        .expect_ensure()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|spec| {
            Ok(ReleaseStatus {
                name: spec.name.clone(),
                namespace: spec.namespace.clone(),
                revision: 1,
                state: ReleaseState::Deployed,
                chart_version: None,
                app_version: None,
                runner: None,
            })
        });
    let spec = ReleaseSpec::new("r", "ci", RunnerValues::new("https://gitlab.example.com"));
    let out = deploy_runner(
        &secrets,
        &releases,
        &spec,
        &RunnerToken::new("glrt-mock").unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(out.secret, SecretOutcome::Created);
}
