//! `POST /v1/admin/reload`: a config reload, as SIGHUP does, answered with its outcome.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use warmpool_core::Backend;

use crate::code::{Code, route_errors};
use crate::{ApiError, Shared};

/// The answer of a config reload that took effect.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Reloaded {
    /// Always `true`.
    pub reloaded: bool,
    /// What changed: pools added, removed, changed, re-specified, and changes that need a
    /// restart.
    #[schema(value_type = Object)]
    pub summary: serde_json::Value,
}

/// Body of `POST /v1/admin/reload`: nothing to set; `{}`, or an empty body (either sent as
/// `application/json`, as every POST must be).
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReloadBody {}

route_errors!(ReloadErrors = [Code::ConfigRejected, Code::NotImplemented]);

/// `POST /v1/admin/reload`: reload the config now, as SIGHUP does, and answer with what
/// changed (200), or with every problem that kept the old config serving (422).
#[utoipa::path(post, path = "/v1/admin/reload", tag = "admin", operation_id = "admin_reload",
    request_body(content = ReloadBody, description = "`{}`; an empty body sent as `application/json` is the same"),
    responses(
        (status = 200, description = "The new config serves; what changed", body = Reloaded),
        ReloadErrors,
    ))]
pub async fn reload<B: Backend>(
    State(s): State<Shared<B>>,
    headers: axum::http::HeaderMap,
    raw: bytes::Bytes,
) -> Response {
    if let Err(e) = crate::body::object_or_default::<ReloadBody>(&headers, &raw) {
        return e.into_response();
    }
    let Some(reload) = &s.admin_reload else {
        return ApiError::new(Code::NotImplemented, "this daemon has no config to reload")
            .into_response();
    };
    match reload().await {
        Ok(summary) => Json(Reloaded {
            reloaded: true,
            summary,
        })
        .into_response(),
        Err(problems) => ApiError::new(
            Code::ConfigRejected,
            format!("the old config keeps serving: {problems}"),
        )
        .into_response(),
    }
}
