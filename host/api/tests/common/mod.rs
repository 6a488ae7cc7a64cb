//! What the API tests share: a router over the in-memory backend with one warm pool `p`
//! (exhaustion `fail`), and one request at a time through it. Every answer a test gets that way
//! is checked against the OpenAPI document ([`documented`]): the routes' tests are also the
//! check that the document names every status and error code a route answers.

#![allow(dead_code)]

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;
use warmpool_api::{ApiConfig, router};
use warmpool_core::{
    BuiltinExhaustion, BuiltinSizing, Manager, ManagerConfig, Policies, PoolConfig,
};
use warmpool_fake::FakeBackend;
use warmpool_testkit::fixtures;

pub fn pool(name: &str, exhaustion: BuiltinExhaustion) -> (PoolConfig, Policies) {
    let mut cfg = fixtures::pool(name, 1, 1, 2);
    cfg.spec = fixtures::test_spec("img");
    cfg.max_ttl = Duration::from_secs(120);
    cfg.wait_timeout = Duration::from_millis(200);
    cfg.health_interval = Duration::from_secs(60);
    let pol = Policies {
        sizing: Arc::new(BuiltinSizing::Fixed),
        exhaustion: Arc::new(exhaustion),
        health: None,
    };
    (cfg, pol)
}

pub async fn app(token: Option<&str>) -> axum::Router {
    app_with(ApiConfig {
        tenants: token
            .map(|t| vec![warmpool_api::tenancy::TenantSpec::admin("admin", t)])
            .unwrap_or_default(),
        max_request_bytes: 4096,
        max_upload_bytes: 1 << 20,
        plugins: None,
        ..ApiConfig::default()
    })
    .await
}

/// The same router with settings of the test's own.
pub async fn app_with(cfg: ApiConfig) -> axum::Router {
    app_and_manager(cfg).await.0
}

/// The same router, and the manager behind it.
pub async fn app_and_manager(cfg: ApiConfig) -> (axum::Router, Arc<Manager<FakeBackend>>) {
    let backend = Arc::new(FakeBackend::new(Duration::from_millis(5)));
    let m = Manager::new(
        ManagerConfig::default(),
        vec![pool("p", BuiltinExhaustion::Fail)],
        backend,
    );
    m.start();
    m.warm_up("p", Duration::from_secs(5)).await.unwrap();
    (router(m.clone(), cfg), m)
}

/// The OpenAPI document the router serves.
static DOCUMENT: LazyLock<Value> = LazyLock::new(warmpool_api::openapi::document);

/// The documented operation a request to `path` with `method` reaches, if any (a request
/// to no route, or with a method its route does not take, reaches none).
fn operation(method: &str, path: &str) -> Option<(&'static str, &'static Value)> {
    let want: Vec<&str> = path.split('/').collect();
    DOCUMENT["paths"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(template, _)| {
            let t: Vec<&str> = template.split('/').collect();
            // `{path}` is the route's `{*path}`: the rest, one segment or more.
            if t.last() == Some(&"{path}") {
                want.len() >= t.len()
                    && want[t.len() - 1..].iter().all(|s| !s.is_empty())
                    && segments_match(&t[..t.len() - 1], &want[..t.len() - 1])
            } else {
                t.len() == want.len() && segments_match(&t, &want)
            }
        })
        .and_then(|(template, item)| {
            Some((template.as_str(), item.get(method.to_ascii_lowercase())?))
        })
}

fn segments_match(template: &[&str], path: &[&str]) -> bool {
    template.iter().zip(path).all(|(t, p)| {
        if t.starts_with('{') {
            !p.is_empty()
        } else {
            t == p
        }
    })
}

/// An answer the document does not promise fails the test: its status must be documented for
/// the operation the request reached, and an error's code named in that status's description.
pub fn documented(method: &str, path: &str, status: StatusCode, body: &Value) {
    let Some((template, op)) = operation(method, path) else {
        return;
    };
    let what = format!("{method} {path} ({template}) answered {status}: {body}");
    let resp = &op["responses"][status.as_str()];
    assert!(resp.is_object(), "undocumented status: {what}");
    if let Some(code) = body["error"]["code"].as_str() {
        let description = resp["description"].as_str().unwrap_or_default();
        assert!(
            description.contains(&format!("`{code}`")),
            "the code is not documented for this status: {what}"
        );
    }
}

pub async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = match body {
        Some(b) => req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    answer(app, req).await
}

/// One request through the router, its answer read and checked against the document.
async fn answer(
    app: &axum::Router,
    req: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let (method, path) = (req.method().to_string(), req.uri().path().to_string());
    let resp = app.clone().oneshot(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    let v = serde_json::from_slice(&bytes)
        .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
    documented(&method, &path, parts.status, &v);
    (parts.status, parts.headers, v)
}

/// One request with a raw body and content type, as a client that gets them wrong sends it.
pub async fn call_raw(
    app: &axum::Router,
    method: &str,
    uri: &str,
    content_type: Option<&str>,
    body: &str,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(ct) = content_type {
        req = req.header(header::CONTENT_TYPE, ct);
    }
    answer(app, req.body(Body::from(body.to_string())).unwrap()).await
}

/// One request exactly as built (any headers, any URI form), through the router.
pub async fn send(
    app: &axum::Router,
    req: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    answer(app, req).await
}

/// A request with these headers and a body (empty when `None`).
pub fn request(method: &str, uri: &str, headers: &[(&str, &str)], body: &str) -> Request<Body> {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.body(Body::from(body.to_string())).unwrap()
}

/// A lease taken the way a client takes one (no Host, JSON body); its id.
pub async fn lease(app: &axum::Router) -> String {
    let (st, _, v) = call(
        app,
        "POST",
        "/v1/leases",
        Some(serde_json::json!({"pool": "p"})),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    v["lease_id"].as_str().unwrap().to_string()
}

/// How many leases are live, asked the way a client asks.
pub async fn live_leases(app: &axum::Router) -> usize {
    let (st, _, v) = call(app, "GET", "/v1/leases", None, None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v["leases"].as_array().unwrap().len()
}
