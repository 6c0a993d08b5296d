//! The mockall mock (feature `mock`, enabled for this package's tests by its dev-dependency on
//! itself) works through `&dyn GitLabApi`. Not behind `cfg(feature = "mock")`: without the
//! feature this file does not compile, so the mock can no longer be compiled out silently.

#[tokio::test]
async fn mock_answers_through_the_trait_object() {
    use glrunner_gitlab_client::{GitLabApi, MockGitLabApi, User};
    let mut mock = MockGitLabApi::new();
    mock.expect_current_user().times(1).returning(|| {
        Ok(User {
            id: 1,
            username: "root".into(),
            name: "Administrator".into(),
            is_admin: true,
        })
    });
    let api: &dyn GitLabApi = &mock;
    assert_eq!(api.current_user().await.unwrap().username, "root");
}

#[tokio::test]
async fn mock_drives_the_load_test_cancel_path() {
    use glrunner_gitlab_client::loadtest::cancel_pipelines;
    use glrunner_gitlab_client::{Error, MockGitLabApi, ProjectRef};
    let mut mock = MockGitLabApi::new();
    mock.expect_cancel_pipeline()
        .withf(|p, id| *p == ProjectRef::Id(42) && *id == 8)
        .times(1)
        .returning(|_, id| {
            Err(Error::NotFound {
                action: "cancel",
                resource: format!("pipeline {id}"),
            })
        });
    mock.expect_cancel_pipeline()
        .withf(|_, id| *id == 7)
        .times(1)
        .returning(|_, id| {
            Ok(serde_json::from_value(serde_json::json!({
                "id": id, "status": "canceled", "created_at": "2026-01-01T00:00:00Z"
            }))
            .unwrap())
        });
    let summary = cancel_pipelines(&mock, &ProjectRef::Id(42), &[7, 8]).await;
    assert_eq!(summary.canceled, vec![7]);
    assert_eq!(summary.failed.len(), 1);
    assert!(
        summary.describe().contains("pipeline 8 NOT canceled"),
        "{}",
        summary.describe()
    );
}
