//! The API cannot be driven from a web page (issue 21), against the real binary on its default
//! config (loopback, no token): a page on a rebound name (DNS rebinding) gets 421 on every
//! route and changes nothing; a cross-site "simple" POST (text/plain) to reload is refused,
//! and so is any request from another origin; `/readyz` tells anyone the state, never the
//! engine's own error. Each request is sent byte for byte, as a browser would.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use warmpool_e2e::{Daemon, EngineProxy, eventually, pool_yaml};

fn error_of(st: u16, body: &str, want: u16, code: &str, what: &str) -> Value {
    assert_eq!(st, want, "{what}: {body}");
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{what}: {e}: {body}"));
    assert_eq!(v["error"]["code"], code, "{what}: {v}");
    v
}

async fn live_leases(d: &Daemon) -> usize {
    let (st, _, v) = d.call(Method::GET, "/v1/leases", None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v["leases"].as_array().unwrap().len()
}

#[tokio::test]
async fn a_rebound_name_gets_421_on_acquire_exec_and_files_and_changes_nothing() {
    let d = Daemon::start(&[pool_yaml("wp", "min_ready: 1\nmax_ready: 1")]).await;
    d.warm_up("wp").await;
    let lease = d.acquire(json!({"pool": "wp"})).await;
    let id = lease["lease_id"].as_str().unwrap();
    let port = d.url.rsplit(':').next().unwrap();
    let evil = format!("attacker.example:{port}");
    let json = ("content-type", "application/json");
    let attempts: Vec<(&str, String, &[u8])> = vec![
        ("POST", "/v1/leases".into(), br#"{"pool":"wp"}"#),
        (
            "POST",
            format!("/v1/leases/{id}/exec"),
            br#"{"cmd":["touch","/tmp/pwned"]}"#,
        ),
        ("PUT", format!("/v1/leases/{id}/files/tmp/dropped"), b"x"),
        ("GET", format!("/v1/leases/{id}/files/etc/passwd"), b""),
        ("DELETE", format!("/v1/leases/{id}"), b""),
        ("GET", "/".into(), b""),
        ("GET", "/metrics".into(), b""),
    ];
    for (method, path, body) in &attempts {
        let (st, text) = d
            .request_as_is(method, path.as_bytes(), &[("Host", &evil), json], body)
            .await;
        let v = error_of(
            st,
            &text,
            421,
            "host_not_allowed",
            &format!("{method} {path}"),
        );
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains(&evil) && msg.contains("server.allowed_hosts"),
            "{msg}"
        );
    }
    // Nothing happened: the one lease is there, no file was dropped, no command ran.
    assert_eq!(live_leases(&d).await, 1);
    let out = d
        .exec(
            id,
            json!({"cmd": ["sh", "-c", "ls /tmp/pwned /tmp/dropped 2>&1; true"]}),
        )
        .await;
    let listing = out["stdout"].as_str().unwrap();
    assert_eq!(listing.matches("No such file").count(), 2, "{listing}");
    // The daemon's own names are served as before.
    for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}")] {
        let (st, text) = d
            .request_as_is("GET", b"/v1/pools/wp", &[("Host", &host)], b"")
            .await;
        assert_eq!(st, 200, "{host}: {text}");
    }
}

#[tokio::test]
async fn a_cross_site_text_plain_post_cannot_reload_and_a_foreign_origin_is_refused() {
    let d = Daemon::start(&[pool_yaml("wp", "min_ready: 1\nmax_ready: 1")]).await;
    let admin_reloads = |d: &Daemon| d.log().matches("trigger=\"admin\"").count();
    let own = d.url.clone();
    // What a page on another site sends with fetch(…, {method: "POST", mode: "no-cors"}), or a
    // form: no preflight, so the browser sends it as is.
    for (ct, origin) in [
        ("text/plain;charset=UTF-8", "http://attacker.example"),
        (
            "application/x-www-form-urlencoded",
            "http://attacker.example",
        ),
        ("text/plain", "null"),
        // Without an Origin (an old browser, a form through a redirect) the type alone refuses it.
        ("text/plain", ""),
    ] {
        let mut headers = vec![("Content-Type", ct)];
        if !origin.is_empty() {
            headers.push(("Origin", origin));
        }
        let (st, text) = d
            .request_as_is("POST", b"/v1/admin/reload", &headers, b"{}")
            .await;
        assert!(st == 403 || st == 415, "{ct} from {origin:?}: {st} {text}");
    }
    // Even with JSON's type, a request from another origin is refused: 403, with the reason.
    for (method, path, body) in [
        ("POST", "/v1/admin/reload", &b"{}"[..]),
        ("POST", "/v1/leases", br#"{"pool":"wp"}"#),
        ("GET", "/v1/pools", b""),
    ] {
        let (st, text) = d
            .request_as_is(
                method,
                path.as_bytes(),
                &[
                    ("Content-Type", "application/json"),
                    ("Origin", "http://attacker.example"),
                ],
                body,
            )
            .await;
        let v = error_of(st, &text, 403, "forbidden_origin", path);
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("http://attacker.example"),
            "{v}"
        );
    }
    assert_eq!(admin_reloads(&d), 0, "a page reloaded the config");
    assert_eq!(live_leases(&d).await, 0, "a page took a lease");

    // The daemon's own page (same origin) and a program (no Origin) still reload.
    let (st, text) = d
        .request_as_is(
            "POST",
            b"/v1/admin/reload",
            &[("Content-Type", "application/json"), ("Origin", &own)],
            b"",
        )
        .await;
    assert_eq!(st, 200, "{text}");
    let (st, _, v) = d.call(Method::POST, "/v1/admin/reload", None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    eventually(
        Duration::from_secs(5),
        "both reloads in the log",
        || async { (admin_reloads(&d) == 2).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_without_auth_names_the_state_not_the_engines_error() {
    let proxy = EngineProxy::start().await;
    let d = Daemon::start_with(
        &[pool_yaml("wp", "min_ready: 1\nmax_ready: 1")],
        &format!(
            "  auth_token_env: E2E_TOKEN\ndocker:\n  endpoint: {}\n",
            proxy.endpoint()
        ),
        &[("E2E_TOKEN", "s3cret")],
    )
    .await;
    proxy.cut();
    let c = reqwest::Client::new();
    let (status, body) = eventually(Duration::from_secs(15), "/readyz fails", || async {
        let r = c.get(format!("{}/readyz", d.url)).send().await.ok()?;
        let st = r.status();
        let body = r.text().await.ok()?;
        (st == StatusCode::SERVICE_UNAVAILABLE).then_some((st, body))
    })
    .await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], "engine_unavailable", "{status} {v}");
    let msg = v["error"]["message"].as_str().unwrap();
    // The detail stays behind the token, at /v1/engines.
    let engines: Value = c
        .get(format!("{}/v1/engines", d.url))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let last = engines["engines"][0]["last_error"].as_str().unwrap_or("");
    assert!(!last.is_empty(), "{engines}");
    let socket = proxy.path.display().to_string();
    assert!(
        !msg.contains(last) && !msg.contains(&socket),
        "/readyz told anyone the engine's error: {msg}"
    );
    assert!(msg.contains("/v1/engines"), "{msg}");
    // Back, so the daemon's shutdown removes its containers through the engine.
    proxy.restore();
    eventually(Duration::from_secs(15), "/readyz answers again", || async {
        let r = c.get(format!("{}/readyz", d.url)).send().await.ok()?;
        (r.status() == StatusCode::OK).then_some(())
    })
    .await;
}
