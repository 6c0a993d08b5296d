//! Integration tests of glrunner-runner-chart (one test binary; the modules live in `tests/integration/`).

mod integration {
    mod fake_helm;
    mod fleet_props;
    mod helm_cli;
    mod helm_flags;
    mod job_accounts;
    mod kube_secrets;
    mod mocks;
    mod real_helm;
    mod values_golden;
}
