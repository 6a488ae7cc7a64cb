//! Startup: the scale overrides the store held come back, once, before anything is re-adopted
//! (re-adoption fills a pool up to its `max_ready`, the override's when one holds) and before
//! any scale request is served (see `crate::scale`).
//!
//! An override comes back only to a pool that still exists with the very sizes it was set
//! against, and that no reload since the start has resized or removed; any other is dropped,
//! and forgotten in the store: a reload that changed those sizes would have cleared it, and a
//! restart is a reload from nothing.

use std::collections::BTreeMap;

use tracing::info;

use super::Persistence;
use crate::backend::Backend;
use crate::config::ScaleOverride;
use crate::lease_store::{Change, ScaleRecord};

impl<B: Backend> Persistence<B> {
    /// Apply the overrides `scales` (as loaded) to their pools; only the first call does.
    pub(super) fn restore_scales(&self, scales: &BTreeMap<String, ScaleRecord>) {
        let s = &self.s;
        let Some(p) = s.persist.group_commit() else {
            return;
        };
        p.restore_scales_once(|cleared_early| {
            for (name, rec) in scales {
                let kept = s
                    .books
                    .get(name)
                    .filter(|_| !cleared_early.contains(name))
                    .and_then(|pool| {
                        let cfg = pool.cfg();
                        if cfg.sizes() != rec.config_sizes {
                            return None;
                        }
                        // Bounds of the pool only: the caps were checked when it was set, and
                        // a floor past them now only leaves the pool short, as after a reload.
                        let o = ScaleOverride::resolve(
                            Some(rec.min_ready.into()),
                            Some(rec.max_ready.into()),
                            &cfg,
                            0,
                            u32::MAX,
                        )
                        .ok()?;
                        pool.lock().set_scale(o, &cfg);
                        pool.touch();
                        Some(o)
                    });
                match kept {
                    Some(o) => {
                        info!(pool = %name, min_ready = o.min_ready, max_ready = o.max_ready, "startup: scale override restored");
                        s.events.publish(
                            "scale",
                            name,
                            format!(
                                "restored: min_ready={} max_ready={}",
                                o.min_ready, o.max_ready
                            ),
                        );
                    }
                    None => {
                        info!(pool = %name, "startup: scale override dropped: the pool is gone or its sizes changed");
                        s.persist.record(|| Change::DropScale(name.clone()));
                    }
                }
            }
        });
    }
}
