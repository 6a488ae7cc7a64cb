//! Leases: a container handed to a client until it is released or its TTL runs out. The lease
//! type, the lease table, and the manager's operations on leases (list, renew, release, exec,
//! files).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::time::Instant;
use warmpool_policy::AcquireSource;

use crate::backend::{Backend, ExecOutput, ExecRequest, FileBody, USED_SUFFIX};
use crate::clock::{Clock, later, rfc3339};
use crate::error::LeaseError;
use crate::manager::{Manager, lock};
use crate::pool::{LeaseEnd, Pool, ReadyContainer};
use crate::store::{Change, LeaseRecord, unix_ms};

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
}

/// A lease as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LeaseInfo {
    /// The lease's ID (a UUID).
    pub lease_id: String,
    /// Name of the pool the container came from.
    pub pool: String,
    /// Who holds the lease, as the acquire said (free text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The engine's ID of the leased container.
    pub container_id: String,
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
    /// `active`, or `gone` when the container died under the lease.
    pub state: &'static str,
    /// Why the container died, when `state` is `gone`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gone_reason: Option<String>,
}

impl Lease {
    pub fn info(&self, now: Instant, clock: &Clock) -> LeaseInfo {
        let remaining = self.expires.saturating_duration_since(now);
        let c = &self.container.created;
        LeaseInfo {
            lease_id: self.id.clone(),
            pool: self.pool.name(),
            owner: self.owner.clone(),
            container_id: c.id.clone(),
            container_name: format!("{}{USED_SUFFIX}", c.name),
            image: c.image.clone(),
            source: source_name(self.source),
            acquire_ms: f64::from(self.acquire_us) / 1000.0,
            acquired_at: rfc3339(self.acquired_at),
            expires_at: rfc3339(clock.wall(self.expires)),
            ttl_remaining_s: remaining.as_secs(),
            state: if self.gone.is_some() {
                "gone"
            } else {
                "active"
            },
            gone_reason: self.gone.clone(),
        }
    }

    /// The lease as persisted: monotonic instants become wall-clock milliseconds.
    pub fn record(&self, clock: &Clock) -> LeaseRecord {
        let c = &self.container;
        LeaseRecord {
            lease_id: self.id.clone(),
            pool: self.pool.name(),
            owner: self.owner.clone(),
            container_id: c.created.id.clone(),
            container_name: c.created.name.clone(),
            image: c.created.image.clone(),
            image_id: c.created.image_id.clone(),
            source: source_name(self.source).into(),
            acquired_at_ms: unix_ms(self.acquired_at),
            expires_at_ms: unix_ms(clock.wall(self.expires)),
            born_at_ms: unix_ms(clock.wall(c.born)),
            uses: c.uses,
        }
    }
}

pub fn source_name(s: AcquireSource) -> &'static str {
    match s {
        AcquireSource::Pool => "pool",
        AcquireSource::Cold => "cold",
    }
}

/// The live leases, by ID (ordered, so every walk over them is the same from run to run).
#[derive(Default)]
pub(crate) struct LeaseTable {
    inner: Mutex<BTreeMap<String, Lease>>,
}

impl LeaseTable {
    pub fn insert(&self, l: Lease) {
        lock(&self.inner).insert(l.id.clone(), l);
    }

    pub fn remove(&self, id: &str) -> Option<Lease> {
        lock(&self.inner).remove(id)
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

    pub fn take_expired(&self, now: Instant) -> Vec<Lease> {
        let mut t = lock(&self.inner);
        let ids: Vec<String> = t
            .iter()
            .filter(|(_, l)| l.expires <= now)
            .map(|(id, _)| id.clone())
            .collect();
        ids.iter().filter_map(|id| t.remove(id)).collect()
    }

    pub fn drain(&self) -> Vec<Lease> {
        std::mem::take(&mut *lock(&self.inner))
            .into_values()
            .collect()
    }

    /// The live container of lease `id`, or why there is none.
    pub fn container(&self, id: &str) -> Result<String, LeaseError> {
        let t = lock(&self.inner);
        let l = t
            .get(id)
            .ok_or_else(|| LeaseError::UnknownLease(id.into()))?;
        match &l.gone {
            Some(reason) => Err(LeaseError::ContainerGone {
                lease: id.into(),
                reason: reason.clone(),
            }),
            None => Ok(l.container.created.id.clone()),
        }
    }

    /// The containers of leases whose container is not known to be gone.
    pub fn container_ids(&self) -> std::collections::HashSet<String> {
        lock(&self.inner)
            .values()
            .filter(|l| l.gone.is_none())
            .map(|l| l.container.created.id.clone())
            .collect()
    }
}

impl<B: Backend> Manager<B> {
    /// Every live lease as the API shows it, oldest first.
    pub fn leases(&self) -> Vec<LeaseInfo> {
        self.leases.infos(Instant::now(), &self.clock)
    }

