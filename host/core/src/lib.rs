//! # warmpool-core: the pool logic, free of Docker and of wasm
//!
//! warmpool keeps pools of running containers and hands them out as leases. This crate is the
//! part that decides: it knows containers only through the [`Backend`] trait and decides only
//! through the policy traits ([`SizingPolicy`], [`ExhaustionStrategy`], [`HealthCheck`]). The
//! Docker backend lives in `warmpool-docker`, the HTTP API in `warmpool-api`, the YAML config in
//! `warmpool-config`, the in-memory backend in `warmpool-fake`, the fault simulation in
//! `warmpool-testkit`.
//!
//! ## The manager, in parts
//!
//! [`Manager`] is a thin facade: it owns the parts below and each public method delegates to
//! one of them. The parts are layered; a part calls only parts of lower layers, never the
//! facade, and each part's fields are private to its own file (or directory), so what touches
//! a piece of state is answered by one file. Parts holding no state are cheap `Clone` handles
//! (an `Arc` of the layer-0 state), so the tasks they spawn own a copy.
//!
//! | layer | part | its state | file(s) | may call |
//! |---|---|---|---|---|
//! | 0 | `Fleet` | engines (backend, up, cleaned, last error, create times), the caps, the orphans, the create and remove permits, the recent deaths | `shared/fleet.rs` (the caps' arithmetic: `caps.rs`) | nothing |
//! | 0 | `Books` | the map of serving pools, the retired pools | `shared/books.rs` | each pool's books (`pool/`) |
//! | 0 | pool books | one pool's containers and counters, with the invariant checks | `pool/state.rs`, `pool/state/*.rs` | nothing |
//! | 0 | `LeaseTable` | the live leases and their fences | `lease.rs`, `fence.rs` | nothing |
//! | 0 | `Persist`, `GroupCommit` | pending changes, held cold deliveries, commit figures, whether the stored scale overrides are back | `shared/persist.rs`, `group_commit.rs`, `group_commit/{pending,scales}.rs` | the store, each pool's books |
//! | 0 | `Events` | the broadcast sender | `events.rs` | nothing |
//! | 0 | `Runtime` | settings, cancel token, task tracker, clocks, IDs, "swept" | `shared/runtime.rs` | nothing |
//! | 0 | `Shared` | (bundles the above; read-only views over several) | `shared/mod.rs` | layer 0 |
//! | 1 | `Lifecycle` | none | `lifecycle/{mod,create}.rs` | layer 0 |
//! | 2 | `Leasing` | none | `leasing/{mod,acquire,reuse,sessions}.rs` | layers 0, 1 |
//! | 2 | `Persistence` | none | `persistence/{mod,reconcile,restore,scales}.rs` | layers 0, 1 |
//! | 3 | `Upkeep` | none | `upkeep/{mod,monitor,refill,reaper,health,deaths,sweep}.rs` | layers 0, 1, 2 |
//! | top | `Manager` and its builder, reload, shutdown, scale overrides | the parts | `manager.rs`, `builder.rs`, `reload.rs`, `shutdown.rs`, `scale.rs` | every part |
//!
//! What each does:
//! - `Lifecycle`: a container's life on the engine: the create (and, for a cold create, its
//!   hand-off or its hold in the group commit), the engine-side "used" mark, the removal that
//!   never gives up, and what an engine call learned about its engine (to the fleet, the pools'
//!   masks and the events).
//! - `Leasing`: acquire (the warm path, waiting, cold creates), list, renew, release, exec,
//!   files, sessions, tar streams, release with a scrub (`reuse.rs`).
//! - `Persistence`: the commit loop and the hand-out of cold containers a commit made lendable;
//!   the startup cleanup (sweep without a store, reconcile with one, which also puts back the
//!   scale overrides the store held).
//! - `Upkeep`: the engine monitor (which reacts to an engine coming back with the running
//!   sweep), the refill, the reaper (expiry through `Leasing`) and the image check, health
//!   probes, death notices, the running sweep, warm-up.
//!
//! ## Other files
//!
//! - `backend`: the [`Backend`] trait, its events and errors; `backend/{spec,exec,residue,
//!   session}.rs`: the data crossing it.
//! - `pool`: one pool (settings and policies, its state behind a lock); `pool/breakers.rs`: its
//!   create breakers.
//! - `lease`: the lease types; `lease_store`: what survives a crash, and the
//!   [`LeaseStore`](lease_store::LeaseStore) seam the `warmpool-store` crate implements.
//! - `engines`: engine specs and stats, the placer, engine masks.
//! - `policy`: the policy seams, their built-ins, and the bounds on every policy's answer.
//! - `stats`: the read-only view of a pool; `clock`: the wall clock, saturating instants, IDs;
//!   `sync`: the lock helper; `text`: clipping; `counters`, `caps`, `config`, `error`,
//!   `plugin_status` (what the API shows of plugins): plain types.

mod backend;
mod builder;
mod caps;
mod clock;
mod config;
mod counters;
mod deadline;
mod engines;
mod error;
mod events;
mod fence;
mod group_commit;
mod lease;
pub mod lease_store;
mod leasing;
mod lifecycle;
mod manager;
mod persistence;
mod plugin_status;
mod policy;
mod pool;
mod reload;
mod scale;
mod shared;
mod shutdown;
mod stats;
mod sync;
mod text;
mod upkeep;

pub use backend::{
    Backend, BackendError, BackendEvent, Baseline, ByteStream, ChangeKind, ContainerSpec, Created,
    EngineDescription, ExecEvent, ExecInput, ExecMode, ExecOutput, ExecRequest, ExecSession,
    Existing, ExitStatus, FileBody, FsChange, Hibernation, ImageSource, LeaseSetup, MIN_MEMORY,
    MIN_NANO_CPUS, Place, PlaceKind, Residue, ResourceBounds, ResourceError, Resources, Runtimes,
    Secret, SetupFile, Stop, TermSize, USED_SUFFIX, checked_path, parse_size,
};
pub use builder::ManagerBuilder;
pub use caps::EngineIx;
pub use clock::{Clock, later, rfc3339};
pub use config::{
    BreakerConfig, HibernationConfig, ManagerConfig, OnSuspended, PoolConfig, ReuseConfig,
    ScaleOverride,
};
pub use counters::{Counters, Durations, HIBERNATION_BUCKETS_S, HibernationTimes, StateCounts};
pub use engines::{EngineSpec, EngineStats, MAX_ENGINES};
pub use error::{AcquireError, LeaseError, ResizeError, ScaleError, WarmUpError};
pub use events::Event;
pub use group_commit::PersistStats;
pub use lease::{LeaseInfo, LeaseLedger, LeaseResources};
pub use leasing::{AcquireRequest, LeaseSession, ReuseOutcome};
pub use manager::Manager;
pub use persistence::ReconcileReport;
pub use plugin_status::{PluginStatus, PluginStatusSource};
pub use policy::{
    BuiltinExhaustion, BuiltinHealth, BuiltinSizing, ExhaustionStrategy, HealthCheck, Policies,
    SizingPolicy, bounds,
};
pub use reload::{PoolChange, ReloadReport};
pub use shutdown::ShutdownReport;
pub use stats::{AcquireStats, CreateStats, PolicyNames, PoolStats};
pub use upkeep::SweepReport;
pub use warmpool_policy as policy_logic;
