//! One pool: its settings and policies (swapped whole by a config reload), and its state behind
//! a mutex. [`state`] is the only code that changes a container's state or a counter.

mod breakers;
mod state;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use arc_swap::ArcSwap;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use warmpool_policy::{AcquireSample, PoolSnapshot};

use crate::caps::Caps;
use crate::config::PoolConfig;
use crate::policy::Policies;

pub use state::{Delivery, DeliveryError, Doomed, LeaseEnd, Placed, PoolState, ReadyContainer};

/// One pool: its settings and policies, and its state behind a mutex.
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
        let state = PoolState::new(cfg.min_ready, "initial: min_ready");
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

    pub fn name(&self) -> String {
        self.cfg.load().name.clone()
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

    /// Apply a reloaded config. A changed spec (`respec`, as the reload's plan found it) starts a
    /// new generation, so containers of the old one drain as they come free; sizes, timeouts and
    /// policies take effect at once. Changed sizes (`resize`) clear a scale override: the new
    /// config is the operator's newer word. Returns whether an override was cleared.
    pub fn reconfigure(
        &self,
        cfg: PoolConfig,
        policies: Option<Policies>,
        respec: bool,
        resize: bool,
    ) -> bool {
        if respec {
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        let cleared = {
            let mut st = self.lock();
            let cleared = resize && st.clear_scale(&self.cfg()).is_some();
            // The policy decides the target at the next refill; until then, keep it in bounds.
            st.clamp_target(&cfg);
            // Swapped under the lock: a scale request checks, under it, that the sizes it was
            // checked against are still the pool's (`scale.rs`).
            self.cfg.store(Arc::new(cfg));
            cleared
        };
        if let Some(p) = policies {
            self.policies.store(Arc::new(p));
        }
        self.touch();
        cleared
    }

    /// Lock the state. The state's methods check their invariants and never leave the counts
    /// half-updated across a panic point, so a poisoned lock is entered rather than propagated.
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
        cap: &Caps,
    ) -> PoolSnapshot {
        let ms = |t: Instant| t.saturating_duration_since(epoch).as_millis() as u64;
        let cfg = self.cfg();
        let n = st.counts();
        // The policy sees the scale override, when one holds, as its floor and ceiling.
        let (min_ready, max_ready) = st.sizes(&cfg);
        PoolSnapshot {
            now_ms: ms(now),
            ready: n.ready,
            creating: n.creating,
            // A suspended lease holds its container (and its cap slot) as a running one does.
            leased: n.leased + n.suspended,
            removing: n.removing,
            unhealthy: n.unhealthy,
            waiters: st.waiters(),
            min_ready,
            max_ready,
            max_total: cfg.max_total,
            global_free: cap.free(),
            current_target: st.target().0,
            since_last_acquire_ms: st
                .last_acquire()
                .map(|t| now.saturating_duration_since(t).as_millis() as u64),
            recent_acquires: st
                .recent_acquires()
                .map(|&(t, source)| AcquireSample {
                    at_ms: ms(t),
                    source,
                })
                .collect(),
            recent_create_ms: st.recent_creates_ms().collect(),
            idle_timeout_ms: cfg.idle_timeout.as_millis() as u64,
        }
    }
}
