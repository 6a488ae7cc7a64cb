//! The global container cap, shared by all pools.

use std::sync::atomic::{AtomicU32, Ordering};

/// Slots for containers over all pools. A slot is reserved *before* a create starts and given
/// back only once the container is gone, so the cap holds for containers being created and
/// removed too.
#[derive(Debug)]
pub struct GlobalCap {
    max: u32,
    used: AtomicU32,
}

impl GlobalCap {
    pub fn new(max: u32) -> Self {
        Self {
            max,
            used: AtomicU32::new(0),
        }
    }

    /// Reserve up to `wanted` slots; returns how many were granted.
    pub fn reserve(&self, wanted: u32) -> u32 {
        let mut granted = 0;
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                granted = wanted.min(self.max.saturating_sub(used));
                Some(used + granted)
            });
        granted
    }

    /// Count `n` slots past the cap: for containers that exist already (a lease re-attached
    /// at restart), which a cap cannot undo.
    pub fn force(&self, n: u32) {
        self.used.fetch_add(n, Ordering::AcqRel);
    }

    pub fn release(&self, n: u32) {
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                Some(used.saturating_sub(n))
            });
    }

    pub fn free(&self) -> u32 {
        self.max.saturating_sub(self.used.load(Ordering::Acquire))
    }

    pub fn used(&self) -> u32 {
        self.used.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_grants_past_the_cap() {
        let cap = GlobalCap::new(5);
        assert_eq!(cap.reserve(3), 3);
        assert_eq!(cap.reserve(3), 2);
        assert_eq!(cap.reserve(1), 0);
        cap.release(4);
        assert_eq!(cap.free(), 4);
    }
}
