//! The manager: the one type the API layer talks to. It is a thin facade over the parts (see
//! the crate doc): it owns them, wires them together ([`Manager::compose`]) and each of its
//! public methods delegates to the part that does the work. No part holds the manager or calls
//! it. Reload (`reload.rs`), shutdown (`shutdown.rs`) and the builder (`builder.rs`) are the
//! rest of the top.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::backend::{Backend, ByteStream, ExecOutput, ExecRequest, FileBody};
use crate::caps::EngineIx;
use crate::engines::EngineStats;
use crate::error::{AcquireError, LeaseError, WarmUpError};
use crate::events::Event;
use crate::group_commit::PersistStats;
use crate::lease::{LeaseInfo, LeaseLedger};
use crate::leasing::{AcquireRequest, LeaseSession, Leasing, ReuseOutcome, SuspendCause};
use crate::lifecycle::Lifecycle;
use crate::persistence::Persistence;
use crate::shared::Shared;
use crate::stats::PoolStats;
use crate::upkeep::{SweepReport, Upkeep};

/// All pools, the lease table, the global cap and every background task: what the API layer
/// talks to. Make one with [`Manager::builder`], then call [`Manager::start`].
pub struct Manager<B: Backend> {
    /// The layer-0 state (read by the facade's views).
    pub(crate) s: Arc<Shared<B>>,
    /// Layer 1: creates, removals, marks.
    pub(crate) life: Lifecycle<B>,
    /// Layer 2: the operations on leases.
    pub(crate) leasing: Leasing<B>,
    /// Layer 3: the background loops (the commit loop and reconcile included, through them).
    pub(crate) upkeep: Upkeep<B>,
}

impl<B: Backend> Manager<B> {
    /// The parts over `s`, each handed the parts below it.
    pub(crate) fn compose(s: Shared<B>) -> Self {
        let s = Arc::new(s);
        let life = Lifecycle::new(s.clone());
        let leasing = Leasing::new(s.clone(), life.clone());
        let persistence = Persistence::new(s.clone(), life.clone());
        let upkeep = Upkeep::new(s.clone(), life.clone(), leasing.clone(), persistence);
        Self {
            s,
            life,
            leasing,
            upkeep,
        }
    }

    /// Spawn every background task. Call once.
    pub fn start(self: &Arc<Self>) {
        self.upkeep.start();
    }

    // ---- events, tasks, engines --------------------------------------------------------------

