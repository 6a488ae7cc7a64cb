//! # warmpool-api: the HTTP lease API
//!
//! An axum router over a `warmpool_core::Manager`. JSON in and out; every error is
//! `{"error":{"code","message"}}` ([`error`]). When a token is configured, every `/v1` route
//! needs `Authorization: Bearer <token>`, compared in constant time ([`auth`]). Whatever the
//! config, [`web`] keeps web pages out: a `Host` the daemon does not answer to gets 421, a
//! request from another origin 403, and a POST that does not say it is JSON 415.
//!
//! Routes (see README "HTTP API"):
//! - leases: `POST/GET /v1/leases`, `GET/DELETE /v1/leases/{id}`, `POST /v1/leases/{id}/exec`,
//!   `PUT/GET /v1/leases/{id}/files/{*path}`, `POST /v1/leases/{id}/renew` ([`leases`]);
//! - pools: `GET /v1/pools`, `GET /v1/pools/{name}`, `POST /v1/pools/{name}/warm-up` ([`pools`]);
//! - engines: `GET /v1/engines`, each engine's state, containers, version and images
//!   ([`engines`]);
//! - plugins: `GET /v1/plugins` (reload count, hash, last error, calls, failures);
//! - events: `GET /v1/events`, Server-Sent Events of the pool lifecycle ([`events`]);
//! - admin: `POST /v1/admin/reload`, a config reload answered with its outcome;
//! - service: `GET /healthz`, `GET /readyz`, `GET /metrics` ([`metrics`]; its format chosen by
//!   [`negotiate`]);
//! - the status page: `GET /` (and `/ui`), one self-contained HTML file (`status.html`) that
//!   reads the `/v1` routes above with the same token, so it holds no data of its own and is
//!   served without auth.

pub mod archive;
pub mod auth;
pub mod body;
pub mod engines;
pub mod error;
pub mod events;
pub mod json_int;
pub mod leases;
pub mod metrics;
pub mod negotiate;
pub mod openapi;
pub mod pools;
pub mod setup;
pub mod stream;
pub mod terminal;
pub mod web;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use warmpool_core::PluginStatusSource;
use warmpool_core::{Backend, Manager};

pub use error::ApiError;
use metrics::Metrics;
pub use web::AllowedHosts;

/// Why the daemon is not ready, if it is not (beyond the manager's own view).
pub type ReadyCheck = Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// Asks the daemon to reload its config and waits for the outcome: the summary, or the
/// problems that kept the old config serving.
pub type AdminReload = Arc<
    dyn Fn() -> futures_util::future::BoxFuture<'static, Result<serde_json::Value, String>>
        + Send
        + Sync,
>;

/// Settings of the HTTP layer.
#[derive(Clone, Default)]
pub struct ApiConfig {
    /// Bearer token required on `/v1`; `None` leaves the API open (loopback only).
    pub token: Option<String>,
    /// Body limit in bytes for `/v1` requests other than file uploads.
    pub max_request_bytes: usize,
    /// Largest file upload in bytes (`server.max_upload_bytes`); larger ones get 413.
    pub max_upload_bytes: usize,
    /// Where `GET /v1/plugins` and the plugin metrics read from; `None`: no plugin host.
    pub plugins: Option<PluginStatusSource>,
    /// Checked by `/readyz` (the control supervisor must be alive).
    pub ready_check: Option<ReadyCheck>,
    /// Serves `POST /v1/admin/reload`; `None`: the route answers 501.
    pub admin_reload: Option<AdminReload>,
    /// Each engine's endpoint with credentials redacted, in engine order, for `/v1/engines`.
    pub engine_endpoints: Vec<String>,
    /// The `Host` names served (the DNS rebinding guard, [`web`]): by default `localhost` and
    /// IP addresses, on any port until `listen_port` is set.
    pub allowed_hosts: AllowedHosts,
}

