//! Shutdown: stop accepting work, fail queued acquires, remove every container this daemon
//! made (in parallel), wait for every task up to the grace period, then sweep by label for
//! anything a late create left behind. Part of the manager's top: it drives the parts (the
//! pools' books, the group commit, [`Lifecycle`] and [`Leasing`]) in that order.
//!
//! [`Lifecycle`]: crate::lifecycle::Lifecycle
//! [`Leasing`]: crate::leasing::Leasing

use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, timeout, timeout_at};
use tracing::{info, warn};

use crate::backend::Backend;
use crate::manager::Manager;
use crate::pool::LeaseEnd;

/// What [`Manager::shutdown`] did.
#[derive(Debug, Clone, Default)]
pub struct ShutdownReport {
    /// Containers whose removal shutdown started (ready ones, and leased ones unless kept).
    pub destroyed: usize,
    /// Containers found by the final label sweep (left by a create that finished late, or a
    /// removal still retrying).
    pub swept: usize,
    /// Whether every task finished within the grace period.
    pub drained: bool,
    /// Containers left running for the next start (`keep_on_shutdown`).
    pub kept: usize,
}

impl<B: Backend> Manager<B> {
    /// Stop accepting work, fail queued acquires, remove every container this daemon made (in
    /// parallel), wait for all tasks up to `grace`, then sweep by label for stragglers.
    ///
    /// With `keep_on_shutdown` (and a state store), leased containers and ready ones that were
    /// never lendable stay running instead, and the store is flushed, so the next start
    /// re-attaches the leases and re-adopts the containers: a restart for an upgrade loses no
    /// session. Lendable but unleased containers are still removed, as at a crash; a container
    /// whose removal is still failing stays in the store's lendable set (and keeps its "used"
    /// mark), so the next start removes it rather than re-adopting it.
    pub async fn shutdown(self: &Arc<Self>, grace: Duration) -> ShutdownReport {
        let s = &self.s;
        let tracker = s.rt.tracker();
        let deadline = Instant::now() + grace;
        let keep = s.rt.cfg().keep_on_shutdown && s.persist.enabled();
        s.rt.cancel().cancel();
        if keep {
            // Which ready containers are kept depends on the lendable flags: let a commit round
            // in flight finish setting them first.
            s.persist.settle().await;
        }
        let mut destroyed = 0;
        let mut kept = 0;
        for pool in s.books.all() {
            let (stay, go) = pool.lock().drain(keep, s.fleet.caps());
            kept += stay.len();
            for c in go {
                destroyed += 1;
                self.life.spawn_removal_of(&pool, &c, "shutdown");
            }
        }
        for (pool, c) in s.persist.take_held() {
            pool.lock().lease_ended(c.key(), LeaseEnd::Other);
            destroyed += 1;
            self.life.spawn_removal_of(&pool, &c, "shutdown");
        }
        if keep {
            kept += s.leases.len();
            tracker.close();
            let drained = timeout_at(deadline, tracker.wait()).await.is_ok();
            // Leases, renewals, releases and removals of the last moments reach the store.
            let flushed = s.persist.flush().await;
            info!(
                destroyed,
                kept,
                drained,
                flushed,
                "shutdown complete; leases and unlent containers kept for the next start"
            );
            return ShutdownReport {
                destroyed,
                swept: 0,
                drained,
                kept,
            };
        }
        for l in s.leases.drain() {
            destroyed += 1;
            self.leasing.retire_lease(l, LeaseEnd::Other, "shutdown");
        }
        tracker.close();
        let drained = timeout_at(deadline, tracker.wait()).await.is_ok();
        if !drained {
            warn!("shutdown: tasks still running after the grace period");
        }
        // Whatever a create finishing late left behind carries our labels: sweep it.
        let sweep_budget = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_secs(2));
        // Every engine at once, each within the same budget.
        let sweeps =
            futures_util::future::join_all(s.fleet.backends().map(|(name, backend)| async move {
                match timeout(sweep_budget, backend.sweep()).await {
                    Ok(Ok(n)) => (n, true),
                    Ok(Err(err)) => {
                        warn!(engine = %name, error = %err, "shutdown: final sweep failed");
                        (0, false)
                    }
                    Err(_) => {
                        warn!(engine = %name, "shutdown: final sweep timed out");
                        (0, false)
                    }
                }
            }))
            .await;
        let swept = sweeps.iter().map(|(n, _)| n).sum::<usize>();
        let sweep_ok = sweeps.iter().all(|(_, ok)| *ok);
        // Every container is gone, so nothing persisted is true any more.
        if sweep_ok {
            s.persist.clear().await;
        }
        info!(destroyed, swept, drained, "shutdown complete");
        ShutdownReport {
            destroyed,
            swept,
            drained,
            kept: 0,
        }
    }
}
