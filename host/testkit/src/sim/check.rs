//! The daemon's promises, checked after every step of the simulation and at its end.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use tokio::time::Instant;
use warmpool_core::lease_store::unix_ms;

use super::Failure;
use super::world::Sim;

/// Healthy time (engine up, listing works, startup done) within which a container on the
/// engine must be in the daemon's books: one sweep interval and some slack.
const ACCOUNT_WITHIN: Duration = Duration::from_secs(45);
/// The window of the storm check: failures (failed creates, young deaths of containers never
/// lent) of one pool on one engine within any window of this length stay within the back-off
/// (see [`Sim::storm_bound`]).
const STORM_WINDOW: Duration = Duration::from_secs(10);
/// Failures in a row that open a breaker (`BreakerConfig::default().threshold`). The back-offs
/// before it (0.5, 1, 2 and 4 s) fit in one window, the next (8 s) and the trials after it
/// allow one more.
const STREAK: usize = 5;

impl Sim {
    pub(crate) fn check_step(&mut self) -> Result<(), Failure> {
        self.check_panic()?;
        if let Some(v) = self.model().violations.first().cloned() {
            return Err(self.fail(v));
        }
        self.check_cap()?;
        self.check_exclusive()?;
        self.check_accounting()?;
        self.check_storm()?;
        self.check_committed()?;
        self.check_more()
    }

    /// The engines together never hold more containers than `max_containers`, nor any engine
    /// more than its own cap.
    fn check_cap(&self) -> Result<(), Failure> {
        let all = self.on_engines();
        let n = all.len() as u32;
        if n > self.mcfg.max_containers {
            return Err(self.fail(format!(
                "the engines hold {n} containers, max_containers is {}: {all:?}; the books: {:?}",
                self.mcfg.max_containers,
                self.manager.accounted()
            )));
        }
        for (i, spec) in self.engine_specs.iter().enumerate() {
            let on = all.iter().filter(|(e, _, _)| *e == i).count() as u32;
            if let Some(max) = spec.max_containers
                && on > max
            {
                return Err(self.fail(format!(
                    "engine {} holds {on} containers, its max_containers is {max}",
                    spec.name
                )));
            }
        }
        Ok(())
    }

    /// No container serves two live leases.
    fn check_exclusive(&self) -> Result<(), Failure> {
        let mut seen = BTreeSet::new();
        for l in self.manager.leases() {
            if !seen.insert(l.container_id.clone()) {
                return Err(self.fail(format!(
                    "container {} serves two leases at once",
                    l.container_id
                )));
            }
        }
        Ok(())
    }

    /// Every container on the engine is in the books within a bounded healthy time.
    fn check_accounting(&mut self) -> Result<(), Failure> {
        let now = Instant::now();
        let dt = self
            .checks
            .last
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        self.checks.last = Some(now);
        // A hang the daemon's calls are still in counts as the fault it is: the call (a
        // sweep's list, say) waits out the daemon's own deadline on it, after the fault itself
        // was switched off.
        let healthy = self.engines.iter().all(|e| {
            let w = e.state();
            !w.down
                && w.faults.hang == 0.0
                && w.faults.fail_inspect == 0.0
                && w.hangs.values().all(|h| h.conn != w.current_conn)
        }) && self.manager.all_reconciled();
        let books = self.manager.accounted();
        let names: HashSet<&str> = books.iter().map(|(k, _)| k.as_str()).collect();
        let ids: HashSet<&str> = books.iter().filter_map(|(_, i)| i.as_deref()).collect();
        let on_engine: Vec<(String, String)> = self
            .on_engines()
            .into_iter()
            .map(|(_, id, name)| (id, name))
            .collect();
        // Dead containers, and for how long in healthy time (a hand-out checks it). One that
        // died since the last check was dead for part of the interval only: counting all of it
        // once made a container dead for a second look dead for minutes after a long pause.
        {
            let dead: Vec<(String, Instant)> = self
                .engines
                .iter()
                .flat_map(|e| {
                    e.state()
                        .containers
                        .values()
                        .filter(|c| !c.running)
                        .filter_map(|c| Some((c.id.clone(), c.died_at?)))
                        .collect::<Vec<_>>()
                })
                .collect();
            let mut m = self.model();
            let mut next = BTreeMap::new();
            for (id, died) in dead {
                let t = m.dead_healthy.get(&id).copied().unwrap_or_default()
                    + if healthy {
                        dt.min(now.saturating_duration_since(died))
                    } else {
                        Duration::ZERO
                    };
                next.insert(id, t);
            }
            m.dead_healthy = next;
        }
        let mut still = BTreeMap::new();
        for (id, name) in on_engine {
            if ids.contains(id.as_str()) || names.contains(name.as_str()) {
                continue;
            }
            let t = self
                .checks
                .unaccounted
                .get(&id)
                .copied()
                .unwrap_or_default()
                + if healthy { dt } else { Duration::ZERO };
            if t > ACCOUNT_WITHIN {
                return Err(self.fail(format!(
                    "container {id} ({name}) has been on the engine unaccounted for {t:?} of healthy time"
                )));
            }
            still.insert(id, t);
        }
        self.checks.unaccounted = still;
        Ok(())
    }

