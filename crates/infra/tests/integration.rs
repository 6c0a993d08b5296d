//! Integration tests of glrunner-infra: in-memory conformance, AWS backend under
//! aws-smithy-mocks, and the same conformance suite against a moto server when one runs.

mod integration {
    pub mod account;
    pub mod cancel;
    pub mod memory;
    pub mod mocks;
    pub mod moto;
    pub mod smithy;
}
