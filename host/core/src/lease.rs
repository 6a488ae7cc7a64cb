//! Leases: a container handed to a client until it is released or its TTL runs out. The lease
//! type, how the API and the store see it, and the lease table. Plain data: the manager's
//! operations on leases (list, renew, release, exec, files) are in `leasing/`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::time::Instant;
use warmpool_policy::AcquireSource;

use crate::backend::{Resources, USED_SUFFIX};
use crate::caps::EngineIx;
use crate::clock::{Clock, rfc3339};
use crate::error::LeaseError;
use crate::fence::{LeaseOp, Ops};
use crate::lease_store::{LeaseRecord, unix_ms};
use crate::pool::{Pool, ReadyContainer};
use crate::sync::lock;

/// A live lease, as the manager keeps it.
pub struct Lease {
    pub id: String,
    pub pool: Arc<Pool>,
    pub container: ReadyContainer,
    pub source: AcquireSource,
    pub acquire_us: u32,
    pub acquired_at: SystemTime,
    pub expires: Instant,
    /// Set when the engine reported the container dead while leased.
    pub gone: Option<String>,
    /// Who holds it, as the acquire said.
    pub owner: Option<String>,
    /// The tenant whose lease it is (the API's caller); never changes, so the table's count
    /// per tenant stays right.
    pub tenant: Option<String>,
    /// Name of the engine that holds the container (`container.engine` is its index).
    pub engine: String,
    /// Its operations under way, and its fence (raised when the table gives the lease up).
    pub ops: Arc<Ops>,
    /// The CPU and memory limits its container has: the pool's, or the lease's own.
    pub resources: Resources,
    /// An update of its container's limits was asked (answered or not): before a reuse, the
    /// pool's are put back (or the container is destroyed).
    pub resized: bool,
    /// Whether its container runs, or is suspended or on its way (see `leasing/hibernate.rs`).
    pub hib: Hib,
    /// When a call last entered the lease (or it was opened or resumed): its pool's
    /// `suspend_after_idle` counts from here.
    pub last_used: Instant,
    /// Held through a suspend or a resume: one at a time per lease.
    pub turn: Arc<tokio::sync::Mutex<()>>,
    /// Suspended at least once: its container is never reused (its baseline is of a process
    /// tree a restore made anew).
    pub hibernated: bool,
}

/// Where a lease's container stands as to hibernation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hib {
    /// Running: calls enter.
    Running,
    /// A checkpoint is being taken; calls wait for it (or are refused).
    Suspending,
    /// Stopped, with its checkpoint on the engine's disk, since then.
    Suspended(SystemTime),
    /// Being restored from its checkpoint (suspended since then).
    Resuming(SystemTime),
}

impl Hib {
    /// Since when it is suspended, if it is (or is being resumed).
    pub fn since(self) -> Option<SystemTime> {
        match self {
            Hib::Suspended(t) | Hib::Resuming(t) => Some(t),
            _ => None,
        }
    }
}

/// A lease as the API shows it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeaseInfo {
    /// The lease's ID (a UUID).
    pub lease_id: String,
    /// Name of the pool the container came from.
    pub pool: String,
    /// Who holds the lease, as the acquire said (free text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The tenant whose lease it is, when the API has tenants.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The engine's ID of the leased container.
    pub container_id: String,
    /// Name of the engine that holds the container.
    pub engine: String,
    /// The engine's name for the container while leased: the daemon marks a leased container
    /// by renaming it `<name>-leased` (see README "Guarantees"); address it by `container_id`.
    pub container_name: String,
    /// The image reference the container runs.
    pub image: String,
    /// `pool` (warm) or `cold` (created for this acquire).
    pub source: &'static str,
    /// Time the acquire took inside the daemon, in milliseconds (fractional).
    pub acquire_ms: f64,
    /// RFC 3339 time the lease was opened.
    pub acquired_at: String,
    /// RFC 3339 time the lease expires unless renewed.
    pub expires_at: String,
    /// Seconds left before the lease expires.
    pub ttl_remaining_s: u64,
    /// `active`; `suspending`, `suspended` or `resuming` (hibernation: the TTL runs on while
    /// suspended); or `gone` when the container died under the lease.
    pub state: &'static str,
    /// RFC 3339 time the lease was suspended, while it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suspended_at: Option<String>,
    /// Why the container died, when `state` is `gone`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gone_reason: Option<String>,
    /// The CPU and memory limits the lease's container has now: the pool's, or those the
    /// lease asked for (at acquire or by `PATCH`).
    pub resources: LeaseResources,
}

