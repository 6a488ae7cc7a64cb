//! The daemon's own history of each pool over the last hour, which the status page charts
//! (`GET /v1/history`, [`route`]): no external service keeps it.
//!
//! A sampler ([`sampler`]) reads every pool's ready, leased and waiting counts each
//! [`DEFAULT_INTERVAL`] and closes the interval's acquire figures: how many, warm or cold, and
//! their latency p50/p95 ([`latency`]), which the acquire handler records as it answers
//! ([`History::record_acquire`]). Each pool keeps its last [`CAPACITY`] samples in a ring: an
//! hour at the default interval.
//!
//! Memory is bounded per pool and by the pools the daemon serves: a ring of [`CAPACITY`]
//! compact samples (about 20 KiB) and one histogram of 1 KiB for the open interval. A pool a
//! reload removed is dropped at the next tick, so nothing grows with time, traffic or pools
//! that come and go.

pub mod latency;
pub mod route;
pub mod sampler;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use utoipa::ToSchema;
use warmpool_core::Clock;

use latency::LatencyHistogram;

/// How often the sampler reads the pools, unless the daemon says otherwise.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// Samples kept per pool: an hour at [`DEFAULT_INTERVAL`].
pub const CAPACITY: usize = 360;

/// A pool's counts at one moment, as the sampler reads them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gauges {
    /// Ready containers.
    pub ready: u32,
    /// Leased containers.
    pub leased: u32,
    /// Acquires queued for a container.
    pub waiting: u32,
}

/// One sample as stored: small and `Copy`, made into a [`Sample`] only when asked for.
#[derive(Debug, Clone, Copy)]
struct Tick {
    at: SystemTime,
    gauges: Gauges,
    acquires: u32,
    warm: u32,
    p50_us: Option<u32>,
    p95_us: Option<u32>,
}

/// The acquires of a pool's open interval.
#[derive(Debug, Default)]
struct Open {
    acquires: u32,
    warm: u32,
    latency: LatencyHistogram,
}

#[derive(Debug, Default)]
struct PoolHistory {
    ring: VecDeque<Tick>,
    open: Open,
}

/// Every pool's history, shared by the sampler, the acquire handler and the route.
#[derive(Debug)]
pub struct History {
    interval: Duration,
    clock: Clock,
    pools: Mutex<BTreeMap<String, PoolHistory>>,
}

/// One sample of one pool: its counts when it was taken, and its acquires since the sample
/// before.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Sample {
    /// When it was taken (RFC 3339, UTC).
    pub at: String,
    /// Ready containers then.
    pub ready: u32,
    /// Leased containers then.
    pub leased: u32,
    /// Acquires queued for a container then.
    pub waiting: u32,
    /// Acquires served since the sample before, warm or cold.
    pub acquires: u32,
    /// Of those, served from the pool's own containers.
    pub warm: u32,
    /// Of those, served by a container created for them.
    pub cold: u32,
    /// `warm / acquires`; `null` when there was no acquire.
    pub hit_rate: Option<f64>,
    /// Median latency of those acquires inside the daemon, in ms (within about 6%); `null`
    /// when there was none.
    pub latency_ms_p50: Option<f64>,
    /// Their 95th percentile, in ms; `null` when there was none.
    pub latency_ms_p95: Option<f64>,
}

impl Tick {
    fn sample(&self) -> Sample {
        let ms = |us: Option<u32>| us.map(|us| f64::from(us) / 1000.0);
        Sample {
            at: warmpool_core::rfc3339(self.at),
            ready: self.gauges.ready,
            leased: self.gauges.leased,
            waiting: self.gauges.waiting,
            acquires: self.acquires,
            warm: self.warm,
            cold: self.acquires - self.warm,
            hit_rate: (self.acquires > 0).then(|| f64::from(self.warm) / f64::from(self.acquires)),
            latency_ms_p50: ms(self.p50_us),
            latency_ms_p95: ms(self.p95_us),
        }
    }
}

impl History {
    /// An empty history sampled every `interval` (the sampler reads it from here); its times
    /// follow tokio's clock, so under paused time they advance with it.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            clock: Clock::system(),
            pools: Mutex::new(BTreeMap::new()),
        }
    }

    /// How often a sample is taken.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, PoolHistory>> {
        // Every update below leaves the map consistent between statements.
        self.pools.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Count one served acquire of `pool` in its open interval: warm (from the pool) or cold,
    /// and how long it took inside the daemon.
    pub fn record_acquire(&self, pool: &str, warm: bool, latency: Duration) {
        let mut pools = self.lock();
        // A pool the last tick did not know (just added by a reload) starts here; the next tick
        // drops it again if it is gone by then.
        if !pools.contains_key(pool) {
            pools.insert(pool.to_string(), PoolHistory::default());
        }
        let Some(open) = pools.get_mut(pool).map(|h| &mut h.open) else {
            return;
        };
        open.acquires = open.acquires.saturating_add(1);
        open.warm = open.warm.saturating_add(u32::from(warm));
        open.latency.record(latency);
    }

    /// Take a sample of each pool now: its counts (`now`, every pool the daemon serves), and
    /// its open interval's acquires, which starts afresh. A pool not in `now` is dropped.
    pub fn tick(&self, now: Vec<(String, Gauges)>) {
        let at = self.clock.now();
        let mut pools = self.lock();
        let mut kept = BTreeMap::new();
        for (name, gauges) in now {
            let mut h = pools.remove(&name).unwrap_or_default();
            let open = std::mem::take(&mut h.open);
            if h.ring.len() == CAPACITY {
                h.ring.pop_front();
            }
            h.ring.push_back(Tick {
                at,
                gauges,
                acquires: open.acquires,
                warm: open.warm,
                p50_us: open.latency.quantile_us(0.5),
                p95_us: open.latency.quantile_us(0.95),
            });
            kept.insert(name, h);
        }
        *pools = kept;
    }

    /// The samples of `pool`, oldest first (empty for a pool not sampled yet).
    pub fn samples(&self, pool: &str) -> Vec<Sample> {
        // Copied under the lock, formatted outside it.
        let ticks: Vec<Tick> = self
            .lock()
            .get(pool)
            .map(|h| h.ring.iter().copied().collect())
            .unwrap_or_default();
        ticks.iter().map(Tick::sample).collect()
    }

    /// Samples held over every pool, and the pools held (the tests' view of the bound).
    #[cfg(test)]
    pub(crate) fn held(&self) -> (usize, usize) {
        let pools = self.lock();
        (pools.values().map(|h| h.ring.len()).sum(), pools.len())
    }
}
