//! The running sweep: every `sweep_interval`, the engine's containers of this host id are
//! compared with the daemon's books.
//!
//! - A container the books do not hold (left by a crash the reconcile could not remove, or made
//!   by something else under this host id) becomes an *orphan*: counted against the cap at once,
//!   and removed with the same never-give-up removal as any other.
//! - A container the books hold as ready or leased that the engine shows stopped, or no longer
//!   has, is handled as dead: its death event was lost.
//!
//! The books are read after the engine's list, and every container is in the books (by the name
//! the core gave it) before its create is even sent, so a create in flight is never mistaken
//! for an unknown container.

use std::collections::HashSet;

use tokio::time::sleep;
use tracing::warn;

use super::Upkeep;
use crate::backend::Backend;
use crate::caps::EngineIx;
use crate::lifecycle::{CALL_TIMEOUT, Holder, call};

/// What one sweep found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Containers the books did not hold, now counted and being removed.
    pub unaccounted: usize,
    /// Containers the books held that were found stopped or missing.
    pub dead: usize,
}

impl<B: Backend> Upkeep<B> {
    pub(super) async fn sweep_loop(self) {
        let s = self.s.clone();
        tokio::select! {
            biased;
            _ = s.rt.cancel().cancelled() => return,
            _ = s.rt.wait_swept() => {}
        }
        loop {
            tokio::select! {
                biased;
                _ = s.rt.cancel().cancelled() => return,
                _ = sleep(s.rt.cfg().sweep_interval) => {}
            }
            self.sweep_once().await;
        }
    }

    /// Compare every engine that is up with the books once (see the module doc).
    pub async fn sweep_once(&self) -> SweepReport {
        let mut report = SweepReport::default();
        for e in 0..self.s.fleet.len() {
            if self.s.fleet.is_up(e) {
                let r = self.sweep_engine(e).await;
                report.unaccounted += r.unaccounted;
                report.dead += r.dead;
            }
        }
        report
    }

    /// Compare engine `engine` with the books once: also what runs when an engine comes back
    /// after an outage, so whatever died or appeared while it was away is dealt with.
    pub(super) async fn sweep_engine(&self, engine: EngineIx) -> SweepReport {
        let s = &self.s;
        let mut report = SweepReport::default();
        // Serving containers of this engine known before the list: each must be on it, or it
        // is gone.
        let mut before: Vec<String> = s.leases.container_ids_on(engine);
        for pool in s.books.all() {
            before.extend(
                pool.lock()
                    .ready()
                    .filter(|c| c.engine == engine)
                    .map(|c| c.created.id.clone()),
            );
        }
        let listed = match call(CALL_TIMEOUT, s.fleet.backend(engine).list()).await {
            Ok(l) => l,
            Err(e) => {
                warn!(engine = %s.fleet.name(engine), error = %e, "sweep: cannot list the engine's containers; next time");
                return report;
            }
        };
        // Names and IDs are compared over every engine's books: a name is unique across them,
        // and a create in flight is in the books under its name before it is sent.
        let accounted = s.accounted();
        let names: HashSet<&str> = accounted.iter().map(|(k, _)| k.as_str()).collect();
        let ids: HashSet<&str> = accounted
            .iter()
            .filter_map(|(_, id)| id.as_deref())
            .collect();
        let listed_ids: HashSet<&str> = listed.iter().map(|e| e.id.as_str()).collect();
        for e in &listed {
            if !ids.contains(e.id.as_str()) && !names.contains(e.name.as_str()) {
                if s.fleet.orphan(&e.name, &e.id, engine) {
                    warn!(container = %e.name, id = %e.id, "sweep: a container of this host id that the daemon does not account for; removing it");
                    report.unaccounted += 1;
                    self.life.spawn_removal(
                        Holder::Orphan,
                        e.name.clone(),
                        e.id.clone(),
                        engine,
                        Some(e.id.clone()),
                        "unaccounted",
                    );
                }
            } else if !e.running && before.contains(&e.id) {
                report.dead += 1;
                self.on_died(&e.id, "found stopped by the sweep");
            }
        }
        for id in before.iter().filter(|id| !listed_ids.contains(id.as_str())) {
            report.dead += 1;
            self.on_died(id, "gone from the engine");
        }
        report
    }
}
