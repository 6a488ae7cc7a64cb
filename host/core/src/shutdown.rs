//! Shutdown: stop accepting work, fail queued acquires, destroy every container this daemon
//! made (in parallel), wait for every task up to the grace period, then sweep by label for
//! anything a late create left behind.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, timeout, timeout_at};
use tracing::{info, warn};

use crate::backend::Backend;
use crate::lease::Lease;
use crate::manager::{Manager, lock};
use crate::pool::{DeliveryError, ReadyContainer};

/// What [`Manager::shutdown`] did.
#[derive(Debug, Clone, Default)]
pub struct ShutdownReport {
    pub destroyed: usize,
    /// Containers found by the final label sweep (left by a create that finished late).
    pub swept: usize,
    /// Whether every task finished within the grace period.
    pub drained: bool,
}

impl<B: Backend> Manager<B> {
    /// Stop accepting work, fail queued acquires, destroy every container this daemon made (in
    /// parallel), wait for all tasks up to `grace`, then sweep by label for stragglers.
    pub async fn shutdown(self: &Arc<Self>, grace: Duration) -> ShutdownReport {
        let deadline = Instant::now() + grace;
        self.cancel.cancel();
        let mut destroyed = 0;
        for pool in self.pools().values() {
            let doomed: Vec<ReadyContainer> = {
                let mut st = pool.lock();
                st.draining = true;
                for w in st.waiters.drain(..) {
                    let _ = w.send(Err(DeliveryError::ShuttingDown));
                }
                let n = st.ready.len() as u32;
                st.removing += n;
                st.ready.drain(..).collect()
            };
            for c in doomed {
                destroyed += 1;
                self.spawn_destroy(pool.clone(), c.created.id, false, "shutdown");
            }
        }
        for (pool, c) in self.take_held() {
            {
                let mut st = pool.lock();
                st.leased -= 1;
                st.removing += 1;
            }
            destroyed += 1;
            self.spawn_destroy(pool, c.created.id, false, "shutdown");
        }
        let leases: Vec<Lease> = lock(&self.leases).drain().map(|(_, l)| l).collect();
        for l in leases {
            destroyed += 1;
            self.retire_lease(l, "shutdown");
        }
        self.tracker.close();
        let drained = timeout_at(deadline, self.tracker.wait()).await.is_ok();
        if !drained {
            warn!("shutdown: tasks still running after the grace period");
        }
        // Whatever a create finishing late left behind carries our labels: sweep it.
        let sweep_budget = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_secs(2));
        let (swept, sweep_ok) = match timeout(sweep_budget, self.backend.sweep()).await {
            Ok(Ok(n)) => (n, true),
            Ok(Err(e)) => {
                warn!(error = %e, "shutdown: final sweep failed");
                (0, false)
            }
            Err(_) => {
                warn!("shutdown: final sweep timed out");
                (0, false)
            }
        };
        // Every container is gone, so nothing persisted is true any more.
        if sweep_ok {
            self.clear_store().await;
        }
        info!(destroyed, swept, drained, "shutdown complete");
        ShutdownReport {
            destroyed,
            swept,
            drained,
        }
    }
}
