//! Sizing policies: how many containers a pool keeps ready.
//!
//! Each returns a *target*. The pool core clamps it to `[0, max_ready]`, never lets it starve a
//! queued acquire, and alone decides how many creates to start (refill by approvals).

use crate::types::{PoolSnapshot, SizingDecision};

/// `fixed`: always keep `min_ready` containers ready.
pub fn fixed(s: &PoolSnapshot) -> SizingDecision {
    SizingDecision {
        target: s.min_ready,
        reason: format!("fixed: keep min_ready={}", s.min_ready),
    }
}

/// Settings of [`adaptive`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdaptiveConfig {
    /// Acquires within this window count as the current burst.
    pub burst_window_ms: u64,
    /// After an acquire, the target is not lowered for this long.
    pub cooldown_ms: u64,
}

impl Default for AdaptiveConfig {
    fn default() -> Self {
        Self {
            burst_window_ms: 10_000,
            cooldown_ms: 30_000,
        }
    }
}

/// `adaptive`: scale up at once on a burst, hold through a cooldown after each acquire, decay to
/// the recent demand afterwards, and fall back to `min_ready` once the pool has been idle for
/// `idle_timeout`.
///
/// Why a burst raises the target by its size: the acquires of a burst were served from the pool
/// (or cold), and the next burst of the same size should find as many containers warm.
pub fn adaptive(s: &PoolSnapshot, cfg: &AdaptiveConfig) -> SizingDecision {
    let min = s.min_ready.min(s.max_ready);
    let burst = s.acquires_within(cfg.burst_window_ms);
    let desired = (min.saturating_add(burst)).clamp(min, s.max_ready);
    let current = s.current_target.clamp(min, s.max_ready);
    match s.since_last_acquire_ms {
        None => SizingDecision {
            target: min,
            reason: "adaptive: no acquires yet".into(),
        },
        Some(idle) if idle >= s.idle_timeout_ms => SizingDecision {
            target: min,
            reason: format!("adaptive: idle for {idle} ms, back to min_ready={min}"),
        },
        _ if desired >= current => SizingDecision {
            target: desired,
            reason: format!("adaptive: {burst} acquires in {} ms", cfg.burst_window_ms),
        },
        Some(idle) if idle < cfg.cooldown_ms => SizingDecision {
            target: current,
            reason: format!("adaptive: holding {current} during cooldown"),
        },
        Some(_) => SizingDecision {
            target: desired,
            reason: format!("adaptive: decaying to recent demand {desired}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{AcquireSample, AcquireSource};

    fn snap(now: u64, acquires: &[u64], current: u32) -> PoolSnapshot {
        PoolSnapshot {
            now_ms: now,
            min_ready: 2,
            max_ready: 8,
            max_total: 20,
            current_target: current,
            idle_timeout_ms: 600_000,
            since_last_acquire_ms: acquires.last().map(|a| now - a),
            recent_acquires: acquires
                .iter()
                .map(|&at_ms| AcquireSample {
                    at_ms,
                    source: AcquireSource::Pool,
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn fixed_keeps_min_ready() {
        assert_eq!(fixed(&snap(0, &[], 5)).target, 2);
    }

    #[test]
    fn adaptive_scales_up_on_burst_and_caps_at_max() {
        let cfg = AdaptiveConfig::default();
        let d = adaptive(&snap(100_000, &[99_000, 99_500, 99_900], 2), &cfg);
        assert_eq!(d.target, 5);
        let many: Vec<u64> = (0..20).map(|i| 90_000 + i * 100).collect();
        assert_eq!(adaptive(&snap(100_000, &many, 2), &cfg).target, 8);
    }

    #[test]
    fn adaptive_holds_in_cooldown_then_decays_then_idles() {
        let cfg = AdaptiveConfig::default();
        // burst long gone from the window, but last acquire 20 s ago: hold.
        assert_eq!(adaptive(&snap(120_000, &[100_000], 6), &cfg).target, 6);
        // 40 s after the last acquire: decay to demand (none in window) = min.
        assert_eq!(adaptive(&snap(140_000, &[100_000], 6), &cfg).target, 2);
        // idle beyond idle_timeout: min_ready.
        assert_eq!(adaptive(&snap(800_000, &[100_000], 6), &cfg).target, 2);
    }
}
