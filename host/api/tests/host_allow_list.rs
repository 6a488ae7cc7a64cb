//! DNS rebinding (issue 21): a page on a name the attacker controls, resolved to 127.0.0.1, is
//! same-origin with the daemon, so its browser sends `Host: attacker.example`. Every route, the
//! service ones and unknown ones included, answers such a request 421 with the JSON error body
//! and does nothing; the daemon's own names (and any IP literal on its port) are served.

mod common;

use axum::http::StatusCode;
use serde_json::Value;

use warmpool_api::{AllowedHosts, ApiConfig};

use common::{app, app_with, lease, live_leases, request, send};

fn assert_misdirected(st: StatusCode, v: &Value, host: &str, what: &str) {
    let short: String = v.to_string().chars().take(300).collect();
    assert_eq!(st, StatusCode::MISDIRECTED_REQUEST, "{what}: {short}");
    assert_eq!(v["error"]["code"], "host_not_allowed", "{what}: {v}");
    let msg = v["error"]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains(host),
        "{what}: the message names the host: {msg}"
    );
    assert!(
        msg.contains("server.allowed_hosts"),
        "{what}: the message says how to allow it: {msg}"
    );
}

#[tokio::test]
async fn a_rebinding_host_is_refused_on_every_route_before_anything_happens() {
    let app = app(None).await;
    let id = lease(&app).await;
    let exec = format!("/v1/leases/{id}/exec");
    let file = format!("/v1/leases/{id}/files/work/a.txt");
    let json = ("content-type", "application/json");
    let routes: Vec<(&str, &str, &str)> = vec![
        ("GET", "/", ""),
        ("GET", "/ui", ""),
        ("GET", "/healthz", ""),
        ("GET", "/readyz", ""),
        ("GET", "/metrics", ""),
        ("GET", "/openapi.json", ""),
        ("GET", "/v1/pools", ""),
        ("GET", "/v1/leases", ""),
        ("POST", "/v1/leases", r#"{"pool":"p"}"#),
        ("POST", &exec, r#"{"cmd":["touch","/work/pwned"]}"#),
        ("PUT", &file, "pwned"),
        ("GET", &file, ""),
        ("POST", "/v1/admin/reload", ""),
        ("GET", "/no/such/route", ""),
    ];
    for host in [
        "attacker.example",
        "attacker.example:7070",
        "localhost.attacker.example",
        "127.0.0.1.nip.io:7070",
    ] {
        for (method, uri, body) in &routes {
            let (st, _, v) = send(&app, request(method, uri, &[("host", host), json], body)).await;
            assert_misdirected(st, &v, host, &format!("{method} {uri} Host {host}"));
        }
    }
    // Nothing the refused requests asked for happened: no second lease, no file, no exec.
    assert_eq!(live_leases(&app).await, 1);
    let (st, _, v) = send(
        &app,
        request("GET", &file, &[("host", "localhost:7070")], ""),
    )
    .await;
    assert_eq!(
        st,
        StatusCode::NOT_FOUND,
        "the refused PUT wrote nothing: {v}"
    );
    let (st, _, v) = send(
        &app,
        request("GET", &format!("/v1/leases/{id}/files/work/pwned"), &[], ""),
    )
    .await;
    assert_eq!(
        st,
        StatusCode::NOT_FOUND,
        "the refused exec ran nothing: {v}"
    );
}

#[tokio::test]
async fn the_daemons_own_names_and_a_request_without_host_are_served() {
    let app = app(None).await;
    for host in [
        "localhost:7070",
        "LOCALHOST:7070",
        "127.0.0.1:7070",
        "[::1]:7070",
    ] {
        let (st, _, v) = send(&app, request("GET", "/healthz", &[("host", host)], "")).await;
        assert_eq!(st, StatusCode::OK, "Host {host}: {v}");
    }
    // HTTP/1.0 without Host: no browser sends that, so no page can be behind it.
    let (st, _, v) = send(&app, request("GET", "/healthz", &[], "")).await;
    assert_eq!(st, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn an_http2_authority_counts_as_the_host() {
    let app = app(None).await;
    // HTTP/2 carries the host as `:authority`, which hyper puts in the request's URI.
    let (st, _, v) = send(
        &app,
        request("GET", "http://attacker.example:7070/healthz", &[], ""),
    )
    .await;
    assert_misdirected(st, &v, "attacker.example", "HTTP/2 :authority");
    let (st, _, v) = send(
        &app,
        request("GET", "http://localhost:7070/healthz", &[], ""),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    // A Host header that disagrees with the authority is refused too.
    let (st, _, v) = send(
        &app,
        request(
            "GET",
            "http://localhost:7070/healthz",
            &[("host", "attacker.example")],
            "",
        ),
    )
    .await;
    assert_misdirected(st, &v, "attacker.example", "Host beside :authority");
}

#[tokio::test]
async fn the_listening_port_and_server_allowed_hosts_decide() {
    let on = |hosts: AllowedHosts| {
        app_with(ApiConfig {
            max_request_bytes: 4096,
            max_upload_bytes: 1 << 20,
            allowed_hosts: hosts,
            ..ApiConfig::default()
        })
    };
    let app = on(AllowedHosts {
        listen_port: Some(7070),
        names: vec![("pool.internal".into(), None), ("box".into(), Some(9000))],
        any: false,
    })
    .await;
    let status = |host: &'static str| {
        let app = app.clone();
        async move {
            let (st, _, v) = send(&app, request("GET", "/healthz", &[("host", host)], "")).await;
            (st, v)
        }
    };
    // The daemon's names and any IP address, on its port; the configured names as written.
    for host in [
        "localhost:7070",
        "[::1]:7070",
        "10.1.2.3:7070",
        "pool.internal",
        "pool.internal:8443",
        "POOL.internal:7070",
        "box:9000",
    ] {
        let (st, v) = status(host).await;
        assert_eq!(st, StatusCode::OK, "{host}: {v}");
    }
    for host in [
        "localhost:8080",
        "localhost",
        "10.1.2.3:8080",
        "box:7070",
        "box",
        "attacker.example:7070",
        "pool.internal.attacker.example",
        "user@localhost:7070",
        "::1",
    ] {
        let (st, v) = status(host).await;
        assert_misdirected(st, &v, host, host);
        // The message says what the daemon does answer to.
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains("port 7070") && msg.contains("pool.internal") && msg.contains("box:9000"),
            "{msg}"
        );
    }
    // `"*"` turns the check off, as documented.
    let open = on(AllowedHosts {
        listen_port: Some(7070),
        names: vec![],
        any: true,
    })
    .await;
    let (st, _, v) = send(
        &open,
        request("GET", "/healthz", &[("host", "attacker.example:1")], ""),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
}
