//! One pool's state: the only code that changes a container's state or a pool's counters.
//!
//! Every container the pool accounts for has an entry in the pool's *books*, keyed by the name
//! the core gave it before asking the engine for it, from the moment its create is approved until
//! the engine confirms it is gone:
//!
//! ```text
//!   approve ──► creating ──► ready ──► leased ──► removing ──► (gone: cap slot freed)
//!                  │           │  ▲        │  ▲        ▲
//!                  │           │  └ reset ◄┘  │        │ any failure
//!                  └ failed ───┴──► removing  └ cold ──┘
//! ```
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
use crate::caps::GlobalCap;
use crate::config::{BreakerConfig, PoolConfig};
use crate::counters::{Counters, LatencyWindow, StateCounts};

/// A container that is up and set up, waiting in the pool, leased, or being reset.
#[derive(Debug, Clone)]
pub struct ReadyContainer {
    pub created: Created,
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
    Creating { cold: bool },
    Ready,
    Leased,
    Resetting,
    Removing { unhealthy: bool },
}

#[derive(Debug, Clone)]
struct Entry {
    /// The engine's ID, once a create answered with it.
    id: Option<String>,
    slot: Slot,
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
    waiters: VecDeque<oneshot::Sender<Delivery>>,
    target: u32,
    target_reason: String,
    current_image_id: Option<String>,
    last_acquire: Option<Instant>,
    recent_acquires: VecDeque<(Instant, AcquireSource)>,
    recent_creates_ms: VecDeque<u32>,
    consecutive_failures: u32,
    /// No refill create before this instant (back-off after a failure).
    retry_at: Option<Instant>,
    last_error: Option<String>,
    counters: Counters,
    latency: LatencyWindow,
    /// Set at shutdown or when a reload removed the pool: nothing new is created or handed out.
    draining: bool,
    /// The decaying peak of acquires per commit window; sizes the lendable set (group_commit.rs).
    lend_peak: f64,
}

impl PoolState {
    pub(crate) fn new(target: u32, reason: &str) -> Self {
        Self {
            target,
            target_reason: reason.into(),
            ..Default::default()
        }
    }

    // ---- reads -------------------------------------------------------------------------------

    pub fn counts(&self) -> StateCounts {
        self.counts
    }

    /// Every container the pool counts, in any state.
    pub fn total(&self) -> u32 {
        self.counts.total()
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    pub fn latency(&self) -> &LatencyWindow {
        &self.latency
    }

    pub fn ready(&self) -> impl Iterator<Item = &ReadyContainer> {
        self.ready.iter()
    }

    /// Ready containers that a commit has not made lendable yet.
    pub fn unlendable(&self) -> usize {
        self.ready.iter().filter(|c| !c.lendable).count()
    }

    pub fn lendable(&self) -> usize {
        self.ready.len() - self.unlendable()
    }

    pub fn creating_cold(&self) -> u32 {
        self.creating_cold
    }

    pub fn waiters(&self) -> u32 {
        self.waiters.len() as u32
    }

    pub fn target(&self) -> (u32, &str) {
        (self.target, &self.target_reason)
    }

    pub fn draining(&self) -> bool {
        self.draining
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    pub fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }

    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    pub fn last_acquire(&self) -> Option<Instant> {
        self.last_acquire
    }

    pub fn recent_acquires(&self) -> impl Iterator<Item = &(Instant, AcquireSource)> {
        self.recent_acquires.iter()
    }

    pub fn recent_creates_ms(&self) -> impl Iterator<Item = u32> + '_ {
        self.recent_creates_ms.iter().copied()
    }

    /// Every container in the books: its name and, once known, its engine ID.
    pub fn known(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.books
            .iter()
            .map(|(k, e)| (k.as_str(), e.id.as_deref()))
    }

    /// Whether the books hold the container named `key`.
    pub fn holds(&self, key: &str) -> bool {
        self.books.contains_key(key)
    }

    /// The breaker is open once creates have failed `threshold` times in a row.
    pub fn degraded(&self, breaker: &BreakerConfig) -> bool {
        self.consecutive_failures >= breaker.threshold
    }

