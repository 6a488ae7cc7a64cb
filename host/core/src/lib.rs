//! # warmpool-core: the pool logic, free of Docker and of wasm
//!
//! warmpool keeps pools of running containers and hands them out as leases. This crate is the
//! part that decides: it knows containers only through the [`Backend`] trait and decides only
//! through the policy traits in [`policy`]. The Docker backend lives in `warmpool-docker`, the
//! HTTP API in `warmpool-api`, the YAML config in `warmpool-config`.
//!
//! Where things live:
//! - [`backend`]: the [`Backend`] trait and the data crossing it.
//! - [`policy`]: the [`SizingPolicy`], [`ExhaustionStrategy`] and [`HealthCheck`] seams and their
//!   built-ins (the logic itself is in `warmpool-policy`, shared with the wasm guests).
//! - [`pool`]: one pool's state and accounting; refill by approvals.
//! - [`manager`]: all pools, the lease table, caps, events; [`acquire`]: the warm path, waiting,
//!   cold creates.
//! - [`lease`]: leases and the operations on them; [`reuse`]: release with a verified reset.
//! - [`stats`]: counters and the stats view; [`shutdown`]: the bounded drain.
//! - [`tasks`]: the refill and monitor loops, creates and destroys; [`reaper`]: expiry,
//!   recycling, scale-down and the image check; [`health`]: probes and death notices.
//! - [`store`]: what survives a crash (leases, the lendable set) and the [`store::LeaseStore`]
//!   seam; [`persist`]: the group-commit loop; [`reconcile`]: re-adoption at startup.
//! - [`reload`]: config reload (pools added, removed and drained, changed in place).
//! - [`caps`]: the global container cap.
//! - [`fake`]: an in-memory backend for tests.

pub mod acquire;
pub mod backend;
pub mod caps;
pub mod config;
pub mod error;
pub mod events;
pub mod fake;
pub mod health;
pub mod lease;
pub mod manager;
pub mod persist;
pub mod plugins;
pub mod policy;
pub mod pool;
pub mod reaper;
pub mod reconcile;
pub mod reload;
pub mod reuse;
pub mod shutdown;
pub mod stats;
pub mod store;
pub mod tasks;

pub use backend::{
    Backend, BackendError, BackendEvent, ContainerSpec, Created, ExecOutput, ExecRequest, Existing,
};
pub use config::{BreakerConfig, ManagerConfig, PoolConfig, ReuseConfig};
pub use error::{AcquireError, LeaseError, WarmUpError};
pub use lease::LeaseInfo;
pub use manager::{AcquireRequest, Manager};
pub use policy::{
    BuiltinExhaustion, BuiltinHealth, BuiltinSizing, ExhaustionStrategy, HealthCheck, Policies,
    SizingPolicy,
};
pub use reuse::ReuseOutcome;
pub use shutdown::ShutdownReport;
pub use stats::PoolStats;
pub use warmpool_policy as policy_logic;
