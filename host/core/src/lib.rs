//! # warmpool-core: the pool logic, free of Docker and of wasm
//!
//! warmpool keeps pools of running containers and hands them out as leases. This crate is the
//! part that decides: it knows containers only through the [`Backend`] trait and decides only
//! through the policy traits ([`SizingPolicy`], [`ExhaustionStrategy`], [`HealthCheck`]). The
//! Docker backend lives in `warmpool-docker`, the HTTP API in `warmpool-api`, the YAML config in
//! `warmpool-config`, the in-memory backend in `warmpool-fake`, the fault simulation in
//! `warmpool-testkit`.
//!
//! Where things live (the README's layout table says the same, file by file):
//! - `backend`: the [`Backend`] trait, its events and errors; `backend/{spec,exec,residue}.rs`:
//!   the data crossing it.
//! - `pool`: one pool; `pool/state.rs` and its children `pool/state/{creates,acquire,leaving,
//!   restart}.rs` are the only code that changes a container's state or a counter (the books,
//!   with their invariant checks).
//! - `manager`: all pools, the cap, the orphans; `acquire`: the warm path, waiting, cold
//!   creates; `lease`: the lease types and the `LeaseTable`; `leasing`: the manager's operations
//!   on leases; `reuse`: release with a scrub.
//! - `lifecycle`: creates, the engine-side "used" mark, the removal that never gives up;
//!   `deadline`: the deadlines on file calls, whose bodies stream.
//! - `refill`: the monitor and refill loops, warm-up; `reaper`: expiry, recycling, scale-down,
//!   the image check; `health`: probes; `deaths`: death notices and probation; `sweep`: the
//!   running sweep.
//! - `lease_store`: what survives a crash, and the [`LeaseStore`](lease_store::LeaseStore) seam
//!   the `warmpool-store` crate implements; `group_commit` (with `group_commit/pending.rs`): when
//!   it is written, batched off the acquire path; `commit_loop`: the manager's side of it;
//!   `reconcile`: startup.
//! - `reload`: config reload; `shutdown`: the bounded drain; `stats`: the read-only view.
//! - `policy`: the policy seams, their built-ins, and the bounds on every policy's answer.
//! - `clock`: the wall clock, saturating instants, IDs; `sync`: the lock helper; `counters`,
//!   `caps`, `config`, `error`, `events`, `plugin_status` (what the API shows of plugins): plain
//!   types.
//!
//! Only `manager` and the files that add to `impl Manager` (acquire, leasing, lifecycle, refill,
//! reaper, health, deaths, sweep, reuse, commit_loop, reconcile, reload, shutdown) know the
//! manager; the pool, its state, leases, stats, the group commit and the store seam do not.

mod acquire;
mod backend;
mod caps;
mod clock;
mod commit_loop;
mod config;
mod counters;
mod deadline;
mod deaths;
mod engines;
mod error;
mod events;
mod fence;
mod group_commit;
mod health;
mod lease;
pub mod lease_store;
mod leasing;
mod lifecycle;
mod manager;
mod plugin_status;
mod policy;
mod pool;
mod reaper;
mod reconcile;
mod refill;
mod reload;
mod reuse;
mod sessions;
mod shutdown;
mod stats;
mod sweep;
mod sync;

pub use backend::{
    Backend, BackendError, BackendEvent, Baseline, ByteStream, ChangeKind, ContainerSpec, Created,
    EngineDescription, ExecEvent, ExecInput, ExecMode, ExecOutput, ExecRequest, ExecSession,
    Existing, ExitStatus, FileBody, FsChange, ImageSource, LeaseSetup, Place, PlaceKind, Residue,
    Secret, SetupFile, Stop, TermSize, USED_SUFFIX, checked_path,
};
pub use caps::EngineIx;
pub use clock::{Clock, later, rfc3339};
pub use config::{BreakerConfig, ManagerConfig, PoolConfig, ReuseConfig};
pub use counters::{Counters, StateCounts};
pub use engines::{EngineSpec, EngineStats, MAX_ENGINES};
pub use error::{AcquireError, LeaseError, WarmUpError};
pub use events::Event;
pub use group_commit::PersistStats;
pub use lease::LeaseInfo;
pub use manager::{AcquireRequest, Manager, ManagerBuilder};
pub use plugin_status::{PluginStatus, PluginStatusSource};
pub use policy::{
    BuiltinExhaustion, BuiltinHealth, BuiltinSizing, ExhaustionStrategy, HealthCheck, Policies,
    SizingPolicy, bounds,
};
pub use reconcile::ReconcileReport;
pub use reload::{PoolChange, ReloadReport};
pub use reuse::ReuseOutcome;
pub use sessions::LeaseSession;
pub use shutdown::ShutdownReport;
pub use stats::{AcquireStats, CreateStats, PolicyNames, PoolStats};
pub use sweep::SweepReport;
pub use warmpool_policy as policy_logic;