    /// Whether `c` runs an image other than the one the pool's reference resolves to now.
    pub fn stale_image(&self, c: &ReadyContainer) -> bool {
        self.current_image_id
            .as_ref()
            .is_some_and(|id| *id != c.created.image_id)
    }

    /// The target refill works toward: the policy's, raised to serve every queued acquire,
    /// and never above `max_ready`.
    pub fn effective_target(&mut self, cfg: &PoolConfig) -> u32 {
        self.waiters.retain(|w| !w.is_closed());
        self.target
            .max(self.waiters.len() as u32)
            .min(cfg.max_ready)
    }

    /// Fresh ready containers still in probation: if one dies now, it counts as a failed create.
    fn young(&self, now: Instant, probation: Duration) -> u32 {
        self.ready
            .iter()
            .filter(|c| c.uses == 0 && now.saturating_duration_since(c.ready_at) < probation)
            .count() as u32
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
                Slot::Resetting => n.resetting += 1,
                Slot::Removing { unhealthy: false } => n.removing += 1,
                Slot::Removing { unhealthy: true } => n.unhealthy += 1,
            }
        }
        assert_eq!(n, self.counts, "pool counts disagree with the books");
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
                e.is_some_and(|e| e.slot == Slot::Ready && e.id.as_deref() == Some(&c.created.id)),
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
            Slot::Resetting => f(&mut n.resetting),
            Slot::Removing { unhealthy: false } => f(&mut n.removing),
            Slot::Removing { unhealthy: true } => f(&mut n.unhealthy),
        }
    }

    fn insert(&mut self, key: String, id: Option<String>, slot: Slot) {
        debug_assert!(
            !self.books.contains_key(&key),
            "container {key} is already in the books"
        );
        Self::count(&mut self.counts, &mut self.creating_cold, slot, 1);
        if let Some(old) = self.books.insert(key, Entry { id, slot }) {
            Self::count(&mut self.counts, &mut self.creating_cold, old.slot, -1);
        }
    }

    // ---- creates -----------------------------------------------------------------------------

    /// Set the policy's target (already clamped by the caller's sanitising) and its reason.
    pub fn set_target(&mut self, d: SizingDecision, cfg: &PoolConfig) {
        self.target = d.target.min(cfg.max_ready);
        self.target_reason = d.reason;
    }

    /// A reload changed the bounds: keep the target inside them until the policy decides again.
    pub fn clamp_target(&mut self, cfg: &PoolConfig) {
        self.target = self
            .target
            .clamp(cfg.min_ready, cfg.max_ready.max(cfg.min_ready));
    }

    /// Approve up to the deficit of creates, clamped to every cap, and count them as creating
    /// under the names `name()` gives. A pool whose breaker is open gets one trial create at a
    /// time, and none while its last fresh container is still in probation.
    pub fn approve_refill(
        &mut self,
        cfg: &PoolConfig,
        breaker: &BreakerConfig,
        cap: &GlobalCap,
        now: Instant,
        mut name: impl FnMut() -> String,
    ) -> Vec<String> {
        if self.draining || self.retry_at.is_some_and(|t| now < t) {
            return Vec::new();
        }
        let target = self.effective_target(cfg);
        let have = self.ready.len() as u32 + (self.counts.creating - self.creating_cold);
        let mut wanted = target.saturating_sub(have);
        wanted = wanted.min(cfg.max_total.saturating_sub(self.total()));
        if self.degraded(breaker) {
            let trials = self.counts.creating + self.young(now, cfg.probation);
            wanted = wanted.min(1u32.saturating_sub(trials));
        }
        let granted = cap.reserve(wanted);
        let names: Vec<String> = (0..granted).map(|_| name()).collect();
        for n in &names {
            self.insert(n.clone(), None, Slot::Creating { cold: false });
        }
        self.check();
        names
    }

    /// Approve one create for a specific acquire, if the caps allow it.
    pub fn approve_cold(&mut self, cfg: &PoolConfig, cap: &GlobalCap, name: String) -> bool {
        if self.draining || self.total() >= cfg.max_total || cap.reserve(1) == 0 {
            return false;
        }
        self.insert(name, None, Slot::Creating { cold: true });
        self.check();
        true
    }

    /// A create that never reached the engine (shutdown came first): no container exists, so
    /// the entry leaves the books at once.
    pub fn abandon(&mut self, key: &str, cap: &GlobalCap) {
        match self.books.get(key).map(|e| e.slot) {
            Some(slot @ Slot::Creating { .. }) => {
                self.books.remove(key);
                Self::count(&mut self.counts, &mut self.creating_cold, slot, -1);
                cap.release(1);
            }
            other => debug_assert!(false, "abandoned {key} while {other:?}"),
        }
        self.check();
    }

    /// A create answered with a running container. A refill's goes to the first live waiter if
    /// it is lendable, else into the ready queue (returns `true` when a waiter took it). A cold
    /// create's is counted as leased: the caller delivers it, or gives it back.
    pub fn created(&mut self, c: ReadyContainer, ms: u32) -> Placed {
        let key = c.key().to_string();
        let cold = matches!(
            self.books.get(&key).map(|e| e.slot),
            Some(Slot::Creating { cold: true })
        );
        if let Some(e) = self.books.get_mut(&key) {
            e.id = Some(c.created.id.clone());
        }
        self.counters.creates_total += 1;
        self.retry_at = None;
        if self.recent_creates_ms.len() == RECENT_CREATES {
            self.recent_creates_ms.pop_front();
        }
        self.recent_creates_ms.push_back(ms);
        let placed = if cold {
            self.moved(
                &key,
                |s| matches!(s, Slot::Creating { cold: true }),
                Slot::Leased,
            );
            Placed::Cold(c)
        } else {
            self.moved(
                &key,
                |s| matches!(s, Slot::Creating { cold: false }),
                Slot::Ready,
            );
            self.ready_push(c);
            self.serve_waiters();
            Placed::Pooled
        };
        self.check();
        placed
    }

    /// A create failed or its answer never came: the engine may still hold a container by that
    /// name, so it stays counted, as removing, until a removal of the name succeeds. `blame`
    /// says whether the failure is the pool's (it feeds the breaker) or the engine's outage.
    pub fn create_failed(
        &mut self,
        key: &str,
        err: &BackendError,
        blame: bool,
        breaker: &BreakerConfig,
        now: Instant,
    ) {
        self.moved(
            key,
            |s| matches!(s, Slot::Creating { .. }),
            Slot::Removing { unhealthy: false },
        );
        if blame {
            self.record_failure(&err.to_string(), breaker, now);
        } else {
            // An outage is not the pool's fault: back off without tripping the breaker.
            self.retry_at = Some(now + breaker.base_backoff);
        }
        self.check();
    }

    /// Count a failed create (or a container that died young): back off, and open the breaker
    /// after `threshold` in a row.
    pub fn record_failure(&mut self, reason: &str, breaker: &BreakerConfig, now: Instant) {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        self.counters.create_failures += 1;
        self.retry_at = Some(now + breaker.backoff(self.consecutive_failures));
        self.last_error = Some(clip(reason, MAX_ERROR));
    }

    /// Add detail (an exit report) to the last error, when it is still about `about`.
    pub fn detail_last_error(&mut self, about: &str, detail: &str) {
        if let Some(e) = &mut self.last_error
            && e.contains(about)
        {
            *e = clip(&format!("{e}: {detail}"), MAX_ERROR);
        }
    }

    /// A fresh container survived probation while ready, or a client took one: creates work
    /// again, so the failure streak ends.
    pub fn probation_tick(&mut self, now: Instant, probation: Duration) {
        if self.consecutive_failures > 0
            && self
                .ready
                .iter()
                .any(|c| c.uses == 0 && now.saturating_duration_since(c.ready_at) >= probation)
        {
            self.consecutive_failures = 0;
        }
    }

    // ---- acquire -----------------------------------------------------------------------------

    fn ready_push(&mut self, c: ReadyContainer) {
        self.ready.push_back(c);
    }

    /// Hand lendable ready containers to live waiters, oldest first. Returns how many went.
    fn serve_waiters(&mut self) -> u32 {
        let mut served = 0;
        while !self.waiters.is_empty() {
            let Some(pos) = self.ready.iter().position(|c| c.lendable) else {
                break;
            };
            let c = self.ready.remove(pos).expect("position is valid");
            let key = c.key().to_string();
            self.moved(&key, |s| s == Slot::Ready, Slot::Leased);
            let mut c = Some(c);
            while let Some(w) = self.waiters.pop_front() {
                match w.send(Ok(c.take().expect("still ours"))) {
                    Ok(()) => break,
                    Err(Ok(back)) => c = Some(back),
                    Err(Err(_)) => unreachable!("we sent Ok"),
                }
            }
            match c {
                None => served += 1,
                Some(back) => {
                    // Every waiter had gone: the container stays ready.
                    self.moved(&key, |s| s == Slot::Leased, Slot::Ready);
                    self.ready.push_front(back);
                    break;
                }
            }
        }
        served
    }

    /// The warm path: take the oldest lendable ready container (counted as leased) and record
    /// the acquire, in one critical section. Promotion keeps the lendable ones at the front, so
    /// this is a `pop_front` in practice.
    pub fn take_ready(&mut self, started: Instant, now: Instant) -> Option<ReadyContainer> {
        let pos = self.ready.iter().position(|c| c.lendable)?;
        let c = self.ready.remove(pos)?;
        self.moved(c.key(), |s| s == Slot::Ready, Slot::Leased);
        self.record_acquire(started, now, AcquireSource::Pool);
        if c.uses == 0 {
            self.consecutive_failures = 0;
        }
        self.check();
        Some(c)
    }

    /// Record an acquire served by a delivery (a waiter, a cold create).
    pub fn record_acquire(&mut self, started: Instant, now: Instant, source: AcquireSource) {
        let micros = now
            .saturating_duration_since(started)
            .as_micros()
            .min(u128::from(u32::MAX)) as u32;
        self.last_acquire = Some(now);
        if self.recent_acquires.len() == RECENT_ACQUIRES {
            self.recent_acquires.pop_front();
        }
        self.recent_acquires.push_back((now, source));
        self.counters.acquires_total += 1;
        match source {
            AcquireSource::Pool => self.counters.acquires_pool += 1,
            AcquireSource::Cold => self.counters.acquires_cold += 1,
        }
        self.latency.push(micros);
    }

    /// An acquire was refused (exhausted, degraded, create failed).
    pub fn reject(&mut self) {
        self.counters.acquires_rejected += 1;
    }

    /// Queue an acquire for the next lendable container.
    pub fn enqueue(&mut self, tx: oneshot::Sender<Delivery>) {
        self.waiters.push_back(tx);
    }

    /// A leased container nobody took after all (a delivery bounced, a waiter gave up after it
    /// was sent one): back to a waiter or the ready queue.
    pub fn give_back(&mut self, c: ReadyContainer) {
        let key = c.key().to_string();
        self.moved(&key, |s| s == Slot::Leased, Slot::Ready);
        self.ready.push_front(c);
        self.serve_waiters();
        self.check();
    }

    /// After a commit: mark `ids` lendable and hand lendable containers to queued acquires.
    pub fn promote(&mut self, ids: &[String]) {
        for c in self.ready.iter_mut() {
            if ids.contains(&c.created.id) {
                c.lendable = true;
            }
        }
        // Keep lendable containers at the front, oldest first, so `take_ready` pops them.
        self.ready.make_contiguous().sort_by_key(|c| !c.lendable);
        self.serve_waiters();
        self.check();
    }

    /// How many lendable containers to keep ahead of the next commit: the decaying peak of the
    /// acquires seen within `window`, the queued acquires, and `floor`.
    pub fn lend_ahead(
        &mut self,
        window: Duration,
        decay: f64,
        floor: usize,
        now: Instant,
    ) -> usize {
        let burst = self
            .recent_acquires
            .iter()
            .rev()
            .take_while(|(t, _)| now.saturating_duration_since(*t) <= window)
            .count() as f64;
        self.lend_peak = (self.lend_peak * decay).max(burst);
        floor
            .max(self.lend_peak.ceil() as usize)
            .max(self.waiters.len() * 2)
    }

    // ---- leaving the pool ----------------------------------------------------------------------

    /// A lease ended (released, expired, shutdown): its container is removed.
    pub fn lease_ended(&mut self, key: &str, why: LeaseEnd) {
        self.moved(
            key,
            |s| s == Slot::Leased,
            Slot::Removing { unhealthy: false },
        );
        if why == LeaseEnd::Expired {
            self.counters.expired_total += 1;
        }
        self.check();
    }

    /// A released container's reset begins.
    pub fn reset_begin(&mut self, key: &str) {
        self.moved(key, |s| s == Slot::Leased, Slot::Resetting);
        self.check();
    }

    /// The reset and every check passed: the container is ready again.
    pub fn reset_passed(&mut self, c: ReadyContainer) {
        self.moved(c.key(), |s| s == Slot::Resetting, Slot::Ready);
        self.counters.reused_total += 1;
        self.ready_push(c);
        self.serve_waiters();
        self.check();
    }

    /// The reset failed or left something behind: the container is removed.
    pub fn reset_failed(&mut self, key: &str) {
        self.moved(
            key,
            |s| s == Slot::Resetting,
            Slot::Removing { unhealthy: false },
        );
        self.counters.reset_failures += 1;
        self.check();
    }

    /// Take a ready container out of service (health, death): it is removed.
    pub fn pull_ready(&mut self, id: &str, unhealthy: bool) -> Option<ReadyContainer> {
        let pos = self.ready.iter().position(|c| c.created.id == id)?;
        let c = self.ready.remove(pos)?;
        self.moved(c.key(), |s| s == Slot::Ready, Slot::Removing { unhealthy });
        if unhealthy {
            self.counters.unhealthy_total += 1;
        }
        self.check();
        Some(c)
    }

    /// A ready container that died young: remove it and count a failed create. Returns it when
    /// it was ready here. `young` says whether it died within probation.
    pub fn died(
        &mut self,
        id: &str,
        reason: &str,
        now: Instant,
        cfg: &PoolConfig,
        breaker: &BreakerConfig,
    ) -> Option<(ReadyContainer, bool)> {
        let young = self.ready.iter().any(|c| {
            c.created.id == id
                && c.uses == 0
                && now.saturating_duration_since(c.ready_at) < cfg.probation
        });
        let c = self.pull_ready(id, true)?;
        if young {
            self.counters.died_young += 1;
            self.record_failure(
                &format!("container died {reason} within probation"),
                breaker,
                now,
            );
        }
        Some((c, young))
    }

    /// Recycle the first ready container `worn` picks (age, lifetime, stale image or spec).
    pub fn recycle_one(
        &mut self,
        worn: impl Fn(&ReadyContainer, &Self) -> bool,
    ) -> Option<ReadyContainer> {
        let pos = self.ready.iter().position(|c| worn(c, self))?;
        let c = self.ready.remove(pos)?;
        self.moved(
            c.key(),
            |s| s == Slot::Ready,
            Slot::Removing { unhealthy: false },
        );
        self.counters.recycled_total += 1;
        self.check();
        Some(c)
    }

    /// Above the target: remove the oldest ready container, one at a time.
    pub fn scale_down_one(&mut self, cfg: &PoolConfig) -> Option<ReadyContainer> {
        let target = self.effective_target(cfg) as usize;
        if self.ready.len() <= target {
            return None;
        }
        let c = self.ready.pop_front()?;
        self.moved(
            c.key(),
            |s| s == Slot::Ready,
            Slot::Removing { unhealthy: false },
        );
        self.check();
        Some(c)
    }

    /// Stop serving: fail queued acquires and take every ready container out. With
    /// `keep_unlendable`, ready containers no client could have had leave the books (they stay
    /// on the engine for the next start, and their cap slots are freed); the rest are removed.
    /// Returns (kept, doomed).
    pub fn drain(
        &mut self,
        keep_unlendable: bool,
        cap: &GlobalCap,
    ) -> (Vec<ReadyContainer>, Vec<ReadyContainer>) {
        self.draining = true;
        for w in self.waiters.drain(..) {
            let _ = w.send(Err(DeliveryError::ShuttingDown));
        }
        let (kept, doomed): (Vec<_>, Vec<_>) = std::mem::take(&mut self.ready)
            .into_iter()
            .partition(|c| keep_unlendable && !c.lendable);
        for c in &kept {
            if let Some(e) = self.books.remove(c.key()) {
                Self::count(&mut self.counts, &mut self.creating_cold, e.slot, -1);
                cap.release(1);
            }
        }
        for c in &doomed {
            self.moved(
                c.key(),
                |s| s == Slot::Ready,
                Slot::Removing { unhealthy: false },
            );
        }
        self.check();
        (kept, doomed)
    }

    /// The engine confirmed the container is gone: it leaves the books and frees its slot.
    pub fn removed(&mut self, key: &str, cap: &GlobalCap) {
        match self.books.get(key).map(|e| e.slot) {
            Some(slot @ Slot::Removing { .. }) => {
                self.books.remove(key);
                Self::count(&mut self.counts, &mut self.creating_cold, slot, -1);
                self.counters.destroyed_total += 1;
                cap.release(1);
            }
            other => {
                debug_assert!(false, "removed {key} while {other:?}");
                tracing::error!(container = key, state = ?other, "pool books: removal of a container not being removed");
            }
        }
        self.check();
    }

    /// A removal attempt failed; it is retried.
    pub fn remove_retried(&mut self) {
        self.counters.remove_retries += 1;
    }

    // ---- restart -----------------------------------------------------------------------------

    /// Reconcile: a ready container of an earlier run, re-adopted (it was never lent). Returns
    /// `false`, changing nothing, when the cap has no room for it.
    pub fn adopt(&mut self, c: ReadyContainer, cap: &GlobalCap) -> bool {
        if cap.reserve(1) == 0 {
            return false;
        }
        self.insert(c.key().to_string(), Some(c.created.id.clone()), Slot::Ready);
        self.counters.adopted_total += 1;
        self.ready_push(c);
        self.check();
        true
    }

    /// Reconcile: a persisted lease's container, counted as leased even past the cap (it
    /// exists already, and a cap cannot undo that).
    pub fn reattach(&mut self, c: &ReadyContainer, cap: &GlobalCap) {
        if cap.reserve(1) == 0 {
            cap.force(1);
        }
        self.insert(
            c.key().to_string(),
            Some(c.created.id.clone()),
            Slot::Leased,
        );
        self.check();
    }

    /// Reconcile or the running sweep: a container of this pool found on the engine that must
    /// go. It is counted (past the cap if need be: it exists) until its removal succeeds.
    /// Returns `false` if the books already hold it.
    pub fn doom_found(&mut self, key: &str, id: &str, cap: &GlobalCap) -> bool {
        if self.books.contains_key(key) {
            return false;
        }
        if cap.reserve(1) == 0 {
            cap.force(1);
        }
        self.insert(
            key.into(),
            Some(id.into()),
            Slot::Removing { unhealthy: false },
        );
        self.check();
        true
    }

    /// The image reference resolved to `id`; returns whether it moved from a known other ID.
    pub fn set_image_id(&mut self, id: String) -> bool {
        let moved = self.current_image_id.as_ref().is_some_and(|old| *old != id);
        self.current_image_id = Some(id);
        moved
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

/// `s`, cut to at most `max` bytes on a character boundary, marked when cut.
pub fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut cut = max.saturating_sub(3);
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}...", &s[..cut])
}
