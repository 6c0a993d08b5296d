//! The `runner` example's command (being moved here from examples/runner.rs).
