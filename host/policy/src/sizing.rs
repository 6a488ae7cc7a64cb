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
    /// Extra containers on top of the forecast (when it is not zero).
    pub headroom: u32,
    /// Accepted chance that the arrivals during one replacement outrun the stock.
    pub miss: f64,
    /// A replacement's lead time, in median creates.
    pub lead: f64,
    /// Containers kept ready during a fan-out per acquire it brought so far.
    pub burst_gain: f64,
    /// Create latency assumed before any create was measured.
    pub default_create_ms: u32,
    /// How far back the slow view of the rate looks (the snapshot holds the last 256
    /// acquires, so it may see less).
    pub memory_ms: u64,
    /// Mean gaps of the slow rate without an acquire after which demand counts as stopped.
    pub quiet_gaps: f64,
    /// Window in which `burst_min` acquires make a fan-out.
    pub burst_ms: u64,
    /// Acquires within `burst_ms` that make a fan-out.
    pub burst_min: u32,
}

impl Default for PredictiveConfig {
    fn default() -> Self {
        Self {
            window_ms: 60_000,
            bucket_ms: 1_000,
            alpha: 0.3,
            headroom: 0,
            miss: 0.05,
            lead: 1.0,
            burst_gain: 1.0,
            default_create_ms: 500,
            memory_ms: 600_000,
            quiet_gaps: 4.0,
            burst_ms: 3_000,
            burst_min: 3,
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
                "memory_ms" => c.memory_ms = crate::config::number(k, v)?,
                "burst_ms" => c.burst_ms = crate::config::number(k, v)?,
                "burst_min" => c.burst_min = crate::config::number(k, v)?,
                "lead" => c.lead = crate::config::real(k, v)?,
                "burst_gain" => c.burst_gain = crate::config::real(k, v)?,
                "miss" => c.miss = crate::config::real(k, v)?,
                "quiet_gaps" => c.quiet_gaps = crate::config::real(k, v)?,
                "alpha" => c.alpha = crate::config::real(k, v)?,
                other => {
                    return Err(format!(
                        "unknown setting {other:?} (predictive takes window_ms, bucket_ms, alpha, headroom, miss, lead, default_create_ms, memory_ms, quiet_gaps, burst_ms, burst_min, burst_gain)"
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
        if !(c.quiet_gaps.is_finite() && c.quiet_gaps > 0.0) {
            return Err(format!(
                "quiet_gaps must be a positive number, not {}",
                c.quiet_gaps
            ));
        }
        if !(1e-6..1.0).contains(&c.miss) {
            return Err(format!("miss must be in [0.000001, 1), not {}", c.miss));
        }
        if !(c.lead.is_finite() && c.lead > 0.0 && c.lead <= 100.0) {
            return Err(format!(
                "lead must be in (0, 100] median creates, not {}",
                c.lead
            ));
        }
        if !(c.burst_gain.is_finite() && (0.0..=10.0).contains(&c.burst_gain)) {
            return Err(format!(
                "burst_gain must be in [0, 10], not {}",
                c.burst_gain
            ));
        }
        if c.burst_min == 0 {
            return Err("burst_min must be ≥ 1".into());
        }
        Ok(c)
    }
}

/// `predictive`: keep ready what the next replacement's lead time will bring, and what a
/// fan-out in progress will bring next, within `[min_ready, max_ready]`.
///
/// - **Rate.** Two views of the arrival rate: a fast EWMA over `bucket_ms` buckets of the last
///   `window_ms` (it sees a spell start within seconds and forgets a cliff within seconds), and
///   a slow one, the acquires of the last `memory_ms` over the time they span (it keeps a
///   steady trickle in mind between its arrivals). The policy follows the larger, until the
///   slow rate's promise is broken: no acquire for `quiet_gaps` of its mean gaps (a cliff, or
///   the end of a spell), when it follows the fast one alone and sheds.
/// - **Base stock.** Arrivals during a replacement's lead time (`lead` median creates) are
///   taken as Poisson with mean `rate × lead`; keep the smallest stock they exceed with a
///   probability of at most `miss`, plus `headroom`. One container for a trickle, more as the
///   rate grows, none when no one comes (an inventory base-stock level).
/// - **Fan-out.** `burst_min` or more acquires within `burst_ms`, well above what the slow rate
///   brings there (by three standard deviations), are a fan-out under way: `burst_gain` times
///   as many again are kept ready, so the creates for its second half start at its first
///   acquires instead of one at a time as containers are taken.
pub fn predictive(s: &PoolSnapshot, cfg: &PredictiveConfig) -> SizingDecision {
    let min = s.min_ready.min(s.max_ready);
    let fast = fast_rate(s, cfg);
    let slow = slow_rate(s, cfg);
    // A steady trickle promised an acquire every 1/slow seconds; past `quiet_gaps` of those
    // with none, demand has stopped, and the pool follows the fast view down.
    let quiet = s.since_last_acquire_ms.is_none_or(|q| {
        slow <= 0.0 || q as f64 > (cfg.quiet_gaps * 1000.0 / slow).max(cfg.burst_ms as f64)
    });
    let rate = if quiet { fast } else { fast.max(slow) };
    let latency_ms = s.median_create_ms().unwrap_or(cfg.default_create_ms);
    let lead_s = cfg.lead * f64::from(latency_ms) / 1000.0;
    let base = match poisson_stock(rate * lead_s, cfg.miss) {
        0 => 0,
        n => n.saturating_add(cfg.headroom),
    };
    let burst = s.acquires_within(cfg.burst_ms);
    let expected = slow * cfg.burst_ms as f64 / 1000.0;
    // A surge, not chance: three standard deviations above what the slow rate brings there.
    let surge = f64::from(burst) > expected + 3.0 * expected.sqrt() + 1.0;
    let fanout = if burst >= cfg.burst_min && surge {
        (f64::from(burst) * cfg.burst_gain).ceil() as u32
    } else {
        0
    };
    let target = base.max(fanout).clamp(min, s.max_ready);
    SizingDecision {
        target,
        reason: if fanout > base {
            format!(
                "predictive: fan-out, {burst} acquires in {} ms",
                cfg.burst_ms
            )
        } else {
            format!(
                "predictive: {rate:.2}/s{} × {lead_s:.1} s lead + {} headroom",
                if quiet { " (quiet)" } else { "" },
                cfg.headroom
            )
        },
    }
}

/// The base-stock level for Poisson demand of mean `mean` over the lead time: the smallest
/// stock `s` with `P(N ≥ s) ≤ miss`. An acquire finds the pool empty exactly when `s` or more
/// replacements are still being made, that is when `s` or more acquires came within one lead
/// time. 0 for a mean too small to matter (a rate forgotten but for its EWMA's tail).
fn poisson_stock(mean: f64, miss: f64) -> u32 {
    if !(mean.is_finite() && mean > miss / 10.0) {
        return 0;
    }
    // Past any pool's size the sum below would underflow (e^-745 is 0): the normal
    // approximation with six standard deviations answers, and the cap cuts it.
    if mean > 500.0 {
        return (mean + 6.0 * mean.sqrt()).ceil().min(f64::from(u32::MAX)) as u32;
    }
    // `below` is P(N < s), `p` is P(N = s).
    let (mut s, mut below, mut p) = (0u32, 0.0, (-mean).exp());
    // Bounded: a mean beyond any pool's size is answered by the cap.
    while 1.0 - below > miss && s < 100_000 {
        below += p;
        s += 1;
        p *= mean / f64::from(s);
    }
    s
}

/// Acquires per second by an EWMA over buckets of the last `window_ms`, oldest first.
fn fast_rate(s: &PoolSnapshot, cfg: &PredictiveConfig) -> f64 {
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
    let per_s = 1000.0 / cfg.bucket_ms as f64;
    counts.iter().fold(0.0, |ewma, &c| {
        cfg.alpha * f64::from(c) * per_s + (1.0 - cfg.alpha) * ewma
    })
}

/// Acquires per second over the last `memory_ms` (as far back as the snapshot's history
/// reaches), measured over at least `window_ms` so that one acquire is not a rate.
fn slow_rate(s: &PoolSnapshot, cfg: &PredictiveConfig) -> f64 {
    let since = s.now_ms.saturating_sub(cfg.memory_ms);
    let mut n = 0u32;
    let mut first = s.now_ms;
    for a in s
        .recent_acquires
        .iter()
        .filter(|a| a.at_ms >= since && a.at_ms <= s.now_ms)
    {
        n += 1;
        first = first.min(a.at_ms);
    }
    if n < 2 {
        return 0.0;
    }
    let span_ms = (s.now_ms - first).max(cfg.window_ms).max(1);
    f64::from(n) * 1000.0 / span_ms as f64
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
    fn predictive_keeps_the_stock_a_replacement_lead_needs() {
        let cfg = PredictiveConfig::default();
        // 5 acquires a second for a minute, creates of 250 ms: 1.25 arrive in a lead; 4 or
        // more do with a chance of 3.8 % (under `miss`, 5 %), 3 or more with 13 %.
        let acquires: Vec<u64> = (0..300).map(|i| 40_000 + i * 200).collect();
        let mut s = snap(100_000, &acquires, 2);
        s.max_ready = 20;
        s.recent_create_ms = vec![250; 5];
        assert_eq!(predictive(&s, &cfg).target, 4, "{:?}", predictive(&s, &cfg));
        // Steady traffic is no fan-out, however many acquires a burst window holds.
        assert!(predictive(&s, &cfg).reason.contains("/s"));
        // No traffic: min_ready.
        assert_eq!(predictive(&snap(100_000, &[], 2), &cfg).target, 2);
        // Bounded by max_ready.
        s.recent_create_ms = vec![5_000; 5];
        assert_eq!(predictive(&s, &cfg).target, 20);
    }

    #[test]
    fn predictive_keeps_one_for_a_trickle_and_none_after_a_cliff() {
        let cfg = PredictiveConfig::default();
        // One acquire every 20 s for ten minutes: one ready covers the next.
        let trickle: Vec<u64> = (0..30).map(|i| 400_000 + i * 20_000).collect();
        let mut s = snap(990_000, &trickle, 0);
        s.min_ready = 0;
        assert_eq!(predictive(&s, &cfg).target, 1, "{:?}", predictive(&s, &cfg));
        // Then nothing for four of its gaps and more: demand stopped, the pool empties.
        let mut late = snap(1_080_001 + 1, &trickle, 1);
        late.min_ready = 0;
        assert_eq!(
            predictive(&late, &cfg).target,
            0,
            "{:?}",
            predictive(&late, &cfg)
        );
    }

    #[test]
    fn predictive_meets_a_fan_out_with_as_many_again() {
        let cfg = PredictiveConfig::default();
        // A quiet background, then 8 acquires within the last second.
        let mut acquires: Vec<u64> = vec![100_000, 300_000];
        acquires.extend((0..8).map(|i| 599_000 + i * 100));
        let mut s = snap(600_000, &acquires, 2);
        s.min_ready = 0;
        s.max_ready = 30;
        let d = predictive(&s, &cfg);
        assert_eq!(d.target, 8, "{d:?}");
        assert!(d.reason.contains("fan-out"), "{d:?}");
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
