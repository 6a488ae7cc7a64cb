//! The engine monitor: one loop per engine pings it each tick. The first success runs the
//! startup cleanup (the sweep or, with a state store, the reconcile: [`crate::persistence`]);
//! each answer (or failure) is reported to the fleet ([`Lifecycle::engine_state`]), and an
//! engine that comes back is compared with the books at once (the running sweep): what died
//! while it was away is handled, and what the daemon does not account for is removed.
//!
//! [`Lifecycle::engine_state`]: crate::lifecycle::Lifecycle::engine_state

use tokio::time::sleep;

use super::Upkeep;
use crate::backend::Backend;
use crate::caps::EngineIx;
use crate::lifecycle::call;

/// Bound on one ping: an engine cut off the network (packets dropped, not refused) is shown
/// down within this, not after the client's two-minute request timeout.
const PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

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

    pub(super) async fn monitor_loop(self, e: EngineIx) {
        let s = self.s.clone();
        loop {
            match call(PING_TIMEOUT, s.fleet.backend(e).ping()).await {
                Ok(()) => {
                    if !s.fleet.cleaned(e) {
                        self.persistence.startup_cleanup(e).await;
                    }
                    let cleaned = s.fleet.cleaned(e);
                    self.set_engine(e, cleaned, None);
                }
                Err(err) => self.set_engine(e, false, Some(err.to_string())),
            }
            tokio::select! {
                biased;
                _ = s.rt.cancel().cancelled() => return,
                _ = sleep(s.rt.cfg().tick) => {}
            }
        }
    }
}
