//! The `loadtest` example's command (being moved here from examples/loadtest.rs).