    /// Subscribe to lifecycle events.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Event> {
        self.s.events.subscribe()
    }

    /// Publish an event that happened outside the core, e.g. a plugin reload.
    pub fn publish(&self, kind: &'static str, pool: &str, reason: String) {
        self.s.events.publish(kind, pool, reason);
    }

    /// The token every task runs under; cancelling it starts shutdown.
    pub fn cancel_token(&self) -> CancellationToken {
        self.s.rt.cancel().clone()
    }

    /// The tracker every task runs on; other layers (the plugin watcher) spawn on it too, so
    /// shutdown waits for them.
    pub fn tracker(&self) -> &TaskTracker {
        self.s.rt.tracker()
    }

    /// The first engine's backend (the only one of a single-engine daemon).
    pub fn backend(&self) -> &Arc<B> {
        self.s.fleet.backend(0)
    }

    /// Every engine's backend, in config order.
    pub fn backends(&self) -> impl Iterator<Item = (&str, &Arc<B>)> {
        self.s.fleet.backends()
    }

    /// Whether at least one engine answered its monitor's last ping (after its startup cleanup).
    pub fn engine_up(&self) -> bool {
        self.s.fleet.any_up()
    }

    /// Every engine's name, in index order.
    pub fn engine_names(&self) -> Vec<&str> {
        self.s.fleet.names()
    }

    /// What the core knows of each engine, in config order.
    pub fn engine_stats(&self) -> Vec<EngineStats> {
        self.s.engine_stats()
    }

    /// The name of engine `e`.
    pub fn engine_name(&self, e: EngineIx) -> &str {
        self.s.fleet.name(e)
    }

    /// The last engine error a monitor saw (kept after the engine recovers): a down engine's
    /// first, else the latest of any, else `not reached yet`.
    pub fn engine_error(&self) -> String {
        self.s.fleet.error()
    }

    /// Ready to serve: an engine answers and leftovers of an earlier run are dealt with.
    pub fn is_ready(&self) -> bool {
        self.s.is_ready()
    }

    /// Whether startup dealt with what an earlier run left (the sweep or the reconcile ran on
    /// at least one engine).
    pub fn reconciled(&self) -> bool {
        self.s.rt.swept()
    }

    /// Whether startup dealt with what an earlier run left on engine `name` (an unknown name
    /// means the first engine, as for lease records).
    pub fn engine_reconciled(&self, name: &str) -> bool {
        self.s.fleet.cleaned(self.s.fleet.named(name).unwrap_or(0))
    }

    /// Whether startup dealt with what an earlier run left on every engine.
    pub fn all_reconciled(&self) -> bool {
        self.s.fleet.all_cleaned()
    }

    // ---- pools and the books -----------------------------------------------------------------

    /// Names of the serving pools, sorted (removed pools still draining are not listed).
    pub fn pool_names(&self) -> Vec<String> {
        self.s.books.names()
    }

    /// Stats of pool `name`; `None` if no pool serves under that name.
    pub fn pool_stats(&self, name: &str) -> Option<PoolStats> {
        self.s.pool_stats(name)
    }

    /// Stats of every serving pool, by name.
    pub fn all_pool_stats(&self) -> Vec<PoolStats> {
        self.s.all_pool_stats()
    }

    /// Containers the global cap counts now, over all pools and orphans.
    pub fn containers_counted(&self) -> u32 {
        self.s.fleet.caps().used()
    }

    /// Every container this daemon accounts for now: (name, engine ID once known). For the
    /// running sweep, and for tests that compare the books with the engine.
    pub fn accounted(&self) -> Vec<(String, Option<String>)> {
        self.s.accounted()
    }

    /// Wait until the pool has as many ready containers as its target.
    pub async fn warm_up(&self, name: &str, within: Duration) -> Result<PoolStats, WarmUpError> {
        self.upkeep.warm_up(name, within).await
    }

    /// Compare every engine that is up with the books once (see `upkeep/sweep.rs`).
    pub async fn sweep_once(self: &Arc<Self>) -> SweepReport {
        self.upkeep.sweep_once().await
    }

    // ---- persistence -------------------------------------------------------------------------

    /// Whether leases are persisted (a `state_dir` is configured).
    pub fn persists(&self) -> bool {
        self.s.persist.enabled()
    }

    /// Persistence figures; `None` when nothing is persisted.
    pub fn persist_stats(&self) -> Option<PersistStats> {
        self.s.persist.stats()
    }

    /// At shutdown, after the token is cancelled: wait for a commit round in flight, so that
    /// the lendable flags in the pools match the store. No round starts after this.
    pub async fn settle_commits(&self) {
        self.s.persist.settle().await;
    }

    // ---- leases (all in `leasing/`) ----------------------------------------------------------

    /// Take a container for a client. The warm path is one short critical section; a lease
    /// with its own environment, secrets or files then has them applied to its container
    /// before this answers (see `leasing/sessions.rs`).
    pub async fn acquire(self: &Arc<Self>, req: AcquireRequest) -> Result<LeaseInfo, AcquireError> {
        self.leasing.acquire(req).await
    }

    /// Change lease `id`'s CPU and memory limits, within its pool's `resources` bounds (a
    /// field not asked keeps the lease's); answers the lease with its new limits.
    pub async fn resize(
        self: &Arc<Self>,
        id: &str,
        ask: &crate::backend::Resources,
    ) -> Result<LeaseInfo, crate::error::ResizeError> {
        self.leasing.resize(id, ask).await
    }

    /// Every live lease as the API shows it, oldest first.
    pub fn leases(&self) -> Vec<LeaseInfo> {
        self.leasing.leases()
    }

    /// Lease `id` as the API shows it.
    pub fn lease(&self, id: &str) -> Result<LeaseInfo, LeaseError> {
        self.leasing.lease(id)
    }

    /// The tenant of lease `id` (`Ok(None)`: it has none), or why there is no such lease.
    pub fn lease_tenant(&self, id: &str) -> Result<Option<String>, LeaseError> {
        self.leasing.tenant_of(id)
    }

    /// Leases tenant `name` holds now.
    pub fn tenant_leases(&self, name: &str) -> u32 {
        self.leasing.count_of(name)
    }

    /// The TTL an acquire of `pool` asking for `asked` gets (the pool's `default_ttl` when
    /// `None`, capped at its `max_ttl`); `None` for an unknown pool.
    pub fn lease_ttl(&self, pool: &str, asked: Option<Duration>) -> Option<Duration> {
        self.leasing.ttl_for(pool, asked)
    }

    /// [`Manager::renew`], if `pay` agrees to the change of the lease's time left: it is asked
    /// under the lease table's lock with the lease's tenant, the time it had and the time it
    /// will have (a tenant's lease-seconds pay for the difference).
    pub fn renew_with<R>(
        &self,
        id: &str,
        ttl: Duration,
        pay: impl FnOnce(Option<&str>, Duration, Duration) -> Result<(), R>,
    ) -> Result<Result<LeaseInfo, R>, LeaseError> {
        self.leasing.renew_with(id, ttl, pay)
    }

    /// What a lookup of lease `id` answers to a caller that may not see it: the same as for an
    /// ID no lease has (`unknown_lease`, or `lease_not_restored_yet` just after a restart).
    pub fn unknown_lease(&self, id: &str) -> LeaseError {
        self.leasing.unknown(id)
    }

    /// Keep each tenant's lease time with `ledger`: told as each lease with a tenant enters
    /// and leaves the lease table (see [`LeaseLedger`]).
    pub fn set_lease_ledger(&self, ledger: Arc<dyn LeaseLedger>) {
        self.leasing.set_ledger(ledger);
    }

    /// Extend a lease to `ttl` from now, capped at the pool's `max_ttl`.
    pub fn renew(&self, id: &str, ttl: Duration) -> Result<LeaseInfo, LeaseError> {
        self.leasing.renew(id, ttl)
    }

    /// Suspend lease `id`: its container is checkpointed to the engine's disk and stopped
    /// (memory and files kept, memory freed). Its TTL runs on. See `leasing/hibernate.rs`.
    pub async fn suspend(&self, id: &str) -> Result<LeaseInfo, LeaseError> {
        self.leasing.suspend(id, SuspendCause::Request).await
    }

    /// Resume suspended lease `id` from its checkpoint.
    pub async fn resume(&self, id: &str) -> Result<LeaseInfo, LeaseError> {
        self.leasing.resume(id).await
    }

    /// End a lease and destroy its container; the pool refills in the background.
    pub fn release(self: &Arc<Self>, id: &str) -> Result<(), LeaseError> {
        self.leasing.release(id)
    }

    /// End a lease, returning its container to the pool if the scrub and the verified reset
    /// allow it. The reset runs on a tracked task: a client that hangs up does not leave it half
    /// done.
    pub async fn release_for_reuse(self: &Arc<Self>, id: &str) -> Result<ReuseOutcome, LeaseError> {
        self.leasing.release_for_reuse(id).await
    }

    /// Run `req` in lease `id`'s container. A zero `output_limit` means the manager's
    /// `exec_output_limit`.
    ///
    /// The engine call runs to its end on a task of its own, inside the lease's fence: a
    /// client that hangs up stops it (its processes are killed), and a release waits for it,
    /// so nothing it started reaches the container after a reuse's scrub began.
    pub async fn exec(
        self: &Arc<Self>,
        id: &str,
        req: ExecRequest,
    ) -> Result<ExecOutput, LeaseError> {
        self.leasing.exec(id, req).await
    }

    /// Write `file` at absolute `path` inside lease `id`'s container. As with
    /// [`exec`](Self::exec), the engine call runs to its end inside the lease's fence; the
    /// lease's end, or the client hanging up, cuts the body. The daemon's own deadlines on
    /// waiting apply (`deadline.rs`).
    pub async fn put_file(
        self: &Arc<Self>,
        id: &str,
        path: &str,
        file: FileBody,
    ) -> Result<(), LeaseError> {
        self.leasing.put_file(id, path, file).await
    }

    /// Read the file at absolute `path` in lease `id`'s container, as a stream. The stream
    /// holds its place inside the lease's fence until it is done or dropped, and ends early
    /// (with an error) when the lease ends.
    pub async fn get_file(&self, id: &str, path: &str) -> Result<FileBody, LeaseError> {
        self.leasing.get_file(id, path).await
    }

    /// Start `req` in lease `id`'s container as a session. The session holds the lease's fence
    /// until it is dropped: the lease's end stops it (its tree is killed), and a release for
    /// reuse waits for it. A zero `output_limit` streams everything.
    pub async fn exec_session(
        self: &Arc<Self>,
        id: &str,
        req: ExecRequest,
    ) -> Result<LeaseSession, LeaseError> {
        self.leasing.exec_session(id, req).await
    }

    /// Unpack the tar stream `body` into directory `dir` of lease `id`'s container. As an
    /// upload: inside the fence to the engine's answer, its body cut when the lease ends.
    pub async fn put_tar(
        self: &Arc<Self>,
        id: &str,
        dir: &str,
        body: ByteStream,
    ) -> Result<(), LeaseError> {
        self.leasing.put_tar(id, dir, body).await
    }

    /// Directory (or file) `path` of lease `id`'s container as a tar stream, which holds its
    /// place inside the fence until it ends and ends when the lease does.
    pub async fn get_tar(&self, id: &str, path: &str) -> Result<ByteStream, LeaseError> {
        self.leasing.get_tar(id, path).await
    }
}
