//! An in-memory [`LeaseStore`]: "durable" for as long as the value lives, which is what a test of
//! a restart needs (hand the same store to the next manager). It never blocks, so the core
//! calls it inline, which keeps a simulation exact; it can be told to fail.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use warmpool_core::lease_store::{Change, LeaseStore, Persisted, StoreError};

/// A [`LeaseStore`] held in memory, with switches to make loads or commits fail.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<Persisted>,
    commits: AtomicU64,
    /// When set, commits fail (to test that a failing store never lends).
    pub fail: AtomicBool,
    /// When set, loading fails (the daemon cannot start serving until it works).
    pub fail_load: AtomicBool,
}

impl MemoryStore {
    /// A copy of everything committed so far.
    pub fn snapshot(&self) -> Persisted {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Commits that succeeded so far.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Acquire)
    }

    /// Whether container `id` is in the committed lendable set.
    pub fn is_lendable(&self, id: &str) -> bool {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .lendable
            .contains_key(id)
    }

    /// The store's file is lost: everything committed is gone.
    pub fn lose(&self) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = Persisted::default();
    }

    /// Make every later commit fail (`true`) or succeed again (`false`).
    pub fn set_failing(&self, failing: bool) {
        self.fail.store(failing, Ordering::Release);
    }
}

impl LeaseStore for MemoryStore {
    fn load(&self) -> Result<Persisted, StoreError> {
        if self.fail_load.load(Ordering::Acquire) {
            return Err(StoreError::Load("injected failure".into()));
        }
        Ok(self.snapshot())
    }

    fn commit(&self, changes: &[Change]) -> Result<(), StoreError> {
        if self.fail.load(Ordering::Acquire) {
            return Err(StoreError::Commit("injected failure".into()));
        }
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .apply(changes);
        self.commits.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    fn blocking(&self) -> bool {
        false
    }
}
