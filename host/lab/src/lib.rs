//! The policy lab (issue #13): what a sizing policy would have done with a day of traffic.
//!
//! A binary of its own, `warmpool-lab`: the daemon (`warmpool`) links neither this crate nor the
//! in-memory engine it simulates on (`warmpool-fake`).
//!
//! - [`trace`]: an acquire trace, one acquire a line (`t_ms,pool,hold_ms`), read from and
//!   written to CSV;
//! - [`shapes`]: synthetic traces of the shapes operators meet (steady Poisson, a working-day
//!   cycle, agent fan-outs, a ramp that stops at once, long idle gaps), each repeatable from
//!   its seed;
//! - [`audit`]: a daemon's own audit log (`server.audit_log`, JSON lines of lifecycle events)
//!   turned into the trace of the traffic it served;
//! - [`simulate`]: a trace run against a sizing policy by the real pool core, on the in-memory
//!   engine in virtual time, and what it measured;
//! - [`table`] and [`svg`]: the figures of several policies as a table and as a chart;
//! - [`cli`]: the `warmpool-lab` command (`trace`, `simulate`, `replay`; `src/main.rs` parses
//!   its command line).

pub mod audit;
pub mod cli;
pub mod shapes;
pub mod simulate;
pub mod svg;
pub mod table;
pub mod trace;

pub use trace::{Acquire, Trace, TraceError};
