//! # warmpool-api: the HTTP lease API
//!
//! An axum router over a `warmpool_core::Manager`. JSON in and out; every error is
//! `{"error":{"code","message"}}` ([`error`]). When a token is configured, every `/v1` route
//! needs `Authorization: Bearer <token>`, compared in constant time ([`auth`]). Whatever the
//! config, [`web`] keeps web pages out: a `Host` the daemon does not answer to gets 421, a
//! request from another origin 403, and a POST that does not say it is JSON 415.
//!
//! Routes (see README "HTTP API"):
//! - leases: `POST/GET /v1/leases`, `GET/DELETE/PATCH /v1/leases/{id}` (`PATCH`: its cpus and
//!   memory, [`resources`]), `POST /v1/leases/{id}/renew` ([`leases`]); `POST
//!   /v1/leases/{id}/suspend` and `/resume` ([`hibernate`]); `POST /v1/leases/{id}/exec`
//!   ([`exec`]), and streamed ([`stream`]) or over a
//!   WebSocket ([`terminal`]); `PUT/GET /v1/leases/{id}/files/{*path}` ([`files`]) and
//!   `/archive/{*path}` ([`archive`]);
//! - pools: `GET /v1/pools`, `GET /v1/pools/{name}`, `POST /v1/pools/{name}/warm-up`,
//!   `PUT`/`DELETE /v1/pools/{name}/scale` ([`pools`]); `GET /v1/history`, each pool's counts,
//!   hit rate and acquire latency over the last hour, sampled by the daemon itself ([`history`]);
//! - engines: `GET /v1/engines`, each engine's state, containers, version and images
//!   ([`engines`]);
//! - plugins: `GET /v1/plugins` (reload count, hash, last error, calls, failures) ([`plugins`]);
//! - events: `GET /v1/events`, Server-Sent Events of the pool lifecycle ([`events`]);
//! - admin: `POST /v1/admin/reload`, a config reload answered with its outcome ([`admin`]);
//! - service: `GET /healthz`, `GET /readyz`, `GET /metrics` ([`service`]; the metrics are
//!   [`metrics`], their format chosen by [`negotiate`]);
//! - the status page: `GET /` (and `/ui`), one self-contained HTML file (`status.html`) that
//!   reads the `/v1` routes above with the same token, so it holds no data of its own and is
//!   served without auth ([`service`]);
//! - `GET /openapi.json`, the OpenAPI document ([`openapi`]).
//!
//! Errors: every code the API answers, with its status and meaning, is one table ([`code`]);
//! the handlers build their errors from it and the document its error responses, each route
//! naming its codes beside its handler.
//!
//! Modules depend on each other one way: the route modules on [`error`], [`code`], [`body`]
//! and the like, never on [`openapi`], the one module that knows every route.

pub mod admin;
pub mod archive;
pub mod auth;
pub mod body;
pub mod code;
pub mod core_errors;
pub mod engines;
pub mod error;
pub mod events;
pub mod exec;
pub mod files;
pub mod hibernate;
pub mod history;
pub mod json_int;
pub mod leases;
pub mod metrics;
pub mod negotiate;
pub mod openapi;
pub mod plugins;
pub mod pools;
pub mod resources;
pub mod service;
pub mod setup;
pub mod stream;
pub mod tenancy;
pub mod tenants;
pub mod terminal;
pub mod web;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::header;
use axum::middleware;
use axum::response::Response;
use axum::routing::{get, post, put};
use warmpool_core::PluginStatusSource;
use warmpool_core::{Backend, Manager};

use code::Code;
pub use error::ApiError;
pub use history::History;
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
    /// Who may call `/v1`, each with its token; empty leaves the API open (loopback only).
    pub tenants: Vec<tenancy::TenantSpec>,
    /// The key of lease tokens; `None`: a random one (tokens do not outlive the process).
    pub lease_keys: Option<tenancy::lease_token::LeaseKeys>,
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
    /// The pools' history, which the daemon's sampler fills ([`history::sampler`]); `None`: one
    /// of the router's own, holding the acquires but no sample (nothing samples it).
    pub history: Option<Arc<History>>,
}

/// State shared by every handler, built by [`router`] from an [`ApiConfig`].
pub struct AppState<B: Backend> {
    /// The pool manager the handlers drive.
    pub manager: Arc<Manager<B>>,
    /// Prometheus metrics served at `GET /metrics`.
    pub metrics: Metrics,
    /// The tenants, each token kept as a hash; none: the API is open.
    pub tenants: Arc<tenancy::Tenants>,
    /// Mints and checks lease tokens.
    pub lease_keys: tenancy::lease_token::LeaseKeys,
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
    /// The pools' history: the acquire handler records into it, `GET /v1/history` reads it.
    pub history: Arc<History>,
}

