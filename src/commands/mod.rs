//! The example binaries' commands: argument types, backend wiring and output, so each
//! example is only parsing plus a call into here. The logic they call lives in the library
//! crates ([`crate::flow`], [`crate::sandbox`] and the capability crates).

pub mod doctor;
pub mod full_flow;
pub mod gitlab;
pub mod loadtest;
pub mod provision;
pub mod reap;
pub mod runner;
