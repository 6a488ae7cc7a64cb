//! `GET /v1/history` over the in-memory backend: the samples of the router's own manager, the
//! acquires its handler recorded between two ticks, the pool filter a caller may narrow, and
//! its errors (every answer checked against the OpenAPI document).

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use warmpool_api::ApiConfig;
use warmpool_api::history::route::view;
use warmpool_api::history::{History, sampler};

use common::{app_and_manager, call, lease};

#[tokio::test]
async fn a_lease_shows_as_leased_and_as_a_warm_acquire_of_its_interval() {
    let h = Arc::new(History::new(Duration::from_secs(10)));
    let (app, m) = app_and_manager(ApiConfig {
        max_request_bytes: 4096,
        history: Some(h.clone()),
        ..ApiConfig::default()
    })
    .await;
    h.tick(sampler::gauges(&m));
    let _id = lease(&app).await;
    // The pool has one container: a second acquire is refused, and is no acquire served.
    let (st, _, _) = call(
        &app,
        "POST",
        "/v1/leases",
        Some(serde_json::json!({"pool": "p"})),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS);
    h.tick(sampler::gauges(&m));

    let (st, _, v) = call(&app, "GET", "/v1/history", None, None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["interval_ms"], 10_000);
    assert_eq!(v["capacity"], 360);
    assert_eq!(v["pools"].as_array().unwrap().len(), 1, "{v}");
    let p = &v["pools"][0];
    assert_eq!(p["name"], "p");
    let s = p["samples"].as_array().unwrap();
    assert_eq!(s.len(), 2, "{v}");
    assert_eq!(
        (s[0]["ready"].as_u64(), s[0]["leased"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(s[0]["acquires"], 0);
    assert!(s[0]["hit_rate"].is_null());
    assert_eq!(s[1]["leased"], 1, "{v}");
    assert_eq!(
        (
            s[1]["acquires"].as_u64(),
            s[1]["warm"].as_u64(),
            s[1]["cold"].as_u64()
        ),
        (Some(1), Some(1), Some(0))
    );
    assert_eq!(s[1]["hit_rate"], 1.0);
    assert!(
        s[1]["latency_ms_p50"].as_f64().is_some_and(|ms| ms >= 0.0),
        "{v}"
    );
    assert!(s[1]["latency_ms_p95"].is_number());
    assert!(s[1]["at"].as_str().is_some_and(|t| t.ends_with('Z')));

    let (st, _, one) = call(&app, "GET", "/v1/history?pool=p", None, None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(one["pools"], v["pools"]);
    let (st, _, err) = call(&app, "GET", "/v1/history?pool=nope", None, None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(err["error"]["code"], "unknown_pool");
    let (st, _, err) = call(&app, "GET", "/v1/history?pools=p", None, None).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{err}");
}

#[tokio::test]
async fn a_pool_the_filter_hides_is_absent_and_unknown_when_asked_for() {
    let h = History::new(Duration::from_secs(10));
    let (_app, m) = app_and_manager(ApiConfig::default()).await;
    h.tick(sampler::gauges(&m));
    assert_eq!(view(&m, &h, None, |_| true).unwrap().pools.len(), 1);
    let hidden = |p: &str| p != "p";
    assert!(view(&m, &h, None, hidden).unwrap().pools.is_empty());
    let err = view(&m, &h, Some("p"), hidden).unwrap_err();
    assert_eq!(
        (err.status, err.code),
        (StatusCode::NOT_FOUND, "unknown_pool")
    );
    assert_eq!(
        view(&m, &h, Some("p"), |_| true).unwrap().pools[0]
            .samples
            .len(),
        1
    );
}
