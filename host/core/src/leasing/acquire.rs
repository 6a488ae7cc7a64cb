//! Acquire: the warm path (one short critical section), waiting for the commit that makes a
//! ready container lendable, the exhaustion strategies (wait, fail fast, cold create), and the
//! hand-off to a queued acquire that can never lose a container.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::{Instant, timeout};
use warmpool_policy::{AcquireSource, ExhaustionAction, ExhaustionRequest};

use super::{AcquireRequest, Leasing};
use crate::backend::{Backend, BackendError, Resources};
use crate::clock::later;
use crate::error::AcquireError;
use crate::lease::{Lease, LeaseInfo};
use crate::lease_store::Change;
use crate::policy::bounds;
use crate::pool::{Delivery, DeliveryError, LeaseEnd, Pool, ReadyContainer};

/// `Retry-After` of an acquire refused because no engine has the pool's runtime: about when
/// the engines are asked for their runtimes again.
const RUNTIME_RETRY: Duration = Duration::from_secs(30);

impl<B: Backend> Leasing<B> {
    /// Take a container for a client. The warm path is one short critical section; a lease
    /// with its own environment, secrets or files then has them applied to its container
    /// before this answers (see `sessions.rs`).
    pub async fn acquire(&self, req: AcquireRequest) -> Result<LeaseInfo, AcquireError> {
        let setup = req.setup.clone().filter(|s| !s.is_empty());
        if let Some(s) = &setup {
            self.setup_allowed(&req.pool, s)?;
        }
        // Checked before any container is taken: a refused ask costs the pool nothing.
        let resources = match req.resources.filter(|r| !r.is_empty()) {
            Some(ask) => self.resources_at_acquire(&req.pool, &ask)?,
            None => None,
        };
        let info = self.take(req).await?;
        let info = match resources {
            Some(r) => self.resize_new(info, r).await?,
            None => info,
        };
        match setup {
            Some(s) => self.set_up(info, &s).await,
            None => Ok(info),
        }
    }

    /// The warm path, a wait, or a cold create.
    async fn take(&self, req: AcquireRequest) -> Result<LeaseInfo, AcquireError> {
        let started = Instant::now();
        let s = &self.s;
        let pool = s
            .books
            .get(&req.pool)
            .ok_or_else(|| AcquireError::UnknownPool(req.pool.clone()))?;
        let pool = &pool;
        if s.rt.cancel().is_cancelled() {
            return Err(AcquireError::ShuttingDown);
        }
        let mask = self.acquire_mask(&req)?;
        let cfg = pool.cfg();
        let ttl = req.ttl.unwrap_or(cfg.default_ttl).min(cfg.max_ttl);

        // Bind first: a guard in an `if let` scrutinee would live through the branch.
        let taken = {
            let mut st = pool.lock();
            st.take_ready(mask, started, Instant::now())
                .ok_or_else(|| st.ready_in(mask))
        };
        match taken {
            Ok(c) => Ok(self.open_lease(pool, c, AcquireSource::Pool, started, ttl, &req, false)),
            // Ready containers wait for the commit that makes them lendable: queue for one
            // and ask for that commit now (one fsync, not a create).
            Err(ready) if ready > 0 => {
                let wait = client_wait(&req, cfg.wait_timeout);
                match self.enqueue(pool, mask, started, ttl, &req) {
                    Ok(lease) => Ok(lease),
                    Err(rx) => {
                        s.persist.urge();
                        self.await_delivery(pool, rx, AcquireSource::Pool, wait, started, ttl, &req)
                            .await
                    }
                }
            }
            Err(_) => self.acquire_exhausted(pool, &req, mask, started, ttl).await,
        }
    }

    /// The engines an acquire may take from: those carrying its labels, of which at least one
    /// must be up.
    fn acquire_mask(&self, req: &AcquireRequest) -> Result<u64, AcquireError> {
        let fleet = &self.s.fleet;
        let mask = if req.engine_labels.is_empty() {
            u64::MAX
        } else {
            fleet.matching(&req.engine_labels)
        };
        if mask == 0 {
            return Err(AcquireError::NoSuchEngine {
                labels: req.engine_labels.clone(),
            });
        }
        if mask & fleet.up_mask() == 0 {
            return Err(AcquireError::EngineUnavailable(
                if req.engine_labels.is_empty() {
                    fleet.error()
                } else {
                    format!(
                        "no engine with labels {:?} is up ({})",
                        req.engine_labels,
                        fleet.error()
                    )
                },
            ));
        }
        Ok(mask)
    }

