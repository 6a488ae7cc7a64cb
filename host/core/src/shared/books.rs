//! The pool map: the serving pools (swapped whole by a config reload; readers take a snapshot)
//! and the pools a reload removed, kept until their books are empty (the sweep must know their
//! containers, and their removals report to them). This file is the only code that changes
//! either; each pool's own books are in [`crate::pool`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::pool::Pool;
use crate::sync::lock;

/// The serving pools by name, and the retired ones still draining.
pub(crate) struct Books {
    pools: ArcSwap<BTreeMap<String, Arc<Pool>>>,
    retired: Mutex<Vec<Arc<Pool>>>,
}

impl Books {
    pub fn new(pools: BTreeMap<String, Arc<Pool>>) -> Self {
        Self {
            pools: ArcSwap::from_pointee(pools),
            retired: Mutex::default(),
        }
    }

    /// A snapshot of the serving pools; a reload may swap the map after it is taken.
    pub fn serving(&self) -> Arc<BTreeMap<String, Arc<Pool>>> {
        self.pools.load_full()
    }

    /// The serving pool `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Pool>> {
        self.pools.load().get(name).cloned()
    }

    /// Names of the serving pools, sorted.
    pub fn names(&self) -> Vec<String> {
        self.pools.load().keys().cloned().collect()
    }

    /// The serving pools and the removed ones that still hold containers (those left empty
    /// are forgotten here).
    pub fn all(&self) -> Vec<Arc<Pool>> {
        let mut v: Vec<Arc<Pool>> = self.serving().values().cloned().collect();
        let mut retired = lock(&self.retired);
        retired.retain(|p| p.lock().total() > 0);
        v.extend(retired.iter().cloned());
        v
    }

    /// The removed pools still kept.
    pub fn retired(&self) -> Vec<Arc<Pool>> {
        lock(&self.retired).clone()
    }

    /// A reload's new map of serving pools.
    pub fn swap(&self, next: BTreeMap<String, Arc<Pool>>) {
        self.pools.store(Arc::new(next));
    }

    /// Keep removed pool `pool` until its books are empty.
    pub fn retire(&self, pool: Arc<Pool>) {
        lock(&self.retired).push(pool);
    }
}
