//! The runtime every part runs under: the manager's settings, the one cancellation token, the
//! task tracker, the clocks, the ID generator, and whether startup dealt with what an earlier
//! run left (`swept`, set by the startup cleanup, awaited by the refill and the running sweep).

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::{Clock, Ids};
use crate::config::ManagerConfig;

pub(crate) struct Runtime {
    cfg: ManagerConfig,
    cancel: CancellationToken,
    tracker: TaskTracker,
    /// Origin of the millisecond clock policies see.
    epoch: Instant,
    clock: Clock,
    ids: Ids,
    /// True once the startup sweep removed what an earlier run left; refill waits for it.
    swept: watch::Sender<bool>,
}

impl Runtime {
    pub fn new(cfg: ManagerConfig, cancel: CancellationToken, clock: Clock, ids: Ids) -> Self {
        Self {
            cfg,
            cancel,
            tracker: TaskTracker::new(),
            epoch: Instant::now(),
            clock,
            ids,
            swept: watch::Sender::new(false),
        }
    }

    pub fn cfg(&self) -> &ManagerConfig {
        &self.cfg
    }

    /// The token every task runs under; cancelling it starts shutdown.
    pub fn cancel(&self) -> &CancellationToken {
        &self.cancel
    }

    /// The tracker every task runs on.
    pub fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }

    /// Origin of the millisecond clock policies see.
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub fn ids(&self) -> &Ids {
        &self.ids
    }

    /// Whether the startup cleanup ran on at least one engine.
    pub fn swept(&self) -> bool {
        *self.swept.borrow()
    }

    /// The startup cleanup ran on an engine.
    pub fn mark_swept(&self) {
        self.swept.send_replace(true);
    }

    /// Resolves once the startup cleanup ran on an engine.
    pub async fn wait_swept(&self) {
        let mut swept = self.swept.subscribe();
        let _ = swept.wait_for(|s| *s).await;
    }
}
