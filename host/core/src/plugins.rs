//! What the API shows about loaded policy plugins. Plain data, so the API needs no wasm.

use std::sync::Arc;

use serde::Serialize;

/// One plugin as `GET /v1/plugins` and `/metrics` show it.
#[derive(Debug, Clone, Serialize)]
pub struct PluginStatus {
    pub pool: String,
    /// `sizing`, `exhaustion` or `health`.
    pub kind: String,
    pub path: String,
    /// `active`; `benched` (failed too often, rejected until its file changes); `fallback` (no
    /// version ever loaded: the built-in serves).
    pub state: &'static str,
    pub sha256: Option<String>,
    pub reloads: u64,
    pub last_reload_at: Option<String>,
    pub last_error: Option<String>,
    pub calls: u64,
    pub failures: u64,
    pub consecutive_failures: u32,
    /// Calls answered by the built-in policy instead (plugin failed, benched or absent).
    pub fallbacks: u64,
}

/// Reads the current plugin statuses.
pub type PluginStatusSource = Arc<dyn Fn() -> Vec<PluginStatus> + Send + Sync>;
