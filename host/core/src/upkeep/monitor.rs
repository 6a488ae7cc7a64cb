//! The engine monitor: one loop per engine pings it each tick. The first success runs the
//! startup cleanup (the sweep or, with a state store, the reconcile: [`crate::persistence`]);
//! each answer (or failure) is reported to the fleet ([`Lifecycle::engine_state`]), and an
//! engine that comes back is compared with the books at once (the running sweep): what died
//! while it was away is handled, and what the daemon does not account for is removed.
//!
//! [`Lifecycle::engine_state`]: crate::lifecycle::Lifecycle::engine_state

use tokio::time::{Instant, sleep};
use tracing::debug;

use super::Upkeep;
use crate::backend::Backend;
use crate::caps::EngineIx;
use crate::lifecycle::call;

/// Bound on one ping: an engine cut off the network (packets dropped, not refused) is shown
/// down within this, not after the client's two-minute request timeout.
const PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// How often an engine that is up is asked again for its runtimes: an engine may register one
/// while it runs (dockerd reloads `runtimes` from its `daemon.json` on SIGHUP).
const RUNTIMES_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

impl<B: Backend> Upkeep<B> {
    /// Engine `e` was found up or down: the fleet, the pools and the events are told; an engine
    /// that came back (once startup swept) gets the running sweep.
    fn set_engine(&self, e: EngineIx, up: bool, err: Option<String>) {
        if self.life.engine_state(e, up, err) && self.s.rt.swept() {
            let this = self.clone();
            self.s.rt.tracker().spawn(async move {
                this.sweep_engine(e).await;
            });
        }
    }

    /// Read engine `e`'s runtimes; a change wakes every pool (a pool waiting for an engine with
    /// its runtime may now be placed). Whether the engine answered.
    async fn read_runtimes(&self, e: EngineIx) -> bool {
        let s = &self.s;
        match call(PING_TIMEOUT, s.fleet.backend(e).runtimes()).await {
            Ok(r) => {
                if s.fleet.set_runtimes(e, r) {
                    debug!(engine = %s.fleet.name(e), "engine runtimes read");
                    for p in s.books.all() {
                        p.touch();
                    }
                }
                true
            }
            Err(err) => {
                debug!(engine = %s.fleet.name(e), error = %err, "reading the engine's runtimes failed");
                false
            }
        }
    }

    pub(super) async fn monitor_loop(self, e: EngineIx) {
        let s = self.s.clone();
        // When the runtimes were last read; `None`: read them at the next answer (the first,
        // or the first after an outage: the engine may have restarted with others).
        let mut runtimes_at: Option<Instant> = None;
        loop {
            match call(PING_TIMEOUT, s.fleet.backend(e).ping()).await {
                Ok(()) => {
                    if runtimes_at.is_none_or(|t| t.elapsed() >= RUNTIMES_EVERY)
                        && self.read_runtimes(e).await
                    {
                        runtimes_at = Some(Instant::now());
                    }
                    if !s.fleet.cleaned(e) {
                        self.persistence.startup_cleanup(e).await;
                    }
                    let cleaned = s.fleet.cleaned(e);
                    self.set_engine(e, cleaned, None);
                }
                Err(err) => {
                    runtimes_at = None;
                    self.set_engine(e, false, Some(err.to_string()));
                }
            }
            tokio::select! {
                biased;
                _ = s.rt.cancel().cancelled() => return,
                _ = sleep(s.rt.cfg().tick) => {}
            }
        }
    }
}
