//! The group commit's part in scale overrides: the write a client waits for
//! ([`GroupCommit::commit_now`]), and the one restore at startup, which a reload's clear may
//! overtake ([`GroupCommit::restore_scales_once`], [`GroupCommit::scale_cleared`]).

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;

use tokio_util::sync::CancellationToken;

use super::GroupCommit;
use crate::lease_store::Change;
use crate::sync::lock;

impl GroupCommit {
    /// Apply the scale overrides loaded at startup, once: `apply` is called the first time
    /// only, with the pools a reload cleared meanwhile (their overrides stay dropped).
    pub(crate) fn restore_scales_once(&self, apply: impl FnOnce(&BTreeSet<String>)) {
        let early = lock(&self.cleared_early);
        if self.scales_restored.load(Ordering::Acquire) {
            return;
        }
        apply(&early);
        self.scales_restored.store(true, Ordering::Release);
    }

    /// A reload cleared pool `name`'s override or removed the pool: forget it in the store,
    /// and, before the restore, keep the restore from bringing it back.
    pub(crate) fn scale_cleared(&self, name: &str) {
        {
            let mut early = lock(&self.cleared_early);
            if !self.scales_restored.load(Ordering::Acquire) {
                early.insert(name.to_string());
            }
        }
        self.record(Change::DropScale(name.to_string()));
    }

    /// Whether a scale request may be served: not before the stored overrides are back, or
    /// one of them could overwrite a newer request's.
    pub(crate) fn scales_ready(&self) -> bool {
        self.scales_restored.load(Ordering::Acquire)
    }

    /// Write `change` now, with everything pending, then run `apply` (which makes memory say
    /// what the store now does), all under the round's lock: no round runs meanwhile, and two
    /// such changes land, and are applied, in the order they were made. Refused once shutdown
    /// began (its flush or clear writes what is pending). On a failure nothing is applied and
    /// `change` stays pending, for the caller to overwrite with what memory holds.
    pub(crate) async fn commit_now<R>(
        &self,
        change: Change,
        cancel: &CancellationToken,
        apply: impl FnOnce() -> R,
    ) -> Result<R, String> {
        let _round = self.round.lock().await;
        if cancel.is_cancelled() {
            return Err("the daemon is shutting down".into());
        }
        let changes = {
            let mut pend = lock(&self.pending);
            pend.push(change);
            pend.take()
        };
        let t0 = std::time::Instant::now();
        let batch = changes.clone();
        let result = self.run(move |s| s.commit(&batch)).await;
        self.last_commit_us
            .store(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
        match result {
            Ok(()) => {
                self.commits.fetch_add(1, Ordering::Relaxed);
                lock(&self.pending).committed(&changes);
                Ok(apply())
            }
            Err(e) => {
                self.commit_failures.fetch_add(1, Ordering::Relaxed);
                lock(&self.pending).failed(changes);
                Err(e)
            }
        }
    }
}
