//! Restart and the running sweep: ready containers re-adopted, leases re-attached, and found
//! containers doomed, each counted against the cap; and the image ID the reference resolves to.

use super::*;

impl PoolState {
    /// Reconcile: a ready container of an earlier run, re-adopted (it was never lent). Returns
    /// `false`, changing nothing, when the cap has no room for it.
    pub fn adopt(&mut self, c: ReadyContainer, cap: &GlobalCap) -> bool {
        if cap.reserve(1) == 0 {
            return false;
        }
        self.insert(c.key().to_string(), Some(c.created.id.clone()), Slot::Ready);
        self.counters.adopted_total += 1;
        self.ready_push(c);
        self.check();
        true
    }

    /// Reconcile: a persisted lease's container, counted as leased even past the cap (it
    /// exists already, and a cap cannot undo that).
    pub fn reattach(&mut self, c: &ReadyContainer, cap: &GlobalCap) {
        if cap.reserve(1) == 0 {
            cap.force(1);
        }
        self.insert(
            c.key().to_string(),
            Some(c.created.id.clone()),
            Slot::Leased,
        );
        self.check();
    }

    /// Reconcile or the running sweep: a container of this pool found on the engine that must
    /// go. It is counted (past the cap if need be: it exists) until its removal succeeds.
    /// Returns `false` if the books already hold it.
    pub fn doom_found(&mut self, key: &str, id: &str, cap: &GlobalCap) -> bool {
        if self.books.contains_key(key) {
            return false;
        }
        if cap.reserve(1) == 0 {
            cap.force(1);
        }
        self.insert(
            key.into(),
            Some(id.into()),
            Slot::Removing { unhealthy: false },
        );
        self.check();
        true
    }

    /// The image reference resolved to `id`; returns whether it moved from a known other ID.
    pub fn set_image_id(&mut self, id: String) -> bool {
        let moved = self.current_image_id.as_ref().is_some_and(|old| *old != id);
        self.current_image_id = Some(id);
        moved
    }
}