/// State shared by every handler, built by [`router`] from an [`ApiConfig`].
pub struct AppState<B: Backend> {
    /// The pool manager the handlers drive.
    pub manager: Arc<Manager<B>>,
    /// Prometheus metrics served at `GET /metrics`.
    pub metrics: Metrics,
    /// Bearer token required on `/v1`; `None` leaves the API open.
    pub token: Option<String>,
    /// Source of `GET /v1/plugins` and the plugin metrics; `None`: no plugin host.
    pub plugins: Option<PluginStatusSource>,
    /// Largest file upload in bytes; larger ones get 413.
    pub max_upload_bytes: usize,
    /// Extra readiness check of `/readyz`; returns why the daemon is not ready.
    pub ready_check: Option<ReadyCheck>,
    /// Serves `POST /v1/admin/reload`; `None`: the route answers 501.
    pub admin_reload: Option<AdminReload>,
    /// Each engine's endpoint, credentials redacted, in engine order.
    pub engine_endpoints: Vec<String>,
    /// The `Host` names served; anything else gets 421.
    pub allowed_hosts: AllowedHosts,
}

/// The router's state as handlers receive it.
pub type Shared<B> = Arc<AppState<B>>;

/// Build the router.
pub fn router<B: Backend>(manager: Arc<Manager<B>>, cfg: ApiConfig) -> Router {
    let state = Arc::new(AppState {
        metrics: Metrics::new(manager.clone(), cfg.plugins.clone()),
        manager,
        token: cfg.token,
        plugins: cfg.plugins,
        max_upload_bytes: cfg.max_upload_bytes,
        ready_check: cfg.ready_check,
        admin_reload: cfg.admin_reload,
        engine_endpoints: cfg.engine_endpoints,
        allowed_hosts: cfg.allowed_hosts,
    });
    // File bodies are streamed and bounded by the handler itself (server.max_upload_bytes).
    let files = Router::new()
        .route(
            "/v1/leases/{id}/files/{*path}",
            get(leases::get_file::<B>).put(leases::put_file::<B>),
        )
        .route(
            "/v1/leases/{id}/archive/{*path}",
            get(archive::get_archive::<B>).put(archive::put_archive::<B>),
        );
    let v1 = Router::new()
        .route(
            "/v1/leases",
            post(leases::acquire::<B>).get(leases::list::<B>),
        )
        .route(
            "/v1/leases/{id}",
            get(leases::show::<B>).delete(leases::release::<B>),
        )
        .route("/v1/leases/{id}/exec", post(leases::exec::<B>))
        .route(
            "/v1/leases/{id}/exec/stream",
            post(stream::exec_stream::<B>),
        )
        .route("/v1/leases/{id}/exec/ws", get(terminal::exec_ws::<B>))
        .route("/v1/leases/{id}/pty", get(terminal::pty::<B>))
        .route("/v1/leases/{id}/renew", post(leases::renew::<B>))
        .route("/v1/pools", get(pools::list::<B>))
        .route("/v1/pools/{name}", get(pools::show::<B>))
        .route("/v1/pools/{name}/warm-up", post(pools::warm_up::<B>))
        .route("/v1/plugins", get(plugins::<B>))
        .route("/v1/engines", get(engines::list::<B>))
        .route("/v1/events", get(events::stream::<B>))
        .route("/v1/admin/reload", post(admin_reload::<B>))
        .layer(DefaultBodyLimit::max(cfg.max_request_bytes))
        .merge(files)
        // After the token check: a client without one learns that first.
        .route_layer(middleware::from_fn(web::require_json_post))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token::<B>,
        ));
    Router::new()
        .route("/", get(status_page))
        .route("/ui", get(status_page))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz::<B>))
        .route("/metrics", get(metrics_text::<B>))
        .route("/openapi.json", get(openapi::serve))
        .merge(v1)
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this route",
            )
        })
        .layer(middleware::from_fn(error::json_errors))
        // Before routing, on every route: what a web page may not do (see `web`). The Host is
        // checked first: a rebinding page is same-origin with the daemon, so its Origin passes.
        .layer(middleware::from_fn(web::check_origin))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            web::check_host::<B>,
        ))
        // Error messages echo input: no browser may read an answer as anything but its type.
        .layer(middleware::map_response(|mut r: Response| async move {
            r.headers_mut().insert(
                header::X_CONTENT_TYPE_OPTIONS,
                header::HeaderValue::from_static("nosniff"),
            );
            r
        }))
        .with_state(state)
}

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
async fn status_page() -> Response {
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
async fn healthz() -> Json<Status> {
    Json(Status {
        status: "ok".into(),
    })
}

/// `GET /readyz`: 200 while an engine answers, the startup sweep is done and the control loop
/// is alive; 503 with the state otherwise (`engine_unavailable` says no more: the engines'
/// errors are at `/v1/engines`, behind the token).
#[utoipa::path(get, path = "/readyz", tag = "service", operation_id = "readyz",
    responses(
        (status = 200, description = "Ready to lease", body = Status),
        (status = 503, description = "`not_ready` (starting, shutting down, or the control loop stopped) or `engine_unavailable` (no engine answers; the engines' own errors are at `/v1/engines`)", body = error::ErrorBody),
    ))]
