//! The persistence seam: what survives a crash, and the [`LeaseStore`] trait that keeps it.
//!
//! Two things are persisted, both in batches (group commit) by the committer in
//! [`crate::group_commit`], never on the acquire path:
//!
//! - **Leases**: owner, container, pool, expiry, uses. A lease older than one commit interval
//!   survives `kill -9`; at restart it is re-attached to its container.
//! - **The lendable set**: the containers that may have been handed to a client. A ready
//!   container is handed out only after a commit has recorded it as lendable, and it stays in the
//!   set until it is destroyed. So at restart a lendable container without a lease record is one
//!   that *might* have reached a client whose lease was not yet committed: it is destroyed, never
//!   re-adopted. Ready containers outside the set never reached anyone and can be re-adopted.
//!
//! - **Scale overrides**: the sizes `PUT /v1/pools/{name}/scale` set, one per pool, with the
//!   config's sizes they were set against. Unlike the rest they are written at once (the
//!   route answers only once the store has it, see `crate::scale`), and a clean shutdown's
//!   [`Change::Clear`] keeps them: they are the operator's word, not the daemon's bookkeeping.
//!
//! That gives the guarantee the README states: no container reaches two clients across a crash,
//! and the price of a crash is recreating the few containers that were lendable but not leased.
//! `warmpool-store` implements the trait on redb; `warmpool-fake` has an in-memory one.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A lease as persisted. Times are wall-clock milliseconds since the Unix epoch, since the
/// monotonic clock does not survive a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// The lease's ID.
    pub lease_id: String,
    /// Name of the lease's pool.
    pub pool: String,
    /// Who holds the lease, as the acquire said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The tenant whose lease it is; absent in records from before tenants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The engine's ID of the leased container.
    pub container_id: String,
    /// Name of the engine that holds it; absent in records of a single-engine daemon before
    /// engines had names (read as the first engine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// The container's name as the core chose it, without the `-leased` mark.
    pub container_name: String,
    /// The image reference the container was created from.
    pub image: String,
    /// The image ID it resolved to at create time.
    pub image_id: String,
    /// `pool` or `cold`.
    pub source: String,
    /// When the lease was opened.
    pub acquired_at_ms: u64,
    /// When the lease expires unless renewed.
    pub expires_at_ms: u64,
    /// When the container first became ready; `max_lifetime` counts from here.
    pub born_at_ms: u64,
    /// Leases this container has served, this one included.
    pub uses: u32,
    /// The lease's own CPU (NanoCpus) and memory limits, when it asked for them (at acquire or
    /// by `PATCH`); absent: the pool's. A restart shows them again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<(Option<i64>, Option<i64>)>,
    /// When the lease was suspended, while it is: its container is stopped on purpose, with
    /// a checkpoint (absent in records from before hibernation: running).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended_at_ms: Option<u64>,
}

/// A pool's scale override as persisted: the sizes it runs on, and the config's sizes they were
/// set against. A start whose config gives the pool other sizes drops it, as a reload that
/// changes them does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScaleRecord {
    /// Name of the pool.
    pub pool: String,
    /// Ready containers kept at least while the override holds.
    pub min_ready: u32,
    /// Ready containers kept at most while the override holds.
    pub max_ready: u32,
    /// The config's `min_ready`, `max_ready` and `max_total` when it was set.
    pub config_sizes: [u32; 3],
}

/// One change to the persisted state.
// Most changes are leases: boxing the large variant would add an allocation to nearly every
// change for the sake of the rare small ones.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A lease was opened or renewed (the record replaces any earlier one).
    PutLease(LeaseRecord),
    /// A lease ended.
    DropLease(String),
    /// `container` of `pool` may be handed out from now on.
    Lendable {
        /// Engine ID of the container.
        container: String,
        /// Name of its pool.
        pool: String,
    },
    /// `container` is destroyed; forget it.
    Forget(String),
    /// A pool's scale override was set (it replaces any earlier one).
    PutScale(ScaleRecord),
    /// Pool `0`'s scale override was cleared, or the pool is gone.
    DropScale(String),
    /// A clean shutdown left nothing behind: forget every lease and the lendable set. Scale
    /// overrides stay: they describe no container.
    Clear,
}

/// Everything persisted, as loaded at startup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Persisted {
    /// Persisted leases, by lease ID.
    pub leases: BTreeMap<String, LeaseRecord>,
    /// Container ID → pool name.
    pub lendable: BTreeMap<String, String>,
    /// Scale overrides, by pool name.
    pub scales: BTreeMap<String, ScaleRecord>,
}

impl Persisted {
    /// Apply a batch in order; the in-memory model of what a store does.
    pub fn apply(&mut self, changes: &[Change]) {
        for c in changes {
            match c {
                Change::PutLease(r) => {
                    self.leases.insert(r.lease_id.clone(), r.clone());
                }
                Change::DropLease(id) => {
                    self.leases.remove(id);
                }
                Change::Lendable { container, pool } => {
                    self.lendable.insert(container.clone(), pool.clone());
                }
                Change::Forget(id) => {
                    self.lendable.remove(id);
                }
                Change::PutScale(r) => {
                    self.scales.insert(r.pool.clone(), r.clone());
                }
                Change::DropScale(pool) => {
                    self.scales.remove(pool);
                }
                Change::Clear => {
                    self.leases.clear();
                    self.lendable.clear();
                }
            }
        }
    }
}

/// Errors of a [`LeaseStore`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be opened.
    #[error("open state store {path}: {message}")]
    Open {
        /// Path of the store's file.
        path: String,
        /// Why it could not be opened.
        message: String,
    },
    /// Loading the persisted state failed; holds why.
    #[error("load state store: {0}")]
    Load(String),
    /// A commit failed; holds why.
    #[error("commit to state store: {0}")]
    Commit(String),
}

/// Durable storage of [`Persisted`]. Calls block (they may fsync); the core runs them on
/// tokio's blocking pool, one at a time.
pub trait LeaseStore: Send + Sync + 'static {
    /// Read everything the store holds (at startup, before any commit).
    fn load(&self) -> Result<Persisted, StoreError>;
    /// Apply `changes` atomically and durably: when this returns `Ok`, they survive a crash.
    fn commit(&self, changes: &[Change]) -> Result<(), StoreError>;
    /// Whether calls may block (fsync): the core then runs them on tokio's blocking pool. An
    /// in-memory store says `false`, and is called inline (which keeps a simulation exact).
    fn blocking(&self) -> bool {
        true
    }
}

/// Milliseconds since the Unix epoch.
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis().min(u128::from(u64::MAX)) as u64)
}

/// The time `ms` milliseconds after the Unix epoch; the inverse of [`unix_ms`].
pub fn from_unix_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}
