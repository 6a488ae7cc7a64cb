//! One step of the simulation: a client operation, a fault, a reload or a restart, picked by
//! the seeded generator. Client operations that can wait run as tasks, so several overlap, as
//! real clients do; each records what it saw in the shared model, and the acquire checks the
//! container it was handed at the moment it got it.

use std::time::Duration;

use warmpool_core::{
    AcquireError, AcquireRequest, ContainerSpec, ExecRequest, FileBody, LeaseError, PoolChange,
};

use super::exercise::Count;
use super::handout::{ended_during_call, forget, handed, secret};
use super::world::{End, Held, Sim};
use warmpool_fake::Faults;

/// The tenants the simulated clients acquire as.
pub(crate) const TENANTS: [&str; 3] = ["t0", "t1", "t2"];

impl Sim {
    pub(crate) async fn one_step(&mut self) {
        // While a new incarnation has not reconciled yet, clients wait (their old leases may be
        // re-attached any moment); faults and time still go on.
        let ready = self.manager.reconciled();
        match self.rng.u32(0..100) {
            0..=21 if ready => self.spawn_acquire(),
            22..=35 if ready => {
                self.spawn_exec();
                self.maybe_resize();
            }
            36..=39 if ready => self.put_file().await,
            40..=43 if ready => self.renew(),
            44..=53 if ready => self.release(),
            54..=61 if ready => self.spawn_reuse(),
            62..=71 => self.fault(),
            72..=73 => self.reload(),
            74..=75 => self.kill_one(),
            76 => self.crash(),
            77 if self.rng.bool() => self.graceful_restart().await,
            78..=80 if ready => self.scale().await,
            81..=83 if ready => self.spawn_suspend(),
            84..=85 if ready => self.spawn_resume(),
            _ => {
                let ms = self.rng.u64(1_000..30_000);
                self.note(format!("wait {ms} ms"));
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
        }
    }

    /// The `min_ready` pool `p` runs on: its override's, else its config's.
    fn floor(&self, p: &warmpool_core::PoolConfig) -> u32 {
        self.scales
            .get(&p.name)
            .map_or(p.min_ready, |o| o.min_ready)
    }

    /// What a reload must leave room for: the pool's configured `min_ready` (the config's own
    /// validation adds these up against the cap, and a crash without a store drops every
    /// override, putting them back as the floors) and its override's floor, whichever is more.
    fn reserve(&self, p: &warmpool_core::PoolConfig) -> u32 {
        p.min_ready.max(self.floor(p))
    }

    fn pick_pool(&mut self) -> String {
        let i = self.rng.usize(0..self.pools.len());
        self.pools[i].0.name.clone()
    }

    pub(crate) fn pick_lease(&mut self) -> Option<(String, Held)> {
        let n = self.model().held.len();
        if n == 0 {
            return None;
        }
        let i = self.rng.usize(0..n);
        let m = self.model();
        let (id, h) = m.held.iter().nth(i)?;
        Some((id.clone(), h.clone()))
    }

    fn spawn_acquire(&mut self) {
        // Now and then a pool that does not exist (any more), as a client may ask.
        let pool = if self.rng.f64() < 0.03 {
            "gone".to_string()
        } else {
            self.pick_pool()
        };
        let req = AcquireRequest {
            pool: pool.clone(),
            ttl: Some(Duration::from_secs(self.rng.u64(2..900))),
            wait: self
                .rng
                .bool()
                .then(|| Duration::from_millis(self.rng.u64(0..6_000))),
            owner: Some(format!("client-{}", self.step)),
            // A tenant from the step (the random stream stays as it was): three tenants and
            // leases of none, whose counts the checks compare with the table.
            tenant: TENANTS.get(self.step % 4).map(|t| t.to_string()),
            engine_labels: Default::default(),
            setup: None,
            resources: (self.rres.f64() < 0.4).then(|| super::resources::ask(&mut self.rres)),
        };
        let ask = req.resources;
        let bounds = self
            .pools
            .iter()
            .find(|(p, _)| p.name == pool)
            .map(|(p, _)| p.resources);
        self.note(format!("acquire {pool} asking {ask:?}"));
        self.checks
            .acquires
            .push((pool.clone(), tokio::time::Instant::now()));
        let (m, engines, model) = (
            self.manager.clone(),
            self.engines.clone(),
            self.model.clone(),
        );
        let store = self.persist.then(|| self.store.clone());
        tokio::spawn(async move {
            let r = m.acquire(req).await;
            let mut model = model.lock().unwrap_or_else(|p| p.into_inner());
            model.acquires += 1;
            match r {
                Ok(info) => {
                    model.leases += 1;
                    handed(
                        &mut model,
                        &engines,
                        store.as_deref(),
                        &info.lease_id,
                        &info.container_id,
                        ask,
                    );
                }
                Err(AcquireError::Degraded { last_error, .. }) => {
                    // 503: the pool says it is degraded, and it is.
                    model.degraded += 1;
                    model.runtime_missing += u64::from(last_error.contains("OCI runtime"));
                    if m.pool_stats(&pool).is_some_and(|s| s.status != "degraded") {
                        model.violations.push(format!(
                            "an acquire of pool {pool} was answered degraded (503) while the pool is not"
                        ));
                    }
                }
                Err(
                    AcquireError::Exhausted { .. }
                    | AcquireError::EngineUnavailable(_)
                    | AcquireError::ShuttingDown
                    | AcquireError::UnknownPool(_)
                    | AcquireError::NoSuchEngine { .. }
                    | AcquireError::Create { .. }
                    | AcquireError::Unsupported { .. }
                    | AcquireError::Setup { .. },
                ) => {}
                Err(AcquireError::Resources(e)) => {
                    model.resize_refused += 1;
                    if let (Some(b), Some(a)) = (bounds, ask)
                        && !super::resources::rightly_refused(b.as_ref(), &a, &e)
                    {
                        model.violations.push(format!(
                            "an acquire of pool {pool} asking {a:?} under bounds {b:?} was refused: {e}"
                        ));
                    }
                }
            }
        });
    }

    fn spawn_exec(&mut self) {
        let Some((id, h)) = self.pick_lease() else {
            return;
        };
        let (cmd, timeout): (Vec<String>, u64) = match self.rng.u32(0..9) {
            0 => (
                vec!["write".into(), format!("/work/s-{id}"), secret(&id)],
                5_000,
            ),
            1 => (
                vec!["write".into(), format!("/tmp/s-{id}"), secret(&id)],
                5_000,
            ),
            2 => (
                vec!["write".into(), format!("/home/s-{id}"), secret(&id)],
                5_000,
            ),
            3 => (
                vec!["write".into(), format!("/dev/shm/s-{id}"), secret(&id)],
                5_000,
            ),
            4 => (vec!["spawn".into(), format!("spy-{id}")], 5_000),
            5 => (vec!["sleep".into(), "2000".into()], 300),
            6 if self.rng.f64() < 0.2 => (vec!["die".into()], 5_000),
            _ => (vec!["echo".into(), "hi".into()], 5_000),
        };
        self.note(format!("exec {} on {id} ({})", cmd.join(" "), h.container));
        let m = self.manager.clone();
        let abandon = self.rng.f64() < 0.1;
        let req = ExecRequest {
            cmd,
            timeout: Duration::from_millis(timeout),
            ..Default::default()
        };
        let model = self.model.clone();
        let task = tokio::spawn(async move {
            let r = m.exec(&id, req).await;
            ended_during_call(&m, &model, &id, "exec", r.err());
        });
        if abandon {
            // The client hangs up mid-exec.
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                task.abort();
            });
        }
    }

    async fn put_file(&mut self) {
        let Some((id, h)) = self.pick_lease() else {
            return;
        };
        let path = if self.rng.bool() {
            format!("/work/f-{id}")
        } else {
            format!("/root/f-{id}")
        };
        self.note(format!("put {path} on {id} ({})", h.container));
        let r = self
            .manager
            .put_file(&id, &path, FileBody::from_bytes(secret(&id).into_bytes()))
            .await;
        ended_during_call(&self.manager, &self.model, &id, "put_file", r.err());
    }

    fn renew(&mut self) {
        let Some((id, _)) = self.pick_lease() else {
            return;
        };
        let ttl = Duration::from_secs(self.rng.u64(1..900));
        self.note(format!("renew {id} {ttl:?}"));
        if let Err(LeaseError::UnknownLease(_)) = self.manager.renew(&id, ttl) {
            forget(&self.model, &id);
        }
    }

    fn release(&mut self) {
        let Some((id, h)) = self.pick_lease() else {
            return;
        };
        self.note(format!("release {id} ({})", h.container));
        let r = self.manager.release(&id);
        let mut m = self.model();
        m.held.remove(&id);
        m.end(
            &id,
            &h.container,
            if r.is_ok() { End::Released } else { End::Gone },
        );
    }

    fn spawn_reuse(&mut self) {
        let Some((id, h)) = self.pick_lease() else {
            return;
        };
        self.note(format!("release for reuse {id} ({})", h.container));
        {
            let mut m = self.model();
            m.held.remove(&id);
            m.end(&id, &h.container, End::Resetting);
        }
        let (m, model) = (self.manager.clone(), self.model.clone());
        tokio::spawn(async move {
            let r = m.release_for_reuse(&id).await;
            let mut model = model.lock().unwrap_or_else(|p| p.into_inner());
            let end = match r {
                Ok(o) if o.reused => {
                    model.reuses += 1;
                    End::ReusedOk
                }
                _ => End::Gone,
            };
            // A container handed on before its reuse passed would be a broken promise.
            let relent = model
                .history
                .get(&h.container)
                .is_some_and(|v| v.last().is_some_and(|(l, _)| *l != id));
            if relent && end != End::ReusedOk {
                model.violations.push(format!(
                    "container {} was lent again although its reuse failed",
                    h.container
                ));
            }
            model.end(&id, &h.container, end);
        });
    }

    pub(crate) fn fault(&mut self) {
        self.out.faults += 1;
        let what = self.rng.u32(0..15);
        // One engine at a time: the others keep serving.
        let which = if self.engines.len() > 1 {
            self.rng.usize(0..self.engines.len())
        } else {
            0
        };
        self.maybe_fail_updates(which);
        let engine = self.engines[which].clone();
        let mut w = engine.state();
        let p = |rng: &mut fastrand::Rng| [0.0, 0.05, 0.2, 0.5, 1.0][rng.usize(0..5)];
        let note = match what {
            0 => {
                w.down = !w.down;
                if w.down {
                    self.ex.add(Count::EngineOutages, 1);
                }
                format!("engine {which} {}", if w.down { "down" } else { "up" })
            }
            1 => {
                w.faults.fail_create = p(&mut self.rng);
                format!("creates fail {}", w.faults.fail_create)
            }
            2 => {
                w.faults.fail_destroy = p(&mut self.rng);
                format!("removals fail {}", w.faults.fail_destroy)
            }
            3 => {
                w.faults.fail_exec = p(&mut self.rng);
                format!("execs fail {}", w.faults.fail_exec)
            }
            4 => {
                w.faults.fail_inspect = p(&mut self.rng) * 0.5;
                format!("inspections fail {}", w.faults.fail_inspect)
            }
            5 => {
                w.faults.hang = [0.0, 0.02, 0.1][self.rng.usize(0..3)];
                w.faults.hang_for = Duration::from_secs(self.rng.u64(5..150));
                // Some hangs have no end of their own: the daemon's deadline must end them.
                w.faults.hang_endless = [0.0, 0.3, 1.0][self.rng.usize(0..3)];
                format!(
                    "calls hang {} for {:?} (endless {})",
                    w.faults.hang, w.faults.hang_for, w.faults.hang_endless
                )
            }
            6 => {
                w.faults.die_at_start = p(&mut self.rng);
                format!("containers die at start {}", w.faults.die_at_start)
            }
            7 => {
                w.faults.die_soon = p(&mut self.rng);
                w.faults.die_within = Duration::from_millis(self.rng.u64(100..9_000));
                format!(
                    "containers die within {:?}: {}",
                    w.faults.die_within, w.faults.die_soon
                )
            }
            8 => {
                w.faults.lose_events = p(&mut self.rng);
                format!("death events lost {}", w.faults.lose_events)
            }
            9 => {
                w.fail_always = match w.fail_always {
                    Some(_) => None,
                    None => Some("registry unreachable".into()),
                };
                format!("every create fails: {}", w.fail_always.is_some())
            }
            10 if self.persist => {
                let failing = !self.store.fail.load(std::sync::atomic::Ordering::Acquire);
                self.store.set_failing(failing);
                if failing {
                    self.ex.add(Count::StoreFailures, 1);
                }
                format!("store failing: {failing}")
            }
            11 => {
                w.faults.exec_overrun = p(&mut self.rng);
                format!("execs outlive their timeout {}", w.faults.exec_overrun)
            }
            12 => {
                let rate = [0.0, 0.02, 0.1, 0.3][self.rng.usize(0..4)];
                match self.rng.u32(0..3) {
                    0 => {
                        w.faults.agent_dies = rate;
                        format!("agents die {rate}")
                    }
                    1 => {
                        w.faults.agent_stalls = rate;
                        format!("agent channels stall {rate}")
                    }
                    _ => {
                        w.faults.agent_forged = rate;
                        format!("agents send forged frames {rate}")
                    }
                }
            }
            13 => self.hibernation_fault(&mut w),
            _ => {
                w.faults = Faults::default();
                w.down = false;
                w.fail_always = None;
                w.no_checkpoint = None;
                self.store.set_failing(false);
                "faults cleared".to_string()
            }
        };
        drop(w);
        self.note(if which > 0 {
            format!("{note} (engine {which})")
        } else {
            note
        });
    }

    fn kill_one(&mut self) {
        let ids: Vec<(usize, String)> = self
            .engines
            .iter()
            .enumerate()
            .flat_map(|(i, e)| e.state().ids().into_iter().map(move |id| (i, id)))
            .collect();
        if ids.is_empty() {
            return;
        }
        let (e, id) = ids[self.rng.usize(0..ids.len())].clone();
        self.note(format!("docker kill {id} behind the daemon's back"));
        self.engines[e].kill(&id, "killed");
    }

    pub(crate) fn reload(&mut self) {
        self.out.reloads += 1;
        // The pools before this reload, by name and spec: the reload tells the manager which
        // pools are new and which changed spec, as the daemon's reload plan does.
        let before: Vec<(String, ContainerSpec, [u32; 3])> = self
            .pools
            .iter()
            .map(|(p, _)| (p.name.clone(), p.spec.clone(), p.sizes()))
            .collect();
        let i = self.rng.usize(0..self.pools.len());
        match self.rng.u32(0..6) {
            0 if self.pools.len() > 1 => {
                let (p, _) = self.pools.remove(i);
                self.note(format!("reload: remove pool {}", p.name));
            }
            1 if self.pools.len() < 3 => {
                let (p, e) = self.new_pool();
                // An operator keeps every floor within the caps, overrides' included, and the
                // config's own min_ready too (seed 634: an override's floor left room that a
                // crash without a store took back, and the pools' targets passed the cap).
                let min_sum: u32 = self.pools.iter().map(|(p, _)| self.reserve(p)).sum();
                if min_sum + p.min_ready > self.mcfg.max_containers {
                    return;
                }
                self.note(format!("reload: add pool {}", p.name));
                self.pools.push((p, e));
            }
            2 => {
                let step = self.step;
                let p = &mut self.pools[i].0;
                p.spec.env.insert("GEN".into(), format!("{step}"));
                let note = format!("reload: new spec for {}", p.name);
                self.note(note);
            }
            _ => {
                let min_others: u32 = self
                    .pools
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, (p, _))| self.reserve(p))
                    .sum();
                let room = self.mcfg.max_containers.saturating_sub(min_others);
                let p = &mut self.pools[i].0;
                p.min_ready = self.rng.u32(0..=3).min(room);
                p.max_ready = p.min_ready.max(1) + self.rng.u32(0..=2);
                p.max_total = p.max_ready + self.rng.u32(0..=3);
                let note = format!(
                    "reload: {} sizes {}/{}/{}",
                    p.name, p.min_ready, p.max_ready, p.max_total
                );
                self.note(note);
            }
        }
        let updates = self
            .pools
            .iter()
            .map(|(p, e)| {
                let policies = super::start::policies(*e);
                match before.iter().find(|(name, _, _)| *name == p.name) {
                    None => PoolChange::Add {
                        cfg: p.clone(),
                        policies,
                    },
                    Some((_, spec, sizes)) => PoolChange::Change {
                        cfg: p.clone(),
                        policies: Some(policies),
                        respec: *spec != p.spec,
                        resize: *sizes != p.sizes(),
                    },
                }
            })
            .collect();
        // A pool removed, or whose sizes changed, loses its override.
        for (name, _, sizes) in &before {
            let now = self.pools.iter().find(|(p, _)| p.name == *name);
            if now.is_none_or(|(p, _)| p.sizes() != *sizes) {
                self.scale_cleared_by_reload(name);
            }
        }
        self.manager.reconfigure(updates);
    }
}
