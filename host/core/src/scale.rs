//! Scale overrides at run time: `PUT /v1/pools/{name}/scale` sets a pool's `min_ready` and
//! `max_ready` in place of its config's (for an operator, or an autoscaler driven by the
//! pool's metrics), `DELETE` goes back to the config's.
//!
//! - **Bounds**: the sizes must keep `min_ready ≤ max_ready`, `1 ≤ max_ready ≤ max_total`, and
//!   all pools' floors within the caps (`ScaleOverride::resolve` in `config.rs`); otherwise
//!   nothing changes and the error names the bound.
//! - **Where it acts**: the pool's books hold it (`pool/state/scale.rs`); the sizing policy sees
//!   it as its floor and ceiling, and the target is held between them.
//! - **Durable before the answer**: with a store, the change is written with everything pending,
//!   and applied to the pool, under the group commit's round lock (`GroupCommit::commit_now`),
//!   so the store and the books agree and two requests land in their order; a store that fails
//!   changes nothing. A clean shutdown's clear keeps overrides; a start puts them back
//!   (`persistence/scales.rs`), which scale requests wait for.
//! - **Cleared** by `DELETE`, and by a reload that changes the pool's sizes or removes the pool
//!   (`reload.rs`). A reload that changed the sizes while a request was under way makes it
//!   answer [`ScaleError::Conflict`], with nothing changed.

use std::sync::Arc;

use crate::backend::Backend;
use crate::config::ScaleOverride;
use crate::error::ScaleError;
use crate::lease_store::{Change, ScaleRecord};
use crate::manager::Manager;
use crate::pool::Pool;
use crate::stats::PoolStats;

impl<B: Backend> Manager<B> {
    /// Set pool `name`'s sizes: each of `min_ready` and `max_ready` not given is the config's
    /// (taken as asked, so a number past `u32` is refused naming its bound, not cut).
    /// Answers the pool's stats once the override holds (with a store, once it is durable).
    pub async fn scale(
        &self,
        name: &str,
        min_ready: Option<u64>,
        max_ready: Option<u64>,
    ) -> Result<PoolStats, ScaleError> {
        let s = &self.s;
        let pool = self.scalable(name)?;
        let cfg = pool.cfg();
        let o = ScaleOverride::resolve(
            min_ready,
            max_ready,
            &cfg,
            s.min_ready_of_others(name),
            s.fleet.caps().capacity(),
        )?;
        let change = Change::PutScale(ScaleRecord {
            pool: name.into(),
            min_ready: o.min_ready,
            max_ready: o.max_ready,
            config_sizes: cfg.sizes(),
        });
        self.durably(&pool, change, || {
            let mut st = pool.lock();
            // Read under the lock: a reload swaps the config under it too.
            let now = pool.cfg();
            if now.sizes() != cfg.sizes() {
                return Err(ScaleError::Conflict(name.into()));
            }
            st.set_scale(o, &now);
            Ok(())
        })
        .await?;
        pool.touch();
        s.events.publish(
            "scale",
            name,
            format!("min_ready={} max_ready={}", o.min_ready, o.max_ready),
        );
        s.pool_stats(name)
            .ok_or_else(|| ScaleError::UnknownPool(name.into()))
    }

    /// Clear pool `name`'s override (if any): its config's sizes apply again. Answers its stats.
    pub async fn unscale(&self, name: &str) -> Result<PoolStats, ScaleError> {
        let s = &self.s;
        let pool = self.scalable(name)?;
        let cleared = self
            .durably(&pool, Change::DropScale(name.into()), || {
                let cfg = pool.cfg();
                Ok(pool.lock().clear_scale(&cfg))
            })
            .await?;
        pool.touch();
        if cleared.is_some() {
            s.events
                .publish("scale", name, "cleared: the config's sizes apply".into());
        }
        s.pool_stats(name)
            .ok_or_else(|| ScaleError::UnknownPool(name.into()))
    }

    /// The serving pool `name`, when a scale request may be served now.
    fn scalable(&self, name: &str) -> Result<Arc<Pool>, ScaleError> {
        let s = &self.s;
        if s.rt.cancel().is_cancelled() {
            return Err(ScaleError::ShuttingDown);
        }
        let pool = s
            .books
            .get(name)
            .ok_or_else(|| ScaleError::UnknownPool(name.into()))?;
        if !s.persist.scales_ready() {
            return Err(ScaleError::NotReady);
        }
        Ok(pool)
    }

    /// Write `change` to the store (when there is one), then `apply` it to the books, as one
    /// step among scale requests (see the module doc). Whenever the books end up other than
    /// `change` says, what they hold is queued for the store instead, so it never keeps a
    /// stale override for long.
    async fn durably<R>(
        &self,
        pool: &Arc<Pool>,
        change: Change,
        apply: impl FnOnce() -> Result<R, ScaleError>,
    ) -> Result<R, ScaleError> {
        let s = &self.s;
        let Some(p) = s.persist.group_commit() else {
            return apply();
        };
        let name = pool.name();
        let in_books = || {
            let cfg = pool.cfg();
            match pool.lock().scale(&cfg) {
                Some(o) => Change::PutScale(ScaleRecord {
                    pool: name.clone(),
                    min_ready: o.min_ready,
                    max_ready: o.max_ready,
                    config_sizes: cfg.sizes(),
                }),
                None => Change::DropScale(name.clone()),
            }
        };
        match p.commit_now(change, s.rt.cancel(), apply).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => {
                s.persist.record(in_books);
                s.persist.urge();
                Err(e)
            }
            Err(e) => {
                s.persist.record(in_books);
                if s.rt.cancel().is_cancelled() {
                    Err(ScaleError::ShuttingDown)
                } else {
                    Err(ScaleError::Store(e))
                }
            }
        }
    }
}
