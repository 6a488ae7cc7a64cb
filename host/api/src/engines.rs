//! `GET /v1/engines`: every engine the daemon drives, as the core sees it (up or down, last
//! error, containers by state, create p50) and as it says of itself (version, images). An
//! engine that is down is shown from the core's books alone; its own answer is not waited for.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;
use warmpool_core::{Backend, StateCounts};

use crate::Shared;

/// Bound on asking one engine for its version and images.
const DESCRIBE_WITHIN: Duration = Duration::from_secs(3);

/// Every engine, in config order.
#[derive(Debug, Serialize, ToSchema)]
pub struct EngineList {
    /// One entry per engine.
    pub engines: Vec<EngineInfo>,
}

/// One engine, as the daemon counts it and as it describes itself.
#[derive(Debug, Serialize, ToSchema)]
pub struct EngineInfo {
    /// The engine's name in the config.
    pub name: String,
    /// Where the daemon reaches it, credentials redacted.
    pub endpoint: String,
    /// `up` while it answers, else `down`.
    #[schema(value_type = String, example = "up")]
    pub state: &'static str,
    /// Why it was last marked down or failed, if it was.
    pub last_error: Option<String>,
    /// Its labels, matched by an acquire's `engine`.
    pub labels: BTreeMap<String, String>,
    /// Its container cap, if any.
    pub max_containers: Option<u32>,
    /// Containers its cap counts now.
    pub counted: u32,
    /// Its containers by state.
    pub containers: StateCounts,
    /// Median create time there, in milliseconds, once measured.
    pub create_p50_ms: Option<u32>,
    /// The OCI runtimes it has registered (`runc`, `runsc`, …), as the daemon last read them
    /// (when it came up, and every 30 s): a pool naming a runtime is placed only on engines
    /// listing it. Empty before the engine first answered.
    pub runtimes: Vec<String>,
    /// The runtime a container gets there when its pool names none.
    pub default_runtime: Option<String>,
    /// The engine's own version; `null` while down or not answering.
    pub version: Option<String>,
    /// The engine's API version.
    pub api_version: Option<String>,
    /// Its tagged images.
    pub images: Vec<String>,
    /// The image copy into it under way, or the last one.
    pub image_copy: Option<String>,
}

/// `GET /v1/engines`: `{"engines": [...]}`, in config order.
#[utoipa::path(get, path = "/v1/engines", tag = "engines", operation_id = "list_engines",
    responses((status = 200, description = "Every engine, in config order", body = EngineList)))]
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
            EngineInfo {
                name: st.name,
                endpoint: s.engine_endpoints.get(i).cloned().unwrap_or_default(),
                state: if st.up { "up" } else { "down" },
                last_error: st.last_error,
                labels: st.labels,
                max_containers: st.max_containers,
                counted: st.counted,
                containers: st.containers,
                create_p50_ms: st.create_p50_ms,
                runtimes: st.runtimes.clone().map(|r| r.names).unwrap_or_default(),
                default_runtime: st.runtimes.and_then(|r| r.default),
                version: d.version,
                api_version: d.api_version,
                images: d.images,
                image_copy: d.image_copy,
            }
        })
        .collect();
    Json(EngineList { engines }).into_response()
}
