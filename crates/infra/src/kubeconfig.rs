//! Kubeconfig.
