//! Cross-site requests (issue 21): a page on another site may send a "simple" request (a POST
//! of `text/plain`, form data or nothing, no custom header) to the daemon without the browser
//! asking first. Every POST therefore must say `Content-Type: application/json`, even with an
//! empty body; a request from another origin (or from `Origin: null`) is refused whatever it
//! is; and the daemon never answers CORS, so PUT and DELETE cannot be sent cross-site at all.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use axum::http::StatusCode;
use futures_util::FutureExt;
use serde_json::Value;
use warmpool_api::{AdminReload, ApiConfig, router};

use common::{lease, live_leases, request, send};

/// A router like `common::app`'s, whose admin reload counts its calls.
async fn app_counting_reloads() -> (axum::Router, Arc<AtomicU32>) {
    let reloads = Arc::new(AtomicU32::new(0));
    let backend = Arc::new(warmpool_fake::FakeBackend::new(
        std::time::Duration::from_millis(5),
    ));
    let m = warmpool_core::Manager::new(
        warmpool_core::ManagerConfig::default(),
        vec![common::pool("p", warmpool_core::BuiltinExhaustion::Fail)],
        backend,
    );
    m.start();
    m.warm_up("p", std::time::Duration::from_secs(5))
        .await
        .unwrap();
    let n = reloads.clone();
    let reload: AdminReload = Arc::new(move || {
        n.fetch_add(1, Ordering::SeqCst);
        async { Ok(serde_json::json!({"added": []})) }.boxed()
    });
    let app = router(
        m,
        ApiConfig {
            max_request_bytes: 4096,
            max_upload_bytes: 1 << 20,
            admin_reload: Some(reload),
            ..ApiConfig::default()
        },
    );
    (app, reloads)
}

fn assert_refused(st: StatusCode, v: &Value, status: StatusCode, code: &str, what: &str) {
    assert_eq!(st, status, "{what}: {v}");
    assert_eq!(v["error"]["code"], code, "{what}: {v}");
    assert!(v["error"]["message"].is_string(), "{what}: {v}");
}

#[tokio::test]
async fn a_simple_cross_site_post_to_reload_is_refused() {
    let (app, reloads) = app_counting_reloads().await;
    // What `fetch(url, {method: "POST", mode: "no-cors", body: "x"})` sends from another page.
    let (st, _, v) = send(
        &app,
        request(
            "POST",
            "/v1/admin/reload",
            &[
                ("content-type", "text/plain;charset=UTF-8"),
                ("origin", "http://attacker.example"),
            ],
            "x",
        ),
    )
    .await;
    assert!(st.is_client_error(), "{st}: {v}");
    assert_eq!(
        reloads.load(Ordering::SeqCst),
        0,
        "the page reloaded the config"
    );
}

