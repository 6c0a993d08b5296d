//! The crate's one integration-test binary (each test binary links the whole graph).

mod integration {
    pub mod ci;
    pub mod double;
    pub mod http;
    pub mod live;
    pub mod memory;
    pub mod mock;
    pub mod report;
    pub mod rules;
    pub mod strict;
    pub mod trace;
    pub mod watch;
}
