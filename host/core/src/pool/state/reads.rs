//! What the books say: every read of a pool's state (counts, queues, breakers, images), none
//! of which changes it. The changes are in the sibling files and `state.rs`.

use super::*;

impl PoolState {
    pub fn counts(&self) -> StateCounts {
        self.counts
    }

    /// Every container the pool counts, in any state.
    pub fn total(&self) -> u32 {
        self.counts.total()
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    pub fn latency(&self) -> &LatencyWindow {
        &self.latency
    }

    pub fn cost(&self) -> &CostMeter {
        &self.cost
    }

    pub fn ready(&self) -> impl Iterator<Item = &ReadyContainer> {
        self.ready.iter()
    }

    /// Ready containers that a commit has not made lendable yet.
    pub fn unlendable(&self) -> usize {
        self.ready.iter().filter(|c| !c.lendable).count()
    }

    pub fn lendable(&self) -> usize {
        self.ready.len() - self.unlendable()
    }

    pub fn creating_cold(&self) -> u32 {
        self.creating_cold
    }

    pub fn waiters(&self) -> u32 {
        self.waiters.len() as u32
    }

    pub fn target(&self) -> (u32, &str) {
        (self.target, &self.target_reason)
    }

    pub fn draining(&self) -> bool {
        self.draining
    }

    /// The most creates in a row that failed on any one engine.
    pub fn consecutive_failures(&self) -> u32 {
        self.breakers.worst()
    }

    /// Creates in a row that failed on engine `e`.
    pub fn failures_on(&self, e: EngineIx) -> u32 {
        self.breakers.failures_on(e)
    }

    /// The end of the earliest create back-off still running, on any engine.
    pub fn next_retry(&self, now: Instant) -> Option<Instant> {
        self.breakers.next_retry(now)
    }

    pub fn breakers(&self) -> &Breakers {
        &self.breakers
    }

    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    pub fn last_acquire(&self) -> Option<Instant> {
        self.last_acquire
    }

    pub fn recent_acquires(&self) -> impl Iterator<Item = &(Instant, AcquireSource)> {
        self.recent_acquires.iter()
    }

    pub fn recent_creates_ms(&self) -> impl Iterator<Item = u32> + '_ {
        self.recent_creates_ms.iter().copied()
    }

    /// Every container in the books: its name, its engine ID once known, and its engine.
    pub fn known(&self) -> impl Iterator<Item = (&str, Option<&str>, EngineIx)> {
        self.books
            .iter()
            .map(|(k, e)| (k.as_str(), e.id.as_deref(), e.engine))
    }

    /// How many of this pool's containers each of `n` engines holds, in any state.
    pub fn per_engine(&self, n: usize) -> Vec<u32> {
        let mut v = vec![0u32; n];
        for e in self.books.values() {
            if let Some(c) = v.get_mut(e.engine) {
                *c += 1;
            }
        }
        v
    }

    /// The pool's containers on engine `e`, by state.
    pub fn counts_on(&self, e: EngineIx) -> StateCounts {
        let mut n = StateCounts::default();
        let mut cold = 0;
        for entry in self.books.values().filter(|x| x.engine == e) {
            Self::count(&mut n, &mut cold, entry.slot, 1);
        }
        n
    }

    /// Whether the pool's image is known present on engine `e` (`None`: not checked yet).
    pub fn image_on(&self, e: EngineIx) -> Option<bool> {
        if self.image_checked.contains(&e) {
            Some(self.current_image_id.contains_key(&e))
        } else {
            None
        }
    }

    /// Ready containers on engines that are up: the ones that serve. Those on a down engine
    /// stay in the books but do not count toward the target, so the pool refills elsewhere.
    pub fn ready_up(&self) -> u32 {
        self.ready
            .iter()
            .filter(|c| has(self.up_mask, c.engine))
            .count() as u32
    }

    /// Ready containers (lendable or not yet) on engines of `mask` that are up.
    pub fn ready_in(&self, mask: u64) -> u32 {
        let mask = mask & self.up_mask;
        self.ready.iter().filter(|c| has(mask, c.engine)).count() as u32
    }

    /// Engines whose containers may be handed out.
    pub fn up_mask(&self) -> u64 {
        self.up_mask
    }

    /// Whether the books hold the container named `key`.
    pub fn holds(&self, key: &str) -> bool {
        self.books.contains_key(key)
    }

    /// Degraded: the breaker of every engine that is up is open (creates failed `threshold`
    /// times in a row there), so no engine makes this pool's containers.
    pub fn degraded(&self, breaker: &BreakerConfig) -> bool {
        self.breakers.degraded(self.up_mask, breaker)
    }

    /// Whether `c` runs an image other than the one the pool's reference resolves to now on
    /// its engine.
    pub fn stale_image(&self, c: &ReadyContainer) -> bool {
        self.current_image_id
            .get(&c.engine)
            .is_some_and(|id| *id != c.created.image_id)
    }
}
