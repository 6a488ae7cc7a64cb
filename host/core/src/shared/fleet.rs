//! The fleet: every engine the manager drives and what the core counts on them. Its state, and
//! the only code that changes it:
//!
//! - each engine's backend, up/down flag, startup-cleanup flag, last error and recent create
//!   times (the monitor and the lifecycle report what they saw through [`Fleet::set_up`] and
//!   [`Fleet::cleaned_up`]);
//! - the caps ([`Caps`]: the pools' books and the orphans take and free slots through it);
//! - the orphans: containers found on an engine that no pool accounts for, counted against the
//!   caps until their removal succeeds;
//! - the create and remove permits;
//! - the container IDs an engine reported dead recently.
//!
//! It calls nothing of the manager: the layers above read it and report to it.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, SemaphorePermit};

use crate::backend::Runtimes;
use crate::caps::{Caps, EngineIx};

mod runtimes;
use crate::config::ManagerConfig;
use crate::counters::StateCounts;
use crate::engines::{EngineSpec, EngineStats, EngineView, bit};
use crate::sync::lock;

/// How many recent create durations each engine keeps for its p50.
const RECENT_CREATES: usize = 32;

/// Container IDs the engine reported dead recently. A create answering after the death event
/// arrived checks here, so a container that died while its create was still answering is never
/// put in the pool; so does every hand-out, and a new lease (see `open_lease`).
const RECENT_DEATHS: usize = 1024;

/// One engine the manager drives: its backend and what the core knows of its state.
struct Engine<B> {
    spec: EngineSpec,
    backend: Arc<B>,
    /// Answered the monitor's last ping, and its startup cleanup is done.
    up: AtomicBool,
    /// Its startup cleanup (sweep or reconcile) is done.
    cleaned: AtomicBool,
    last_error: Mutex<Option<String>>,
    recent_creates_ms: Mutex<VecDeque<u32>>,
    /// The runtimes it registered, as last read; `None` before the first read answered.
    runtimes: Mutex<Option<Runtimes>>,
}

impl<B> Engine<B> {
    fn new(spec: EngineSpec, backend: Arc<B>) -> Self {
        Self {
            spec,
            backend,
            up: AtomicBool::new(false),
            cleaned: AtomicBool::new(false),
            last_error: Mutex::new(None),
            recent_creates_ms: Mutex::new(VecDeque::new()),
            runtimes: Mutex::new(None),
        }
    }

    fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    fn is_cleaned(&self) -> bool {
        self.cleaned.load(Ordering::Acquire)
    }

    /// Median of the recent creates on this engine; `None` before the first.
    fn create_p50(&self) -> Option<u32> {
        let mut v: Vec<u32> = lock(&self.recent_creates_ms).iter().copied().collect();
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        Some(v[v.len() / 2])
    }

    /// Whether every label of `want` is on this engine with the same value.
    fn matches(&self, want: &BTreeMap<String, String>) -> bool {
        want.iter()
            .all(|(k, v)| self.spec.labels.get(k).is_some_and(|have| have == v))
    }
}

/// The last [`RECENT_DEATHS`] container IDs reported dead: a set for the look-up, which the
/// acquire path makes, and their order for forgetting the oldest.
#[derive(Default)]
struct RecentDeaths {
    order: VecDeque<String>,
    ids: HashSet<String>,
}

/// Every engine, fixed for the life of the process (an index names one everywhere), with the
/// caps, the orphans, the permits and the recent deaths. See the module doc.
pub(crate) struct Fleet<B> {
    engines: Vec<Engine<B>>,
    caps: Caps,
    /// Orphans by name → (engine ID, engine).
    orphans: Mutex<BTreeMap<String, (String, EngineIx)>>,
    create_permits: Arc<Semaphore>,
    remove_permits: Semaphore,
    deaths: Mutex<RecentDeaths>,
}

impl<B> Fleet<B> {
    pub fn new(engines: Vec<(EngineSpec, Arc<B>)>, cfg: &ManagerConfig) -> Self {
        let engine_caps: Vec<Option<u32>> = engines.iter().map(|(s, _)| s.max_containers).collect();
        Self {
            engines: engines
                .into_iter()
                .map(|(spec, b)| Engine::new(spec, b))
                .collect(),
            caps: Caps::new(cfg.max_containers, &engine_caps),
            orphans: Mutex::default(),
            create_permits: Arc::new(Semaphore::new(cfg.max_concurrent_creates.max(1))),
            remove_permits: Semaphore::new(cfg.max_concurrent_removes.max(1)),
            deaths: Mutex::default(),
        }
    }

