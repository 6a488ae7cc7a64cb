//! `GET /v1/engines`: every engine the daemon drives, as the core sees it (up or down, last
//! error, containers by state, create p50) and as it says of itself (version, images). An
//! engine that is down is shown from the core's books alone; its own answer is not waited for.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use warmpool_core::Backend;

use crate::Shared;

/// Bound on asking one engine for its version and images.
const DESCRIBE_WITHIN: Duration = Duration::from_secs(3);

/// `GET /v1/engines`: `{"engines": [...]}`, in config order.
pub async fn list<B: Backend>(State(s): State<Shared<B>>) -> Response {
    let stats = s.manager.engine_stats();
    let backends: Vec<_> = s.manager.backends().map(|(_, b)| b.clone()).collect();
    let described =
        futures_util::future::join_all(stats.iter().zip(&backends).map(|(st, b)| async move {
            if !st.up {
                return None;
            }
            tokio::time::timeout(DESCRIBE_WITHIN, b.describe())
                .await
                .ok()
                .and_then(Result::ok)
        }))
        .await;
    let engines: Vec<_> = stats
        .into_iter()
        .zip(described)
        .enumerate()
        .map(|(i, (st, d))| {
            let d = d.unwrap_or_default();
            json!({
                "name": st.name,
                "endpoint": s.engine_endpoints.get(i).cloned().unwrap_or_default(),
                "state": if st.up { "up" } else { "down" },
                "last_error": st.last_error,
                "labels": st.labels,
                "max_containers": st.max_containers,
                "counted": st.counted,
                "containers": st.containers,
                "create_p50_ms": st.create_p50_ms,
                "version": d.version,
                "api_version": d.api_version,
                "images": d.images,
                "image_copy": d.image_copy,
            })
        })
        .collect();
    Json(json!({ "engines": engines })).into_response()
}
