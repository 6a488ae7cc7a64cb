//! Synthetic traces, each repeatable from its seed. Every shape is an inhomogeneous Poisson
//! process (drawn by thinning against its peak rate) with exponential lease holds, sized so a
//! run simulates in seconds:
//!
//! | shape | span | what it is |
//! |---|---|---|
//! | `poisson` | 2 h | steady arrivals, 0.5 a second |
//! | `diurnal` | 24 h | a working-hours cycle: quiet at night, a sine bump from 08:00 to 18:00 |
//! | `fanout` | 6 h | agent fan-outs: bursts of 10 to 40 acquires within 3 s, over a quiet background |
//! | `ramp` | 2 h | demand rising for 90 min, then stopping at once (a cliff) |
//! | `idle` | 8 h | 10-minute busy spells separated by idle gaps of 30 to 90 minutes |

use std::str::FromStr;

use crate::trace::{Acquire, Trace};

/// A shape of traffic (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Steady arrivals.
    Poisson,
    /// A working day's cycle.
    Diurnal,
    /// Agent fan-outs over a quiet background.
    Fanout,
    /// Rising demand, then a cliff.
    Ramp,
    /// Busy spells between long idle gaps.
    Idle,
}

impl Shape {
    /// Every shape, in the order the docs list them.
    pub const ALL: [Shape; 5] = [
        Shape::Poisson,
        Shape::Diurnal,
        Shape::Fanout,
        Shape::Ramp,
        Shape::Idle,
    ];

    /// The name `--shape` takes.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Poisson => "poisson",
            Shape::Diurnal => "diurnal",
            Shape::Fanout => "fanout",
            Shape::Ramp => "ramp",
            Shape::Idle => "idle",
        }
    }
}

impl FromStr for Shape {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Shape::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Shape::ALL.iter().map(|x| x.name()).collect();
                format!("unknown shape {s:?}; one of {}", names.join(", "))
            })
    }
}

const SEC: f64 = 1000.0;
const MIN: f64 = 60.0 * SEC;
const HOUR: f64 = 60.0 * MIN;

struct Draw {
    rng: fastrand::Rng,
    pool: String,
    out: Vec<Acquire>,
}

impl Draw {
    /// An exponential variate of mean `mean`.
    fn exp(&mut self, mean: f64) -> f64 {
        -(1.0 - self.rng.f64()).ln() * mean
    }

    fn push(&mut self, t_ms: f64, hold_mean_ms: f64) {
        let hold = self.exp(hold_mean_ms).clamp(500.0, 30.0 * MIN);
        self.out.push(Acquire {
            t_ms: t_ms as u64,
            pool: self.pool.clone(),
            hold_ms: hold as u64,
        });
    }

    /// Arrivals at `rate(t)` per second over `[0, span)`, by thinning against `peak`.
    fn process(&mut self, span: f64, peak: f64, hold: f64, rate: impl Fn(f64) -> f64) {
        let mut t = 0.0;
        loop {
            t += self.exp(SEC / peak);
            if t >= span {
                break;
            }
            if self.rng.f64() * peak < rate(t) {
                self.push(t, hold);
            }
        }
    }
}

/// A trace of `shape` for pool `pool`, the same for the same seed.
pub fn generate(shape: Shape, seed: u64, pool: &str) -> Trace {
    let mut d = Draw {
        rng: fastrand::Rng::with_seed(seed),
        pool: pool.to_string(),
        out: Vec::new(),
    };
    match shape {
        Shape::Poisson => d.process(2.0 * HOUR, 0.5, 20.0 * SEC, |_| 0.5),
        Shape::Diurnal => {
            let bump = |t: f64| {
                let h = (t / HOUR) % 24.0;
                if (8.0..18.0).contains(&h) {
                    (std::f64::consts::PI * (h - 8.0) / 10.0).sin()
                } else {
                    0.0
                }
            };
            d.process(24.0 * HOUR, 0.32, 30.0 * SEC, |t| 0.02 + 0.3 * bump(t));
        }
        Shape::Fanout => {
            let span = 6.0 * HOUR;
            d.process(span, 0.05, 15.0 * SEC, |_| 0.05);
            let mut t = 0.0;
            loop {
                t += d.exp(5.0 * MIN);
                if t >= span {
                    break;
                }
                let n = d.rng.u32(10..=40);
                for _ in 0..n {
                    let at = t + d.rng.f64() * 3.0 * SEC;
                    d.push(at, 45.0 * SEC);
                }
            }
        }
        Shape::Ramp => {
            let (up, span) = (90.0 * MIN, 2.0 * HOUR);
            d.process(span, 1.0, 20.0 * SEC, |t| if t < up { t / up } else { 0.0 });
        }
        Shape::Idle => {
            let span = 8.0 * HOUR;
            let mut start = d.exp(20.0 * MIN);
            let mut spells = Vec::new();
            while start < span {
                spells.push(start);
                start += 10.0 * MIN + 30.0 * MIN + d.rng.f64() * 60.0 * MIN;
            }
            d.process(span, 0.5, 20.0 * SEC, |t| {
                if spells.iter().any(|s| t >= *s && t < s + 10.0 * MIN) {
                    0.5
                } else {
                    0.0
                }
            });
        }
    }
    d.out.sort_by_key(|a| a.t_ms);
    Trace { acquires: d.out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shape_is_repeatable_and_has_its_form() {
        for s in Shape::ALL {
            let a = generate(s, 7, "p");
            assert_eq!(a, generate(s, 7, "p"), "{s:?}: same seed, same trace");
            assert_ne!(a, generate(s, 8, "p"), "{s:?}: another seed, another trace");
            assert!(a.acquires.windows(2).all(|w| w[0].t_ms <= w[1].t_ms));
            assert!(
                (1000..15_000).contains(&a.acquires.len()),
                "{s:?}: {}",
                a.acquires.len()
            );
        }
        // The ramp stops at once: nothing after 90 minutes.
        let ramp = generate(Shape::Ramp, 1, "p");
        assert!(ramp.acquires.iter().all(|a| a.t_ms < 90 * 60 * 1000));
        // Fan-outs make a peak far above the background's.
        assert!(generate(Shape::Fanout, 1, "p").peak_concurrency() >= 10);
        // The night is quiet: few acquires between midnight and 08:00.
        let day = generate(Shape::Diurnal, 1, "p");
        let night = day
            .acquires
            .iter()
            .filter(|a| a.t_ms < 8 * 3_600_000)
            .count();
        assert!(
            night * 10 < day.acquires.len(),
            "{night} of {}",
            day.acquires.len()
        );
        assert!("nope".parse::<Shape>().unwrap_err().contains("poisson"));
    }
}
