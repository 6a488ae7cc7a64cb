//! Pool routes: stats and warm-up.

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use warmpool_core::Backend;

use crate::leases::body;
use crate::{ApiError, Shared};

const MAX_WARM_UP: Duration = Duration::from_secs(600);

/// `GET /v1/pools`: the stats of every pool, as `{"pools": [...]}`.
pub async fn list<B: Backend>(State(s): State<Shared<B>>) -> Response {
    Json(serde_json::json!({ "pools": s.manager.all_pool_stats() })).into_response()
}

/// `GET /v1/pools/{name}`: one pool's stats, or 404 `unknown_pool`.
pub async fn show<B: Backend>(
    State(s): State<Shared<B>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let stats = s.manager.pool_stats(&name).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_pool",
            format!("unknown pool {name:?}"),
        )
    })?;
    Ok(Json(stats).into_response())
}

/// Body of `POST /v1/pools/{name}/warm-up`; an empty body takes the defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarmUpBody {
    /// How long to wait, in milliseconds: 60 s when absent, capped at 600 s.
    pub timeout_ms: Option<u64>,
}

/// Block until the pool holds its target of ready containers, or answer 504.
pub async fn warm_up<B: Backend>(
    State(s): State<Shared<B>>,
    Path(name): Path<String>,
    b: Result<Json<WarmUpBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    // An empty body means the defaults.
    let b = match b {
        Err(JsonRejection::MissingJsonContentType(_)) => WarmUpBody::default(),
        other => body(other)?,
    };
    let within = b
        .timeout_ms
        .map_or(Duration::from_secs(60), Duration::from_millis)
        .min(MAX_WARM_UP);
    Ok(Json(s.manager.warm_up(&name, within).await?).into_response())
}
