//! The fence of a lease: the operations under way on it (exec, file upload and download), and
//! the moment it ends.
//!
//! An operation enters the fence when it looks its lease up, under the lease table's lock
//! (`LeaseTable::op`), and leaves when its engine call has really ended. The lease table raises
//! the fence when it takes a lease out (release, expiry, shutdown), under the same lock, so:
//!
//! - from that moment no new operation on the lease starts (it is no longer in the table);
//! - operations under way are told to stop ([`Ops::stop`]: an exec's processes are killed, an
//!   upload's body is cut, a download ends);
//! - a release for reuse waits until every one of them has left ([`Ops::drained`]) before the
//!   scrub looks at the container, so nothing they send reaches the engine after the scrub
//!   began. One that does not leave in time costs the container: it is destroyed, not reused.
//!
//! An operation whose engine call was cut off without the engine's answer (its connection
//! failed, it timed out, an upload's body was cut) taints the lease: the engine may still act
//! on what it received, at any moment, so the container is never reused.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::backend::{BackendError, Stop};
use crate::sync::lock;

/// How long a release for reuse waits for the operations under way to end once told to stop.
pub(crate) const FENCE_GRACE: Duration = Duration::from_secs(30);

/// One lease's operations under way, and whether its fence is up.
#[derive(Debug, Default)]
pub(crate) struct Ops {
    state: Mutex<OpsState>,
    idle: Notify,
    stop: CancellationToken,
    tainted: AtomicBool,
}

#[derive(Debug, Default)]
struct OpsState {
    fenced: bool,
    running: usize,
}

impl Ops {
    /// Enter an operation, unless the fence is up.
    pub fn enter(self: &Arc<Self>) -> Option<OpGuard> {
        let mut s = lock(&self.state);
        if s.fenced {
            return None;
        }
        s.running += 1;
        Some(OpGuard(self.clone()))
    }

    /// Whether an operation is under way (a suspend waits for none).
    pub fn busy(&self) -> bool {
        lock(&self.state).running > 0
    }

    /// Raise the fence: no operation enters any more, and those under way are told to stop.
    pub fn fence(&self) {
        lock(&self.state).fenced = true;
        self.stop.cancel();
    }

    /// The token an operation watches: it fires when the fence goes up. An operation that
    /// must also stop on its own (its client hung up) watches a child of it.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.child_token()
    }

    /// An operation was cut off without the engine's answer: see the module's docs.
    pub fn taint(&self) {
        self.tainted.store(true, Ordering::Release);
    }

    /// Whether an operation was cut off without the engine's answer.
    pub fn tainted(&self) -> bool {
        self.tainted.load(Ordering::Acquire)
    }

    /// Whether every operation has left within `within` of now.
    pub async fn drained(&self, within: Duration) -> bool {
        let until = tokio::time::Instant::now() + within;
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if lock(&self.state).running == 0 {
                return true;
            }
            if tokio::time::timeout_at(until, idle).await.is_err() {
                return lock(&self.state).running == 0;
            }
        }
    }
}

/// An operation inside a lease's fence; it leaves when dropped.
#[derive(Debug)]
pub(crate) struct OpGuard(Arc<Ops>);

impl OpGuard {
    /// The lease's operations, to taint them.
    pub fn ops(&self) -> &Ops {
        &self.0
    }
}

impl Drop for OpGuard {
    fn drop(&mut self) {
        let mut s = lock(&self.0.state);
        s.running -= 1;
        if s.running == 0 {
            self.0.idle.notify_waiters();
        }
    }
}

/// What an operation on a lease holds: its container, its engine, its place inside the fence
/// and the stop it passes to the backend.
#[derive(Debug)]
pub(crate) struct LeaseOp {
    pub container: String,
    pub engine: crate::caps::EngineIx,
    /// Held, never read: the operation is inside the fence until this drops.
    pub _inside: OpGuard,
    /// Fires when the fence goes up, or when the operation's own client goes away.
    pub token: CancellationToken,
}

impl LeaseOp {
    /// Leave the fence after an engine call that ended with `r`: one cut off without the
    /// engine's answer taints the lease first.
    pub fn done<T>(self, r: &Result<T, BackendError>) {
        if let Err(BackendError::Unavailable(_)) = r {
            self._inside.ops().taint();
        }
    }

    /// The stop a backend call of this operation watches.
    pub fn stop(&self) -> Stop {
        Stop::new(self.token.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_fenced_lease_admits_nothing_and_waits_for_what_runs() {
        let ops = Arc::new(Ops::default());
        let a = ops.enter().expect("open");
        let token = ops.stop_token();
        assert!(!ops.drained(Duration::ZERO).await);
        ops.fence();
        assert!(
            token.is_cancelled(),
            "operations under way are told to stop"
        );
        assert!(ops.enter().is_none(), "nothing enters a raised fence");
        let o = ops.clone();
        let wait = tokio::spawn(async move { o.drained(Duration::from_secs(5)).await });
        tokio::time::sleep(Duration::from_secs(1)).await;
        drop(a);
        assert!(wait.await.unwrap(), "drained once the last operation left");
        let b = Arc::new(Ops::default());
        let _held = b.enter().unwrap();
        b.fence();
        assert!(!b.drained(Duration::from_secs(2)).await, "bounded wait");
    }
}
