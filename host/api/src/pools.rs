//! Pool routes: stats, warm-up, and the scale override (`PUT`/`DELETE /v1/pools/{name}/scale`,
//! see `warmpool_core`'s `scale.rs`).

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warmpool_core::{Backend, PoolStats};

use crate::code::{Code, route_errors};
use crate::core_errors::{SCALE_CODES, UNSCALE_CODES, WARM_UP_CODES};
use crate::tenancy::caller::Caller;
use crate::{ApiError, Shared};

const MAX_WARM_UP: Duration = Duration::from_secs(600);

/// Every pool's stats.
#[derive(Debug, Serialize, ToSchema)]
pub struct PoolList {
    /// One entry per pool, by name.
    pub pools: Vec<PoolStats>,
}

/// `GET /v1/pools`: the stats of every pool the caller may use, as `{"pools": [...]}`.
#[utoipa::path(get, path = "/v1/pools", tag = "pools", operation_id = "list_pools",
    responses((status = 200, description = "The stats of every pool the caller may use", body = PoolList)))]
pub async fn list<B: Backend>(State(s): State<Shared<B>>, caller: Caller) -> Response {
    let mut pools = s.manager.all_pool_stats();
    pools.retain(|p| caller.may_use(&p.name));
    Json(PoolList { pools }).into_response()
}

route_errors!(ShowErrors = [Code::UnknownPool]);

/// `GET /v1/pools/{name}`: one pool's stats, or 404 `unknown_pool`.
#[utoipa::path(get, path = "/v1/pools/{name}", tag = "pools", operation_id = "show_pool",
    params(("name" = String, Path, description = "The pool's name")),
    responses(
        (status = 200, description = "The pool's stats", body = PoolStats),
        ShowErrors,
    ))]
pub async fn show<B: Backend>(
    State(s): State<Shared<B>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let stats = caller
        .may_use(&name)
        .then(|| s.manager.pool_stats(&name))
        .flatten()
        .ok_or_else(|| ApiError::new(Code::UnknownPool, format!("unknown pool {name:?}")))?;
    Ok(Json(stats).into_response())
}

/// Body of `POST /v1/pools/{name}/warm-up`; `{}` or an empty body takes the defaults.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WarmUpBody {
    /// How long to wait, in milliseconds: 60 s when absent, capped at 600 s.
    #[serde(default, deserialize_with = "crate::json_int::opt_u64")]
    pub timeout_ms: Option<u64>,
}

route_errors!(WarmUpErrors = WARM_UP_CODES);

/// Block until the pool holds its target of ready containers, or answer 504.
#[utoipa::path(post, path = "/v1/pools/{name}/warm-up", tag = "pools", operation_id = "warm_up",
    params(("name" = String, Path, description = "The pool's name")),
    request_body(content = WarmUpBody, description = "`{}` takes the defaults, and so does an empty body sent as `application/json` (every POST must say it is JSON)"),
    responses(
        (status = 200, description = "The pool is at its target; its stats", body = PoolStats),
        WarmUpErrors,
    ))]
pub async fn warm_up<B: Backend>(
    State(s): State<Shared<B>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    raw: Bytes,
) -> Result<Response, ApiError> {
    let b: WarmUpBody = crate::body::object_or_default(&headers, &raw)?;
    let within = b
        .timeout_ms
        .map_or(Duration::from_secs(60), Duration::from_millis)
        .min(MAX_WARM_UP);
    Ok(Json(s.manager.warm_up(&name, within).await?).into_response())
}

/// Body of `PUT /v1/pools/{name}/scale`: one of the two sizes or both; a size not given is the
/// config's. The override replaces any earlier one whole.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScaleBody {
    /// Ready containers kept at least (the sizing policy's floor).
    #[serde(default, deserialize_with = "crate::json_int::opt_u64")]
    pub min_ready: Option<u64>,
    /// Ready containers kept at most (the sizing policy's ceiling), at least 1 and at most the
    /// pool's `max_total`.
    #[serde(default, deserialize_with = "crate::json_int::opt_u64")]
    pub max_ready: Option<u64>,
}

route_errors!(ScaleErrors = SCALE_CODES);

/// Override the pool's `min_ready` and `max_ready` at run time, within its `max_total` and the
/// daemon's caps. With a `state_dir`, the override is durable before the answer, and a restart
/// keeps it; `DELETE`, or a reload that changes the pool's sizes, clears it.
#[utoipa::path(put, path = "/v1/pools/{name}/scale", tag = "pools", operation_id = "scale_pool",
    params(("name" = String, Path, description = "The pool's name")),
    request_body(content = ScaleBody, description = "`min_ready`, `max_ready`, or both"),
    responses(
        (status = 200, description = "The override holds; the pool's stats, with `override`", body = PoolStats),
        ScaleErrors,
    ))]
pub async fn scale<B: Backend>(
    State(s): State<Shared<B>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    raw: Bytes,
) -> Result<Response, ApiError> {
    let b: ScaleBody = crate::body::object(&headers, &raw)?;
    if b.min_ready.is_none() && b.max_ready.is_none() {
        return Err(ApiError::bad_request(
            "give min_ready, max_ready or both (DELETE clears the override)",
        ));
    }
    let stats = s.manager.scale(&name, b.min_ready, b.max_ready).await?;
    Ok(Json(stats).into_response())
}

route_errors!(UnscaleErrors = UNSCALE_CODES);

/// Clear the pool's scale override: its config's sizes apply again (200 whether or not one
/// was set).
#[utoipa::path(delete, path = "/v1/pools/{name}/scale", tag = "pools", operation_id = "unscale_pool",
    params(("name" = String, Path, description = "The pool's name")),
    responses(
        (status = 200, description = "No override holds; the pool's stats", body = PoolStats),
        UnscaleErrors,
    ))]
pub async fn unscale<B: Backend>(
    State(s): State<Shared<B>>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(s.manager.unscale(&name).await?).into_response())
}