    // ---- the engines -------------------------------------------------------------------------

    /// How many engines there are; `0..len()` are their indexes.
    pub fn len(&self) -> usize {
        self.engines.len()
    }

    /// The engine at `e`. Indexes come from the books, which only hold valid ones.
    fn engine(&self, e: EngineIx) -> &Engine<B> {
        &self.engines[e.min(self.engines.len() - 1)]
    }

    /// The backend of engine `e`.
    pub fn backend(&self, e: EngineIx) -> &Arc<B> {
        &self.engine(e).backend
    }

    /// Every engine's name and backend, in config order.
    pub fn backends(&self) -> impl Iterator<Item = (&str, &Arc<B>)> {
        self.engines
            .iter()
            .map(|e| (e.spec.name.as_str(), &e.backend))
    }

    /// The name of engine `e`.
    pub fn name(&self, e: EngineIx) -> &str {
        &self.engine(e).spec.name
    }

    /// Every engine's name, in index order.
    pub fn names(&self) -> Vec<&str> {
        self.engines.iter().map(|e| e.spec.name.as_str()).collect()
    }

    /// The engine named `name`.
    pub fn named(&self, name: &str) -> Option<EngineIx> {
        self.engines.iter().position(|e| e.spec.name == name)
    }

    /// Whether engine `e` answered its monitor's last ping (after its startup cleanup).
    pub fn is_up(&self, e: EngineIx) -> bool {
        self.engine(e).is_up()
    }

    /// Whether at least one engine is up.
    pub fn any_up(&self) -> bool {
        self.engines.iter().any(Engine::is_up)
    }

    /// Engines that are up now, as a mask.
    pub fn up_mask(&self) -> u64 {
        self.engines
            .iter()
            .enumerate()
            .filter(|(_, e)| e.is_up())
            .fold(0, |m, (i, _)| m | bit(i))
    }

    /// Engines carrying every label of `want`, as a mask (all engines for no labels).
    pub fn matching(&self, want: &BTreeMap<String, String>) -> u64 {
        self.engines
            .iter()
            .enumerate()
            .filter(|(_, e)| e.matches(want))
            .fold(0, |m, (i, _)| m | bit(i))
    }

    /// What the placer sees of each engine for a create allowed on `mask`.
    pub fn views(&self, mask: u64) -> Vec<EngineView> {
        self.engines
            .iter()
            .enumerate()
            .map(|(i, e)| EngineView {
                eligible: e.is_up() && mask & bit(i) != 0,
                image_present: None,
                create_p50_ms: e.create_p50(),
            })
            .collect()
    }

    /// The last engine error a monitor saw (kept after the engine recovers): a down engine's
    /// first, else the latest of any, else `not reached yet`.
    pub fn error(&self) -> String {
        let down = self.engines.iter().find(|e| !e.is_up());
        for e in down.into_iter().chain(self.engines.iter()) {
            if let Some(err) = lock(&e.last_error).clone() {
                return if self.engines.len() == 1 {
                    err
                } else {
                    format!("engine {}: {err}", e.spec.name)
                };
            }
        }
        "not reached yet".into()
    }

    /// Engine `e`'s last error, or `not reached yet`.
    pub fn last_error(&self, e: EngineIx) -> String {
        lock(&self.engine(e).last_error)
            .clone()
            .unwrap_or_else(|| "not reached yet".into())
    }

    /// Engine `e` was found up or down (`err`: what failed, kept after it recovers). Whether
    /// that changed its state.
    pub fn set_up(&self, e: EngineIx, up: bool, err: Option<&str>) -> bool {
        let engine = self.engine(e);
        let was = engine.up.swap(up, Ordering::AcqRel);
        if let Some(msg) = err {
            *lock(&engine.last_error) = Some(msg.to_string());
        }
        was != up
    }

    /// A create on engine `e` took `ms`.
    pub fn record_create(&self, e: EngineIx, ms: u32) {
        let mut r = lock(&self.engine(e).recent_creates_ms);
        if r.len() == RECENT_CREATES {
            r.pop_front();
        }
        r.push_back(ms);
    }

