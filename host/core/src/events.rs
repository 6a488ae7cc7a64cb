//! Lifecycle events: every state change worth knowing about, broadcast to subscribers (the
//! `/v1/events` stream, the JSON-lines audit log). Sending never blocks the pool: a slow
//! subscriber misses events (and is told how many) rather than holding anything up.

use serde::Serialize;

/// One lifecycle event.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Event {
    /// RFC 3339 time the event happened.
    pub at: String,
    /// `created`, `ready`, `leased`, `released`, `reused`, `recycled`, `unhealthy`, `removed`,
    /// `breaker`, or `reload` (a plugin file was swapped in or rejected).
    pub kind: &'static str,
    /// Name of the pool concerned.
    pub pool: String,
    /// Engine ID of the container concerned, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// ID of the lease concerned, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease: Option<String>,
    /// Why it happened (a failure, the cause of a removal), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Events kept for subscribers that fall behind.
pub const CAPACITY: usize = 4096;
