//! Leases: a container handed to a client until it is released or its TTL runs out; the
//! lease type, and the manager's operations on leases (list, renew, release, exec, files).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::time::Instant;
use warmpool_policy::AcquireSource;

use crate::backend::{Backend, ExecOutput, ExecRequest};
use crate::error::LeaseError;
use crate::manager::{Manager, lock};
use crate::pool::{Pool, ReadyContainer};
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
    pub lease_id: String,
    pub pool: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    pub container_id: String,
    pub container_name: String,
    pub image: String,
    /// `pool` (warm) or `cold` (created for this acquire).
    pub source: &'static str,
    /// Time the acquire took inside the daemon, in milliseconds (fractional).
    pub acquire_ms: f64,
    pub acquired_at: String,
    pub expires_at: String,
    /// Seconds left before the lease expires.
    pub ttl_remaining_s: u64,
    /// `active`, or `gone` when the container died under the lease.
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gone_reason: Option<String>,
}

impl Lease {
    pub fn info(&self, now: Instant) -> LeaseInfo {
        let remaining = self.expires.saturating_duration_since(now);
        let c = &self.container.created;
        LeaseInfo {
            lease_id: self.id.clone(),
            pool: self.pool.cfg().name.clone(),
            owner: self.owner.clone(),
            container_id: c.id.clone(),
            container_name: c.name.clone(),
            image: c.image.clone(),
            source: source_name(self.source),
            acquire_ms: f64::from(self.acquire_us) / 1000.0,
            acquired_at: rfc3339(self.acquired_at),
            expires_at: rfc3339(SystemTime::now() + remaining),
            ttl_remaining_s: remaining.as_secs(),
            state: if self.gone.is_some() {
                "gone"
            } else {
                "active"
            },
            gone_reason: self.gone.clone(),
        }
    }
}

impl Lease {
    /// The lease as persisted: monotonic instants become wall-clock milliseconds.
    pub fn record(&self, now: Instant) -> LeaseRecord {
        let wall = SystemTime::now();
        let c = &self.container;
        LeaseRecord {
            lease_id: self.id.clone(),
            pool: self.pool.cfg().name.clone(),
            owner: self.owner.clone(),
            container_id: c.created.id.clone(),
            container_name: c.created.name.clone(),
            image: c.created.image.clone(),
            image_id: c.created.image_id.clone(),
            source: source_name(self.source).into(),
            acquired_at_ms: unix_ms(self.acquired_at),
            expires_at_ms: unix_ms(wall + self.expires.saturating_duration_since(now)),
            born_at_ms: unix_ms(wall - now.saturating_duration_since(c.born)),
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

/// RFC 3339 in UTC with millisecond precision, e.g. `2026-11-22T18:42:59.123Z`.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

impl<B: Backend> Manager<B> {
    pub fn leases(&self) -> Vec<LeaseInfo> {
        let now = Instant::now();
        let mut v: Vec<_> = lock(&self.leases).values().map(|l| l.info(now)).collect();
        v.sort_by(|a, b| a.acquired_at.cmp(&b.acquired_at));
        v
    }

    pub fn lease(&self, id: &str) -> Result<LeaseInfo, LeaseError> {
        let leases = lock(&self.leases);
        let l = leases
            .get(id)
            .ok_or_else(|| LeaseError::UnknownLease(id.into()))?;
        Ok(l.info(Instant::now()))
    }

    /// Extend a lease to `ttl` from now, capped at the pool's `max_ttl`.
    pub fn renew(&self, id: &str, ttl: Duration) -> Result<LeaseInfo, LeaseError> {
        let mut leases = lock(&self.leases);
        let l = leases
            .get_mut(id)
            .ok_or_else(|| LeaseError::UnknownLease(id.into()))?;
        let now = Instant::now();
        l.expires = now + ttl.min(l.pool.cfg().max_ttl);
        let info = l.info(now);
        self.record(|| Change::PutLease(l.record(now)));
        Ok(info)
    }

    /// End a lease and destroy its container; the pool refills in the background.
    pub fn release(self: &Arc<Self>, id: &str) -> Result<(), LeaseError> {
        let lease = lock(&self.leases)
            .remove(id)
            .ok_or_else(|| LeaseError::UnknownLease(id.into()))?;
        self.retire_lease(lease, "released");
        Ok(())
    }

    /// A lease ends: forget it in the store, and tell the event stream why.
    pub(crate) fn lease_ended(&self, lease: &Lease, why: &str) {
        self.record(|| Change::DropLease(lease.id.clone()));
        self.emit(
            "released",
            &lease.pool.cfg().name,
            Some(&lease.container.created.id),
            Some(&lease.id),
            Some(why.to_string()),
        );
    }

    pub(crate) fn retire_lease(self: &Arc<Self>, lease: Lease, why: &'static str) {
        self.lease_ended(&lease, why);
        {
            let mut st = lease.pool.lock();
            st.leased -= 1;
            st.removing += 1;
        }
        self.spawn_destroy(lease.pool, lease.container.created.id, false, why);
    }

    /// The container of a live lease, or why there is none.
    fn lease_container(&self, id: &str) -> Result<String, LeaseError> {
        let leases = lock(&self.leases);
        let l = leases
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

    pub async fn exec(&self, id: &str, mut req: ExecRequest) -> Result<ExecOutput, LeaseError> {
        let cid = self.lease_container(id)?;
        if req.output_limit == 0 {
            req.output_limit = self.cfg.exec_output_limit;
        }
        let backend_err = |source| LeaseError::Backend {
            lease: id.into(),
            source,
        };
        self.backend.exec(&cid, req).await.map_err(backend_err)
    }

    pub async fn put_file(&self, id: &str, path: &str, data: Vec<u8>) -> Result<(), LeaseError> {
        let cid = self.lease_container(id)?;
        let backend_err = |source| LeaseError::Backend {
            lease: id.into(),
            source,
        };
        self.backend
            .put_file(&cid, path, data)
            .await
            .map_err(backend_err)
    }

    pub async fn get_file(&self, id: &str, path: &str) -> Result<Vec<u8>, LeaseError> {
        let cid = self.lease_container(id)?;
        let backend_err = |source| LeaseError::Backend {
            lease: id.into(),
            source,
        };
        self.backend.get_file(&cid, path).await.map_err(backend_err)
    }
}