    /// Lease `id` as the API shows it.
    pub fn lease(&self, id: &str) -> Result<LeaseInfo, LeaseError> {
        self.leases
            .with(id, |l| l.info(Instant::now(), &self.clock))
            .ok_or_else(|| LeaseError::UnknownLease(id.into()))
    }

    /// Extend a lease to `ttl` from now, capped at the pool's `max_ttl`.
    pub fn renew(&self, id: &str, ttl: Duration) -> Result<LeaseInfo, LeaseError> {
        let now = Instant::now();
        self.leases
            .with(id, |l| {
                l.expires = later(now, ttl.min(l.pool.cfg().max_ttl));
                self.record(|| Change::PutLease(l.record(&self.clock)));
                l.info(now, &self.clock)
            })
            .ok_or_else(|| LeaseError::UnknownLease(id.into()))
    }

    /// End a lease and destroy its container; the pool refills in the background.
    pub fn release(self: &Arc<Self>, id: &str) -> Result<(), LeaseError> {
        let lease = self
            .leases
            .remove(id)
            .ok_or_else(|| LeaseError::UnknownLease(id.into()))?;
        self.retire_lease(lease, LeaseEnd::Released, "released");
        Ok(())
    }

    /// A lease ends: forget it in the store, and tell the event stream why.
    pub(crate) fn lease_ended(&self, lease: &Lease, why: &str) {
        self.record(|| Change::DropLease(lease.id.clone()));
        self.emit(
            "released",
            &lease.pool.name(),
            Some(&lease.container.created.id),
            Some(&lease.id),
            Some(why.to_string()),
        );
    }

    /// A lease ends and its container is removed (never given to anyone else).
    pub(crate) fn retire_lease(self: &Arc<Self>, lease: Lease, end: LeaseEnd, why: &'static str) {
        self.lease_ended(&lease, why);
        lease.pool.lock().lease_ended(lease.container.key(), end);
        self.spawn_removal_of(&lease.pool, &lease.container, why);
    }

    /// Run `req` in lease `id`'s container. A zero `output_limit` means the manager's
    /// `exec_output_limit`.
    pub async fn exec(&self, id: &str, mut req: ExecRequest) -> Result<ExecOutput, LeaseError> {
        let cid = self.leases.container(id)?;
        if req.output_limit == 0 {
            req.output_limit = self.cfg.exec_output_limit;
        }
        let deadline = req.timeout + crate::lifecycle::CALL_SLACK;
        self.call(deadline, self.backend.exec(&cid, req))
            .await
            .map_err(|source| LeaseError::Backend {
                lease: id.into(),
                source,
            })
    }

    /// Write `file` at absolute `path` inside lease `id`'s container.
    pub async fn put_file(&self, id: &str, path: &str, file: FileBody) -> Result<(), LeaseError> {
        let cid = self.leases.container(id)?;
        self.backend
            .put_file(&cid, path, file)
            .await
            .map_err(|source| LeaseError::Backend {
                lease: id.into(),
                source,
            })
    }

    /// Read the file at absolute `path` in lease `id`'s container, as a stream.
    pub async fn get_file(&self, id: &str, path: &str) -> Result<FileBody, LeaseError> {
        let cid = self.leases.container(id)?;
        self.backend
            .get_file(&cid, path)
            .await
            .map_err(|source| LeaseError::Backend {
                lease: id.into(),
                source,
            })
    }
}
