//! # warmpool: the daemon and its CLI
//!
//! - `warmpool serve -c FILE` runs the daemon ([`serve`]): [`daemon`] builds it, runs it and
//!   drains it; one supervisor applies every control
//!   request — reloads from SIGHUP, the file watchers or the admin route, plugin file changes,
//!   shutdown signals — in order ([`control`]); a pool's policies are built in [`policies`];
//!   [`audit`] writes the audit log.
//! - `warmpool validate -c FILE` checks a config ([`validate`]).
//! - `status`, `acquire`, `exec`, `release`, `plugin list` talk to a running daemon over HTTP
//!   ([`client`]); `shell` (a terminal) and `exec --stream` are in [`interactive`]; `warm-up`
//!   in [`warm_up`]; `scale` (a pool's sizes at run time) in [`scale`]; `plugin check` loads a
//!   component locally.
//!
//! The policy lab's commands (`trace`, `simulate`, `replay`) are the `warmpool-lab` binary
//! (`host/lab`), which links this library for [`policies`], [`serve::plugin_limits`] and
//! [`client::Conn`]; this crate links no test code and no in-memory engine.

pub mod audit;
pub mod client;
pub mod control;
pub mod daemon;
pub mod engines;
pub mod interactive;
pub mod policies;
pub mod scale;
pub mod serve;
pub mod validate;
pub mod warm_up;