#[tokio::test]
async fn every_post_must_say_it_is_json_even_with_an_empty_body() {
    let (app, reloads) = app_counting_reloads().await;
    let id = lease(&app).await;
    let posts = [
        ("/v1/leases".to_string(), r#"{"pool":"p"}"#),
        (format!("/v1/leases/{id}/exec"), r#"{"cmd":["true"]}"#),
        (format!("/v1/leases/{id}/renew"), r#"{"ttl_s":60}"#),
        ("/v1/pools/p/warm-up".to_string(), ""),
        ("/v1/pools/p/warm-up".to_string(), r#"{"timeout_ms":1000}"#),
        ("/v1/admin/reload".to_string(), ""),
    ];
    // The three types a form or a no-cors fetch may send, and none at all.
    for ct in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        for (uri, body) in &posts {
            let headers: Vec<(&str, &str)> = ct.map(|c| ("content-type", c)).into_iter().collect();
            let (st, _, v) = send(&app, request("POST", uri, &headers, body)).await;
            assert_refused(
                st,
                &v,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                &format!("POST {uri} {ct:?} {body:?}"),
            );
        }
    }
    assert_eq!(reloads.load(Ordering::SeqCst), 0);
    assert_eq!(live_leases(&app).await, 1);
    // The same POSTs that say JSON are served, an empty warm-up and reload body included.
    let json = [("content-type", "application/json")];
    for (uri, body) in &posts[2..] {
        let (st, _, v) = send(&app, request("POST", uri, &json, body)).await;
        assert_eq!(st, StatusCode::OK, "POST {uri} {body:?}: {v}");
    }
    assert_eq!(reloads.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_foreign_origin_is_refused_on_every_route_and_the_same_origin_served() {
    let (app, reloads) = app_counting_reloads().await;
    let id = lease(&app).await;
    let file = format!("/v1/leases/{id}/files/work/a.txt");
    let json = ("content-type", "application/json");
    let host = ("host", "localhost:7070");
    let routes: Vec<(&str, String, &str)> = vec![
        ("POST", "/v1/leases".into(), r#"{"pool":"p"}"#),
        (
            "POST",
            format!("/v1/leases/{id}/exec"),
            r#"{"cmd":["true"]}"#,
        ),
        ("POST", "/v1/admin/reload".into(), ""),
        ("PUT", file.clone(), "x"),
        ("GET", file.clone(), ""),
        ("DELETE", format!("/v1/leases/{id}"), ""),
        ("GET", "/v1/pools".into(), ""),
        ("GET", "/metrics".into(), ""),
    ];
    for origin in [
        "http://attacker.example",
        "http://attacker.example:7070",
        // Another local server's page is another origin, though on the same host.
        "http://localhost:8000",
        "https://localhost",
        // Sandboxed iframes, file: and data: pages, opaque redirects.
        "null",
        "chrome-extension://abcdef",
    ] {
        for (method, uri, body) in &routes {
            let (st, _, v) = send(
                &app,
                request(method, uri, &[host, json, ("origin", origin)], body),
            )
            .await;
            assert_refused(
                st,
                &v,
                StatusCode::FORBIDDEN,
                "forbidden_origin",
                &format!("{method} {uri} Origin {origin}"),
            );
            if origin != "null" {
                let msg = v["error"]["message"].as_str().unwrap();
                assert!(msg.contains(origin), "the message names the origin: {msg}");
            }
        }
    }
    assert_eq!(reloads.load(Ordering::SeqCst), 0);
    assert_eq!(live_leases(&app).await, 1, "the lease is still there");

    // The status page's own calls: same origin (scheme, name and port), with or without a
    // token, GET and POST alike.
    for (host, origin) in [
        ("localhost:7070", "http://localhost:7070"),
        ("127.0.0.1:7070", "http://127.0.0.1:7070"),
        ("[::1]:7070", "http://[::1]:7070"),
        ("LocalHost:7070", "http://localhost:7070"),
    ] {
        let (st, _, v) = send(
            &app,
            request(
                "GET",
                "/v1/pools",
                &[("host", host), ("origin", origin)],
                "",
            ),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{host} {origin}: {v}");
    }
    let (st, _, v) = send(
        &app,
        request(
            "POST",
            "/v1/admin/reload",
            &[host, json, ("origin", "http://localhost:7070")],
            "",
        ),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn no_answer_ever_grants_cross_origin_access() {
    let (app, _) = app_counting_reloads().await;
    let id = lease(&app).await;
    // A preflight for a cross-site PUT or DELETE, and the requests themselves: no answer
    // carries an Access-Control-Allow-* header, so the browser never sends or reads them.
    let preflight = [
        ("access-control-request-method", "PUT"),
        ("access-control-request-headers", "content-type"),
    ];
    for (method, uri, headers) in [
        (
            "OPTIONS",
            format!("/v1/leases/{id}/files/work/a"),
            &preflight[..],
        ),
        ("OPTIONS", format!("/v1/leases/{id}"), &preflight[..]),
        ("OPTIONS", "/v1/leases".to_string(), &preflight[..]),
        ("GET", "/v1/pools".to_string(), &[][..]),
        ("GET", "/".to_string(), &[][..]),
        ("PUT", format!("/v1/leases/{id}/files/work/a"), &[][..]),
        ("DELETE", format!("/v1/leases/{id}"), &[][..]),
    ] {
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        all.push(("origin", "http://attacker.example"));
        for hs in [all.as_slice(), headers] {
            let (st, h, _) = send(&app, request(method, &uri, hs, "")).await;
            let cors: Vec<_> = h
                .keys()
                .filter(|k| k.as_str().starts_with("access-control-"))
                .collect();
            assert!(cors.is_empty(), "{method} {uri} ({st}): {cors:?}");
        }
    }
}
