//! Integration tests of the janitor: the in-memory backend always, the real kube-apiserver when
//! `GLRUNNER_TEST_KUBECONFIG` is set (see `scripts/kube-apiserver.sh`).

mod integration {
    pub mod support;

    mod apiserver_restart;
    mod controller;
    mod deploy;
    mod explain;
    pub mod identity_examples;
    mod kube_apiserver;
    mod kube_retries;
    mod memory_reaper;
    mod mock;
    mod policy_props;
}