    /// Whether startup dealt with what an earlier run left on engine `e`.
    pub fn cleaned(&self, e: EngineIx) -> bool {
        self.engine(e).is_cleaned()
    }

    /// Whether startup dealt with what an earlier run left on every engine.
    pub fn all_cleaned(&self) -> bool {
        self.engines.iter().all(Engine::is_cleaned)
    }

    /// Whether every engine but `e` had its startup cleanup.
    pub fn others_cleaned(&self, e: EngineIx) -> bool {
        self.engines
            .iter()
            .enumerate()
            .all(|(i, x)| i == e || x.is_cleaned())
    }

    /// Names of the engines whose startup cleanup has not run yet.
    pub fn not_cleaned(&self) -> Vec<&str> {
        self.engines
            .iter()
            .filter(|e| !e.is_cleaned())
            .map(|e| e.spec.name.as_str())
            .collect()
    }

    /// Engine `e`'s startup cleanup is done: what it holds is counted now, so the slots held
    /// for it while unseen go back.
    pub fn cleaned_up(&self, e: EngineIx) {
        self.caps.seen(e);
        self.engine(e).cleaned.store(true, Ordering::Release);
    }

    /// What the core knows of each engine, in config order; `pools[e]`: what the pools hold
    /// there (the orphans are added as removing).
    pub fn stats(&self, mut pools: Vec<StateCounts>) -> Vec<EngineStats> {
        for (_, _, e) in self.orphans() {
            if let Some(c) = pools.get_mut(e) {
                c.removing += 1;
            }
        }
        self.engines
            .iter()
            .zip(pools)
            .enumerate()
            .map(|(i, (e, containers))| EngineStats {
                name: e.spec.name.clone(),
                labels: e.spec.labels.clone(),
                up: e.is_up(),
                last_error: lock(&e.last_error).clone(),
                max_containers: e.spec.max_containers,
                counted: self.caps.used_on(i),
                containers,
                create_p50_ms: e.create_p50(),
                runtimes: lock(&e.runtimes).clone(),
            })
            .collect()
    }

    // ---- caps and permits --------------------------------------------------------------------

    /// The global cap and each engine's own.
    pub fn caps(&self) -> &Caps {
        &self.caps
    }

    /// A permit to create (bounds concurrent creates); `None` once the permits are closed.
    pub async fn create_permit(&self) -> Option<OwnedSemaphorePermit> {
        self.create_permits.clone().acquire_owned().await.ok()
    }

    /// A permit to remove (bounds concurrent removals).
    pub async fn remove_permit(&self) -> Option<SemaphorePermit<'_>> {
        self.remove_permits.acquire().await.ok()
    }

    // ---- orphans -----------------------------------------------------------------------------

    /// Count orphan `key` (engine ID `id` on engine `e`) against the caps; `false` if it is
    /// counted already.
    pub fn orphan(&self, key: &str, id: &str, e: EngineIx) -> bool {
        let mut b = lock(&self.orphans);
        if b.contains_key(key) {
            return false;
        }
        self.caps.count_found(e);
        b.insert(key.into(), (id.into(), e));
        true
    }

    /// Orphan `key` is gone from its engine: free its slots.
    pub fn orphan_removed(&self, key: &str) {
        if let Some((_, e)) = lock(&self.orphans).remove(key) {
            self.caps.release_on(e);
        }
    }

    /// Every orphan: (name, engine ID, engine).
    pub fn orphans(&self) -> Vec<(String, String, EngineIx)> {
        lock(&self.orphans)
            .iter()
            .map(|(k, (id, e))| (k.clone(), id.clone(), *e))
            .collect()
    }

    // ---- recent deaths -----------------------------------------------------------------------

    /// The engine reported `id` dead; remember it for creates still answering.
    pub fn note_death(&self, id: &str) {
        let mut d = lock(&self.deaths);
        if !d.ids.insert(id.to_string()) {
            return; // a second notice (die, then the sweep)
        }
        d.order.push_back(id.to_string());
        if d.order.len() > RECENT_DEATHS
            && let Some(old) = d.order.pop_front()
        {
            d.ids.remove(&old);
        }
    }

    /// Whether the engine reported `id` dead recently.
    pub fn died_recently(&self, id: &str) -> bool {
        lock(&self.deaths).ids.contains(id)
    }
}
