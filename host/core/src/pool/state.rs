//! One pool's state: the only code that changes a container's state or a pool's counters.
//!
//! Every container the pool accounts for has an entry in the pool's *books*, keyed by the name
//! the core gave it before asking the engine for it, from the moment its create is approved until
//! the engine confirms it is gone:
//!
//! ```text
//!   approve ──► creating ──► ready ──► leased ──► removing ──► (gone: cap slot freed)
//!                  │           │  ▲        │  ▲ ▲      ▲
//!                  │           │  └ reset ◄┘  │ │      │ any failure
//!                  └ failed ───┴──► removing  │ └ cold ┘
//!                                  suspended ◄┴──► (lease ends) removing
//! ```
//!
//! A suspended lease's container is stopped with a checkpoint on the engine's disk: it still
//! counts against the caps, and leaves only for `leased` (resumed) or `removing` (the lease
//! ended): it is never reset for reuse.
//!
//! A failed or timed-out create also becomes `removing`, by name: the engine may hold a container
//! the answer never told us about, and it counts until a removal of that name succeeds. Each
//! method checks, in debug builds, that the transition is legal and that the counts add up to the
//! books (the fault simulation runs with those checks on).
//!
//! Every method is a short synchronous section under the pool's mutex; no `.await` ever runs
//! with the lock held, so the warm acquire is a lock, a `pop_front`, a few counter updates and an
//! unlock.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;
use warmpool_policy::{AcquireSource, SizingDecision};

use crate::backend::{BackendError, Baseline, Created};
use crate::caps::{Caps, EngineIx};
use crate::config::{BreakerConfig, PoolConfig};
use crate::counters::{CostMeter, Counters, LatencyWindow, StateCounts};
use crate::engines::{EngineView, has};

use super::breakers::Breakers;

// The transitions, by stage; each file adds methods to `PoolState` and, as a child of this
// module, is the only other code that sees its fields.
mod acquire;
mod creates;
mod hibernation;
mod leaving;
mod reads;
mod restart;
mod scale;

pub use restart::Doomed;

/// A container that is up and set up, waiting in the pool, leased, or being reset.
#[derive(Debug, Clone)]
pub struct ReadyContainer {
    pub created: Created,
    /// The engine that holds it.
    pub engine: EngineIx,
    /// When it (last) became ready: after create, or after a verified reset.
    pub ready_at: Instant,
    /// When it first became ready; `max_lifetime` counts from here.
    pub born: Instant,
    pub uses: u32,
    /// The pool's spec generation it was made for (see `Pool::stale_spec`).
    pub generation: u64,
    /// May be handed to a client: a commit recorded it in the lendable set (see
    /// [`crate::lease_store`]), or the daemon persists nothing. Set once, never cleared.
    pub lendable: bool,
    /// What it looked like before any client touched it; a reuse is refused without one.
    pub baseline: Option<Arc<Baseline>>,
}

impl ReadyContainer {
    /// The name the core gave it: its key in the books.
    pub fn key(&self) -> &str {
        &self.created.name
    }
}

/// What a queued acquire receives: a container, or the reason none will come.
pub type Delivery = Result<ReadyContainer, DeliveryError>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum DeliveryError {
    #[error(transparent)]
    Create(#[from] BackendError),
    #[error("daemon is shutting down")]
    ShuttingDown,
}

/// Where a container stands in the books.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Creating {
        cold: bool,
    },
    Ready,
    Leased,
    /// Leased, its lease suspended: stopped, with a checkpoint on the engine.
    Suspended,
    Resetting,
    Removing {
        unhealthy: bool,
    },
}

#[derive(Debug, Clone)]
struct Entry {
    /// The engine's ID, once a create answered with it.
    id: Option<String>,
    slot: Slot,
    /// The engine that holds it (or that its create was sent to): its cap counts it.
    engine: EngineIx,
}

/// Why a lease's container leaves: only counted differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseEnd {
    Released,
    Expired,
    /// Shutdown, a removed pool, a refused reuse, a delivery nobody took.
    Other,
}

