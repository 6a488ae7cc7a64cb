//! The changes waiting for the next commit, coalesced: one entry per lease and per container,
//! the latest winning, and a lease or container the store never held simply dropped when it
//! ends. So the backlog never outgrows the live state, however long the store stays down.
//!
//! A batch in flight may land, so what it puts counts as possibly stored until it is known;
//! when it fails, what only it put is known never to have been stored again (otherwise every
//! lease lent from a lendable container during an outage would leave a drop behind, and the
//! backlog would grow with the outage).
//!
//! Scale overrides are one entry per pool, the latest winning; their drops are always sent
//! (removing what the store lacks is harmless, and there are at most as many as pools).

use std::collections::{BTreeMap, BTreeSet};

use crate::lease_store::{Change, LeaseRecord, ScaleRecord};

/// Changes not yet committed, one per key (see the module doc).
#[derive(Debug, Default)]
pub(crate) struct Pending {
    /// Lease ID → the record to put, or `None` to drop it.
    leases: BTreeMap<String, Option<LeaseRecord>>,
    /// Container ID → its pool to add to the lendable set, or `None` to forget it.
    lendable: BTreeMap<String, Option<String>>,
    /// Pool name → its scale override to put, or `None` to drop it.
    scales: BTreeMap<String, Option<ScaleRecord>>,
    /// What the store holds, or may hold (a batch in flight): only those need a drop or forget.
    pub(super) stored_leases: BTreeSet<String>,
    pub(super) stored_lendable: BTreeSet<String>,
    /// What the batch in flight alone made "possibly stored" (leases, containers): if it
    /// fails, the store never held them.
    fresh: (Vec<String>, Vec<String>),
}

