//! A pool's create breakers, one per engine.
//!
//! Creates fail for two kinds of reasons: the pool's own (a bad image, a command that exits at
//! once), which fail on every engine, and an engine's (a full disk, a broken runtime), which
//! fail there alone. One breaker per pool and engine covers both: a bad engine opens its own
//! breaker and the pool refills on the others, while a bad pool opens every breaker and the
//! pool as a whole is `degraded`. With one engine this is exactly the single breaker of a
//! single-engine daemon.
//!
//! Each breaker counts consecutive failures (a failed create, or a fresh container that died in
//! probation) and backs off after each, doubling up to the configured ceiling. At `threshold`
//! failures it opens: the placer then sends that engine one trial create at a time, and none
//! while its last fresh container there is still in probation. Lending a fresh container made
//! there closes it.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::caps::EngineIx;
use crate::config::BreakerConfig;
use crate::engines::has;

/// One engine's breaker for one pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Breaker {
    /// Creates on this engine that failed in a row.
    pub failures: u32,
    /// No refill create on this engine before this instant.
    pub retry_at: Option<Instant>,
    /// When the first failure of the current streak happened: only a container made after it
    /// proves the engine works again.
    pub since: Option<Instant>,
}

/// A pool's breakers; engines that never failed have none.
#[derive(Debug, Clone, Default)]
pub struct Breakers(BTreeMap<EngineIx, Breaker>);

impl Breakers {
    /// A create on `e` failed through the pool's fault or the engine's: count it and back off.
    /// Returns the engine's consecutive failures.
    pub fn failed(&mut self, e: EngineIx, cfg: &BreakerConfig, now: Instant) -> u32 {
        let b = self.0.entry(e).or_default();
        if b.failures == 0 {
            b.since = Some(now);
        }
        b.failures = b.failures.saturating_add(1);
        b.retry_at = Some(now + cfg.backoff(b.failures));
        b.failures
    }

    /// The engine was unreachable: back off there without counting it against the breaker
    /// (the engine's monitor reports the outage).
    pub fn unreachable(&mut self, e: EngineIx, cfg: &BreakerConfig, now: Instant) {
        let b = self.0.entry(e).or_default();
        // Never shorter than a failure's back-off already running there.
        b.retry_at = b.retry_at.max(Some(now + cfg.base_backoff));
    }

    /// A create on `e` answered: no back-off there (the count stays until a fresh container
    /// made there is lent, so a breaker does not close on a container that then dies young).
    pub fn created(&mut self, e: EngineIx) {
        if let Some(b) = self.0.get_mut(&e) {
            b.retry_at = None;
        }
        self.forget_idle(e);
    }

    /// A fresh container from `e`, ready since `made`, was lent or passed probation: if it was
    /// made after the current failure streak began, that engine's creates work for this pool
    /// again and the count starts over. One made before proves nothing (an old container
    /// sitting ready would otherwise reset the count every tick, and the breaker would never
    /// open). A back-off still running stays either way: ending it here would let every lend
    /// (and every reaper tick) send the next create at once, a storm.
    pub fn closed(&mut self, e: EngineIx, made: Instant) {
        if let Some(b) = self.0.get_mut(&e)
            && b.since.is_none_or(|s| made >= s)
        {
            b.failures = 0;
            b.since = None;
        }
        self.forget_idle(e);
    }

    /// Drop `e`'s breaker once it counts nothing and holds no back-off.
    fn forget_idle(&mut self, e: EngineIx) {
        if self
            .0
            .get(&e)
            .is_some_and(|b| b.failures == 0 && b.retry_at.is_none())
        {
            self.0.remove(&e);
        }
    }

    pub fn failures_on(&self, e: EngineIx) -> u32 {
        self.0.get(&e).map_or(0, |b| b.failures)
    }

    pub fn is_open(&self, e: EngineIx, cfg: &BreakerConfig) -> bool {
        self.failures_on(e) >= cfg.threshold
    }

    /// Whether the refill may place a create on `e` now, given `trials` creates or fresh
    /// containers in probation the pool already has there: not while it backs off, and only
    /// one trial at a time once open.
    pub fn admits(&self, e: EngineIx, trials: u32, cfg: &BreakerConfig, now: Instant) -> bool {
        let Some(b) = self.0.get(&e) else { return true };
        let waiting = b.retry_at.is_some_and(|t| now < t);
        !waiting && (b.failures < cfg.threshold || trials == 0)
    }

