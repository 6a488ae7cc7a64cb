//! Any method, path, query and body against the API (on the in-memory engine): never a panic,
//! every error answer is the API's JSON shape, and every request is answered within the longest
//! wait the API allows.
//!
//! Time is paused (tokio's test clock, which jumps ahead whenever every task is waiting), so a
//! request that legitimately waits (a warm-up of up to 600 s, an exec of up to an hour, an
//! acquire queued behind a pool the fuzzer has leased dry) costs no real time, and the bound below is exact rather than a
//! wall-clock guess. A wait past it is a hang, and fails.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;
use warmpool_api::{ApiConfig, router};
use warmpool_core::{BuiltinExhaustion, Manager, ManagerConfig};
use warmpool_fake::FakeBackend;
use warmpool_testkit::fixtures;

struct World {
    rt: tokio::runtime::Runtime,
    app: axum::Router,
    lease: String,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let (app, lease) = rt.block_on(async {
            let backend = Arc::new(FakeBackend::new(Duration::from_millis(1)));
            let mut pool = fixtures::pool("p", 2, 4, 8);
            pool.wait_timeout = Duration::from_millis(1);
            let m = Manager::new(
                ManagerConfig::default(),
                vec![(pool, fixtures::policies(BuiltinExhaustion::Fail))],
                backend,
            );
            m.start();
            m.warm_up("p", Duration::from_secs(5)).await.unwrap();
            let lease = m
                .acquire(warmpool_core::AcquireRequest {
                    pool: "p".into(),
                    ttl: Some(Duration::from_secs(3600 * 24)),
                    ..Default::default()
                })
                .await
                .unwrap()
                .lease_id;
            let app = router(
                m,
                ApiConfig {
                    max_request_bytes: 64 << 10,
                    max_upload_bytes: 64 << 10,
                    plugins: None,
                    ..ApiConfig::default()
                },
            );
            (app, lease)
        });
        World { rt, app, lease }
    })
}

/// Longer than any wait a request may legitimately ask for: an exec's timeout is capped at an
/// hour, a warm-up at 600 s, an acquire's wait at the pool's `wait_timeout`.
const ANSWER_WITHIN: Duration = Duration::from_secs(3700);

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "DELETE", "PATCH"];

fuzz_target!(|data: &[u8]| {
    let w = world();
    let Some((&m, rest)) = data.split_first() else {
        return;
    };
    let method = METHODS[m as usize % METHODS.len()];
    let split = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    let (raw_path, body) = rest.split_at(split);
    let body = body.get(1..).unwrap_or_default().to_vec();
    // Aim most inputs at a live lease; `{L}` in the path stands for its ID.
    let path = String::from_utf8_lossy(raw_path).replace("{L}", &w.lease);
    let uri = format!("/{}", path.trim_start_matches('/'));
    let Ok(req) = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body))
    else {
        return; // not a request hyper would ever pass on
    };
    w.rt.block_on(async {
        let resp = tokio::time::timeout(ANSWER_WITHIN, w.app.clone().oneshot(req))
            .await
            .expect("an answer within the longest wait the API allows")
            .unwrap();
        let status = resp.status();
        let is_sse = resp
            .headers()
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        if status.is_client_error() || status.is_server_error() {
            let bytes = resp.into_body().collect().await.unwrap().to_bytes();
            let v: serde_json::Value = serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {bytes:?}"));
            assert!(v["error"]["code"].is_string(), "{status}: {v}");
        } else if !is_sse {
            let _ = resp.into_body().collect().await;
        }
    });
});