const RECENT_ACQUIRES: usize = 256;
const RECENT_CREATES: usize = 32;
/// Longest `last_error` kept: a container's log tail or a plugin's reason is cut here.
const MAX_ERROR: usize = 1024;

/// Mutable state of a pool; see the module doc.
#[derive(Debug, Default)]
pub struct PoolState {
    ready: VecDeque<ReadyContainer>,
    books: BTreeMap<String, Entry>,
    counts: StateCounts,
    /// Of `counts.creating`, those made for one specific acquire (exhaustion `cold`).
    creating_cold: u32,
    /// Queued acquires, oldest first, each with the engines it accepts (a mask).
    waiters: VecDeque<(u64, oneshot::Sender<Delivery>)>,
    /// Engines whose containers may be handed out now (up); the manager keeps it current.
    up_mask: u64,
    target: u32,
    target_reason: String,
    /// What the pool's image reference resolves to, per engine (an image moves on one engine
    /// at a time).
    current_image_id: BTreeMap<EngineIx, String>,
    /// Engines whose image check answered (present or not).
    image_checked: std::collections::BTreeSet<EngineIx>,
    last_acquire: Option<Instant>,
    recent_acquires: VecDeque<(Instant, AcquireSource)>,
    recent_creates_ms: VecDeque<u32>,
    /// The create breakers, one per engine that failed (see [`super::breakers`]).
    breakers: Breakers,
    last_error: Option<String>,
    counters: Counters,
    latency: LatencyWindow,
    /// Idle container-seconds and the peak count, fed by every change of `counts`.
    cost: CostMeter,
    /// Set at shutdown or when a reload removed the pool: nothing new is created or handed out.
    draining: bool,
    /// The decaying peak of acquires per commit window; sizes the lendable set (group_commit.rs).
    lend_peak: f64,
    /// How long suspends and resumes took (`state/hibernation.rs`).
    hibernation: crate::counters::HibernationTimes,
    /// The scale override, with the config's sizes it was set against (see `state/scale.rs`).
    scale: Option<(crate::config::ScaleOverride, [u32; 3])>,
}

impl PoolState {
    pub(crate) fn new(target: u32, reason: &str) -> Self {
        Self {
            target,
            target_reason: reason.into(),
            up_mask: u64::MAX,
            ..Default::default()
        }
    }

    // ---- reads: in `state/reads.rs` --------------------------------------------------------

    /// The target refill works toward: the policy's, raised to serve every queued acquire,
    /// and never above `max_ready` (the scale override's while one holds).
    pub fn effective_target(&mut self, cfg: &PoolConfig) -> u32 {
        self.waiters.retain(|(_, w)| !w.is_closed());
        self.target
            .max(self.waiters.len() as u32)
            .min(self.sizes(cfg).1)
    }

    /// Per engine, the pool's creates under way and fresh ready containers still in probation
    /// (if one dies now, it counts as a failed create): an open breaker's trials.
    fn trials(&self, n: usize, now: Instant, probation: Duration) -> Vec<u32> {
        let mut v = vec![0u32; n];
        let young = self
            .ready
            .iter()
            .filter(|c| c.uses == 0 && now.saturating_duration_since(c.ready_at) < probation)
            .map(|c| c.engine);
        let creating = self
            .books
            .values()
            .filter(|e| matches!(e.slot, Slot::Creating { .. }))
            .map(|e| e.engine);
        for e in young.chain(creating) {
            if let Some(t) = v.get_mut(e) {
                *t += 1;
            }
        }
        v
    }

    // ---- invariants --------------------------------------------------------------------------