    async fn acquire_exhausted(
        &self,
        pool: &Arc<Pool>,
        req: &AcquireRequest,
        mask: u64,
        started: Instant,
        ttl: Duration,
    ) -> Result<LeaseInfo, AcquireError> {
        let s = &self.s;
        // No engine that is up has the pool's runtime: no container can come, whatever the
        // strategy, so the answer is the pool's status (degraded) at once, not a wait.
        if let Some(reason) = s
            .fleet
            .runtime_missing(pool.cfg().spec.runtime.as_deref(), u64::MAX)
        {
            pool.lock().reject();
            return Err(AcquireError::Degraded {
                pool: pool.name(),
                last_error: reason,
                retry_after: RUNTIME_RETRY,
            });
        }
        let wait_timeout = pool.cfg().wait_timeout;
        let client_wait = client_wait(req, wait_timeout);
        let snapshot = {
            let st = pool.lock();
            pool.snapshot(&st, Instant::now(), s.rt.epoch(), s.fleet.caps())
        };
        let request = ExhaustionRequest {
            wait_ms: req.wait.map(|w| w.as_millis() as u64),
            wait_timeout_ms: wait_timeout.as_millis() as u64,
        };
        let action = pool
            .policies()
            .exhaustion
            .on_exhausted(&request, &snapshot)
            .await;
        let (rx, source, max_wait) = match bounds::action(action) {
            ExhaustionAction::Fail {
                retry_after_ms,
                reason,
            } => {
                pool.lock().reject();
                return Err(AcquireError::Exhausted {
                    pool: pool.name(),
                    reason,
                    retry_after: Duration::from_millis(retry_after_ms),
                });
            }
            // A plugin's wait is bounded by the pool's own limit, never longer.
            ExhaustionAction::Wait { max_ms } => {
                let max = Duration::from_millis(max_ms).min(client_wait);
                match self.enqueue(pool, mask, started, ttl, req) {
                    Ok(lease) => return Ok(lease),
                    Err(rx) => (rx, AcquireSource::Pool, max),
                }
            }
            ExhaustionAction::ColdCreate => {
                let mut st = pool.lock();
                let breaker = &s.rt.cfg().breaker;
                if st.degraded(breaker) {
                    st.reject();
                    return Err(AcquireError::Degraded {
                        pool: pool.name(),
                        last_error: st.last_error().unwrap_or_default().to_string(),
                        retry_after: st
                            .next_retry(Instant::now())
                            .map_or(Duration::from_secs(1), |t| {
                                t.saturating_duration_since(Instant::now())
                            }),
                    });
                }
                let cfg = pool.cfg();
                let name = s.rt.ids().container_name(&cfg.name);
                let views = s
                    .fleet
                    .views(mask & s.fleet.runtime_mask(cfg.spec.runtime.as_deref()));
                if let Some(engine) =
                    st.approve_cold(&cfg, breaker, s.fleet.caps(), &views, name.clone())
                {
                    drop(st);
                    let (tx, rx) = oneshot::channel();
                    self.life.spawn_create(pool.clone(), name, engine, Some(tx));
                    (rx, AcquireSource::Cold, wait_timeout)
                } else {
                    // No room for a cold create: queue for the next free container.
                    drop(st);
                    match self.enqueue(pool, mask, started, ttl, req) {
                        Ok(lease) => return Ok(lease),
                        Err(rx) => (rx, AcquireSource::Pool, client_wait),
                    }
                }
            }
        };
        self.await_delivery(pool, rx, source, max_wait, started, ttl, req)
            .await
    }

    /// Queue for the next container, unless one became ready since the fast path looked.
    fn enqueue(
        &self,
        pool: &Arc<Pool>,
        mask: u64,
        started: Instant,
        ttl: Duration,
        req: &AcquireRequest,
    ) -> Result<LeaseInfo, oneshot::Receiver<Delivery>> {
        let mut st = pool.lock();
        if let Some(c) = st.take_ready(mask, started, Instant::now()) {
            drop(st);
            return Ok(self.open_lease(pool, c, AcquireSource::Pool, started, ttl, req, false));
        }
        let (tx, rx) = oneshot::channel();
        st.enqueue(mask, tx);
        drop(st);
        pool.touch(); // the refill raises its target to serve this waiter
        Err(rx)
    }

