//! One pool's state and its accounting. Every mutation happens under the pool's mutex, in short
//! synchronous sections: no `.await` ever runs with the lock held, so the acquire fast path is a
//! lock, a `pop_front` and an unlock.
//!
//! The counters follow the container states: `creating → ready → leased → removing`, plus
//! `unhealthy` (found dead or failing, being removed). Refill works by *approvals* as in bb8:
//! the deficit is computed under the lock and counted as `creating` before any task is spawned, so
//! concurrent refills can never overshoot a cap.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;

use tokio::sync::{Notify, oneshot, watch};
use tokio::time::Instant;
use warmpool_policy::{AcquireSample, AcquireSource, PoolSnapshot};

use crate::backend::{BackendError, Created};
use crate::caps::GlobalCap;
use crate::config::{BreakerConfig, PoolConfig};
use crate::policy::Policies;
use crate::stats::{Counters, LatencyWindow};

/// A container that is up and set up, waiting in the pool (or just handed to an acquirer).
#[derive(Debug, Clone)]
pub struct ReadyContainer {
    pub created: Created,
    /// When it (last) became ready: after create, or after a verified reset.
    pub ready_at: Instant,
    /// When it first became ready; `max_lifetime` counts from here.
    pub born: Instant,
    pub uses: u32,
    /// The pool's spec generation it was made for (see [`Pool::stale_spec`]).
    pub generation: u64,
    /// May be handed to a client: a commit recorded it in the lendable set (see
    /// [`crate::store`]), or the daemon persists nothing. Set once, never cleared.
    pub lendable: bool,
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

const RECENT_ACQUIRES: usize = 256;
const RECENT_CREATES: usize = 32;

/// Mutable state of a pool; see the module doc.
#[derive(Debug, Default)]
pub struct PoolState {
    pub ready: VecDeque<ReadyContainer>,
    /// All creates in flight, including `creating_cold`.
    pub creating: u32,
    /// Creates made for one specific acquire (exhaustion `cold`); they do not refill the pool.
    pub creating_cold: u32,
    pub leased: u32,
    /// Released for reuse; its reset and verification are running.
    pub resetting: u32,
    pub removing: u32,
    pub unhealthy: u32,
    /// The ID the pool's image reference resolves to now, when known. Containers of another
    /// image are drained as they come free.
    pub current_image_id: Option<String>,
    pub waiters: VecDeque<oneshot::Sender<Delivery>>,
    pub target: u32,
    pub target_reason: String,
    pub last_acquire: Option<Instant>,
    pub recent_acquires: VecDeque<(Instant, AcquireSource)>,
    pub recent_creates_ms: VecDeque<u32>,
    pub consecutive_failures: u32,
    /// No refill create before this instant (back-off after a failure).
    pub retry_at: Option<Instant>,
    pub last_error: Option<String>,
    pub counters: Counters,
    pub latency: LatencyWindow,
    /// Set at shutdown: nothing new is created or handed out.
    pub draining: bool,
    /// The decaying peak of acquires per commit window; sizes the lendable set (persist.rs).
    pub lend_peak: f64,
}

impl PoolState {
    pub fn total(&self) -> u32 {
        self.ready.len() as u32
            + self.creating
            + self.leased
            + self.resetting
            + self.removing
            + self.unhealthy
    }

    /// The breaker is open once creates have failed `threshold` times in a row.
    pub fn degraded(&self, breaker: &BreakerConfig) -> bool {
        self.consecutive_failures >= breaker.threshold
    }

    fn live_waiters(&mut self) -> u32 {
        self.waiters.retain(|w| !w.is_closed());
        self.waiters.len() as u32
    }

    /// The target refill works toward: the policy's, raised to serve every queued acquire,
    /// and never above `max_ready`.
    pub fn effective_target(&mut self, cfg: &PoolConfig) -> u32 {
        let waiters = self.live_waiters();
        self.target.max(waiters).min(cfg.max_ready)
    }