    /// The counts agree with the books, and the ready queue with the `ready` entries.
    #[track_caller]
    fn check(&self) {
        if !cfg!(debug_assertions) {
            return;
        }
        let mut n = StateCounts::default();
        let mut cold = 0;
        for e in self.books.values() {
            match e.slot {
                Slot::Creating { cold: c } => {
                    n.creating += 1;
                    cold += u32::from(c);
                }
                Slot::Ready => n.ready += 1,
                Slot::Leased => n.leased += 1,
                Slot::Suspended => n.suspended += 1,
                Slot::Resetting => n.resetting += 1,
                Slot::Removing { unhealthy: false } => n.removing += 1,
                Slot::Removing { unhealthy: true } => n.unhealthy += 1,
            }
        }
        assert_eq!(n, self.counts, "pool counts disagree with the books");
        self.check_scale();
        assert_eq!(
            cold, self.creating_cold,
            "cold creates disagree with the books"
        );
        assert_eq!(
            self.ready.len() as u32,
            n.ready,
            "ready queue disagrees with the books"
        );
        for c in &self.ready {
            let e = self.books.get(c.key());
            assert!(
                e.is_some_and(|e| e.slot == Slot::Ready
                    && e.id.as_deref() == Some(&c.created.id)
                    && e.engine == c.engine),
                "ready container {} is not ready in the books",
                c.key()
            );
        }
    }

    /// Move `key` from `from` (any of) to `to`, adjusting counts. Panics in debug builds on an
    /// illegal transition; in release it repairs what it can and says so.
    #[track_caller]
    fn moved(&mut self, key: &str, from: impl Fn(Slot) -> bool, to: Slot) {
        let Some(e) = self.books.get_mut(key) else {
            debug_assert!(false, "container {key} is not in the books");
            tracing::error!(
                container = key,
                "pool books: unknown container; state not changed"
            );
            return;
        };
        if !from(e.slot) {
            debug_assert!(false, "illegal move of {key}: {:?} -> {to:?}", e.slot);
            tracing::error!(container = key, from = ?e.slot, to = ?to, "pool books: unexpected state change");
        }
        let was = std::mem::replace(&mut e.slot, to);
        Self::count(&mut self.counts, &mut self.creating_cold, was, -1);
        Self::count(&mut self.counts, &mut self.creating_cold, to, 1);
        // A move keeps the total; the meter needs the clock only when the ready count moved
        // (an acquire's Ready → Leased reads it once, not twice).
        if was == Slot::Ready || to == Slot::Ready {
            self.cost.observe(&self.counts, Instant::now());
        }
    }

    /// Count one container more (`d` = 1) or less (-1) in slot `s`. With `moved`, the only
    /// writers of `counts` (besides the reads of `counts_on`), so the cost meter sees every
    /// change of the ready count (its integral) and every rise of the total (its peak).
    fn tally(&mut self, s: Slot, d: i32) {
        Self::count(&mut self.counts, &mut self.creating_cold, s, d);
        if s == Slot::Ready || d > 0 {
            self.cost.observe(&self.counts, Instant::now());
        }
    }

    fn count(n: &mut StateCounts, cold: &mut u32, s: Slot, d: i32) {
        let f = |v: &mut u32| *v = v.wrapping_add_signed(d);
        match s {
            Slot::Creating { cold: c } => {
                f(&mut n.creating);
                if c {
                    f(cold);
                }
            }
            Slot::Ready => f(&mut n.ready),
            Slot::Leased => f(&mut n.leased),
            Slot::Suspended => f(&mut n.suspended),
            Slot::Resetting => f(&mut n.resetting),
            Slot::Removing { unhealthy: false } => f(&mut n.removing),
            Slot::Removing { unhealthy: true } => f(&mut n.unhealthy),
        }
    }

    fn insert(&mut self, key: String, id: Option<String>, slot: Slot, engine: EngineIx) {
        debug_assert!(
            !self.books.contains_key(&key),
            "container {key} is already in the books"
        );
        self.tally(slot, 1);
        if let Some(old) = self.books.insert(key, Entry { id, slot, engine }) {
            self.tally(old.slot, -1);
        }
    }
}

/// Where a created container went.
#[derive(Debug)]
pub enum Placed {
    /// Into the pool (or straight to a queued acquire).
    Pooled,
    /// A cold create's container, counted as leased, for the caller to deliver.
    Cold(ReadyContainer),
}
