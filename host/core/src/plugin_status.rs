//! What the API shows about loaded policy plugins. Plain data, so the API needs no wasm.

use std::sync::Arc;

use serde::Serialize;

/// One plugin as `GET /v1/plugins` and `/metrics` show it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PluginStatus {
    /// The pool whose policy the plugin provides.
    pub pool: String,
    /// `sizing`, `exhaustion` or `health`.
    pub kind: String,
    /// Path of the plugin's wasm file, as configured.
    pub path: String,
    /// `active`; `compiling` (the first version is being compiled and checked: the built-in
    /// serves meanwhile); `benched` (failed too often, rejected until its file changes);
    /// `fallback` (no version loaded: the built-in serves).
    pub state: &'static str,
    /// A new version is being compiled and checked (the current one, if any, keeps serving).
    pub loading: bool,
    /// SHA-256 (hex) of the file version serving now; `None` when none is loaded.
    pub sha256: Option<String>,
    /// Versions loaded since startup, the first included.
    pub reloads: u64,
    /// RFC 3339 time of the last successful load.
    pub last_reload_at: Option<String>,
    /// The last failed call or rejected load; cleared by a successful load.
    pub last_error: Option<String>,
    /// Calls made into the plugin.
    pub calls: u64,
    /// Calls that failed (the built-in answered instead).
    pub failures: u64,
    /// Failures in a row; enough of them bench the plugin. Reset by a success or a load.
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
