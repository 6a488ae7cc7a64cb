//! Lifecycle events: every state change worth knowing about, broadcast to subscribers (the
//! `/v1/events` stream, the JSON-lines audit log). Sending never blocks the pool: a slow
//! subscriber misses events (and is told how many) rather than holding anything up.
//!
//! [`Events`] is the manager's sender: every part publishes through it, and nothing else
//! touches the broadcast channel.

use serde::Serialize;
use tokio::sync::broadcast;

use crate::caps::EngineIx;
use crate::clock::Clock;

/// One lifecycle event.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    /// RFC 3339 time the event happened.
    pub at: String,
    /// `created`, `ready`, `leased`, `released`, `reused`, `recycled`, `unhealthy`, `removed`,
    /// `breaker`, `reload` (a plugin file was swapped in or rejected), or `engine_up` and
    /// `engine_down` (pool `*`). On the `/v1/events` stream also `lagged` (pool `*`): the
    /// subscriber fell behind and missed `missed` events.
    pub kind: &'static str,
    /// Name of the pool concerned (`*` for none).
    pub pool: String,
    /// Name of the engine concerned: the container's, or the one that went up or down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// Engine ID of the container concerned, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// ID of the lease concerned, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease: Option<String>,
    /// The tenant that holds the lease concerned, if any: a tenant's `/v1/events` stream
    /// shows only its own events, and the audit log says whose lease each event is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Why it happened (a failure, the cause of a removal), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For `lagged`: how many events this subscriber missed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missed: Option<u64>,
}

/// The lease an event is about: its ID and its tenant.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LeaseTag<'a> {
    pub id: &'a str,
    pub tenant: Option<&'a str>,
}

impl<'a> From<&'a crate::lease::Lease> for LeaseTag<'a> {
    fn from(l: &'a crate::lease::Lease) -> Self {
        Self {
            id: &l.id,
            tenant: l.tenant.as_deref(),
        }
    }
}

/// Events kept for subscribers that fall behind.
pub const CAPACITY: usize = 4096;

/// The manager's event sender: the broadcast channel, the clock that stamps events, and the
/// engine names events carry.
pub(crate) struct Events {
    tx: broadcast::Sender<Event>,
    clock: Clock,
    engines: Vec<String>,
}

impl Events {
    pub fn new(clock: Clock, engines: Vec<String>) -> Self {
        Self {
            tx: broadcast::Sender::new(CAPACITY),
            clock,
            engines,
        }
    }

    /// Subscribe to lifecycle events.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }

    /// Publish a lifecycle event of a pool, about one of its containers if `container` names it.
    pub fn emit(
        &self,
        kind: &'static str,
        pool: &str,
        container: Option<(&str, EngineIx)>,
        lease: Option<LeaseTag<'_>>,
        reason: Option<String>,
    ) {
        let engine = container.map(|(_, e)| e);
        self.send(
            kind,
            pool,
            engine,
            container.map(|(id, _)| id),
            lease,
            reason,
        );
    }

    /// Publish that an engine went up or down (`pool` is `*`).
    pub fn emit_engine(&self, kind: &'static str, engine: EngineIx, reason: Option<String>) {
        self.send(kind, "*", Some(engine), None, None, reason);
    }

    /// Publish that a pool's create breaker opened on an engine.
    pub fn emit_breaker(&self, pool: &str, engine: EngineIx, reason: String) {
        self.send("breaker", pool, Some(engine), None, None, Some(reason));
    }

    /// Publish an event that happened outside the core, e.g. a plugin reload.
    pub fn publish(&self, kind: &'static str, pool: &str, reason: String) {
        self.emit(kind, pool, None, None, Some(reason));
    }

    fn send(
        &self,
        kind: &'static str,
        pool: &str,
        engine: Option<EngineIx>,
        container: Option<&str>,
        lease: Option<LeaseTag<'_>>,
        reason: Option<String>,
    ) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        let _ = self.tx.send(Event {
            at: crate::clock::rfc3339(self.clock.now()),
            kind,
            pool: pool.to_string(),
            engine: engine.map(|e| self.engine_name(e).to_string()),
            container: container.map(str::to_string),
            lease: lease.map(|l| l.id.to_string()),
            tenant: lease.and_then(|l| l.tenant).map(str::to_string),
            reason,
            missed: None,
        });
    }

    /// The name of engine `e` (as the fleet clamps an index: the books only hold valid ones).
    fn engine_name(&self, e: EngineIx) -> &str {
        &self.engines[e.min(self.engines.len() - 1)]
    }
}
