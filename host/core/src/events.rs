//! Lifecycle events: every state change worth knowing about, broadcast to subscribers (the
//! `/v1/events` stream, the JSON-lines audit log). Sending never blocks the pool: a slow
//! subscriber misses events (and is told how many) rather than holding anything up.

use serde::Serialize;

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
    /// Why it happened (a failure, the cause of a removal), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For `lagged`: how many events this subscriber missed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missed: Option<u64>,
}

/// Events kept for subscribers that fall behind.
pub const CAPACITY: usize = 4096;