/// The router's state as handlers receive it.
pub type Shared<B> = Arc<AppState<B>>;

/// Build the router.
pub fn router<B: Backend>(manager: Arc<Manager<B>>, cfg: ApiConfig) -> Router {
    let tenants = Arc::new(tenancy::Tenants::new(cfg.tenants));
    // The tenants' lease-seconds follow the core's lease table.
    manager.set_lease_ledger(Arc::new(tenancy::quota::Ledger(tenants.clone())));
    let mut metrics = Metrics::new(manager.clone(), cfg.plugins.clone());
    metrics.register_admin(Box::new(tenancy::metrics::TenantCollector {
        tenants: tenants.clone(),
        manager: manager.clone(),
    }));
    let state = Arc::new(AppState {
        metrics,
        manager,
        tenants,
        lease_keys: cfg
            .lease_keys
            .unwrap_or_else(tenancy::lease_token::LeaseKeys::random),
        plugins: cfg.plugins,
        max_upload_bytes: cfg.max_upload_bytes,
        ready_check: cfg.ready_check,
        admin_reload: cfg.admin_reload,
        engine_endpoints: cfg.engine_endpoints,
        allowed_hosts: cfg.allowed_hosts,
        history: cfg
            .history
            .unwrap_or_else(|| Arc::new(History::new(history::DEFAULT_INTERVAL))),
    });
    // File bodies are streamed and bounded by the handler itself (server.max_upload_bytes).
    let files = Router::new()
        .route(
            "/v1/leases/{id}/files/{*path}",
            get(files::get_file::<B>).put(files::put_file::<B>),
        )
        .route(
            "/v1/leases/{id}/archive/{*path}",
            get(archive::get_archive::<B>).put(archive::put_archive::<B>),
        );
    // The routes of one lease: its tenant, an admin, or its lease token (`auth::lease_scope`).
    let lease = Router::new()
        .route(
            "/v1/leases/{id}",
            get(leases::show::<B>)
                .delete(leases::release::<B>)
                .patch(resources::resize::<B>),
        )
        .route("/v1/leases/{id}/exec", post(exec::exec::<B>))
        .route(
            "/v1/leases/{id}/exec/stream",
            post(stream::exec_stream::<B>),
        )
        .route("/v1/leases/{id}/exec/ws", get(terminal::exec_ws::<B>))
        .route("/v1/leases/{id}/pty", get(terminal::pty::<B>))
        .route("/v1/leases/{id}/renew", post(leases::renew::<B>))
        .route("/v1/leases/{id}/suspend", post(hibernate::suspend::<B>))
        .route("/v1/leases/{id}/resume", post(hibernate::resume::<B>))
        .layer(DefaultBodyLimit::max(cfg.max_request_bytes))
        .merge(files)
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::lease_scope::<B>,
        ));
    // A tenant's routes, each showing it only its own (`auth::no_lease_token`).
    let tenant = Router::new()
        .route(
            "/v1/leases",
            post(leases::acquire::<B>).get(leases::list::<B>),
        )
        .route("/v1/pools", get(pools::list::<B>))
        .route("/v1/pools/{name}", get(pools::show::<B>))
        .route("/v1/events", get(events::stream::<B>))
        .route("/v1/tenants", get(tenants::list::<B>))
        .route("/v1/history", get(history::route::list::<B>))
        .layer(DefaultBodyLimit::max(cfg.max_request_bytes))
        .route_layer(middleware::from_fn(auth::no_lease_token));
    // What changes or shows the whole daemon (`auth::admin_only`).
    let admin = Router::new()
        .route("/v1/pools/{name}/warm-up", post(pools::warm_up::<B>))
        .route(
            "/v1/pools/{name}/scale",
            put(pools::scale::<B>).delete(pools::unscale::<B>),
        )
        .route("/v1/plugins", get(plugins::list::<B>))
        .route("/v1/engines", get(engines::list::<B>))
        .route("/v1/admin/reload", post(admin::reload::<B>))
        .layer(DefaultBodyLimit::max(cfg.max_request_bytes))
        .route_layer(middleware::from_fn(auth::admin_only));
    let v1 = lease
        .merge(tenant)
        .merge(admin)
        // After the token check: a client without one learns that first.
        .route_layer(middleware::from_fn(web::require_json_post))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::identify::<B>,
        ));
    Router::new()
        .route("/", get(service::status_page))
        .route("/ui", get(service::status_page))
        .route("/healthz", get(service::healthz))
        .route("/readyz", get(service::readyz::<B>))
        .route("/metrics", get(service::metrics_text::<B>))
        .route("/openapi.json", get(openapi::serve))
        .merge(v1)
        .fallback(|| async { ApiError::new(Code::NotFound, "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(Code::MethodNotAllowed, "method not allowed on this route")
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
