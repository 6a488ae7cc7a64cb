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

impl AdaptiveConfig {
    /// Read `burst_window_ms` and `cooldown_ms` from a plugin's config pairs.
    pub fn from_pairs(pairs: &[(String, String)]) -> Result<Self, String> {
        let mut c = Self::default();
        for (k, v) in pairs {
            match k.as_str() {
                "burst_window_ms" => c.burst_window_ms = crate::config::number(k, v)?,
                "cooldown_ms" => c.cooldown_ms = crate::config::number(k, v)?,
                other => {
                    return Err(format!(
                        "unknown setting {other:?} (adaptive takes burst_window_ms, cooldown_ms)"
                    ));
                }
            }
        }
        Ok(c)
    }
}

/// Settings of [`predictive`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PredictiveConfig {
    /// Acquires older than this are ignored.
    pub window_ms: u64,
    /// Width of one rate bucket.
    pub bucket_ms: u64,
    /// EWMA weight of the newest bucket, in (0, 1].
    pub alpha: f64,
    /// Extra containers on top of the forecast.
    pub headroom: u32,
    /// Create latency assumed before any create was measured.
    pub default_create_ms: u32,
}

impl Default for PredictiveConfig {
    fn default() -> Self {
        Self {
            window_ms: 60_000,
            bucket_ms: 1_000,
            alpha: 0.3,
            headroom: 1,
            default_create_ms: 500,
        }
    }
}

impl PredictiveConfig {
    /// Read the settings from a plugin's config pairs; rejects unknown keys, an `alpha`
    /// outside (0, 1], and a `bucket_ms` of 0 or above `window_ms`.
    pub fn from_pairs(pairs: &[(String, String)]) -> Result<Self, String> {
        let mut c = Self::default();
        for (k, v) in pairs {
            match k.as_str() {
                "window_ms" => c.window_ms = crate::config::number(k, v)?,
                "bucket_ms" => c.bucket_ms = crate::config::number(k, v)?,
                "headroom" => c.headroom = crate::config::number(k, v)?,
                "default_create_ms" => c.default_create_ms = crate::config::number(k, v)?,
                "alpha" => {
                    c.alpha = v
                        .parse()
                        .map_err(|_| format!("alpha: {v:?} is not a number"))?
                }
                other => {
                    return Err(format!(
                        "unknown setting {other:?} (predictive takes window_ms, bucket_ms, alpha, headroom, default_create_ms)"
                    ));
                }
            }
        }
        if !(c.alpha > 0.0 && c.alpha <= 1.0) {
            return Err(format!("alpha must be in (0, 1], not {}", c.alpha));
        }
        if c.bucket_ms == 0 || c.window_ms < c.bucket_ms {
            return Err("bucket_ms must be ≥ 1 and ≤ window_ms".into());
        }
        Ok(c)
    }
}

/// `predictive`: forecast the arrival rate with an EWMA over fixed buckets of the recent
/// acquires, and keep `rate × create latency + headroom` ready, within `[min_ready, max_ready]`.
///
/// Why rate × latency: that many acquires arrive while one replacement is being created, so a
/// pool holding that many never runs dry in steady state (Little's law).
pub fn predictive(s: &PoolSnapshot, cfg: &PredictiveConfig) -> SizingDecision {
    let min = s.min_ready.min(s.max_ready);
    let buckets = (cfg.window_ms / cfg.bucket_ms).max(1) as usize;
    let start = s.now_ms.saturating_sub(buckets as u64 * cfg.bucket_ms);
    let mut counts = vec![0u32; buckets];
    for a in s
        .recent_acquires
        .iter()
        .filter(|a| a.at_ms >= start && a.at_ms < s.now_ms + 1)
    {
        let i = (((a.at_ms - start) / cfg.bucket_ms) as usize).min(buckets - 1);
        counts[i] += 1;
    }
    // EWMA oldest → newest, in acquires per second.
    let per_s = 1000.0 / cfg.bucket_ms as f64;
    let rate = counts.iter().fold(0.0, |ewma, &c| {
        cfg.alpha * f64::from(c) * per_s + (1.0 - cfg.alpha) * ewma
    });
    let latency_ms = s.median_create_ms().unwrap_or(cfg.default_create_ms);
    let forecast = (rate * f64::from(latency_ms) / 1000.0).ceil() as u32;
    let target = if rate > 0.0 {
        forecast.saturating_add(cfg.headroom)
    } else {
        0
    };
    let target = target.clamp(min, s.max_ready);
    SizingDecision {
        target,
        reason: format!(
            "predictive: {rate:.2}/s × {latency_ms} ms + {} headroom",
            cfg.headroom
        ),
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
    fn predictive_follows_rate_times_latency() {
        let cfg = PredictiveConfig::default();
        // 5 acquires per second for the whole window, creates take 800 ms: 4 arrive per create.
        let acquires: Vec<u64> = (0..300).map(|i| 40_000 + i * 200).collect();
        let mut s = snap(100_000, &acquires, 2);
        s.recent_create_ms = vec![800; 5];
        let d = predictive(&s, &cfg);
        assert_eq!(d.target, 5, "{d:?}"); // ceil(5 × 0.8) + 1
        // No traffic: min_ready.
        assert_eq!(predictive(&snap(100_000, &[], 2), &cfg).target, 2);
        // Bounded by max_ready.
        s.recent_create_ms = vec![5_000; 5];
        assert_eq!(predictive(&s, &cfg).target, 8);
    }

    #[test]
    fn configs_read_from_pairs() {
        let p = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        assert_eq!(
            AdaptiveConfig::from_pairs(&p("cooldown_ms", "5"))
                .unwrap()
                .cooldown_ms,
            5
        );
        assert!(AdaptiveConfig::from_pairs(&p("cooldown", "5")).is_err());
        assert!(PredictiveConfig::from_pairs(&p("alpha", "2")).is_err());
        assert_eq!(
            PredictiveConfig::from_pairs(&p("headroom", "3"))
                .unwrap()
                .headroom,
            3
        );
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
