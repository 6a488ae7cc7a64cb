//! The `warmpool-lab` command's subcommands (`src/main.rs` parses the command line):
//!
//! - [`trace`]: `trace generate` and `trace from-audit` write acquire traces, and the playback
//!   (`--speed`, `--until-s`) that `simulate` and `replay` share;
//! - [`simulate`]: a trace against sizing policies in virtual time, on the real pool core and
//!   the in-memory engine;
//! - [`replay`]: a trace sent to a running daemon over HTTP, measured as the simulation
//!   measures.
//!
//! They live here, not in the daemon, so that the `warmpool` binary links neither the in-memory
//! engine nor the lab's CSV and chart crates; the lab links the daemon's library instead, for
//! the client's connection flags and the pools' policies as `serve` builds them.

pub mod replay;
pub mod simulate;
pub mod trace;
