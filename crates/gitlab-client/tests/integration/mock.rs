//! The mockall mock (feature `mock`) works through `&dyn GitLabApi`.

#[cfg(feature = "mock")]
#[tokio::test]
async fn mock_answers_through_the_trait_object() {
    use glrunner_gitlab_client::{GitLabApi, MockGitLabApi, User};
    let mut mock = MockGitLabApi::new();
    mock.expect_current_user().times(1).returning(|| {
        Ok(User {
            id: 1,
            username: "root".into(),
            name: "Administrator".into(),
        })
    });
    let api: &dyn GitLabApi = &mock;
    assert_eq!(api.current_user().await.unwrap().username, "root");
}