    /// The pool is degraded when the breaker of every engine that is up is open (of every
    /// engine it has a breaker for, when none is up): no engine makes its containers.
    pub fn degraded(&self, up_mask: u64, cfg: &BreakerConfig) -> bool {
        let open = |e: &EngineIx| self.is_open(*e, cfg);
        if up_mask == 0 {
            return self.0.keys().any(open);
        }
        (0..crate::engines::MAX_ENGINES)
            .filter(|&e| has(up_mask, e))
            .all(|e| open(&e))
    }

    /// The most consecutive failures on any engine (the pool's figure in its stats).
    pub fn worst(&self) -> u32 {
        self.0.values().map(|b| b.failures).max().unwrap_or(0)
    }

    /// The earliest back-off still running after `now`, if any.
    pub fn next_retry(&self, now: Instant) -> Option<Instant> {
        self.0
            .values()
            .filter_map(|b| b.retry_at)
            .filter(|t| *t > now)
            .min()
    }

    /// Every engine where creates failed since they last worked: failures and back-off.
    pub fn iter(&self) -> impl Iterator<Item = (EngineIx, Breaker)> + '_ {
        self.0
            .iter()
            .filter(|(_, b)| b.failures > 0)
            .map(|(e, b)| (*e, *b))
    }

    /// Time left of `e`'s back-off.
    pub fn backoff_left(&self, e: EngineIx, now: Instant) -> Option<Duration> {
        self.0
            .get(&e)
            .and_then(|b| b.retry_at)
            .filter(|t| *t > now)
            .map(|t| t - now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> BreakerConfig {
        BreakerConfig {
            threshold: 3,
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
        }
    }

    #[test]
    fn an_engine_opens_alone_and_the_pool_degrades_only_when_all_are_open() {
        let (c, now) = (cfg(), Instant::now());
        let mut b = Breakers::default();
        for _ in 0..3 {
            b.failed(1, &c, now);
        }
        assert!(b.is_open(1, &c) && !b.is_open(0, &c));
        assert!(!b.degraded(0b11, &c), "engine 0 still makes containers");
        assert!(
            b.degraded(0b10, &c),
            "engine 0 is down: nothing makes containers"
        );
        assert!(
            b.degraded(0, &c),
            "nothing up: an open breaker says degraded"
        );
        for _ in 0..3 {
            b.failed(0, &c, now);
        }
        assert!(b.degraded(0b11, &c));
        b.closed(0, now - Duration::from_secs(1));
        assert!(
            b.degraded(0b11, &c),
            "a container older than the streak proves nothing"
        );
        b.closed(0, now);
        assert!(!b.degraded(0b11, &c));
        assert_eq!(b.worst(), 3);
    }

    #[test]
    fn back_off_then_one_trial_at_a_time() {
        let (c, now) = (cfg(), Instant::now());
        let mut b = Breakers::default();
        assert!(b.admits(0, 5, &c, now), "no breaker: no limit");
        b.failed(0, &c, now);
        assert!(!b.admits(0, 0, &c, now), "backing off");
        assert!(b.admits(0, 3, &c, now + Duration::from_millis(100)));
        b.failed(0, &c, now);
        b.failed(0, &c, now);
        let later = now + Duration::from_secs(1);
        assert!(b.admits(0, 0, &c, later) && !b.admits(0, 1, &c, later));
        b.unreachable(1, &c, now);
        assert_eq!(b.failures_on(1), 0, "an outage is not a failure");
        b.unreachable(0, &c, now);
        assert!(
            b.backoff_left(0, now) > Some(Duration::from_millis(100)),
            "not shortened"
        );
        assert_eq!(b.next_retry(now), Some(now + Duration::from_millis(100)));
        b.created(1);
        assert_eq!(b.backoff_left(1, now), None);
        // Closing ends the count, not a back-off still running.
        b.closed(0, now);
        assert_eq!(b.failures_on(0), 0);
        assert!(!b.admits(0, 0, &c, now), "the back-off still runs");
        assert_eq!(b.iter().count(), 0, "nothing counts failures any more");
    }
}
