//! The container caps: the global one shared by all pools, and one per engine. A container
//! counts against both from the approval of its create until the engine confirms it is gone.

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

/// Which engine a container is on: an index into the manager's engines (at most
/// [`crate::engines::MAX_ENGINES`], so a set of engines fits in a `u64` mask).
pub type EngineIx = usize;

/// The global cap and each engine's own. Every slot is taken on both or on neither.
#[derive(Debug)]
pub struct Caps {
    global: GlobalCap,
    engines: Vec<GlobalCap>,
}

impl Caps {
    /// `global` over all engines, and each engine's own cap (`None`: only the global one).
    pub fn new(global: u32, engines: &[Option<u32>]) -> Self {
        Self {
            global: GlobalCap::new(global),
            engines: engines
                .iter()
                .map(|m| GlobalCap::new(m.unwrap_or(u32::MAX)))
                .collect(),
        }
    }

    /// Reserve one slot on engine `e` and globally; `false` (nothing taken) if either is full.
    pub fn reserve_on(&self, e: EngineIx) -> bool {
        let Some(engine) = self.engines.get(e) else {
            return false;
        };
        if self.global.reserve(1) == 0 {
            return false;
        }
        if engine.reserve(1) == 0 {
            self.global.release(1);
            return false;
        }
        true
    }

    /// Count a container that exists already (found at restart or by the sweep) on engine `e`,
    /// past the caps if need be: a cap cannot undo it.
    pub fn count_found(&self, e: EngineIx) {
        if self.global.reserve(1) == 0 {
            self.global.force(1);
        }
        if let Some(engine) = self.engines.get(e)
            && engine.reserve(1) == 0
        {
            engine.force(1);
        }
    }

    /// The container on engine `e` is gone: free its slots.
    pub fn release_on(&self, e: EngineIx) {
        self.global.release(1);
        if let Some(engine) = self.engines.get(e) {
            engine.release(1);
        }
    }

    /// Free slots under the global cap.
    pub fn free(&self) -> u32 {
        self.global.free()
    }

    /// Slots used under the global cap.
    pub fn used(&self) -> u32 {
        self.global.used()
    }

    /// Slots used on engine `e`.
    pub fn used_on(&self, e: EngineIx) -> u32 {
        self.engines.get(e).map_or(0, GlobalCap::used)
    }

    /// Free slots on engine `e` under its own cap alone.
    pub fn free_on(&self, e: EngineIx) -> u32 {
        self.engines.get(e).map_or(0, GlobalCap::free)
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

    #[test]
    fn a_slot_is_taken_on_both_caps_or_on_neither() {
        let caps = Caps::new(3, &[Some(1), None]);
        assert!(caps.reserve_on(0));
        assert!(!caps.reserve_on(0), "engine 0 is full");
        assert_eq!(
            caps.used(),
            1,
            "the refused reservation gave its global slot back"
        );
        assert!(caps.reserve_on(1));
        assert!(caps.reserve_on(1));
        assert!(!caps.reserve_on(1), "the global cap is full");
        assert_eq!((caps.used_on(0), caps.used_on(1)), (1, 2));
        caps.count_found(0);
        assert_eq!((caps.used(), caps.used_on(0)), (4, 2));
        caps.release_on(0);
        caps.release_on(0);
        assert_eq!((caps.used(), caps.used_on(0)), (2, 0));
        assert!(!caps.reserve_on(7), "no such engine");
    }
}
