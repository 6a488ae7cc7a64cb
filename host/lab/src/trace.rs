//! An acquire trace: when each acquire came, to which pool, and how long its lease was held.
//!
//! The CSV form has a header line `t_ms,pool,hold_ms` and one acquire a line, in time order:
//!
//! ```text
//! t_ms,pool,hold_ms
//! 0,python,12000
//! 850,python,3000
//! ```

use std::io::{Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// One acquire of a trace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acquire {
    /// When it came, in milliseconds from the trace's start.
    pub t_ms: u64,
    /// The pool it asked.
    pub pool: String,
    /// How long the client held the lease, in milliseconds.
    pub hold_ms: u64,
}

/// Acquires in time order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trace {
    /// The acquires, by `t_ms`.
    pub acquires: Vec<Acquire>,
}

/// A trace that could not be read: the line and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// What was being read.
        path: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// A line is not an acquire, or is out of order or bounds.
    #[error("line {line}: {message}")]
    Line {
        /// Its number, the header being line 1.
        line: u64,
        /// What is wrong with it.
        message: String,
    },
    /// No acquire at all.
    #[error("the trace is empty")]
    Empty,
}

/// The longest trace accepted: 30 days.
pub const MAX_SPAN_MS: u64 = 30 * 24 * 3600 * 1000;

/// A trace slowed down by a `speed` below 1 must still fit in [`MAX_SPAN_MS`]: a simulation
/// of it would otherwise run for hours, and a replay for months.
pub fn check_span(t: &Trace, speed: f64) -> Result<(), String> {
    if t.span_ms() > MAX_SPAN_MS {
        return Err(format!(
            "--speed {speed}: the trace would last {:.0} days; at most {} are played",
            t.span_ms() as f64 / 86_400_000.0,
            MAX_SPAN_MS / 86_400_000
        ));
    }
    Ok(())
}

impl Trace {
    /// Read a CSV trace. Lines must be in time order; the first problem is reported with its
    /// line number (the header is line 1).
    pub fn from_csv(r: impl Read) -> Result<Self, TraceError> {
        let mut rd = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(r);
        let mut acquires: Vec<Acquire> = Vec::new();
        for (i, row) in rd.deserialize::<Acquire>().enumerate() {
            let line = i as u64 + 2;
            let a = row.map_err(|e| TraceError::Line {
                line,
                message: e.to_string(),
            })?;
            let bad = |message: String| TraceError::Line { line, message };
            if a.pool.is_empty() {
                return Err(bad("empty pool name".into()));
            }
            if a.t_ms > MAX_SPAN_MS || a.hold_ms > MAX_SPAN_MS {
                return Err(bad(format!("times past {MAX_SPAN_MS} ms (30 days)")));
            }
            if let Some(prev) = acquires.last()
                && a.t_ms < prev.t_ms
            {
                return Err(bad(format!(
                    "t_ms {} comes before the line above's {}: a trace is in time order",
                    a.t_ms, prev.t_ms
                )));
            }
            acquires.push(a);
        }
        if acquires.is_empty() {
            return Err(TraceError::Empty);
        }
        Ok(Self { acquires })
    }

