//! A tenant's quotas and its use of them.
//!
//! - **`max_leases`**: leases held at once. The core counts a tenant's leases
//!   ([`warmpool_core::Manager::tenant_leases`]); acquires under way count too, so a storm of
//!   concurrent acquires can never take the tenant past its cap (one may be refused that would
//!   have fit a moment later, never the other way round).
//! - **`acquires_per_s`**: a token bucket holding one second's worth (at least one): every
//!   acquire the quotas let through takes a token, whatever its outcome.
//! - **`lease_seconds_per_hour`**: a bucket of lease-seconds that refills at the budget per
//!   hour. What a lease takes is kept by the core's lease table ([`Ledger`]): a lease takes its
//!   time left as it enters the table (an acquire, or a restore after a restart) and gives back
//!   what it did not use as it leaves (released early, or for reuse; an expired lease used it
//!   all); a renew takes its extension, asked under the table's lock. An acquire only holds its
//!   TTL while it runs, so that concurrent acquires cannot all spend the same seconds; the hold
//!   is given back when it ends, whatever its outcome.
//!
//! Every check and every take happen under one lock per tenant, so no two acquires can both
//! see the last lease or the last second. The lock is held for a few arithmetic operations and
//! one lookup in the core's table (the core never takes it), never across an await.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// A tenant's quotas; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Quotas {
    /// Leases held at once.
    pub max_leases: Option<u32>,
    /// Acquires per second.
    pub acquires_per_s: Option<f64>,
    /// Lease-seconds per hour.
    pub lease_seconds_per_hour: Option<u64>,
}

/// Which quota refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaKind {
    /// `max_leases`.
    MaxLeases,
    /// `acquires_per_s`.
    AcquiresPerS,
    /// `lease_seconds_per_hour`.
    LeaseSecondsPerHour,
}

impl QuotaKind {
    /// Every quota, in the order of the rejection counters.
    pub const ALL: [QuotaKind; 3] = [
        QuotaKind::MaxLeases,
        QuotaKind::AcquiresPerS,
        QuotaKind::LeaseSecondsPerHour,
    ];

    /// Its name in the config, the 429's `quota` and the metrics' `quota` label.
    pub const fn as_str(self) -> &'static str {
        match self {
            QuotaKind::MaxLeases => "max_leases",
            QuotaKind::AcquiresPerS => "acquires_per_s",
            QuotaKind::LeaseSecondsPerHour => "lease_seconds_per_hour",
        }
    }

    const fn ix(self) -> usize {
        match self {
            QuotaKind::MaxLeases => 0,
            QuotaKind::AcquiresPerS => 1,
            QuotaKind::LeaseSecondsPerHour => 2,
        }
    }
}

/// A quota said no: which, why, and when to try again.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// The quota.
    pub quota: QuotaKind,
    /// What the client is told.
    pub message: String,
    /// When a retry may pass.
    pub retry_after: Duration,
}

/// A bucket of `capacity` that refills at `per_s`.
#[derive(Debug)]
struct Bucket {
    capacity: f64,
    per_s: f64,
    level: f64,
    at: Instant,
}

impl Bucket {
    fn full(capacity: f64, per_s: f64, now: Instant) -> Self {
        Self {
            capacity,
            per_s,
            level: capacity,
            at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.level = (self.level + dt * self.per_s).min(self.capacity);
        self.at = now;
    }

    /// How long until the bucket holds `need`.
    fn wait_for(&self, need: f64) -> Duration {
        let missing = (need - self.level).max(0.0);
        Duration::from_secs_f64((missing / self.per_s).min(86_400.0))
    }

    fn give(&mut self, n: f64) {
        self.level = (self.level + n).min(self.capacity);
    }
}

struct Inner {
    /// Acquires let through and not yet in the core's table (or failed).
    pending: u32,
    rate: Option<Bucket>,
    seconds: Option<Bucket>,
}

/// One tenant's quotas and use. Counters are read by the metrics and `GET /v1/tenants`.
pub struct Usage {
    quotas: Quotas,
    inner: Mutex<Inner>,
    rejected: [AtomicU64; 3],
    acquires: AtomicU64,
}

const HOUR: f64 = 3600.0;

impl Usage {
    /// Fresh use: every bucket full.
    pub fn new(quotas: Quotas) -> Self {
        let now = Instant::now();
        Self {
            quotas,
            inner: Mutex::new(Inner {
                pending: 0,
                rate: quotas
                    .acquires_per_s
                    .map(|r| Bucket::full(r.max(1.0), r, now)),
                seconds: quotas
                    .lease_seconds_per_hour
                    .map(|b| Bucket::full(b as f64, b as f64 / HOUR, now)),
            }),
            rejected: Default::default(),
            acquires: AtomicU64::new(0),
        }
    }