impl Pending {
    pub(super) fn push(&mut self, c: Change) {
        match c {
            Change::PutLease(r) => {
                self.leases.insert(r.lease_id.clone(), Some(r));
            }
            Change::DropLease(id) => {
                if self.stored_leases.contains(&id) {
                    self.leases.insert(id, None);
                } else {
                    self.leases.remove(&id);
                }
            }
            Change::Lendable { container, pool } => {
                self.lendable.insert(container, Some(pool));
            }
            Change::Forget(id) => {
                if self.stored_lendable.contains(&id) {
                    self.lendable.insert(id, None);
                } else {
                    self.lendable.remove(&id);
                }
            }
            Change::PutScale(r) => {
                self.scales.insert(r.pool.clone(), Some(r));
            }
            Change::DropScale(pool) => {
                self.scales.insert(pool, None);
            }
            // Scale overrides are not the daemon's bookkeeping: a clear keeps them.
            Change::Clear => {
                self.leases.clear();
                self.lendable.clear();
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.leases.len() + self.lendable.len() + self.scales.len()
    }

    /// Take only the scale overrides (for the clear at a clean shutdown, which writes no lease).
    pub(super) fn take_scales(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.scales)
            .into_iter()
            .map(|(pool, r)| r.map_or(Change::DropScale(pool), Change::PutScale))
            .collect()
    }

    /// Take everything for a commit. What it puts counts as possibly stored from now on.
    pub(super) fn take(&mut self) -> Vec<Change> {
        let mut out = Vec::with_capacity(self.len());
        out.extend(self.take_scales());
        for (id, pool) in std::mem::take(&mut self.lendable) {
            match pool {
                Some(pool) => {
                    if self.stored_lendable.insert(id.clone()) {
                        self.fresh.1.push(id.clone());
                    }
                    out.push(Change::Lendable {
                        container: id,
                        pool,
                    });
                }
                None => out.push(Change::Forget(id)),
            }
        }
        for (id, rec) in std::mem::take(&mut self.leases) {
            match rec {
                Some(r) => {
                    if self.stored_leases.insert(id.clone()) {
                        self.fresh.0.push(id);
                    }
                    out.push(Change::PutLease(r));
                }
                None => out.push(Change::DropLease(id)),
            }
        }
        out
    }

    /// Containers the batch in flight promotes to the lendable set, besides what it took.
    pub(super) fn promoting(&mut self, ids: &[String]) {
        for id in ids {
            if self.stored_lendable.insert(id.clone()) {
                self.fresh.1.push(id.clone());
            }
        }
    }

    /// The batch is in the store: drops and forgets are final.
    pub(super) fn committed(&mut self, batch: &[Change]) {
        self.fresh = Default::default();
        for c in batch {
            match c {
                Change::DropLease(id) if !self.leases.contains_key(id) => {
                    self.stored_leases.remove(id);
                }
                Change::Forget(id) if !self.lendable.contains_key(id) => {
                    self.stored_lendable.remove(id);
                }
                _ => {}
            }
        }
    }

    /// The batch failed: put it back under whatever changed since (the newer change wins).
    pub(super) fn failed(&mut self, batch: Vec<Change>) {
        for c in batch {
            match c {
                Change::PutLease(r) => {
                    self.leases.entry(r.lease_id.clone()).or_insert(Some(r));
                }
                Change::DropLease(id) => {
                    self.leases.entry(id).or_insert(None);
                }
                Change::Lendable { container, pool } => {
                    self.lendable.entry(container).or_insert(Some(pool));
                }
                Change::Forget(id) => {
                    self.lendable.entry(id).or_insert(None);
                }
                Change::PutScale(r) => {
                    self.scales.entry(r.pool.clone()).or_insert(Some(r));
                }
                Change::DropScale(pool) => {
                    self.scales.entry(pool).or_insert(None);
                }
                Change::Clear => {}
            }
        }
        // What only this batch put was never stored: not "possibly stored" any more, and a
        // drop or forget of it waiting since has nothing to remove.
        let (leases, lendable) = std::mem::take(&mut self.fresh);
        for id in leases {
            self.stored_leases.remove(&id);
            if matches!(self.leases.get(&id), Some(None)) {
                self.leases.remove(&id);
            }
        }
        for id in lendable {
            self.stored_lendable.remove(&id);
            if matches!(self.lendable.get(&id), Some(None)) {
                self.lendable.remove(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str) -> LeaseRecord {
        LeaseRecord {
            engine: None,
            lease_id: id.into(),
            pool: "p".into(),
            owner: None,
            tenant: None,
            container_id: format!("c-{id}"),
            container_name: String::new(),
            image: String::new(),
            image_id: String::new(),
            source: "pool".into(),
            acquired_at_ms: 0,
            expires_at_ms: 0,
            born_at_ms: 0,
            uses: 1,
            resources: None,
            suspended_at_ms: None,
        }
    }

    #[test]
    fn a_lease_the_store_never_held_leaves_nothing_behind() {
        let mut p = Pending::default();
        for i in 0..10_000 {
            let id = format!("l{i}");
            p.push(Change::PutLease(rec(&id)));
            p.push(Change::PutLease(rec(&id))); // a renewal
            p.push(Change::DropLease(id.clone()));
            p.push(Change::Lendable {
                container: format!("c{i}"),
                pool: "p".into(),
            });
            p.push(Change::Forget(format!("c{i}")));
        }
        assert_eq!(p.len(), 0, "churn against a failing store must not pile up");
    }

    #[test]
    fn a_failed_batch_comes_back_under_newer_changes() {
        let mut p = Pending::default();
        p.push(Change::PutLease(rec("a")));
        let batch = p.take();
        // While the batch is in flight, the lease ends: its drop must survive the failure.
        p.push(Change::DropLease("a".into()));
        p.failed(batch);
        // The store never held it: nothing is left to drop.
        assert_eq!(p.len(), 0);
        assert!(p.take().is_empty());
        assert!(p.stored_leases.is_empty());
    }

    #[test]
    fn a_drop_of_a_lease_the_store_holds_survives_a_failed_batch() {
        let mut p = Pending::default();
        p.push(Change::PutLease(rec("a")));
        let first = p.take();
        p.committed(&first);
        p.push(Change::PutLease(rec("a"))); // a renewal
        let batch = p.take();
        p.push(Change::DropLease("a".into()));
        p.failed(batch);
        let next = p.take();
        assert_eq!(next, vec![Change::DropLease("a".into())]);
        p.committed(&next);
        assert!(p.stored_leases.is_empty());
    }

    fn scale(pool: &str, min: u32) -> ScaleRecord {
        ScaleRecord {
            pool: pool.into(),
            min_ready: min,
            max_ready: 9,
            config_sizes: [1, 9, 12],
        }
    }

    /// One entry per pool, the latest winning; a failed batch comes back under newer ones;
    /// a clear keeps them.
    #[test]
    fn scale_overrides_coalesce_per_pool_and_outlive_a_clear() {
        let mut p = Pending::default();
        p.push(Change::PutScale(scale("a", 1)));
        p.push(Change::DropScale("a".into()));
        p.push(Change::PutScale(scale("a", 3)));
        p.push(Change::Clear);
        assert_eq!(p.len(), 1);
        let batch = p.take();
        assert_eq!(batch, vec![Change::PutScale(scale("a", 3))]);
        p.push(Change::DropScale("a".into()));
        p.failed(batch);
        assert_eq!(p.take(), vec![Change::DropScale("a".into())]);
    }

    /// Regression (simulation, issue 21): leases lent from lendable containers while the
    /// store fails each left a drop behind, so the backlog grew with the outage.
    #[test]
    fn leases_lent_while_the_store_fails_leave_no_backlog() {
        let mut p = Pending::default();
        for i in 0..1_000 {
            let id = format!("l{i}");
            p.push(Change::PutLease(rec(&id)));
            let batch = p.take();
            p.push(Change::DropLease(id.clone()));
            p.failed(batch);
            p.push(Change::Lendable {
                container: format!("c{i}"),
                pool: "p".into(),
            });
            let batch = p.take();
            p.promoting(&[format!("d{i}")]);
            p.failed(batch);
            p.push(Change::Forget(format!("c{i}")));
            p.push(Change::Forget(format!("d{i}")));
        }
        assert_eq!(
            p.len(),
            0,
            "an outage must not pile up drops of what was never stored"
        );
        assert!(p.stored_leases.is_empty() && p.stored_lendable.is_empty());
    }
}
