//! Lease hibernation: a leased container suspended (checkpointed and stopped) and resumed.
//!
//! A suspend or resume runs on the engine without the pool's lock; meanwhile the lease may end
//! (a release, an expiry, a death), which moves its container to `removing`. So these moves are
//! made only from the state they expect, and answer `false`, changing nothing, when the lease
//! ended first: that is a lost race, not a broken invariant.

use super::*;

impl PoolState {
    /// The leased container `key` was checkpointed and stopped, in `took`.
    pub fn suspended(&mut self, key: &str, took: Option<Duration>) -> bool {
        if self.books.get(key).map(|e| e.slot) != Some(Slot::Leased) {
            return false;
        }
        self.moved(key, |s| s == Slot::Leased, Slot::Suspended);
        self.counters.suspends_total += 1;
        if let Some(d) = took {
            self.hibernation.suspend.observe(d);
        }
        self.check();
        true
    }

    /// The suspended container `key` was restored and runs again, in `took`.
    pub fn resumed(&mut self, key: &str, took: Option<Duration>) -> bool {
        if self.books.get(key).map(|e| e.slot) != Some(Slot::Suspended) {
            return false;
        }
        self.moved(key, |s| s == Slot::Suspended, Slot::Leased);
        self.counters.resumes_total += 1;
        if let Some(d) = took {
            self.hibernation.resume.observe(d);
        }
        self.check();
        true
    }

    /// A suspend or resume lost the container's memory; the caller ends the lease.
    pub fn hibernation_lost(&mut self) {
        self.counters.hibernation_losses += 1;
    }

    /// How long suspends and resumes took.
    pub fn hibernation_times(&self) -> crate::counters::HibernationTimes {
        self.hibernation
    }
}