    /// Approve up to the deficit of creates, clamped to every cap, and count them as in flight.
    pub fn approve_refill(
        &mut self,
        cfg: &PoolConfig,
        breaker: &BreakerConfig,
        cap: &GlobalCap,
        now: Instant,
    ) -> u32 {
        if self.draining || self.retry_at.is_some_and(|t| now < t) {
            return 0;
        }
        let target = self.effective_target(cfg);
        let have = self.ready.len() as u32 + (self.creating - self.creating_cold);
        let mut wanted = target.saturating_sub(have);
        wanted = wanted.min(cfg.max_total.saturating_sub(self.total()));
        if self.degraded(breaker) {
            // Half-open: a single trial create at a time until one succeeds.
            wanted = wanted.min(1u32.saturating_sub(self.creating));
        }
        let granted = cap.reserve(wanted);
        self.creating += granted;
        granted
    }

    /// Approve one create for a specific acquire, if the caps allow it.
    pub fn approve_cold(&mut self, cfg: &PoolConfig, cap: &GlobalCap) -> bool {
        if self.draining || self.total() >= cfg.max_total || cap.reserve(1) == 0 {
            return false;
        }
        self.creating += 1;
        self.creating_cold += 1;
        true
    }

    /// Hand a container to the first live waiter, or put it in the ready queue. Only a
    /// lendable container goes to a waiter; another waits in the queue for the next commit.
    /// Returns `true` when a waiter took it (it is then counted as leased).
    pub fn offer(&mut self, mut c: ReadyContainer) -> bool {
        if !c.lendable {
            self.ready.push_back(c);
            return false;
        }
        while let Some(w) = self.waiters.pop_front() {
            self.leased += 1;
            match w.send(Ok(c)) {
                Ok(()) => return true,
                Err(Ok(back)) => {
                    self.leased -= 1;
                    c = back;
                }
                Err(Err(_)) => unreachable!("we sent Ok"),
            }
        }
        self.ready.push_back(c);
        false
    }

    /// Take the oldest lendable ready container for an acquirer (counted as leased).
    /// Promotion keeps the lendable ones at the front, so this is a `pop_front` in practice.
    pub fn take_ready(&mut self) -> Option<ReadyContainer> {
        let pos = self.ready.iter().position(|c| c.lendable)?;
        let c = self.ready.remove(pos)?;
        self.leased += 1;
        Some(c)
    }

    /// Ready containers that a commit has not made lendable yet.
    pub fn unlendable(&self) -> usize {
        self.ready.iter().filter(|c| !c.lendable).count()
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
        while !self.waiters.is_empty() {
            let Some(c) = self.take_ready() else { break };
            self.leased -= 1;
            if !self.offer(c) {
                break;
            }
        }
    }

    /// Remove a ready container by id (health, death, recycling), counting it as `unhealthy`
    /// or `removing` until it is destroyed.
    pub fn pull_ready(&mut self, id: &str, unhealthy: bool) -> Option<ReadyContainer> {
        let pos = self.ready.iter().position(|c| c.created.id == id)?;
        let c = self.ready.remove(pos)?;
        if unhealthy {
            self.unhealthy += 1;
        } else {
            self.removing += 1;
        }
        Some(c)
    }

    /// Whether `c` runs an image other than the one the pool's reference resolves to now.
    pub fn stale_image(&self, c: &ReadyContainer) -> bool {
        self.current_image_id
            .as_ref()
            .is_some_and(|id| *id != c.created.image_id)
    }

