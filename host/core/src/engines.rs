//! The engines one manager drives, and where a new container goes.
//!
//! Each engine has its own backend, its own up/down state (its own monitor), its own event
//! stream and running sweep, and its own cap under the global one ([`crate::caps::Caps`]). The
//! pools' books record each container's engine, so every call about a container goes to the
//! engine that holds it, and a container on an engine that is down is never handed out.
//!
//! Placement happens inside the refill's approval, under the pool's lock, so an approval names
//! its engine and holds a slot on that engine's cap before anything is spawned ([`place`]).
//! Engines are fixed for the life of the process (a reload that changes them asks for a
//! restart), so an index names an engine everywhere, and a set of engines is a `u64` mask.

use std::collections::BTreeMap;

use crate::caps::{Caps, EngineIx};

/// Most engines one daemon drives: a set of engines is a bit mask.
pub const MAX_ENGINES: usize = 64;

/// One engine as configured: the core knows its name, labels and cap, never how it is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineSpec {
    /// Unique name: shown on every lease, event and stat of its containers.
    pub name: String,
    /// Free-form labels an acquire may filter on (`{"zone": "a"}`).
    pub labels: BTreeMap<String, String>,
    /// This engine's own cap, under the global one; `None`: only the global cap.
    pub max_containers: Option<u32>,
}

impl EngineSpec {
    /// The engine of a single-engine daemon (`docker.endpoint`).
    pub fn single() -> Self {
        Self {
            name: "default".into(),
            labels: BTreeMap::new(),
            max_containers: None,
        }
    }
}

/// One engine as the core sees it, for `GET /v1/engines` and the metrics.
#[derive(Debug, Clone, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EngineStats {
    /// Its name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Answered its monitor's last ping, and its startup cleanup is done.
    pub up: bool,
    /// The last error its monitor or a call saw (kept after it recovers).
    pub last_error: Option<String>,
    /// Its own cap; `null`: only the global one.
    pub max_containers: Option<u32>,
    /// Containers its cap counts now (every state, orphans included).
    pub counted: u32,
    /// Containers the pools hold there, by state (orphans count as removing).
    pub containers: crate::counters::StateCounts,
    /// Median of its recent creates, in ms; `null` before the first.
    pub create_p50_ms: Option<u32>,
    /// The OCI runtimes it registered, as last read; `null` before it answered.
    pub runtimes: Option<crate::backend::Runtimes>,
}

/// The bit of engine `e` in a mask.
pub fn bit(e: EngineIx) -> u64 {
    if e < MAX_ENGINES { 1 << e } else { 0 }
}

/// Whether mask `m` holds engine `e`.
pub fn has(m: u64, e: EngineIx) -> bool {
    m & bit(e) != 0
}

/// How many containers of spread a missing image is worth: an engine without the image gets a
/// pool's containers once the others hold that many more.
pub const IMAGE_MISSING_COST: u32 = 2;

/// What the placer knows of one engine when it approves a create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineView {
    /// Up, and allowed for this create (a label filter, the engine's own state).
    pub eligible: bool,
    /// Whether the pool's image is known present there; `None`: not checked yet.
    pub image_present: Option<bool>,
    /// Median create time there; `None`: none measured yet.
    pub create_p50_ms: Option<u32>,
}

/// Choose the engine for one new container of a pool and take a slot on its cap and the
/// global one. `on_engine[e]` is how many of this pool's containers engine `e` holds (counted
/// in the books, creates included). Returns `None`, taking nothing, when no eligible engine
/// has room.
///
/// The score, best first: the pool has the fewest containers there (spread, so losing one
/// engine loses the least), where an engine that lacks the image counts as holding
/// [`IMAGE_MISSING_COST`] more (its first create pulls or copies the image); then the most free
/// room under the engine's own cap; then the fastest creates. Ties go to the lowest index, so
/// placement is deterministic for a given state (the simulation relies on it).
pub fn place(views: &[EngineView], on_engine: &[u32], caps: &Caps) -> Option<EngineIx> {
    let mut order: Vec<EngineIx> = (0..views.len()).filter(|&e| views[e].eligible).collect();
    order.sort_by_key(|&e| {
        let v = views[e];
        let missing = if v.image_present == Some(false) {
            IMAGE_MISSING_COST
        } else {
            0
        };
        (
            on_engine.get(e).copied().unwrap_or(0) + missing,
            std::cmp::Reverse(caps.free_on(e)),
            v.create_p50_ms.unwrap_or(0),
        )
    });
    order.into_iter().find(|&e| caps.reserve_on(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(caps: Caps) -> Caps {
        for e in 0..3 {
            caps.seen(e);
        }
        caps
    }

    fn view(eligible: bool) -> EngineView {
        EngineView {
            eligible,
            image_present: Some(true),
            create_p50_ms: None,
        }
    }

    #[test]
    fn spreads_a_pool_and_respects_every_cap() {
        let caps = seen(Caps::new(5, &[None, Some(1), None]));
        let views = [view(true), view(true), view(true)];
        let mut on = [0u32; 3];
        let mut got = Vec::new();
        while let Some(e) = place(&views, &on, &caps) {
            on[e] += 1;
            got.push(e);
        }
        assert_eq!(
            got,
            vec![0, 2, 1, 0, 2],
            "spread (more room first), engine 1 capped at 1, global at 5"
        );
        assert_eq!(caps.used(), 5);
    }

    #[test]
    fn skips_ineligible_engines_and_prefers_the_image() {
        let caps = seen(Caps::new(10, &[None, None, None]));
        let mut views = [view(false), view(true), view(true)];
        views[1].image_present = Some(false);
        assert_eq!(place(&views, &[0, 0, 0], &caps), Some(2));
        assert_eq!(
            place(&views, &[0, 0, 5], &caps),
            Some(1),
            "spread beats the image"
        );
        let none = [view(false); 3];
        assert_eq!(place(&none, &[0, 0, 0], &caps), None);
        assert_eq!(caps.used(), 2);
    }

    #[test]
    fn masks() {
        assert!(has(bit(3) | bit(0), 3));
        assert!(!has(bit(3), 2));
        assert_eq!(bit(64), 0);
    }
}
