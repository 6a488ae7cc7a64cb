//! Hostile and unusual API input against the real daemon and engine (issue 9, smaller defects):
//! every refusal is a 4xx with a JSON reason, never a 5xx or plain text; binary output can be
//! had exactly; files stream both ways without the daemon holding them whole.

use base64::Engine as _;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use warmpool_e2e::{Daemon, peak_rss, pool_yaml};

fn json_error(status: u16, body: &str, what: &str) -> Value {
    assert!(
        (400..500).contains(&status),
        "{what}: expected a 4xx, got {status}: {body}"
    );
    let v: Value = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("{what}: the error is not JSON ({e}): {body:?}"));
    assert!(v["error"]["code"].is_string(), "{what}: {v}");
    assert!(v["error"]["message"].is_string(), "{what}: {v}");
    v
}

#[tokio::test]
async fn bad_paths_are_a_4xx_with_a_json_reason() {
    let d = Daemon::start(&[pool_yaml("ai", "min_ready: 1\nworkdir: /work")]).await;
    d.warm_up("ai").await;
    let lease = d.acquire(json!({"pool": "ai"})).await;
    let id = lease["lease_id"].as_str().unwrap();

    for path in ["files/%00", "files/etc/passwd%00.txt"] {
        let (st, body) = d
            .request_as_is(
                "GET",
                format!("/v1/leases/{id}/{path}").as_bytes(),
                &[],
                b"",
            )
            .await;
        let v = json_error(st, &body, path);
        assert!(
            v["error"]["message"].as_str().unwrap().contains("NUL"),
            "{v}"
        );
    }
    // Invalid UTF-8 in the path: axum's own rejection, in the API's JSON shape.
    let (st, body) = d
        .request_as_is(
            "GET",
            format!("/v1/leases/{id}/files/a%FF").as_bytes(),
            &[],
            b"",
        )
        .await;
    json_error(st, &body, "invalid UTF-8");

    // A symlink into /proc/1/root: the engine refuses the write; that is the client's input.
    d.exec(
        id,
        json!({"cmd": ["ln", "-s", "/proc/1/root", "/work/escape"]}),
    )
    .await;
    let (st, body) = d
        .request_as_is(
            "PUT",
            format!("/v1/leases/{id}/files/work/escape/etc/owned").as_bytes(),
            &[],
            b"x",
        )
        .await;
    if st != 204 {
        json_error(st, &body, "PUT through a symlink into /proc/1/root");
    }
    let out = d
        .exec(
            id,
            json!({"cmd": ["sh", "-c", "test -e /etc/owned && echo escaped || echo contained"]}),
        )
        .await;
    // Whatever the engine did, it did inside this container, never on the host.
    assert!(!std::path::Path::new("/etc/owned").exists());
    assert!(out["exit_code"] == 0, "{out}");
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let d = Daemon::start_with(
        &[pool_yaml("au", "min_ready: 0\nmax_ready: 1")],
        "  auth_token_env: E2E_TOKEN\n",
        &[("E2E_TOKEN", "s3cret")],
    )
    .await;
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let (st, body) = d
            .request_as_is(
                "GET",
                b"/v1/pools",
                &[("Authorization", &format!("{scheme} s3cret"))],
                b"",
            )
            .await;
        assert_eq!(st, 200, "{scheme}: {body}");
    }
    let (st, body) = d
        .request_as_is(
            "GET",
            b"/v1/pools",
            &[("Authorization", "bearer wrong")],
            b"",
        )
        .await;
    assert_eq!(st, 401);
    json_error(st, &body, "wrong token");
}

#[tokio::test]
async fn binary_output_is_exact_in_base64() {
    let d = Daemon::start(&[pool_yaml("bo", "min_ready: 1")]).await;
    d.warm_up("bo").await;
    let lease = d.acquire(json!({"pool": "bo"})).await;
    let id = lease["lease_id"].as_str().unwrap();
    let out = d
        .exec(
            id,
            json!({"cmd": ["printf", "\\377\\376\\000x"], "output": "base64", "stdin_b64": "AAE="}),
        )
        .await;
    assert_eq!(out["encoding"], "base64", "{out}");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(out["stdout"].as_str().unwrap())
        .unwrap();
    assert_eq!(bytes, vec![0xff, 0xfe, 0x00, b'x']);
    let (st, _, e) = d
        .call(
            Method::POST,
            &format!("/v1/leases/{id}/exec"),
            Some(json!({"cmd": ["true"], "stdin_b64": "not base64!"})),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{e}");
}

#[tokio::test]
async fn a_200_mib_file_streams_through_without_the_daemon_holding_it() {
    let d = Daemon::start_with(
        &[pool_yaml("big", "min_ready: 1\nmemory: 1g")],
        "  max_upload_bytes: 300m\n",
        &[],
    )
    .await;
    d.warm_up("big").await;
    let lease = d.acquire(json!({"pool": "big"})).await;
    let id = lease["lease_id"].as_str().unwrap();
    let size = 200usize << 20;
    let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let (st, _) = d
        .raw(
            Method::PUT,
            &format!("/v1/leases/{id}/files/tmp/big.bin"),
            data.clone(),
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, back) = d
        .raw(
            Method::GET,
            &format!("/v1/leases/{id}/files/tmp/big.bin"),
            vec![],
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(back.len(), size);
    assert!(back == data, "the file came back changed");
    let peak = peak_rss(d.pid());
    assert!(
        peak < 150 << 20,
        "the daemon's peak RSS reached {} MiB moving a 200 MiB file",
        peak >> 20
    );
}