    pub fn record_acquire(&mut self, now: Instant, source: AcquireSource, micros: u32) {
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

    pub fn record_create_ok(&mut self, ms: u32) {
        self.consecutive_failures = 0;
        self.retry_at = None;
        self.counters.creates_total += 1;
        if self.recent_creates_ms.len() == RECENT_CREATES {
            self.recent_creates_ms.pop_front();
        }
        self.recent_creates_ms.push_back(ms);
    }

    pub fn record_create_failed(
        &mut self,
        err: &BackendError,
        breaker: &BreakerConfig,
        now: Instant,
    ) {
        self.consecutive_failures += 1;
        self.counters.create_failures += 1;
        self.retry_at = Some(now + breaker.backoff(self.consecutive_failures));
        self.last_error = Some(err.to_string());
    }
}

/// One pool: its settings and policies (swapped whole by a config reload), and its state
/// behind a mutex.
pub struct Pool {
    cfg: ArcSwap<PoolConfig>,
    policies: ArcSwap<Policies>,
    /// Bumped when a reload changes the container spec: ready containers of an older
    /// generation are recycled as they come free, like those of a moved image.
    generation: AtomicU64,
    /// Stops this pool's own loops when a reload removes the pool; a child of the daemon's token.
    pub cancel: CancellationToken,
    state: Mutex<PoolState>,
    /// Wakes the pool's refill task early (after an acquire, a create, a removal).
    pub refill: Notify,
    /// Bumped on every state change; `warm-up` waits on it.
    pub changed: watch::Sender<u64>,
}

impl Pool {
    pub fn new(cfg: PoolConfig, policies: Policies, cancel: CancellationToken) -> Arc<Self> {
        let state = PoolState {
            target: cfg.min_ready,
            target_reason: "initial: min_ready".into(),
            ..Default::default()
        };
        Arc::new(Self {
            cfg: ArcSwap::from_pointee(cfg),
            policies: ArcSwap::from_pointee(policies),
            generation: AtomicU64::new(0),
            cancel,
            state: Mutex::new(state),
            refill: Notify::new(),
            changed: watch::Sender::new(0),
        })
    }

    /// The pool's settings as of now (a reload may swap them between two calls).
    pub fn cfg(&self) -> Arc<PoolConfig> {
        self.cfg.load_full()
    }

    pub fn policies(&self) -> Arc<Policies> {
        self.policies.load_full()
    }

    /// The spec generation new containers are made for.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Whether `c` was made for an older spec than the pool's current one.
    pub fn stale_spec(&self, c: &ReadyContainer) -> bool {
        c.generation != self.generation()
    }

    /// Apply a reloaded config. A changed spec starts a new generation, so containers of the old
    /// one drain as they come free; sizes, timeouts and policies take effect at once.
    pub fn reconfigure(&self, cfg: PoolConfig, policies: Option<Policies>) -> bool {
        let spec_changed = self.cfg.load().spec != cfg.spec;
        if spec_changed {
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        {
            // The policy decides the target at the next refill; until then, keep it in bounds.
            let mut st = self.lock();
            st.target = st
                .target
                .clamp(cfg.min_ready, cfg.max_ready.max(cfg.min_ready));
        }
        self.cfg.store(Arc::new(cfg));
        if let Some(p) = policies {
            self.policies.store(Arc::new(p));
        }
        self.touch();
        spec_changed
    }

    /// Lock the state. A panic while the lock was held cannot leave the counters half-updated
    /// in a way that matters more than stopping the daemon would, so a poisoned lock is entered.
    pub fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tell the refill task and warm-up watchers that something changed.
    pub fn touch(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
        self.refill.notify_one();
    }

    /// The snapshot a policy sees. `epoch` is the manager's clock origin.
    pub fn snapshot(
        &self,
        st: &PoolState,
        now: Instant,
        epoch: Instant,
        cap: &GlobalCap,
    ) -> PoolSnapshot {
        let ms = |t: Instant| t.saturating_duration_since(epoch).as_millis() as u64;
        let cfg = self.cfg();
        PoolSnapshot {
            now_ms: ms(now),
            ready: st.ready.len() as u32,
            creating: st.creating,
            leased: st.leased,
            removing: st.removing,
            unhealthy: st.unhealthy,
            waiters: st.waiters.len() as u32,
            min_ready: cfg.min_ready,
            max_ready: cfg.max_ready,
            max_total: cfg.max_total,
            global_free: cap.free(),
            current_target: st.target,
            since_last_acquire_ms: st
                .last_acquire
                .map(|t| now.saturating_duration_since(t).as_millis() as u64),
            recent_acquires: st
                .recent_acquires
                .iter()
                .map(|&(t, source)| AcquireSample {
                    at_ms: ms(t),
                    source,
                })
                .collect(),
            recent_create_ms: st.recent_creates_ms.iter().copied().collect(),
            idle_timeout_ms: cfg.idle_timeout.as_millis() as u64,
        }
    }
}
