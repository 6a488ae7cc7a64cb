//! The manager's side of the group commit ([`crate::group_commit`]): the loop that runs a
//! round every `commit_interval` (or at once when urged), the hand-out of cold containers a
//! round made lendable, and the calls the acquire path and shutdown make. Each is a no-op when
//! nothing is persisted.

use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::time::sleep;

use crate::backend::{Backend, BackendError};
use crate::group_commit::{HeldDelivery, PersistStats, Round};
use crate::lease_store::Change;
use crate::manager::Manager;
use crate::pool::{Delivery, DeliveryError, LeaseEnd, Pool, ReadyContainer};

impl<B: Backend> Manager<B> {
    /// Whether leases are persisted (a `state_dir` is configured).
    pub fn persists(&self) -> bool {
        self.group_commit.is_some()
    }

    /// Persistence figures; `None` when nothing is persisted.
    pub fn persist_stats(&self) -> Option<PersistStats> {
        self.group_commit.as_ref().map(|p| p.stats())
    }

    /// Queue a change for the next commit. Without a store this is a no-op, and the change
    /// (which clones a lease's strings on the acquire path) is never even built.
    pub(crate) fn record(&self, change: impl FnOnce() -> Change) {
        if let Some(p) = &self.group_commit {
            p.record(change());
        }
    }

    /// Ask for a commit now rather than at the next interval.
    pub(crate) fn urge_commit(&self) {
        if let Some(p) = &self.group_commit {
            p.urge();
        }
    }

    /// New containers are lendable at once only when nothing is persisted.
    pub(crate) fn born_lendable(&self) -> bool {
        self.group_commit.is_none()
    }

    /// Hold a cold-created container until a commit made it lendable, then deliver it.
    /// The caller has counted it as leased.
    pub(crate) fn deliver_after_commit(
        &self,
        pool: &Arc<Pool>,
        container: ReadyContainer,
        tx: oneshot::Sender<Delivery>,
    ) {
        let p = self
            .group_commit
            .as_ref()
            .expect("only called when persisting");
        p.hold(pool, container, tx);
    }

    pub(crate) async fn commit_loop(self: Arc<Self>) {
        let Some(p) = &self.group_commit else { return };
        loop {
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return,
                _ = p.urged() => {}
                _ = sleep(p.interval) => {}
            }
            if self.commit_round().await == Round::Failed {
                // A failing store: back off, and lend nothing new meanwhile.
                tokio::select! {
                    biased;
                    _ = self.cancel.cancelled() => return,
                    _ = sleep(p.interval * 10) => {}
                }
            }
        }
    }

    /// One group commit over the serving pools.
    pub(crate) async fn commit_round(self: &Arc<Self>) -> Round {
        let Some(p) = &self.group_commit else {
            return Round::Committed;
        };
        p.round(self.pools().values().cloned(), &self.cancel, |h| {
            self.hand_out_committed(h)
        })
        .await
    }

    /// A held cold container is lendable now: to its acquire, unless it died meanwhile.
    fn hand_out_committed(self: &Arc<Self>, h: HeldDelivery) {
        let c = h.container;
        if self.died_recently(&c.created.id) {
            // It died while it waited for this commit, in no list a death notice reaches:
            // removed, and its acquire told so.
            h.pool.lock().lease_ended(c.key(), LeaseEnd::Other);
            self.spawn_removal_of(&h.pool, &c, "died before it was handed out");
            let _ = h.tx.send(Err(DeliveryError::Create(BackendError::Create {
                image: h.pool.cfg().spec.image.clone(),
                message: format!("container {} died before it was handed out", c.created.name),
            })));
            h.pool.touch();
            return;
        }
        if let Err(Ok(c)) = h.tx.send(Ok(c)) {
            // The acquire gave up meanwhile; the pool keeps the container.
            h.pool.lock().give_back(c);
            h.pool.touch();
        }
    }

    /// At shutdown, after the token is cancelled: wait for a commit round in flight, so that
    /// the lendable flags in the pools match the store. No round starts after this.
    pub async fn settle_commits(&self) {
        if let Some(p) = &self.group_commit {
            p.settle().await;
        }
    }

    /// At shutdown: give back held cold containers so they are removed with the rest.
    pub(crate) fn take_held(&self) -> Vec<(Arc<Pool>, ReadyContainer)> {
        self.group_commit
            .as_ref()
            .map_or_else(Vec::new, |p| p.take_held())
    }

    /// Commit whatever is pending, once (at a shutdown that keeps containers). `true` when the
    /// store has everything.
    pub(crate) async fn flush_store(&self) -> bool {
        match &self.group_commit {
            Some(p) => p.flush().await,
            None => true,
        }
    }

    /// At the end of a clean shutdown that left nothing on the engine: forget everything.
    pub(crate) async fn clear_store(&self) {
        if let Some(p) = &self.group_commit {
            p.clear().await;
        }
    }
}
