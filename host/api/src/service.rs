//! The service routes, outside `/v1` and without auth: `GET /` (and `/ui`), the status page;
//! `GET /healthz`; `GET /readyz`; `GET /metrics` (its format chosen by [`crate::negotiate`]).

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use warmpool_core::Backend;

use crate::code::{Code, route_errors};
use crate::{ApiError, Shared};

/// The status page's one inline script, allowed by its hash: no other script can run there.
static STATUS_CSP: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    use base64::Engine as _;
    use sha2::Digest as _;
    let page = include_str!("status.html");
    let script = page
        .split_once("<script>")
        .and_then(|(_, rest)| rest.split_once("</script>"))
        .map_or("", |(s, _)| s);
    let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(script));
    format!(
        "default-src 'none'; script-src 'sha256-{hash}'; style-src 'unsafe-inline'; \
         connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'"
    )
});

/// The status page: built into the binary, no asset from elsewhere. It is static; the data it
/// shows comes from `/v1` with the token the operator gives it.
#[utoipa::path(get, path = "/", tag = "service", operation_id = "status_page",
    responses((status = 200, description = "The status page (HTML), served without auth: it holds no data", content_type = "text/html", body = String)))]
pub async fn status_page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // The script and styles are inline; nothing may load from another origin.
            (header::CONTENT_SECURITY_POLICY, STATUS_CSP.as_str()),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("status.html"),
    )
        .into_response()
}

/// The answer of `/healthz` and `/readyz` when all is well.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Status {
    /// `ok` (healthz) or `ready` (readyz).
    pub status: String,
}

/// `GET /healthz`: the process is up.
#[utoipa::path(get, path = "/healthz", tag = "service", operation_id = "healthz",
    responses((status = 200, description = "The process is up", body = Status)))]
pub async fn healthz() -> Json<Status> {
    Json(Status {
        status: "ok".into(),
    })
}

route_errors!(ReadyErrors = [Code::NotReady, Code::EngineUnavailable]);

/// `GET /readyz`: 200 while an engine answers, the startup sweep is done and the control loop
/// is alive; 503 with the state otherwise (`engine_unavailable` says no more: the engines'
/// errors are at `/v1/engines`, behind the token).
#[utoipa::path(get, path = "/readyz", tag = "service", operation_id = "readyz",
    responses(
        (status = 200, description = "Ready to lease", body = Status),
        ReadyErrors,
    ))]
pub async fn readyz<B: Backend>(State(s): State<Shared<B>>) -> Response {
    if let Some(why) = s.ready_check.as_ref().and_then(|c| c()) {
        return ApiError::new(Code::NotReady, why).into_response();
    }
    if s.manager.is_ready() {
        Json(Status {
            status: "ready".into(),
        })
        .into_response()
    } else if !s.manager.engine_up() {
        // The state, not the engine's own error: that names endpoints, sockets and
        // certificates, and this route answers anyone. `/v1/engines` has it, behind the token.
        ApiError::new(
            Code::EngineUnavailable,
            "no container engine answers; each engine's state and last error are at /v1/engines",
        )
        .into_response()
    } else {
        ApiError::new(Code::NotReady, "starting up or shutting down").into_response()
    }
}

/// `GET /metrics`: Prometheus metrics. Served without a token; each tenant's families only to
/// an admin's token (or on an open daemon), since tenants must not learn of each other.
#[utoipa::path(get, path = "/metrics", tag = "service", operation_id = "metrics",
    responses((status = 200, description = "The metrics, in the Prometheus text format (or OpenMetrics when the scraper asks for it); the `warmpool_tenant_*` families only with an admin's bearer token", content_type = "text/plain", body = String)))]
pub async fn metrics_text<B: Backend>(
    State(s): State<Shared<B>>,
    headers: axum::http::HeaderMap,
) -> Response {
    let admin = crate::auth::admin_token(&s, &headers);
    // Prometheus asks for OpenMetrics; curl and promtool get the classic text format.
    let accept = headers.get_all(header::ACCEPT);
    if crate::negotiate::prefers_openmetrics(accept.iter().filter_map(|v| v.to_str().ok())) {
        (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            s.metrics.render(admin),
        )
            .into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            s.metrics.render_text(admin),
        )
            .into_response()
    }
}