    /// While creates fail or containers keep dying, a pool's failures on each engine stay
    /// within that engine's breaker and back-off (each engine has its own, per pool).
    fn check_storm(&self) -> Result<(), Failure> {
        let now = Instant::now();
        let lent: BTreeSet<String> = self.model().history.keys().cloned().collect();
        for (i, e) in self.engines.iter().enumerate() {
            let mut per_pool: BTreeMap<String, usize> = BTreeMap::new();
            let w = e.state();
            for f in w.failures.iter().rev() {
                if now.saturating_duration_since(f.at) > STORM_WINDOW {
                    break;
                }
                // A lent container's death is its client's business, not a failed create.
                if f.died.as_ref().is_some_and(|c| lent.contains(c)) {
                    continue;
                }
                *per_pool.entry(f.pool.clone()).or_default() += 1;
            }
            drop(w);
            for (pool, n) in per_pool {
                let bound = self.storm_bound(&pool, now);
                if n > bound {
                    return Err(self.fail(format!(
                        "pool {pool}: {n} failed creates or young deaths on engine {i} within {STORM_WINDOW:?}, more than its back-off allows ({bound}): a storm"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The most failures the back-off lets one pool cause on one engine within the window
    /// ending `now`: for each daemon that ran in it (a restart forgets the back-off), a
    /// streak up to the breaker ([`STREAK`]), the creates in flight when it began
    /// (`max_concurrent_creates`) and one trial; and one cold create per acquire of the pool
    /// in the window (a cold create waits for no back-off until the breaker opens).
    pub(crate) fn storm_bound(&self, pool: &str, now: Instant) -> usize {
        let within = |t: &Instant| now.saturating_duration_since(*t) <= STORM_WINDOW;
        let daemons = 1 + self.checks.starts.iter().filter(|t| within(t)).count();
        let acquires = self
            .checks
            .acquires
            .iter()
            .filter(|(p, t)| p == pool && within(t))
            .count();
        daemons * (STREAK + self.mcfg.max_concurrent_creates + 1) + acquires
    }

    /// After a crash, once the new daemon reconciled: every lease the store had committed, whose
    /// container still runs and whose pool still exists, is back.
    fn check_committed(&mut self) -> Result<(), Failure> {
        let Some(mut committed) = self.checks.committed.take() else {
            return Ok(());
        };
        // Each engine re-attaches its own leases when it is reconciled, so a lease is checked
        // at the first check after its engine was (before the client could end it); the leases
        // of an engine still down wait.
        let (ready, waiting): (BTreeMap<_, _>, BTreeMap<_, _>) =
            std::mem::take(&mut committed.leases)
                .into_iter()
                .partition(|(_, r)| {
                    self.manager
                        .engine_reconciled(r.engine.as_deref().unwrap_or("default"))
                });
        if !waiting.is_empty() {
            committed.leases = waiting;
            self.checks.committed = Some(committed);
        }
        let now_ms = unix_ms(warmpool_fake::wall_origin() + self.t0.elapsed());
        for rec in ready.values() {
            let running = self.engines.iter().any(|e| {
                e.state()
                    .containers
                    .get(&rec.container_id)
                    .is_some_and(|c| c.running)
            });
            let pool_exists = self.pools.iter().any(|(p, _)| p.name == rec.pool);
            if !running || !pool_exists || rec.expires_at_ms <= now_ms + 2_000 {
                continue;
            }
            let Ok(info) = self.manager.lease(&rec.lease_id) else {
                return Err(self.fail(format!(
                    "committed lease {} on {} was lost by the restart",
                    rec.lease_id, rec.container_id
                )));
            };
            // It keeps its tenant, and its committed expiry (to the second the figure is given
            // in).
            self.ex.add(super::exercise::Count::Restored, 1);
            if info.tenant != rec.tenant {
                return Err(self.fail(format!(
                    "restored lease {} is tenant {:?}'s, it was committed as {:?}'s",
                    rec.lease_id, info.tenant, rec.tenant
                )));
            }
            let left_s = rec.expires_at_ms.saturating_sub(now_ms) / 1000;
            if info.ttl_remaining_s.abs_diff(left_s) > 1 {
                return Err(self.fail(format!(
                    "restored lease {} has {} s left, its committed expiry leaves {left_s} s",
                    rec.lease_id, info.ttl_remaining_s
                )));
            }
        }
        Ok(())
    }

    /// After the faults stopped and everything settled: every pool is at its target, and the
    /// books and the engine agree exactly.
    pub(crate) async fn check_end(&mut self) -> Result<(), Failure> {
        for (p, _) in self.pools.clone() {
            if let Err(e) = self
                .manager
                .warm_up(&p.name, Duration::from_secs(600))
                .await
            {
                return Err(self.fail(format!(
                    "pool {} did not return to its target once faults stopped: {e}; stats {:?}; engines {:?}; ready {}; counted {} of {}",
                    p.name,
                    self.manager.all_pool_stats().iter().map(|s| (s.name.clone(), s.status, s.target, s.engines.clone(), s.creates.breakers.clone())).collect::<Vec<_>>(),
                    self.manager.engine_stats(),
                    self.manager.is_ready(),
                    self.manager.containers_counted(),
                    self.mcfg.max_containers
                )));
            }
        }
        // Let creates and removals in flight land, so that books and engine can be compared.
        for _ in 0..60 {
            tokio::time::sleep(Duration::from_secs(5)).await;
            self.check_step()?;
            let busy = self.manager.all_pool_stats().iter().any(|s| {
                s.counts.creating + s.counts.removing + s.counts.unhealthy + s.counts.resetting > 0
            });
            if !busy && self.engines.iter().all(|e| e.state().creating_now == 0) {
                break;
            }
        }
        // By name: a create in flight is in the books before the engine tells its ID.
        let engine: BTreeSet<String> = self
            .on_engines()
            .into_iter()
            .map(|(_, _, name)| name)
            .collect();
        let books: BTreeSet<String> = self
            .manager
            .accounted()
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        if engine != books {
            return Err(self.fail(format!(
                "at rest the books {books:?} differ from the engine {engine:?}"
            )));
        }
        if self.manager.containers_counted() as usize != engine.len() {
            return Err(self.fail(format!(
                "at rest the cap counts {} containers, the engine holds {}: {engine:?}; pools {:?}",
                self.manager.containers_counted(),
                engine.len(),
                self.manager
                    .all_pool_stats()
                    .iter()
                    .map(|s| (s.name.clone(), s.counts))
                    .collect::<Vec<_>>()
            )));
        }
        self.check_end_more()
    }
}
