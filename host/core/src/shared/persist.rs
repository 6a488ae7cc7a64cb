//! Whether and how leases, the lendable set and scale overrides are persisted: the group commit, or nothing.
//! Every call is a no-op when nothing is persisted; the group commit's own state is changed
//! only by [`GroupCommit`]'s methods (`group_commit.rs`).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::group_commit::{GroupCommit, PersistStats};
use crate::lease_store::{Change, LeaseStore};
use crate::pool::{Delivery, Pool, ReadyContainer};

/// The group commit of leases and the lendable set; `None`: nothing is persisted.
pub(crate) struct Persist {
    commit: Option<GroupCommit>,
}

impl Persist {
    pub fn new(store: Option<Arc<dyn LeaseStore>>, interval: Duration) -> Self {
        Self {
            commit: store.map(|s| GroupCommit::new(s, interval)),
        }
    }

    /// The group commit, when something is persisted (for its loop and the startup reconcile).
    pub fn group_commit(&self) -> Option<&GroupCommit> {
        self.commit.as_ref()
    }

    /// Whether leases are persisted (a `state_dir` is configured).
    pub fn enabled(&self) -> bool {
        self.commit.is_some()
    }

    /// Persistence figures; `None` when nothing is persisted.
    pub fn stats(&self) -> Option<PersistStats> {
        self.commit.as_ref().map(GroupCommit::stats)
    }

    /// Queue a change for the next commit. Without a store this is a no-op, and the change
    /// (which clones a lease's strings on the acquire path) is never even built.
    pub fn record(&self, change: impl FnOnce() -> Change) {
        if let Some(p) = &self.commit {
            p.record(change());
        }
    }

    /// Ask for a commit now rather than at the next interval.
    pub fn urge(&self) {
        if let Some(p) = &self.commit {
            p.urge();
        }
    }

    /// New containers are lendable at once only when nothing is persisted.
    pub fn born_lendable(&self) -> bool {
        self.commit.is_none()
    }

    /// Hold a cold-created container until a commit made it lendable; the commit loop then
    /// delivers it. The caller has counted it as leased.
    pub fn hold(&self, pool: &Arc<Pool>, container: ReadyContainer, tx: oneshot::Sender<Delivery>) {
        let p = self.commit.as_ref().expect("only called when persisting");
        p.hold(pool, container, tx);
    }

    /// At shutdown, after the token is cancelled: wait for a commit round in flight, so that
    /// the lendable flags in the pools match the store. No round starts after this.
    pub async fn settle(&self) {
        if let Some(p) = &self.commit {
            p.settle().await;
        }
    }

    /// At shutdown: give back held cold containers so they are removed with the rest.
    pub fn take_held(&self) -> Vec<(Arc<Pool>, ReadyContainer)> {
        self.commit
            .as_ref()
            .map_or_else(Vec::new, GroupCommit::take_held)
    }

    /// Commit whatever is pending, once (at a shutdown that keeps containers). `true` when the
    /// store has everything.
    pub async fn flush(&self) -> bool {
        match &self.commit {
            Some(p) => p.flush().await,
            None => true,
        }
    }

    /// Whether a scale request may be served now: always without a store; with one, once the
    /// overrides it held at startup are back (see `persistence/scales.rs`).
    pub fn scales_ready(&self) -> bool {
        self.commit.as_ref().is_none_or(GroupCommit::scales_ready)
    }

    /// A reload cleared pool `name`'s scale override, or removed the pool: the store forgets
    /// it, and a restore not done yet does not bring it back.
    pub fn scale_cleared(&self, name: &str) {
        if let Some(p) = &self.commit {
            p.scale_cleared(name);
        }
    }

    /// At the end of a clean shutdown that left nothing on the engine: forget everything.
    pub async fn clear(&self) {
        if let Some(p) = &self.commit {
            p.clear().await;
        }
    }
}
