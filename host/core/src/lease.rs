//! Leases: a container handed to a client until it is released or its TTL runs out.

use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;
use tokio::time::Instant;
use warmpool_policy::AcquireSource;

use crate::pool::{Pool, ReadyContainer};

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
}

/// A lease as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LeaseInfo {
    pub lease_id: String,
    pub pool: String,
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
            pool: self.pool.cfg.name.clone(),
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
