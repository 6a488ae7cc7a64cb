//! The changes waiting for the next commit, coalesced: one entry per lease and per container,
//! the latest winning, and a lease or container the store never held simply dropped when it
//! ends. So the backlog never outgrows the live state, however long the store stays down.

use std::collections::{BTreeMap, BTreeSet};

use crate::lease_store::{Change, LeaseRecord};

/// Changes not yet committed, one per key (see the module doc).
#[derive(Debug, Default)]
pub(crate) struct Pending {
    /// Lease ID → the record to put, or `None` to drop it.
    leases: BTreeMap<String, Option<LeaseRecord>>,
    /// Container ID → its pool to add to the lendable set, or `None` to forget it.
    lendable: BTreeMap<String, Option<String>>,
    /// What the store holds, or may hold (a batch in flight): only those need a drop or forget.
    pub(super) stored_leases: BTreeSet<String>,
    pub(super) stored_lendable: BTreeSet<String>,
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
            Change::Clear => {
                self.leases.clear();
                self.lendable.clear();
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.leases.len() + self.lendable.len()
    }

    /// Take everything for a commit. What it puts counts as possibly stored from now on.
    pub(super) fn take(&mut self) -> Vec<Change> {
        let mut out = Vec::with_capacity(self.len());
        for (id, pool) in std::mem::take(&mut self.lendable) {
            match pool {
                Some(pool) => {
                    self.stored_lendable.insert(id.clone());
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
                    self.stored_leases.insert(id);
                    out.push(Change::PutLease(r));
                }
                None => out.push(Change::DropLease(id)),
            }
        }
        out
    }

    /// The batch is in the store: drops and forgets are final.
    pub(super) fn committed(&mut self, batch: &[Change]) {
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
                Change::Clear => {}
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
            container_id: format!("c-{id}"),
            container_name: String::new(),
            image: String::new(),
            image_id: String::new(),
            source: "pool".into(),
            acquired_at_ms: 0,
            expires_at_ms: 0,
            born_at_ms: 0,
            uses: 1,
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
        let next = p.take();
        assert_eq!(next, vec![Change::DropLease("a".into())]);
        p.committed(&next);
        assert!(p.stored_leases.is_empty());
    }
}