    #[allow(clippy::too_many_arguments)]
    async fn await_delivery(
        &self,
        pool: &Arc<Pool>,
        rx: oneshot::Receiver<Delivery>,
        source: AcquireSource,
        max_wait: Duration,
        started: Instant,
        ttl: Duration,
        req: &AcquireRequest,
    ) -> Result<LeaseInfo, AcquireError> {
        let mut ticket = WaitTicket {
            pool: pool.clone(),
            rx: Some(rx),
        };
        let rx = ticket.rx.as_mut().expect("set above");
        let delivery = match timeout(max_wait, &mut *rx).await {
            Ok(Ok(d)) => Some(d),
            Ok(Err(_)) => Some(Err(DeliveryError::ShuttingDown)),
            Err(_) => {
                // Timed out; a container may have been sent in the same instant. Keep it.
                rx.close();
                rx.try_recv().ok()
            }
        };
        ticket.rx = None;
        match delivery {
            // Sent to this waiter, then reported dead before it became a lease (on its way it
            // is in no list a death notice reaches): removed, and the acquire told why.
            Some(Ok(c)) if self.s.fleet.died_recently(&c.created.id) => {
                let mut st = pool.lock();
                st.lease_ended(c.key(), LeaseEnd::Other);
                st.reject();
                drop(st);
                self.life
                    .spawn_removal_of(pool, &c, "died before it was handed out");
                Err(AcquireError::Create {
                    pool: pool.name(),
                    source: BackendError::Create {
                        image: pool.cfg().spec.image.clone(),
                        message: format!(
                            "container {} died before it was handed out",
                            c.created.name
                        ),
                    },
                })
            }
            Some(Ok(c)) => Ok(self.open_lease(pool, c, source, started, ttl, req, true)),
            Some(Err(DeliveryError::ShuttingDown)) => Err(AcquireError::ShuttingDown),
            Some(Err(DeliveryError::Create(e))) => {
                pool.lock().reject();
                Err(match e {
                    BackendError::Unavailable(m) => AcquireError::EngineUnavailable(m),
                    e => AcquireError::Create {
                        pool: pool.name(),
                        source: e,
                    },
                })
            }
            None => {
                let mut st = pool.lock();
                st.reject();
                let retry = st
                    .recent_creates_ms()
                    .last()
                    .map_or(1_000, |ms| u64::from(ms).max(100));
                Err(AcquireError::Exhausted {
                    pool: pool.name(),
                    reason: format!(
                        "no container became ready within {} ms",
                        max_wait.as_millis()
                    ),
                    retry_after: Duration::from_millis(retry),
                })
            }
        }
    }

    /// Turn a container the caller holds (counted as leased) into a lease. `delivered`: it
    /// came through a hand-off, whose acquire was not yet recorded.
    #[allow(clippy::too_many_arguments)]
    fn open_lease(
        &self,
        pool: &Arc<Pool>,
        mut c: ReadyContainer,
        source: AcquireSource,
        started: Instant,
        ttl: Duration,
        req: &AcquireRequest,
        delivered: bool,
    ) -> LeaseInfo {
        let s = &self.s;
        let now = Instant::now();
        let micros = now
            .saturating_duration_since(started)
            .as_micros()
            .min(u128::from(u32::MAX)) as u32;
        if delivered {
            pool.lock().record_acquire(started, now, source);
        }
        pool.touch();
        c.uses += 1;
        if c.uses == 1 {
            self.life.spawn_mark(pool, &c);
        }
        let engine = c.engine;
        let lease = Lease {
            id: s.rt.ids().lease_id(),
            pool: pool.clone(),
            container: c,
            source,
            acquire_us: micros,
            acquired_at: s.rt.clock().wall(now),
            expires: later(now, ttl),
            gone: None,
            owner: req.owner.clone(),
            tenant: req.tenant.clone(),
            engine: s.fleet.name(engine).to_string(),
            ops: Arc::default(),
            resources: Resources::of(&pool.cfg().spec),
            resized: false,
            hib: crate::lease::Hib::Running,
            last_used: now,
            turn: Arc::default(),
            hibernated: false,
        };
        s.persist
            .record(|| Change::PutLease(lease.record(s.rt.clock())));
        let info = lease.info(now, s.rt.clock());
        s.events.emit(
            "leased",
            &info.pool,
            Some((&info.container_id, engine)),
            Some((&lease).into()),
            Some(info.source.to_string()),
        );
        s.leases.insert(lease);
        // A death notice that arrived after the container left the pool (or passed its last
        // check on the way here) and before the lease was in the table reached neither: the
        // lease answers 410 like any lease whose container died, not an active lease on a dead
        // container until the sweep. The notice is recorded before it looks for a lease, so one
        // of the two sees the other.
        if s.fleet.died_recently(&info.container_id) {
            let reason = "died while it was handed out";
            s.leases.with(&info.lease_id, |l| {
                l.gone.get_or_insert_with(|| reason.to_string());
            });
            s.events.emit(
                "unhealthy",
                &info.pool,
                Some((&info.container_id, engine)),
                Some(crate::events::LeaseTag {
                    id: &info.lease_id,
                    tenant: info.tenant.as_deref(),
                }),
                Some(reason.to_string()),
            );
        }
        info
    }
}

/// How long an acquire may wait: the client's bound, never beyond the pool's.
fn client_wait(req: &AcquireRequest, wait_timeout: Duration) -> Duration {
    req.wait.map_or(wait_timeout, |w| w.min(wait_timeout))
}

/// A queued acquire's end of the hand-off. If the acquire goes away (timeout, client gone)
/// after a container was already sent to it, dropping the ticket gives the container back to
/// the pool, so a hand-off can never lose a container.
struct WaitTicket {
    pool: Arc<Pool>,
    rx: Option<oneshot::Receiver<Delivery>>,
}

impl Drop for WaitTicket {
    fn drop(&mut self) {
        let Some(mut rx) = self.rx.take() else { return };
        rx.close();
        if let Ok(Ok(c)) = rx.try_recv() {
            self.pool.lock().give_back(c);
            self.pool.touch();
        }
    }
}
