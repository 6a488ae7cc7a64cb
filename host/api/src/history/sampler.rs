//! The loop that samples every pool once an interval, until the daemon's cancellation token
//! fires. The first sample is taken at once, so a page opened just after the start has a point.

use std::sync::Arc;

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use warmpool_core::{Backend, Manager};

use super::{Gauges, History};

/// Sample `read()` into `history` every [`History::interval`] until `cancel` fires.
pub async fn run(
    history: Arc<History>,
    read: impl Fn() -> Vec<(String, Gauges)>,
    cancel: CancellationToken,
) {
    let mut every = tokio::time::interval(history.interval());
    // A late tick (a stalled runtime) is taken late, not twice: two samples of one moment
    // would only squeeze the chart.
    every.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => return,
            _ = every.tick() => history.tick(read()),
        }
    }
}

/// Every pool's counts now, as the manager's stats give them.
pub fn gauges<B: Backend>(m: &Manager<B>) -> Vec<(String, Gauges)> {
    m.all_pool_stats()
        .into_iter()
        .map(|p| {
            let g = Gauges {
                ready: p.counts.ready,
                leased: p.counts.leased,
                waiting: p.waiters,
            };
            (p.name, g)
        })
        .collect()
}

/// Start sampling `manager`'s pools into `history`, as one of the manager's tasks: it stops
/// with the manager's cancellation token, and the shutdown waits for it like any other.
pub fn spawn<B: Backend>(history: Arc<History>, manager: &Arc<Manager<B>>) {
    let m = manager.clone();
    manager
        .tracker()
        .spawn(run(history, move || gauges(&m), manager.cancel_token()));
}