/// A lease's CPU and memory limits, as the API shows them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeaseResources {
    /// CPU limit in CPUs (fractional); `null`: unlimited.
    pub cpus: Option<f64>,
    /// Memory limit in bytes (swap included); `null`: unlimited.
    pub memory: Option<i64>,
}

impl From<Resources> for LeaseResources {
    fn from(r: Resources) -> Self {
        Self {
            cpus: r.nano_cpus.map(|n| n as f64 / 1e9),
            memory: r.memory,
        }
    }
}

impl Lease {
    pub fn info(&self, now: Instant, clock: &Clock) -> LeaseInfo {
        let remaining = self.expires.saturating_duration_since(now);
        let c = &self.container.created;
        LeaseInfo {
            lease_id: self.id.clone(),
            pool: self.pool.name(),
            owner: self.owner.clone(),
            tenant: self.tenant.clone(),
            container_id: c.id.clone(),
            engine: self.engine.clone(),
            container_name: format!("{}{USED_SUFFIX}", c.name),
            image: c.image.clone(),
            source: source_name(self.source),
            acquire_ms: f64::from(self.acquire_us) / 1000.0,
            acquired_at: rfc3339(self.acquired_at),
            expires_at: rfc3339(clock.wall(self.expires)),
            ttl_remaining_s: remaining.as_secs(),
            state: match (&self.gone, self.hib) {
                (Some(_), _) => "gone",
                (None, Hib::Running) => "active",
                (None, Hib::Suspending) => "suspending",
                (None, Hib::Suspended(_)) => "suspended",
                (None, Hib::Resuming(_)) => "resuming",
            },
            suspended_at: self.hib.since().map(rfc3339),
            gone_reason: self.gone.clone(),
            resources: self.resources.into(),
        }
    }

    /// The lease as persisted: monotonic instants become wall-clock milliseconds.
    pub fn record(&self, clock: &Clock) -> LeaseRecord {
        let c = &self.container;
        LeaseRecord {
            lease_id: self.id.clone(),
            pool: self.pool.name(),
            owner: self.owner.clone(),
            tenant: self.tenant.clone(),
            container_id: c.created.id.clone(),
            engine: Some(self.engine.clone()),
            container_name: c.created.name.clone(),
            image: c.created.image.clone(),
            image_id: c.created.image_id.clone(),
            source: source_name(self.source).into(),
            acquired_at_ms: unix_ms(self.acquired_at),
            expires_at_ms: unix_ms(clock.wall(self.expires)),
            born_at_ms: unix_ms(clock.wall(c.born)),
            uses: c.uses,
            resources: self
                .resized
                .then_some((self.resources.nano_cpus, self.resources.memory)),
            suspended_at_ms: self.hib.since().map(unix_ms),
        }
    }
}

pub fn source_name(s: AcquireSource) -> &'static str {
    match s {
        AcquireSource::Pool => "pool",
        AcquireSource::Cold => "cold",
    }
}

