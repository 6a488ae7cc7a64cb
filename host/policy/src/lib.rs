//! # warmpool-policy: the one source of every built-in policy
//!
//! warmpool decides three things by policy rather than by hard-wired code: how many containers a
//! pool keeps ready (**sizing**), what an acquire does when none is ready (**exhaustion**), and
//! whether a ready container is still fit to hand out (**health**). Each built-in policy is a
//! plain function here, on plain data ([`types`]). The same source is compiled twice:
//!
//! - into the host (`warmpool-core`), where it serves as the native policy and as the fallback
//!   whenever a wasm plugin fails or none is configured;
//! - into the wasm32-wasip2 guest components under `plugins/`.
//!
//! So there are never two copies of one policy. The crate does no I/O: a policy
//! is a pure function of the snapshot the host hands it (the host even passes `now`); its one
//! dependency, serde_json, reads list-valued plugin settings.
//!
//! Where things live: [`types`] mirrors the WIT records; [`sizing`], [`exhaustion`] and
//! [`health`] hold one module of functions each.

pub mod config;
pub mod exhaustion;
pub mod health;
pub mod sizing;
pub mod types;

pub use types::*;
