//! The example binaries' commands: argument types, backend wiring and output, so each
//! example is only parsing plus a call into here.

pub mod drain;
pub mod loadtest;
pub mod reap;
pub mod runner;
