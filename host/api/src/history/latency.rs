//! The acquire latencies of one interval, as a fixed histogram: however many acquires an
//! interval holds, a pool's open interval costs the same 1 KiB, and its quantiles are within
//! about 6% of the exact ones.
//!
//! Buckets are logarithmic: each power of two of microseconds is cut into [`SUB`] equal parts,
//! so a bucket is at most 1/8 of its lower bound wide, and a quantile is read as its bucket's
//! middle (clamped to the least and greatest latency seen, so one acquire reads exactly).

use std::time::Duration;

/// Parts per power of two.
const SUB: u32 = 8;
/// Powers of two a `u32` of microseconds spans (1 µs to over an hour).
const OCTAVES: u32 = 32;
const BUCKETS: usize = (SUB * OCTAVES) as usize;

/// One interval's latencies.
#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    counts: [u32; BUCKETS],
    n: u32,
    min_us: u32,
    max_us: u32,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            counts: [0; BUCKETS],
            n: 0,
            min_us: u32::MAX,
            max_us: 0,
        }
    }
}

/// The bucket of `us`: its power of two, and which of its [`SUB`] parts.
fn bucket(us: u32) -> usize {
    if us < SUB {
        // Below 8 µs each microsecond is its own bucket (indexes 0-7, the first octave's).
        return us as usize;
    }
    let octave = 31 - us.leading_zeros(); // ≥ 3
    let part = (us >> (octave - 3)) - SUB; // the 3 bits after the leading one
    (octave * SUB + part) as usize
}

/// The middle of bucket `i`, in microseconds.
fn middle(i: usize) -> f64 {
    let i = i as u32;
    if i < SUB {
        return f64::from(i);
    }
    let (octave, part) = (i / SUB, i % SUB);
    let low = f64::from(SUB + part) * f64::from(1u32 << (octave - 3));
    low + f64::from(1u32 << (octave - 3)) / 2.0
}

impl LatencyHistogram {
    /// Count one latency (saturating at `u32::MAX` µs, over an hour).
    pub fn record(&mut self, d: Duration) {
        let us = u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
        self.counts[bucket(us)] = self.counts[bucket(us)].saturating_add(1);
        self.n = self.n.saturating_add(1);
        self.min_us = self.min_us.min(us);
        self.max_us = self.max_us.max(us);
    }

    /// Latencies counted.
    pub fn len(&self) -> u32 {
        self.n
    }

    /// Whether none was counted.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The `q` quantile (nearest rank), in microseconds; `None` when empty.
    pub fn quantile_us(&self, q: f64) -> Option<u32> {
        if self.n == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * f64::from(self.n)).ceil() as u32).max(1);
        let mut seen = 0u32;
        for (i, &c) in self.counts.iter().enumerate() {
            seen = seen.saturating_add(c);
            if seen >= rank {
                let v = middle(i).clamp(f64::from(self.min_us), f64::from(self.max_us));
                return Some(v.round() as u32);
            }
        }
        Some(self.max_us)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_ordered_and_narrow() {
        let mut last = 0;
        for us in [0u32, 1, 7, 8, 9, 15, 16, 17, 100, 1000, 123_456, u32::MAX] {
            let b = bucket(us);
            assert!(b >= last, "{us}");
            assert!(b < BUCKETS, "{us}");
            last = b;
            if us >= 8 {
                let m = middle(b);
                assert!(
                    (m - f64::from(us)).abs() <= f64::from(us) / 16.0 + 0.5,
                    "{us}: {m}"
                );
            }
        }
    }

    #[test]
    fn quantiles_are_close_and_one_value_is_exact() {
        let mut h = LatencyHistogram::default();
        assert_eq!(h.quantile_us(0.5), None);
        h.record(Duration::from_micros(1234));
        assert_eq!(h.quantile_us(0.5), Some(1234));
        assert_eq!(h.quantile_us(0.95), Some(1234));
        let mut h = LatencyHistogram::default();
        for us in 1..=1000u32 {
            h.record(Duration::from_micros(u64::from(us) * 100));
        }
        assert_eq!(h.len(), 1000);
        let p50 = f64::from(h.quantile_us(0.5).unwrap());
        let p95 = f64::from(h.quantile_us(0.95).unwrap());
        assert!((p50 - 50_000.0).abs() / 50_000.0 < 0.07, "{p50}");
        assert!((p95 - 95_000.0).abs() / 95_000.0 < 0.07, "{p95}");
        assert_eq!(h.quantile_us(1.0), Some(100_000));
    }
}
