//! The HTTP layer over the in-memory backend: status codes, JSON errors, auth, Retry-After.

mod common;

use axum::http::{StatusCode, header};
use serde_json::json;

use common::{app, call};

#[tokio::test]
async fn acquire_exec_release_and_429_with_retry_after() {
    let app = app(None).await;
    let (st, _, lease) = call(&app, "POST", "/v1/leases", Some(json!({"pool": "p"})), None).await;
    assert_eq!(st, StatusCode::CREATED, "{lease}");
    assert_eq!(lease["source"], "pool");
    let id = lease["lease_id"].as_str().unwrap();

    let (st, hdrs, err) = call(&app, "POST", "/v1/leases", Some(json!({"pool": "p"})), None).await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS, "{err}");
    assert_eq!(err["error"]["code"], "pool_exhausted");
    assert!(hdrs.get(header::RETRY_AFTER).is_some());

    let (st, _, out) = call(
        &app,
        "POST",
        &format!("/v1/leases/{id}/exec"),
        Some(json!({"cmd": ["echo", "hi"]})),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(out["exit_code"], 0);

    let (st, _, _) = call(&app, "DELETE", &format!("/v1/leases/{id}"), None, None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _, err) = call(&app, "GET", &format!("/v1/leases/{id}"), None, None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(err["error"]["code"], "unknown_lease");
}

#[tokio::test]
async fn bad_input_gets_a_4xx_with_a_json_reason() {
    let app = app(None).await;
    let (st, _, e) = call(
        &app,
        "POST",
        "/v1/leases",
        Some(json!({"pool": "nope"})),
        None,
    )
    .await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_pool"))
    );
    let (st, _, e) = call(
        &app,
        "POST",
        "/v1/leases",
        Some(json!({"pool": "p", "ttl": 3})),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `ttl`"),
        "{e}"
    );
    let (st, _, e) = call(
        &app,
        "POST",
        "/v1/leases",
        Some(json!({"pool": "p", "ttl_s": 0})),
        None,
    )
    .await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_request"))
    );
    let big = "x".repeat(10_000);
    let (st, _, e) = call(&app, "POST", "/v1/leases", Some(json!({"pool": big})), None).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE, "{e}");
    assert!(e["error"]["message"].is_string());
    let (st, _, e) = call(&app, "GET", "/v1/nothing", None, None).await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );

    let (_, _, lease) = call(&app, "POST", "/v1/leases", Some(json!({"pool": "p"})), None).await;
    let id = lease["lease_id"].as_str().unwrap();
    let (st, _, e) = call(
        &app,
        "GET",
        &format!("/v1/leases/{id}/files/tmp/../etc/passwd"),
        None,
        None,
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{e}");
    let (st, _, e) = call(
        &app,
        "POST",
        &format!("/v1/leases/{id}/exec"),
        Some(json!({"cmd": []})),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{e}");
    let (st, _, e) = call(
        &app,
        "GET",
        &format!("/v1/leases/{id}/files/no/such"),
        None,
        None,
    )
    .await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("file_not_found"))
    );
}

#[tokio::test]
async fn v1_needs_the_token_and_service_routes_do_not() {
    let app = app(Some("s3cret")).await;
    let (st, hdrs, e) = call(&app, "GET", "/v1/pools", None, None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{e}");
    assert_eq!(hdrs.get(header::WWW_AUTHENTICATE).unwrap(), "Bearer");
    let (st, _, _) = call(&app, "GET", "/v1/pools", None, Some("wrong")).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _, pools) = call(&app, "GET", "/v1/pools", None, Some("s3cret")).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(pools["pools"][0]["counts"]["ready"], 1);
    assert_eq!(
        call(&app, "GET", "/healthz", None, None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&app, "GET", "/readyz", None, None).await.0,
        StatusCode::OK
    );
    let (st, _, text) = call(&app, "GET", "/metrics", None, None).await;
    assert_eq!(st, StatusCode::OK);
    let text = text.as_str().unwrap().to_string();
    assert!(
        text.contains("warmpool_containers{pool=\"p\",state=\"ready\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("warmpool_engine_up{engine=\"default\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn engines_are_listed_and_acquires_may_ask_for_engine_labels() {
    let app = app(None).await;
    let (st, _, v) = call(&app, "GET", "/v1/engines", None, None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let e = &v["engines"][0];
    assert_eq!(e["name"], "default");
    assert_eq!(e["state"], "up");
    assert_eq!(e["containers"]["ready"], 1, "{v}");
    assert_eq!(e["counted"], 1);
    // No engine carries this label: 422 with a JSON reason, nothing taken.
    let (st, _, err) = call(
        &app,
        "POST",
        "/v1/leases",
        Some(json!({"pool": "p", "engine": {"zone": "a"}})),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(err["error"]["code"], "no_such_engine");
    let (st, _, err) = call(
        &app,
        "POST",
        "/v1/leases",
        Some(json!({"pool": "p", "engine": {"zone": 1}})),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{err}");
    let (st, _, lease) = call(&app, "POST", "/v1/leases", Some(json!({"pool": "p"})), None).await;
    assert_eq!(st, StatusCode::CREATED, "{lease}");
    assert_eq!(lease["engine"], "default");
}

/// The scale routes: each answer (checked against the document by `call`) with the pool's stats
/// or a named refusal; the override shows in `GET /v1/pools/{name}` until `DELETE`.
#[tokio::test]
async fn scale_sets_refuses_by_bound_and_clears() {
    let app = app(None).await;
    let (st, _, p) = call(
        &app,
        "PUT",
        "/v1/pools/p/scale",
        Some(json!({"min_ready": 2, "max_ready": 2})),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{p}");
    assert_eq!(p["override"], json!({"min_ready": 2, "max_ready": 2}));
    let (_, _, shown) = call(&app, "GET", "/v1/pools/p", None, None).await;
    assert_eq!(shown["override"], p["override"]);

    let (st, _, e) = call(
        &app,
        "PUT",
        "/v1/pools/p/scale",
        Some(json!({"max_ready": 3})),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(e["error"]["code"], "out_of_bounds");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("max_total:"),
        "{e}"
    );
    for body in [json!({}), json!({"min_ready": null}), json!({"size": 1})] {
        let (st, _, e) = call(&app, "PUT", "/v1/pools/p/scale", Some(body.clone()), None).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{body}: {e}");
    }
    let (st, _, e) = call(
        &app,
        "PUT",
        "/v1/pools/nope/scale",
        Some(json!({"min_ready": 1})),
        None,
    )
    .await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_pool"))
    );

    let (st, _, p) = call(&app, "DELETE", "/v1/pools/p/scale", None, None).await;
    assert_eq!(st, StatusCode::OK, "{p}");
    assert_eq!(p["override"], serde_json::Value::Null);
    let (st, _, _) = call(&app, "DELETE", "/v1/pools/nope/scale", None, None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}
