//! `GET /v1/plugins`: each pool's policy plugins (WebAssembly), their state and counters.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use warmpool_core::Backend;

use crate::Shared;

/// Every plugin of every pool.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct PluginList {
    /// One entry per pool and plugin kind; empty when the daemon has no plugin host.
    pub plugins: Vec<warmpool_core::PluginStatus>,
}

/// `GET /v1/plugins`: each pool's plugins, their state and counters.
#[utoipa::path(get, path = "/v1/plugins", tag = "plugins", operation_id = "list_plugins",
    responses((status = 200, description = "Every plugin of every pool", body = PluginList)))]
pub async fn list<B: Backend>(State(s): State<Shared<B>>) -> Response {
    let plugins = s.plugins.as_ref().map(|f| f()).unwrap_or_default();
    Json(PluginList { plugins }).into_response()
}
