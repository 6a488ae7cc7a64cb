//! Layer 2: persistence, one part ([`Persistence`]): the commit loop that runs a group-commit
//! round every `commit_interval` (or at once when urged) and hands out the cold containers a
//! round made lendable (here), and the startup step that deals with what an earlier run left
//! (`reconcile.rs`, with `restore.rs`: re-attaching, re-adopting and dooming what it found, and
//! `scales.rs`: the scale overrides the store held).
//!
//! It holds no state of its own: it works on the layer-0 parts ([`crate::shared`]; the group
//! commit itself is [`crate::group_commit`]) and removes and marks containers through
//! [`Lifecycle`]; it calls nothing else.

mod reconcile;
mod restore;
mod scales;

use std::sync::Arc;

use tokio::time::sleep;

use crate::backend::{Backend, BackendError};
use crate::group_commit::{HeldDelivery, Round};
use crate::lifecycle::Lifecycle;
use crate::pool::{DeliveryError, LeaseEnd};
use crate::shared::Shared;

pub use reconcile::ReconcileReport;

/// The commit loop and the startup reconcile (see the module doc). Cheap to clone.
pub(crate) struct Persistence<B> {
    s: Arc<Shared<B>>,
    life: Lifecycle<B>,
}

impl<B> Clone for Persistence<B> {
    fn clone(&self) -> Self {
        Self {
            s: self.s.clone(),
            life: self.life.clone(),
        }
    }
}

impl<B: Backend> Persistence<B> {
    pub fn new(s: Arc<Shared<B>>, life: Lifecycle<B>) -> Self {
        Self { s, life }
    }

    /// Run a commit round every interval, or at once when urged; nothing when nothing is
    /// persisted.
    pub(crate) async fn commit_loop(self) {
        let Some(p) = self.s.persist.group_commit() else {
            return;
        };
        let cancel = self.s.rt.cancel();
        loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return,
                _ = p.urged() => {}
                _ = sleep(p.interval()) => {}
            }
            if self.commit_round().await == Round::Failed {
                // A failing store: back off, and lend nothing new meanwhile.
                tokio::select! {
                    biased;
                    _ = cancel.cancelled() => return,
                    _ = sleep(p.interval() * 10) => {}
                }
            }
        }
    }

    /// One group commit over the serving pools.
    async fn commit_round(&self) -> Round {
        let Some(p) = self.s.persist.group_commit() else {
            return Round::Committed;
        };
        p.round(
            self.s.books.serving().values().cloned(),
            self.s.rt.cancel(),
            |h| self.hand_out_committed(h),
        )
        .await
    }

    /// A held cold container is lendable now: to its acquire, unless it died meanwhile.
    fn hand_out_committed(&self, h: HeldDelivery) {
        let c = h.container;
        if self.s.fleet.died_recently(&c.created.id) {
            // It died while it waited for this commit, in no list a death notice reaches:
            // removed, and its acquire told so.
            h.pool.lock().lease_ended(c.key(), LeaseEnd::Other);
            self.life
                .spawn_removal_of(&h.pool, &c, "died before it was handed out");
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
}
