//! What schemathesis found against the OpenAPI document (tests/contract), each kept as a
//! regression test: the server accepts what the document allows and refuses what it does
//! not, with the documented codes.

mod common;

use axum::http::StatusCode;
use serde_json::json;

use common::{app, call, call_raw, request, send};

async fn lease(app: &axum::Router) -> String {
    let (st, _, v) = call(app, "POST", "/v1/leases", Some(json!({"pool": "p"})), None).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    v["lease_id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn whole_numbers_written_as_floats_or_past_u64_are_integers() {
    let app = app(None).await;
    let id = lease(&app).await;
    // JSON Schema's `integer` includes 816.0; serde's u64 alone refused it.
    let (st, _, v) = call(
        &app,
        "POST",
        &format!("/v1/leases/{id}/renew"),
        Some(json!({"ttl_s": 816.0})),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    // A whole number past u64::MAX saturates, and the pool's max_ttl caps it as any other.
    let (st, _, v) = call_raw(
        &app,
        "POST",
        &format!("/v1/leases/{id}/renew"),
        Some("application/json"),
        r#"{"ttl_s": 572304578872095652446208}"#,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert!(v["ttl_remaining_s"].as_u64().unwrap() <= 120, "{v}");
    // A fraction is still refused, with the field named.
    let (st, _, v) = call(
        &app,
        "POST",
        &format!("/v1/leases/{id}/renew"),
        Some(json!({"ttl_s": 1.5})),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("ttl_s"),
        "{v}"
    );
}

#[tokio::test]
async fn a_body_must_be_an_object_not_an_array_serde_would_read_as_one() {
    let app = app(None).await;
    for (uri, body) in [
        ("/v1/leases", r#"["p"]"#),
        ("/v1/pools/p/warm-up", "[null]"),
        ("/v1/pools/p/warm-up", "[1000]"),
        ("/v1/leases", "\"p\""),
    ] {
        let (st, _, v) = call_raw(&app, "POST", uri, Some("application/json"), body).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{uri} {body}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("JSON object"),
            "{v}"
        );
    }
}

#[tokio::test]
async fn warm_up_takes_an_empty_body_or_an_object_sent_as_json() {
    let app = app(None).await;
    for body in ["", "{}", "{\"timeout_ms\": 5000.0}"] {
        let (st, _, v) = call_raw(
            &app,
            "POST",
            "/v1/pools/p/warm-up",
            Some("application/json"),
            body,
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{body:?}: {v}");
    }
    // `null` is not an object: the schema does not allow it (schemathesis ST201), so it is
    // refused on both routes whose body is optional; so is a body of whitespace alone, which
    // is not JSON at all (schemathesis sent `\r`, and it was served as an empty body).
    for uri in ["/v1/pools/p/warm-up", "/v1/admin/reload"] {
        for body in ["\r", " ", "\n\t"] {
            let (st, _, v) = call_raw(&app, "POST", uri, Some("application/json"), body).await;
            assert_eq!(st, StatusCode::BAD_REQUEST, "{uri} {body:?}: {v}");
        }
        for body in ["null", " null\n"] {
            let (st, _, v) = call_raw(&app, "POST", uri, Some("application/json"), body).await;
            assert_eq!(st, StatusCode::BAD_REQUEST, "{uri} {body:?}: {v}");
            assert!(
                v["error"]["message"].as_str().unwrap().contains("not null"),
                "{v}"
            );
        }
    }
    // A POST that does not say it is JSON is refused, an empty one too (issue 21; it was
    // served before): a web page may send text/plain, or nothing, to any origin without a
    // preflight.
    for ct in [None, Some("text/plain")] {
        for body in ["", "{\"timeout_ms\": 5000}"] {
            let (st, _, v) = call_raw(&app, "POST", "/v1/pools/p/warm-up", ct, body).await;
            assert_eq!(
                st,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{ct:?} {body:?}: {v}"
            );
            assert_eq!(v["error"]["code"], "unsupported_media_type");
        }
    }
}

#[tokio::test]
async fn size_and_media_type_refusals_keep_their_own_codes() {
    let app = app(None).await;
    // The test router's body limit is 4096 bytes.
    let big = json!({"pool": "p", "owner": "x".repeat(8000)}).to_string();
    let (st, _, v) = call_raw(&app, "POST", "/v1/leases", Some("application/json"), &big).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_eq!(v["error"]["code"], "payload_too_large");
    let (st, _, v) = call_raw(&app, "POST", "/v1/leases", None, r#"{"pool": "p"}"#).await;
    assert_eq!(st, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{v}");
    assert_eq!(v["error"]["code"], "unsupported_media_type");
}

/// A WebSocket request on a connection that cannot be upgraded answers 426 with the code the
/// document names, `upgrade_required`. Found by deriving the document from the table of codes:
/// the rewrite of axum's own 426 answered `error`, while the document said `upgrade_required`.
#[tokio::test]
async fn a_connection_that_cannot_be_upgraded_gets_the_documented_code() {
    let app = app(None).await;
    let ws = [
        ("connection", "upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    for route in ["pty", "exec/ws"] {
        // Through `oneshot` no connection is there to upgrade.
        let uri = format!("/v1/leases/nope/{route}");
        let (st, _, v) = send(&app, request("GET", &uri, &ws, "")).await;
        assert_eq!(st, StatusCode::UPGRADE_REQUIRED, "{route}: {v}");
        assert_eq!(v["error"]["code"], "upgrade_required", "{route}: {v}");
    }
}

#[tokio::test]
async fn label_and_owner_bounds_count_characters_as_the_document_does() {
    let app = app(None).await;
    // 128 four-byte characters: within `maxLength: 128`. No engine has the label: 422.
    let key = "\u{1F600}".repeat(128);
    let (st, _, v) = call(
        &app,
        "POST",
        "/v1/leases",
        Some(json!({"pool": "p", "engine": {key: "v"}, "owner": "\u{e9}".repeat(200)})),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["code"], "no_such_engine");
    // An empty label name is outside the document (`propertyNames.minLength: 1`): 400.
    let (st, _, v) = call(
        &app,
        "POST",
        "/v1/leases",
        Some(json!({"pool": "p", "engine": {"": ""}})),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
}

#[tokio::test]
async fn stdin_b64_without_padding_is_read() {
    let app = app(None).await;
    let id = lease(&app).await;
    // "hi" is "aGk=" padded; many encoders drop the padding.
    let (st, _, v) = call(
        &app,
        "POST",
        &format!("/v1/leases/{id}/exec"),
        Some(json!({"cmd": ["echo", "x"], "stdin_b64": "aGk"})),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, _, v) = call(
        &app,
        "POST",
        &format!("/v1/leases/{id}/exec"),
        Some(json!({"cmd": ["echo", "x"], "stdin_b64": "a"})),
        None,
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
}

#[tokio::test]
async fn the_document_is_served_and_names_every_route_the_router_answers() {
    let app = app(None).await;
    let (st, headers, doc) = call(&app, "GET", "/openapi.json", None, None).await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    // Every documented route exists (no `no such route` 404, no 405 for its method).
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "delete"] {
            if item.get(method).is_none() || path == "/v1/events" {
                continue;
            }
            let uri = path
                .replace("{id}", "nope")
                .replace("{name}", "p")
                .replace("{path}", "tmp/x");
            let (st, _, v) = call_raw(&app, &method.to_uppercase(), &uri, None, "").await;
            assert_ne!(v["error"]["code"], "not_found", "{method} {uri}: {v}");
            assert_ne!(st, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}: {v}");
        }
    }
    // The status page is served, without auth, and loads nothing from elsewhere.
    let (st, headers, page) = call_raw(&app, "GET", "/", None, "").await;
    assert_eq!(st, StatusCode::OK);
    assert!(page.as_str().unwrap().contains("<html"));
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"));
    let script_src = csp
        .split(';')
        .map(str::trim)
        .find(|d| d.starts_with("script-src"))
        .unwrap();
    assert!(
        script_src.starts_with("script-src 'sha256-") && !script_src.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
}