    /// Read the CSV trace at `path`.
    pub fn from_path(path: &Path) -> Result<Self, TraceError> {
        let f = std::fs::File::open(path).map_err(|source| TraceError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_csv(std::io::BufReader::new(f))
    }

    /// Write the CSV form, header first.
    pub fn to_csv(&self, w: impl Write) -> std::io::Result<()> {
        let mut wr = csv::Writer::from_writer(w);
        for a in &self.acquires {
            wr.serialize(a).map_err(std::io::Error::other)?;
        }
        if self.acquires.is_empty() {
            wr.write_record(["t_ms", "pool", "hold_ms"])
                .map_err(std::io::Error::other)?;
        }
        wr.flush()
    }

    /// Milliseconds from the first acquire to the last lease's end.
    pub fn span_ms(&self) -> u64 {
        self.acquires
            .iter()
            .map(|a| a.t_ms.saturating_add(a.hold_ms))
            .max()
            .unwrap_or(0)
    }

    /// This trace played `speed` times faster: every time and hold divided by `speed` (a
    /// replay against a real daemon compresses a day into minutes this way). The create
    /// latency does not shrink with it, so a compressed trace is a harder one.
    pub fn sped_up(&self, speed: f64) -> Trace {
        let k = if speed.is_finite() && speed > 0.0 {
            speed
        } else {
            1.0
        };
        let f = |ms: u64| (ms as f64 / k).round() as u64;
        Trace {
            acquires: self
                .acquires
                .iter()
                .map(|a| Acquire {
                    t_ms: f(a.t_ms),
                    pool: a.pool.clone(),
                    hold_ms: f(a.hold_ms),
                })
                .collect(),
        }
    }

    /// The acquires of the first `ms` milliseconds, `None` for all.
    pub fn within(&self, ms: Option<u64>) -> Trace {
        Trace {
            acquires: self
                .acquires
                .iter()
                .filter(|a| ms.is_none_or(|m| a.t_ms < m))
                .cloned()
                .collect(),
        }
    }

    /// The most leases held at once (demand's peak), over all pools.
    pub fn peak_concurrency(&self) -> u32 {
        let mut edges: Vec<(u64, i32)> = Vec::with_capacity(self.acquires.len() * 2);
        for a in &self.acquires {
            edges.push((a.t_ms, 1));
            edges.push((a.t_ms.saturating_add(a.hold_ms), -1));
        }
        // Ends before starts at the same instant: a lease released as another comes is reused.
        edges.sort_unstable();
        let (mut now, mut peak) = (0i32, 0i32);
        for (_, d) in edges {
            now += d;
            peak = peak.max(now);
        }
        peak as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trace_is_sped_up_and_cut_in_its_own_time() {
        let t = Trace::from_csv("t_ms,pool,hold_ms\n0,p,1000\n3000,p,600\n9000,p,10\n".as_bytes())
            .unwrap();
        let fast = t.within(Some(5000)).sped_up(4.0);
        let got: Vec<(u64, u64)> = fast.acquires.iter().map(|a| (a.t_ms, a.hold_ms)).collect();
        assert_eq!(got, [(0, 250), (750, 150)]);
        assert_eq!(t.within(None), t);
        // Slowed down past 30 days: refused before anything runs.
        assert!(check_span(&t.sped_up(1e-6), 1e-6).is_err());
        assert!(check_span(&t.sped_up(0.5), 0.5).is_ok());
        // A nonsensical speed leaves the trace as it is rather than dividing by it.
        assert_eq!(t.sped_up(0.0), t);
        assert_eq!(t.sped_up(f64::NAN), t);
    }

    #[test]
    fn round_trips_and_reports_bad_lines_by_number() {
        let t = Trace::from_csv("t_ms,pool,hold_ms\n0,p,100\n50, p ,10\n".as_bytes()).unwrap();
        assert_eq!(t.acquires.len(), 2);
        assert_eq!(t.acquires[1].pool, "p");
        assert_eq!(t.peak_concurrency(), 2);
        assert_eq!(t.span_ms(), 100);
        let mut out = Vec::new();
        t.to_csv(&mut out).unwrap();
        assert_eq!(Trace::from_csv(out.as_slice()).unwrap(), t);

        let err = Trace::from_csv("t_ms,pool,hold_ms\n10,p,1\n5,p,1\n".as_bytes()).unwrap_err();
        assert!(err.to_string().starts_with("line 3: t_ms 5"), "{err}");
        let err = Trace::from_csv("t_ms,pool,hold_ms\n-1,p,1\n".as_bytes()).unwrap_err();
        assert!(err.to_string().starts_with("line 2:"), "{err}");
        assert!(matches!(
            Trace::from_csv("t_ms,pool,hold_ms\n".as_bytes()),
            Err(TraceError::Empty)
        ));
    }
}
