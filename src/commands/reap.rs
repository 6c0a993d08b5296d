//! The `reap` example's command (being moved here from examples/reap.rs).
