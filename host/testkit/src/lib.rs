//! # warmpool-testkit: shared fixtures, and the deterministic fault simulation of the core
//!
//! For tests only: the daemon never links it. The in-memory engine and store it runs on are
//! their own crate, `warmpool-fake`.
//!
//! - [`fixtures`]: one spec, pool config and policy set shared by the core and API tests, and
//!   managers started on the fake engine.
//! - [`sim`]: the deterministic fault simulation of the core: from a seed, random client
//!   operations against random faults, with the daemon's promises checked after every step
//!   (replayed one seed at a time by the `sim` binary, `src/bin/sim.rs`).

pub mod fixtures;
pub mod sim;
