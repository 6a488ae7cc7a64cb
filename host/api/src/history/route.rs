//! `GET /v1/history`: each pool's samples over the last hour ([`super::History`]), which the
//! status page charts.
//!
//! Which pools a caller sees is an argument of [`view`], not the handler's own choice: the
//! handler passes the caller's ([`Caller::may_use`]: a tenant sees its own pools), and a pool
//! outside it answers exactly as a pool that does not exist.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use warmpool_core::{Backend, Manager};

use super::{CAPACITY, History, Sample};
use crate::code::{Code, route_errors};
use crate::tenancy::caller::Caller;
use crate::{ApiError, Shared};

/// Query of `GET /v1/history`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Only this pool; 404 `unknown_pool` when no pool of that name is shown to the caller.
    pub pool: Option<String>,
}

/// One pool's samples.
#[derive(Debug, Serialize, ToSchema)]
pub struct PoolSamples {
    /// The pool's name.
    pub name: String,
    /// Its samples, oldest first: at most `capacity`, none before the first tick after the
    /// pool started.
    pub samples: Vec<Sample>,
}

/// The history of the pools shown to the caller.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryList {
    /// Milliseconds between two samples (10 000 unless the daemon was told otherwise).
    pub interval_ms: u64,
    /// Samples kept per pool: `capacity × interval_ms` is the window (an hour by default).
    pub capacity: u32,
    /// One entry per pool, by name.
    pub pools: Vec<PoolSamples>,
}

/// The history of the pools `may_see` lets through, or of `only` among them: 404
/// `unknown_pool` when `only` names a pool that does not exist or that `may_see` hides.
pub fn view<B: Backend>(
    manager: &Manager<B>,
    history: &History,
    only: Option<&str>,
    may_see: impl Fn(&str) -> bool,
) -> Result<HistoryList, ApiError> {
    let names: Vec<String> = manager
        .pool_names()
        .into_iter()
        .filter(|n| may_see(n) && only.is_none_or(|o| o == n))
        .collect();
    if let Some(o) = only
        && names.is_empty()
    {
        return Err(ApiError::new(
            Code::UnknownPool,
            format!("unknown pool {o:?}"),
        ));
    }
    Ok(HistoryList {
        interval_ms: u64::try_from(history.interval().as_millis()).unwrap_or(u64::MAX),
        capacity: CAPACITY as u32,
        pools: names
            .into_iter()
            .map(|name| PoolSamples {
                samples: history.samples(&name),
                name,
            })
            .collect(),
    })
}

route_errors!(HistoryErrors = [Code::UnknownPool]);

/// `GET /v1/history`: every pool's ready, leased and waiting counts, acquires, hit rate and
/// acquire latency, one sample per interval over the last hour.
#[utoipa::path(get, path = "/v1/history", tag = "pools", operation_id = "history",
    params(HistoryQuery),
    responses(
        (status = 200, description = "Each pool's samples, oldest first", body = HistoryList),
        HistoryErrors,
    ))]
pub async fn list<B: Backend>(
    State(s): State<Shared<B>>,
    caller: Caller,
    q: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let may_see = |pool: &str| caller.may_use(pool);
    Ok(Json(view(&s.manager, &s.history, q.pool.as_deref(), may_see)?).into_response())
}
