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
///
/// What an engine holds is unknown until its startup reconcile has listed it (it may be
/// unreachable when the daemon starts, holding what an earlier run left). Until then the
/// global cap counts it as full: its own `max_containers`, or the whole global cap when it has
/// none. So the other engines never create past the global cap on the strength of an engine
/// nobody has seen; [`Caps::seen`] swaps the guess for the containers actually found.
#[derive(Debug)]
pub struct Caps {
    global: GlobalCap,
    engines: Vec<GlobalCap>,
    /// Per engine: the slots held for it until it is seen (0 once seen).
    unseen: Vec<AtomicU32>,
}

impl Caps {
    /// `global` over all engines, and each engine's own cap (`None`: only the global one).
    pub fn new(global: u32, engines: &[Option<u32>]) -> Self {
        let g = GlobalCap::new(global);
        let unseen = engines
            .iter()
            .map(|m| {
                let guess = m.unwrap_or(global).min(global);
                g.force(guess);
                AtomicU32::new(guess)
            })
            .collect();
        Self {
            global: g,
            engines: engines
                .iter()
                .map(|m| GlobalCap::new(m.unwrap_or(u32::MAX)))
                .collect(),
            unseen,
        }
    }

    /// Engine `e` was listed and what it holds is counted: give back the slots held for it.
    pub fn seen(&self, e: EngineIx) {
        if let Some(u) = self.unseen.get(e) {
            let n = u.swap(0, Ordering::AcqRel);
            self.global.release(n);
        }
    }

    /// Slots held for engines not seen yet.
    fn held_unseen(&self) -> u32 {
        self.unseen.iter().map(|u| u.load(Ordering::Acquire)).sum()
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
    /// past the caps if need be: a cap cannot undo it. A slot held for `e` while it was unseen
    /// is used first.
    pub fn count_found(&self, e: EngineIx) {
        if !self.take_unseen(e) && self.global.reserve(1) == 0 {
            self.global.force(1);
        }
        if let Some(engine) = self.engines.get(e)
            && engine.reserve(1) == 0
        {
            engine.force(1);
        }
    }

    /// Count a container found on engine `e` that is kept only if the caps have room for it
    /// (a re-adoption); a slot held for `e` while it was unseen is used first. `false`: no
    /// room, nothing taken.
    pub fn reserve_found(&self, e: EngineIx) -> bool {
        let Some(engine) = self.engines.get(e) else {
            return false;
        };
        if engine.reserve(1) == 0 {
            return false;
        }
        if self.take_unseen(e) || self.global.reserve(1) == 1 {
            return true;
        }
        engine.release(1);
        false
    }

    /// Move one slot held for unseen engine `e` to a counted container; `false` if none is left.
    fn take_unseen(&self, e: EngineIx) -> bool {
        self.unseen.get(e).is_some_and(|u| {
            u.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                .is_ok()
        })
    }

    /// The container on engine `e` is gone: free its slots.
    pub fn release_on(&self, e: EngineIx) {
        self.global.release(1);
        if let Some(engine) = self.engines.get(e) {
            engine.release(1);
        }
    }

    /// The most containers the caps let exist at once: the global cap, or the engines' own
    /// caps added up when that is lower. A scale override's floors must fit in it, as the
    /// config's `min_ready`s must.
    pub fn capacity(&self) -> u32 {
        let engines = self
            .engines
            .iter()
            .fold(0u32, |sum, e| sum.saturating_add(e.max));
        self.global.max.min(engines)
    }

    /// Free slots under the global cap.
    pub fn free(&self) -> u32 {
        self.global.free()
    }

    /// Containers counted under the global cap (the slots held for unseen engines excluded).
    pub fn used(&self) -> u32 {
        self.global.used().saturating_sub(self.held_unseen())
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
    fn an_unseen_engine_counts_as_full_until_it_is_seen() {
        let caps = Caps::new(10, &[None, Some(4)]);
        assert_eq!(
            caps.free(),
            0,
            "engine 0 has no cap of its own: it may hold anything"
        );
        caps.seen(0);
        assert_eq!(caps.free(), 6, "engine 1 may hold its own cap of 4");
        assert_eq!(caps.used(), 0);
        caps.count_found(1);
        caps.seen(1);
        caps.seen(1);
        assert_eq!((caps.free(), caps.used()), (9, 1));
    }

    #[test]
    fn a_slot_is_taken_on_both_caps_or_on_neither() {
        let caps = Caps::new(3, &[Some(1), None]);
        caps.seen(0);
        caps.seen(1);
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
