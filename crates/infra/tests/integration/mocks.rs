//! The mockall mocks (feature `mock`) as an embedder would use them in unit tests.

use glrunner_infra::spec::{StackName, StackSpec};
use glrunner_infra::{Error, MockClusterProvisioner, MockNetworkProvisioner, StackOptions};

#[tokio::test]
async fn too_few_zones_fails_before_any_mutation() {
    let mut network = MockNetworkProvisioner::new();
    // One read call; any create or delete would fail the test (no expectation set).
    network.expect_availability_zones().times(1).returning(|| {
        Ok(vec![glrunner_infra::AvailabilityZone::new(
            "us-east-1a",
            "use1-az6",
        )])
    });
    let cluster = MockClusterProvisioner::new();
    let spec = StackSpec::new(StackName::new("mocked").unwrap(), "us-east-1");
    let err = glrunner_infra::provision(&spec, &network, &cluster, &StackOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidInput { ref field, .. } if field == "azs"),
        "{err}"
    );
}

#[tokio::test]
async fn teardown_of_an_empty_stack_only_reads() {
    let mut network = MockNetworkProvisioner::new();
    network.expect_discover().returning(|_| Ok(Vec::new()));
    let mut cluster = MockClusterProvisioner::new();
    cluster.expect_discover().returning(|_| Ok(Vec::new()));
    let stack = StackName::new("empty").unwrap();
    let report = glrunner_infra::teardown(
        &stack,
        "us-east-1",
        &network,
        &cluster,
        &StackOptions::default(),
    )
    .await
    .unwrap();
    assert!(report.deleted.is_empty() && report.leftovers.is_empty());
}
