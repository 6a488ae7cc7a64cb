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
    /// `active`; `compiling` (the first version is being compiled and checked: the built-in
    /// serves meanwhile); `benched` (failed too often, rejected until its file changes);
    /// `fallback` (no version loaded: the built-in serves).
    pub state: &'static str,
    /// A new version is being compiled and checked (the current one, if any, keeps serving).
    pub loading: bool,
    pub sha256: Option<String>,
    pub reloads: u64,
    pub last_reload_at: Option<String>,
    pub last_error: Option<String>,
    pub calls: u64,
    pub failures: u64,
    pub consecutive_failures: u32,
    /// Calls answered by the built-in policy instead (plugin failed, benched or absent).
    pub fallbacks: u64,
    /// Answers cut to bounds (a long reason, too many probes, a huge Retry-After).
    pub truncated: u64,
    /// Log lines dropped past the per-call and per-second budgets.
    pub log_dropped: u64,
    /// Linear memory of the live instance, in bytes.
    pub memory_bytes: u64,
    /// Machine code of the compiled component, in bytes (shared by every slot loading the
    /// same file).
    pub code_bytes: u64,
}

/// Reads the current plugin statuses.
pub type PluginStatusSource = Arc<dyn Fn() -> Vec<PluginStatus> + Send + Sync>;
