//! `warmpool-lab trace`: make acquire traces for the policy lab ([`crate`]): synthetic ones
//! of a named shape, or the real traffic of a daemon from its audit log.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::Trace;
use crate::audit::trace_from_audit;
use crate::shapes::{Shape, generate};

/// How `simulate` and `replay` play a trace: its first seconds only, and faster, the same way in
/// both so that their figures compare.
#[derive(clap::Args, Clone, Copy)]
pub struct Playback {
    /// Play the trace this many times faster (times and holds divided by it).
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Only the trace's first SECONDS (trace time, before the speed-up).
    #[arg(long)]
    pub until_s: Option<u64>,
}

impl Playback {
    /// `t` cut and sped up; a speed that is not a positive number, or that stretches the trace
    /// past 30 days, is refused.
    pub fn apply(&self, t: Trace) -> Result<Trace, String> {
        if !(self.speed.is_finite() && self.speed > 0.0) {
            return Err(format!("--speed {}: must be a positive number", self.speed));
        }
        let t = t
            .within(self.until_s.map(|s| s.saturating_mul(1000)))
            .sped_up(self.speed);
        crate::trace::check_span(&t, self.speed)?;
        Ok(t)
    }
}

/// Write `t` as CSV to `out`, or to stdout.
fn write(t: &Trace, out: Option<&Path>) -> std::io::Result<()> {
    match out {
        Some(p) => t.to_csv(std::io::BufWriter::new(std::fs::File::create(p)?)),
        None => {
            let stdout = std::io::stdout();
            let mut lock = stdout.lock();
            t.to_csv(&mut lock)?;
            lock.flush()
        }
    }
}

/// Write `t` as [`write`] does, then say on stderr what it holds, followed by `note`.
fn finish(t: &Trace, out: Option<&Path>, note: &str) -> ExitCode {
    if let Err(e) = write(t, out) {
        eprintln!("error: writing the trace: {e}");
        return ExitCode::FAILURE;
    }
    eprintln!(
        "trace: {} acquires over {:.1} h, at most {} leases at once{note}",
        t.acquires.len(),
        t.span_ms() as f64 / 3_600_000.0,
        t.peak_concurrency()
    );
    ExitCode::SUCCESS
}

/// `warmpool-lab trace generate --shape S --seed N [--pool P] [-o FILE]`.
pub fn generate_cmd(shape: Shape, seed: u64, pool: &str, out: Option<PathBuf>) -> ExitCode {
    let t = generate(shape, seed, pool);
    finish(
        &t,
        out.as_deref(),
        &format!(" (shape {}, seed {seed})", shape.name()),
    )
}

/// `warmpool-lab trace from-audit EVENTS.jsonl [--pool P] [-o FILE]`.
pub fn from_audit_cmd(log: &Path, pool: Option<&str>, out: Option<PathBuf>) -> ExitCode {
    let read = std::fs::File::open(log)
        .map_err(|e| e.to_string())
        .and_then(|f| {
            trace_from_audit(std::io::BufReader::new(f), pool).map_err(|e| e.to_string())
        });
    let (t, s) = match read {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {}: {e}", log.display());
            return ExitCode::FAILURE;
        }
    };
    finish(
        &t,
        out.as_deref(),
        &format!(
            "; {} line(s) skipped, {} lease(s) still open at the log's end (held to its last event)",
            s.skipped, s.open_at_end
        ),
    )
}
