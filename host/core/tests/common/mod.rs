//! Shared set-up for the pool-logic tests: the test kit's fixtures, a manager on the in-memory
//! backend.
#![allow(dead_code, unused_imports)]

pub use warmpool_testkit::fixtures::{CREATE, manager, policies, pool, run_for, test_spec};

/// A plain acquire from `pool`: no wait, labels or owner of its own.
pub fn request(pool: &str) -> warmpool_core::AcquireRequest {
    warmpool_core::AcquireRequest {
        pool: pool.into(),
        ..Default::default()
    }
}

pub fn spec() -> warmpool_core::ContainerSpec {
    test_spec("busybox")
}