/// Keeps account of each tenant's lease time (the API's quotas). The lease table tells it, under
/// its own lock, when a tenant's lease enters the table and with how much time, and when one
/// leaves and with how much unused: every way a lease comes and goes (acquire, restore after a
/// restart, release, reuse, expiry, shutdown) passes there, and each lease's time is read from
/// the lease itself, so no two callers can count the same time twice.
pub trait LeaseLedger: Send + Sync + 'static {
    /// A lease of `tenant` entered the table with `left` to run.
    fn opened(&self, tenant: &str, left: Duration);
    /// A lease of `tenant` left the table with `left` unused.
    fn closed(&self, tenant: &str, left: Duration);
}

/// The live leases, by ID (ordered, so every walk over them is the same from run to run). A
/// lease leaves it only with its fence raised (see `fence.rs`): no operation on it starts
/// afterwards, and those under way are told to stop.
#[derive(Default)]
pub(crate) struct LeaseTable {
    inner: Mutex<BTreeMap<String, Lease>>,
    /// Leases held per tenant, kept by `insert` and `take` alone (a lease's tenant never
    /// changes), so a tenant's count is one lookup on the acquire path.
    per_tenant: Mutex<BTreeMap<String, u32>>,
    /// Told of each tenant's lease time as leases come and go (`insert`, `take`).
    ledger: RwLock<Option<Arc<dyn LeaseLedger>>>,
}

impl LeaseTable {
    pub fn set_ledger(&self, ledger: Arc<dyn LeaseLedger>) {
        *self.ledger.write().unwrap_or_else(|p| p.into_inner()) = Some(ledger);
    }

