//! Restart and the running sweep: ready containers re-adopted, leases re-attached, and found
//! containers doomed, each counted against the cap; and the image ID the reference resolves to.
//!
//! A draining pool (removed by a reload, or shutting down) takes none of them: a removed pool
//! leaves the manager's lists once its books are empty, so a container entered afterwards would
//! be in books nobody reads, holding its cap slot for ever. The caller counts such a container
//! elsewhere (an orphan).

use super::*;

/// What [`PoolState::doom_found`] did with a found container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Doomed {
    /// Counted in this pool's books as removing; the caller removes it.
    Counted,
    /// The books already hold it; nothing changed.
    Held,
    /// The pool is draining and takes no new container; nothing changed.
    Draining,
}

impl PoolState {
    /// Reconcile: a ready container of an earlier run, re-adopted (it was never lent). Returns
    /// `false`, changing nothing, when the pool is draining or the cap has no room for it.
    pub fn adopt(&mut self, c: ReadyContainer, caps: &Caps) -> bool {
        if self.draining || !caps.reserve_found(c.engine) {
            return false;
        }
        self.insert(
            c.key().to_string(),
            Some(c.created.id.clone()),
            Slot::Ready,
            c.engine,
        );
        self.counters.adopted_total += 1;
        self.ready_push(c);
        self.check();
        true
    }

    /// Reconcile: a persisted lease's container, counted as leased even past the cap (it
    /// exists already, and a cap cannot undo that). Returns `false`, changing nothing, when the
    /// pool is draining.
    /// A suspended lease's container (stopped, with its checkpoint) is counted as suspended.
    pub fn reattach(&mut self, c: &ReadyContainer, caps: &Caps, suspended: bool) -> bool {
        if self.draining {
            return false;
        }
        caps.count_found(c.engine);
        let slot = if suspended {
            Slot::Suspended
        } else {
            Slot::Leased
        };
        self.insert(
            c.key().to_string(),
            Some(c.created.id.clone()),
            slot,
            c.engine,
        );
        self.check();
        true
    }

    /// Reconcile or the running sweep: a container of this pool found on the engine that must
    /// go. It is counted (past the cap if need be: it exists) until its removal succeeds.
    pub fn doom_found(&mut self, key: &str, id: &str, engine: EngineIx, caps: &Caps) -> Doomed {
        if self.books.contains_key(key) {
            return Doomed::Held;
        }
        if self.draining {
            return Doomed::Draining;
        }
        caps.count_found(engine);
        self.insert(
            key.into(),
            Some(id.into()),
            Slot::Removing { unhealthy: false },
            engine,
        );
        self.check();
        Doomed::Counted
    }

    /// The image reference resolved to `id` on engine `e` (`None`: the engine lacks it);
    /// returns whether it moved there from a known other ID.
    pub fn set_image_id(&mut self, e: EngineIx, id: Option<String>) -> bool {
        self.image_checked.insert(e);
        match id {
            Some(id) => {
                let moved = self.current_image_id.get(&e).is_some_and(|old| *old != id);
                self.current_image_id.insert(e, id);
                moved
            }
            None => {
                self.current_image_id.remove(&e);
                false
            }
        }
    }

    /// Engines went up or down: only containers on `mask` are handed out, and queued acquires
    /// get what became lendable.
    pub fn set_up_mask(&mut self, mask: u64) {
        self.up_mask = mask;
        self.serve_waiters();
        self.check();
    }
}
