//! Plain counters of one pool: containers per state, monotonic event counts, and the window of
//! acquire latencies. A leaf module: only the pool state ([`crate::pool`]) writes them; the
//! stats view reads copies.

use std::collections::VecDeque;

use serde::Serialize;
use tokio::time::Instant;

/// Monotonic counters of one pool.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Counters {
    /// Acquires served, warm or cold.
    pub acquires_total: u64,
    /// Acquires served by the pool's own containers (not a cold create).
    pub acquires_pool: u64,
    /// Acquires served by a container created for them (exhaustion `cold`).
    pub acquires_cold: u64,
    /// Acquires refused: exhausted, degraded, or their cold create failed.
    pub acquires_rejected: u64,
    /// Creates that ended with a running container.
    pub creates_total: u64,
    /// Failed creates, and ready containers that died within probation.
    pub create_failures: u64,
    /// Containers whose removal the engine confirmed.
    pub destroyed_total: u64,
    /// Leases that ended because their TTL ran out.
    pub expired_total: u64,
    /// Ready containers replaced as worn (age, lifetime, stale image or spec).
    pub recycled_total: u64,
    /// Ready containers taken out of service: a failed health check, or a death.
    pub unhealthy_total: u64,
    /// Released containers that passed the scrub, reset and checks and went back to the pool.
    pub reused_total: u64,
    /// Reuse resets that failed or left residue; each such container was removed.
    pub reset_failures: u64,
    /// Ready containers of an earlier run taken back at startup instead of recreated.
    pub adopted_total: u64,
    /// Ready containers that died before they passed probation (each counts as a failed create).
    pub died_young: u64,
    /// Removal attempts the engine refused or did not answer; each is retried.
    pub remove_retries: u64,
    /// Leases suspended (checkpointed and stopped), on request or when idle.
    pub suspends_total: u64,
    /// Suspended leases resumed, on request or by a call.
    pub resumes_total: u64,
    /// Suspends or resumes after which the container's memory was lost: the lease ended and
    /// its container was destroyed.
    pub hibernation_losses: u64,
}

/// Containers of a pool per state. Their sum is every container the pool counts against its
/// caps, whatever the engine says: a container leaves the count only once the engine confirmed
/// it is gone.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StateCounts {
    /// Creates in flight (refill and cold).
    pub creating: u32,
    /// Ready in the pool, lendable or not.
    pub ready: u32,
    /// Held by a lease, or on their way to one (suspended ones are counted apart).
    pub leased: u32,
    /// Held by a suspended lease: stopped, with a checkpoint on the engine's disk.
    pub suspended: u32,
    /// Released containers being scrubbed and reset for reuse.
    pub resetting: u32,
    /// Being removed (failed creates included), until the engine confirms they are gone.
    pub removing: u32,
    /// Taken out as unhealthy or dead, being removed.
    pub unhealthy: u32,
}

impl StateCounts {
    /// Every container counted, in any state: what the pool counts against its caps.
    pub fn total(&self) -> u32 {
        self.creating
            + self.ready
            + self.leased
            + self.suspended
            + self.resetting
            + self.removing
            + self.unhealthy
    }
}

/// What keeping a pool warm cost: the integral of its ready containers over time (idle
/// container-seconds: warm, not leased, holding memory) and the most containers it counted at
/// once. Exact, not sampled: the pool state feeds it after every change of its ready count and
/// every rise of its total. The policy lab compares sizing policies by these, and a daemon
/// reports the same figures, so a simulation and a real run are measured alike.
#[derive(Debug, Default, Clone, Copy)]
pub struct CostMeter {
    /// When the meter last saw the counts.
    mark: Option<Instant>,
    /// Ready containers since `mark`.
    ready: u32,
    /// Ready-container microseconds accrued before `mark`.
    ready_us: u128,
    peak_total: u32,
}

impl CostMeter {
    /// The counts are now `n`, as of `now`.
    pub fn observe(&mut self, n: &StateCounts, now: Instant) {
        if let Some(mark) = self.mark {
            self.ready_us +=
                u128::from(self.ready) * now.saturating_duration_since(mark).as_micros();
        }
        self.mark = Some(now);
        self.ready = n.ready;
        self.peak_total = self.peak_total.max(n.total());
    }

    /// Idle container-seconds accrued up to `now`.
    pub fn idle_seconds(&self, now: Instant) -> f64 {
        let open = self.mark.map_or(0, |m| {
            u128::from(self.ready) * now.saturating_duration_since(m).as_micros()
        });
        (self.ready_us + open) as f64 / 1e6
    }

    /// The most containers counted at once.
    pub fn peak_total(&self) -> u32 {
        self.peak_total
    }
}

const WINDOW: usize = 1024;

/// The last [`WINDOW`] acquire latencies, in microseconds, for p50/p99.
#[derive(Debug, Default, Clone)]
pub struct LatencyWindow {
    samples: VecDeque<u32>,
}

impl LatencyWindow {
    pub fn push(&mut self, micros: u32) {
        if self.samples.len() == WINDOW {
            self.samples.pop_front();
        }
        self.samples.push_back(micros);
    }

    /// Quantiles `qs` (0..=1) in milliseconds; `None` when no acquire was measured yet.
    pub fn quantiles_ms<const N: usize>(&self, qs: [f64; N]) -> Option<[f64; N]> {
        if self.samples.is_empty() {
            return None;
        }
        let mut v: Vec<u32> = self.samples.iter().copied().collect();
        v.sort_unstable();
        Some(qs.map(|q| {
            let idx = ((v.len() - 1) as f64 * q).round() as usize;
            f64::from(v[idx]) / 1000.0
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_of_a_window() {
        let mut w = LatencyWindow::default();
        assert!(w.quantiles_ms([0.5]).is_none());
        for us in 1..=100 {
            w.push(us * 10);
        }
        let [p50, p99] = w.quantiles_ms([0.5, 0.99]).unwrap();
        assert_eq!(p50, 0.51);
        assert_eq!(p99, 0.99);
    }
}

/// Upper bounds, in seconds, of the buckets of [`Durations`]: a busybox checkpoint takes about
/// 0.4 s here, a Python one a few seconds.
pub const HIBERNATION_BUCKETS_S: [f64; 8] = [0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// How long something took, as a cumulative histogram over [`HIBERNATION_BUCKETS_S`] (the
/// metrics' histogram) with its count and sum.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Durations {
    /// Observations at or under each bound, in the bounds' order (cumulative).
    pub buckets: [u64; 8],
    /// Observations in all.
    pub count: u64,
    /// Their sum, in seconds.
    pub sum_s: f64,
}

impl Durations {
    /// Count one observation of `d`.
    pub fn observe(&mut self, d: std::time::Duration) {
        let s = d.as_secs_f64();
        for (b, bound) in self.buckets.iter_mut().zip(HIBERNATION_BUCKETS_S) {
            if s <= bound {
                *b += 1;
            }
        }
        self.count += 1;
        self.sum_s += s;
    }
}

/// How long suspends and resumes took.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HibernationTimes {
    /// Suspends that succeeded.
    pub suspend: Durations,
    /// Resumes that succeeded.
    pub resume: Durations,
}