    fn ledger(&self) -> Option<Arc<dyn LeaseLedger>> {
        self.ledger
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn insert(&self, l: Lease) {
        let mut t = lock(&self.inner);
        if let Some(tenant) = &l.tenant {
            *lock(&self.per_tenant).entry(tenant.clone()).or_default() += 1;
            if let Some(ledger) = self.ledger() {
                ledger.opened(tenant, l.expires.saturating_duration_since(Instant::now()));
            }
        }
        if let Some(old) = t.insert(l.id.clone(), l) {
            // IDs are unique; should one ever be reused, the count still matches the table.
            self.uncount(&old);
        }
    }

    /// Take lease `id` out of the map `t` (the caller holds its lock), keeping the counts.
    fn take(&self, t: &mut BTreeMap<String, Lease>, id: &str) -> Option<Lease> {
        let l = t.remove(id)?;
        self.uncount(&l);
        l.ops.fence();
        Some(l)
    }

    fn uncount(&self, l: &Lease) {
        if let Some(tenant) = &l.tenant {
            if let Some(ledger) = self.ledger() {
                ledger.closed(tenant, l.expires.saturating_duration_since(Instant::now()));
            }
            let mut counts = lock(&self.per_tenant);
            if let Some(n) = counts.get_mut(tenant) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    counts.remove(tenant);
                }
            }
        }
    }

    /// Leases tenant `name` holds.
    pub fn count_of(&self, name: &str) -> u32 {
        lock(&self.per_tenant).get(name).copied().unwrap_or(0)
    }

    /// The tenant of lease `id` (`Ok(None)`: a lease without one).
    pub fn tenant_of(&self, id: &str) -> Result<Option<String>, LeaseError> {
        lock(&self.inner)
            .get(id)
            .map(|l| l.tenant.clone())
            .ok_or_else(|| LeaseError::UnknownLease(id.into()))
    }

    pub fn remove(&self, id: &str) -> Option<Lease> {
        self.take(&mut lock(&self.inner), id)
    }

    pub fn len(&self) -> usize {
        lock(&self.inner).len()
    }

    pub fn infos(&self, now: Instant, clock: &Clock) -> Vec<LeaseInfo> {
        let mut v: Vec<_> = lock(&self.inner)
            .values()
            .map(|l| l.info(now, clock))
            .collect();
        v.sort_by(|a, b| a.acquired_at.cmp(&b.acquired_at));
        v
    }

    /// Run `f` on lease `id`, if it exists.
    pub fn with<R>(&self, id: &str, f: impl FnOnce(&mut Lease) -> R) -> Option<R> {
        lock(&self.inner).get_mut(id).map(f)
    }

    /// Run `f` on the lease holding container `cid`, if any.
    pub fn with_container<R>(&self, cid: &str, f: impl FnOnce(&mut Lease) -> R) -> Option<R> {
        lock(&self.inner)
            .values_mut()
            .find(|l| l.container.created.id == cid)
            .map(f)
    }

    /// Leases running and untouched for their pool's `suspend_after_idle` (none under way).
    pub fn idle(&self, now: Instant) -> Vec<String> {
        lock(&self.inner)
            .values()
            .filter(|l| {
                l.gone.is_none()
                    && l.hib == Hib::Running
                    && !l.ops.busy()
                    && l.pool
                        .cfg()
                        .hibernation
                        .suspend_after_idle
                        .is_some_and(|idle| now.saturating_duration_since(l.last_used) >= idle)
            })
            .map(|l| l.id.clone())
            .collect()
    }

    pub fn take_expired(&self, now: Instant) -> Vec<Lease> {
        let mut t = lock(&self.inner);
        let ids: Vec<String> = t
            .iter()
            .filter(|(_, l)| l.expires <= now)
            .map(|(id, _)| id.clone())
            .collect();
        ids.iter().filter_map(|id| self.take(&mut t, id)).collect()
    }

    pub fn drain(&self) -> Vec<Lease> {
        let mut t = lock(&self.inner);
        let ids: Vec<String> = t.keys().cloned().collect();
        ids.iter().filter_map(|id| self.take(&mut t, id)).collect()
    }

    /// Begin an operation on lease `id`: its container and engine, and a place inside its
    /// fence, taken under the table's lock so that a release cannot slip between the look-up
    /// and the entry. A lease whose container died answers why.
    /// A lease that is not running (suspended, or on its way) answers `Suspended`: the caller
    /// resumes it or refuses, as its pool says. Each operation marks the lease as used now.
    pub fn op(&self, id: &str) -> Result<LeaseOp, LeaseError> {
        let mut t = lock(&self.inner);
        let l = t
            .get_mut(id)
            .ok_or_else(|| LeaseError::UnknownLease(id.into()))?;
        if let Some(reason) = &l.gone {
            return Err(LeaseError::ContainerGone {
                lease: id.into(),
                reason: reason.clone(),
            });
        }
        if l.hib != Hib::Running {
            return Err(LeaseError::Suspended { lease: id.into() });
        }
        l.last_used = Instant::now();
        // A lease in the table has its fence down: only `remove`, `take_expired` and `drain`
        // raise it, as they take the lease out.
        let guard = l
            .ops
            .enter()
            .ok_or_else(|| LeaseError::UnknownLease(id.into()))?;
        Ok(LeaseOp {
            container: l.container.created.id.clone(),
            engine: l.container.engine,
            _inside: guard,
            token: l.ops.stop_token(),
        })
    }

    /// The container of lease `id` and the engine that holds it, or why there is none.
    pub fn container(&self, id: &str) -> Result<(String, EngineIx), LeaseError> {
        let t = lock(&self.inner);
        let l = t
            .get(id)
            .ok_or_else(|| LeaseError::UnknownLease(id.into()))?;
        match &l.gone {
            Some(reason) => Err(LeaseError::ContainerGone {
                lease: id.into(),
                reason: reason.clone(),
            }),
            None => Ok((l.container.created.id.clone(), l.container.engine)),
        }
    }

    /// The containers on engine `e` of leases whose container is not known to be gone and
    /// should be running (a suspended one is stopped on purpose).
    pub fn container_ids_on(&self, e: EngineIx) -> Vec<String> {
        lock(&self.inner)
            .values()
            .filter(|l| l.gone.is_none() && l.hib == Hib::Running && l.container.engine == e)
            .map(|l| l.container.created.id.clone())
            .collect()
    }
}