async fn readyz<B: Backend>(State(s): State<Shared<B>>) -> Response {
    if let Some(why) = s.ready_check.as_ref().and_then(|c| c()) {
        return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", why).into_response();
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
            StatusCode::SERVICE_UNAVAILABLE,
            "engine_unavailable",
            "no container engine answers; each engine's state and last error are at /v1/engines",
        )
        .into_response()
    } else {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "starting up or shutting down",
        )
        .into_response()
    }
}

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

/// Every plugin of every pool.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct PluginList {
    /// One entry per pool and plugin kind; empty when the daemon has no plugin host.
    pub plugins: Vec<warmpool_core::PluginStatus>,
}

/// Body of `POST /v1/admin/reload`: nothing to set; `{}`, or an empty body (either sent as
/// `application/json`, as every POST must be).
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReloadBody {}

/// `POST /v1/admin/reload`: reload the config now, as SIGHUP does, and answer with what
/// changed (200), or with every problem that kept the old config serving (422).
#[utoipa::path(post, path = "/v1/admin/reload", tag = "admin", operation_id = "admin_reload",
    request_body(content = ReloadBody, description = "`{}`; an empty body sent as `application/json` is the same"),
    responses(
        (status = 200, description = "The new config serves; what changed", body = Reloaded),
        (status = 422, description = "`config_rejected`: every problem; the old config keeps serving", body = error::ErrorBody),
        (status = 501, description = "`not_implemented`: this daemon has no config file to reload", body = error::ErrorBody),
    ))]
async fn admin_reload<B: Backend>(
    State(s): State<Shared<B>>,
    headers: axum::http::HeaderMap,
    raw: bytes::Bytes,
) -> Response {
    if let Err(e) = body::object_or_default::<ReloadBody>(&headers, &raw) {
        return e.into_response();
    }
    let Some(reload) = &s.admin_reload else {
        return ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "not_implemented",
            "this daemon has no config to reload",
        )
        .into_response();
    };
    match reload().await {
        Ok(summary) => Json(Reloaded {
            reloaded: true,
            summary,
        })
        .into_response(),
        Err(problems) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "config_rejected",
            format!("the old config keeps serving: {problems}"),
        )
        .into_response(),
    }
}

/// `GET /v1/plugins`: each pool's plugins, their state and counters.
#[utoipa::path(get, path = "/v1/plugins", tag = "plugins", operation_id = "list_plugins",
    responses((status = 200, description = "Every plugin of every pool", body = PluginList)))]
async fn plugins<B: Backend>(State(s): State<Shared<B>>) -> Response {
    let plugins = s.plugins.as_ref().map(|f| f()).unwrap_or_default();
    Json(PluginList { plugins }).into_response()
}

/// `GET /metrics`: Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "service", operation_id = "metrics",
    responses((status = 200, description = "The metrics, in the Prometheus text format (or OpenMetrics when the scraper asks for it)", content_type = "text/plain", body = String)))]
async fn metrics_text<B: Backend>(
    State(s): State<Shared<B>>,
    headers: axum::http::HeaderMap,
) -> Response {
    // Prometheus asks for OpenMetrics; curl and promtool get the classic text format.
    let accept = headers.get_all(header::ACCEPT);
    if negotiate::prefers_openmetrics(accept.iter().filter_map(|v| v.to_str().ok())) {
        (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            s.metrics.render(),
        )
            .into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            s.metrics.render_text(),
        )
            .into_response()
    }
}
