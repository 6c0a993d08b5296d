//! The test servers `scripts/test.sh` starts, found through the environment it exports.
//!
//! Shared by the `cli` and `flow` test binaries (`#[path]` modules): a test whose server is not
//! configured is skipped, saying how to start it, except where servers are required (CI, or
//! `scripts/test.sh`), where skipping would hide a broken setup and the test fails instead.

/// Whether a missing or misconfigured server must fail the test: `CI=true`, or
/// `GLRUNNER_TEST_REQUIRE_SERVERS=1` (which `scripts/test.sh` sets).
pub fn required() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
        || std::env::var("GLRUNNER_TEST_REQUIRE_SERVERS").as_deref() == Ok("1")
}

/// The values of `vars`, each set and non-empty; otherwise `None` after printing that the test
/// is skipped and `how` to start what is missing. Panics instead when servers are [`required`].
pub fn env<const N: usize>(vars: [&str; N], how: &str) -> Option<[String; N]> {
    let values = vars.map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()));
    if values.iter().all(Option::is_some) {
        return Some(values.map(Option::unwrap_or_default));
    }
    let missing: Vec<&str> = vars
        .iter()
        .zip(&values)
        .filter(|(_, v)| v.is_none())
        .map(|(var, _)| *var)
        .collect();
    let missing = missing.join(" and ");
    assert!(!required(), "{missing} not set: {how}");
    eprintln!("skipping: {missing} not set ({how})");
    None
}

/// `GLRUNNER_TEST_MOTO_URL`: moto with the project's shim.
pub fn moto_url() -> Option<String> {
    env(
        ["GLRUNNER_TEST_MOTO_URL"],
        "./scripts/test.sh starts moto; or scripts/moto.sh start DIR and export what it prints",
    )
    .map(|[url]| url)
}

/// `GLRUNNER_TEST_KUBECONFIG`: the real kube-apiserver.
pub fn kubeconfig() -> Option<String> {
    env(
        ["GLRUNNER_TEST_KUBECONFIG"],
        "./scripts/test.sh starts it; or scripts/kube-apiserver.sh start DIR --rbac",
    )
    .map(|[path]| path)
}

/// `(GLRUNNER_TEST_HELM, GLRUNNER_TEST_KUBECONFIG)`: Helm's real engine and the apiserver.
pub fn helm_and_kubeconfig() -> Option<(String, String)> {
    env(
        ["GLRUNNER_TEST_HELM", "GLRUNNER_TEST_KUBECONFIG"],
        "./scripts/test.sh sets both; or scripts/helm-sdk.sh install and scripts/kube-apiserver.sh start DIR",
    )
    .map(|[helm, kubeconfig]| (helm, kubeconfig))
}