    /// The quotas.
    pub fn quotas(&self) -> Quotas {
        self.quotas
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Let an acquire of a lease of `ttl` through, or say which quota refuses it. `held` is
    /// how many leases the tenant holds now (asked under the lock). Nothing is taken unless
    /// every quota agrees. The [`Admit`] gives back what the acquire did not use.
    pub fn admit(&self, held: impl FnOnce() -> u32, ttl: Duration) -> Result<Admit<'_>, Rejection> {
        let now = Instant::now();
        let mut g = self.lock();
        let want = ttl.as_secs_f64();
        let inner = &mut *g;
        if let Some(b) = &mut inner.rate {
            b.refill(now);
            if b.level < 1.0 {
                return Err(self.reject(
                    QuotaKind::AcquiresPerS,
                    format!("acquires_per_s: at most {} acquires per second", b.per_s),
                    b.wait_for(1.0),
                ));
            }
        }
        if let Some(max) = self.quotas.max_leases {
            let n = held().saturating_add(inner.pending);
            if n >= max {
                return Err(self.reject(
                    QuotaKind::MaxLeases,
                    format!("max_leases: {n} of {max} leases held or being acquired; release one"),
                    Duration::from_secs(1),
                ));
            }
        }
        if let Some(b) = &mut inner.seconds {
            b.refill(now);
            if let Some(r) = seconds_refused(b, want, "this lease's") {
                return Err(self.reject(QuotaKind::LeaseSecondsPerHour, r.0, r.1));
            }
        }
        if let Some(b) = &mut inner.rate {
            b.level -= 1.0;
        }
        if let Some(b) = &mut inner.seconds {
            b.level -= want;
        }
        inner.pending += 1;
        self.acquires.fetch_add(1, Ordering::Relaxed);
        Ok(Admit {
            usage: self,
            reserved: want,
        })
    }

    /// Take `extra` lease-seconds (a renew's extension), or say the budget cannot.
    pub fn charge(&self, extra: Duration) -> Result<(), Rejection> {
        if extra.is_zero() {
            return Ok(());
        }
        let mut g = self.lock();
        let Some(b) = &mut g.seconds else {
            return Ok(());
        };
        b.refill(Instant::now());
        if let Some((msg, wait)) = seconds_refused(b, extra.as_secs_f64(), "the renewal's") {
            drop(g);
            return Err(self.reject(QuotaKind::LeaseSecondsPerHour, msg, wait));
        }
        b.level -= extra.as_secs_f64();
        Ok(())
    }

    /// Give back lease-seconds a lease took and did not use (it was released early).
    pub fn refund(&self, unused: Duration) {
        if let Some(b) = &mut self.lock().seconds {
            b.give(unused.as_secs_f64());
        }
    }

    /// Take `used` lease-seconds whatever is left (a lease entered the table: its acquire
    /// was let through with the time held, or it was restored after a restart).
    pub fn take(&self, used: Duration) {
        let mut g = self.lock();
        if let Some(b) = &mut g.seconds {
            b.refill(Instant::now());
            b.level -= used.as_secs_f64();
        }
    }

    /// Lease-seconds taken and not yet refilled: the use of the last hour, as the bucket
    /// sees it. `None` without the quota.
    pub fn seconds_used(&self) -> Option<u64> {
        let mut g = self.lock();
        let b = g.seconds.as_mut()?;
        b.refill(Instant::now());
        Some((b.capacity - b.level).max(0.0).round() as u64)
    }

    /// Acquires let through since start.
    pub fn acquires(&self) -> u64 {
        self.acquires.load(Ordering::Relaxed)
    }

    /// Requests refused by `q` since start.
    pub fn rejected(&self, q: QuotaKind) -> u64 {
        self.rejected[q.ix()].load(Ordering::Relaxed)
    }

    fn reject(&self, quota: QuotaKind, message: String, retry_after: Duration) -> Rejection {
        self.rejected[quota.ix()].fetch_add(1, Ordering::Relaxed);
        Rejection {
            quota,
            message,
            retry_after,
        }
    }
}

/// Why the lease-seconds bucket `b` cannot give `want`, and when it could; `None`: it can.
fn seconds_refused(b: &Bucket, want: f64, what: &str) -> Option<(String, Duration)> {
    if want > b.capacity {
        return Some((
            format!(
                "lease_seconds_per_hour: {what} {want:.0} s exceed the whole budget of {:.0} s per hour; ask for a shorter ttl_s",
                b.capacity
            ),
            Duration::from_secs(3600),
        ));
    }
    (b.level < want).then(|| {
        (
            format!(
                "lease_seconds_per_hour: {what} {want:.0} s exceed the {:.0} s left of the budget of {:.0} s per hour",
                b.level.max(0.0).floor(),
                b.capacity
            ),
            b.wait_for(want),
        )
    })
}

/// An acquire the quotas let through, holding its place among `max_leases` and its TTL of
/// lease-seconds while it runs. Dropped when the acquire ends, however it ends, it gives both
/// back: a lease it made is in the core's table by then, which counts it and charged its time
/// ([`Ledger`]). The rate token it took is not given back: the attempt counts.
pub struct Admit<'a> {
    usage: &'a Usage,
    reserved: f64,
}

impl Drop for Admit<'_> {
    fn drop(&mut self) {
        let mut g = self.usage.lock();
        g.pending = g.pending.saturating_sub(1);
        if let Some(b) = &mut g.seconds {
            b.give(self.reserved);
        }
    }
}

/// The tenants' lease-seconds, kept as the core's lease table sees leases come and go.
pub struct Ledger(pub std::sync::Arc<super::Tenants>);

impl warmpool_core::LeaseLedger for Ledger {
    fn opened(&self, tenant: &str, left: Duration) {
        if let Some(t) = self.0.by_name(tenant) {
            t.usage.take(left);
        }
    }

    fn closed(&self, tenant: &str, left: Duration) {
        if let Some(t) = self.0.by_name(tenant) {
            t.usage.refund(left);
        }
    }
}

#[cfg(test)]
mod tests;
