//! # warmpool-testkit: what the tests run on, and the engine the policy lab simulates on
//!
//! The daemon links it for `warmpool simulate` only (through `warmpool-lab`): the serving path
//! never reaches it.
//!
//! - [`fake`]: an in-memory container engine with files, tmpfs, processes and injectable faults,
//!   and connections to it that a simulated `kill -9` can cut.
//! - [`store`]: an in-memory state store that can be told to fail.
//! - [`fixtures`]: one spec, pool config and policy set shared by the core and API tests.
//! - [`sim`]: the deterministic fault simulation of the core: from a seed, random client
//!   operations against random faults, with the daemon's promises checked after every step.

pub mod fake;
pub mod fixtures;
pub mod sim;
pub mod store;

pub use fake::{FakeBackend, FakeEngine, Faults};
pub use store::MemoryStore;
