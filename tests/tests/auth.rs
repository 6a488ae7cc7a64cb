//! With a token configured, `/v1` needs `Authorization: Bearer`; health and metrics do not.

use reqwest::StatusCode;
use serde_json::json;
use warmpool_e2e::{Daemon, pool_yaml};

#[tokio::test]
async fn v1_routes_need_the_bearer_token() {
    let d = Daemon::start_with(
        &[pool_yaml("au", "min_ready: 0\nmax_ready: 1")],
        "  auth_token_env: E2E_TOKEN\n",
        &[("E2E_TOKEN", "t0ps3cret")],
    )
    .await;
    let c = reqwest::Client::new();
    let r = c.get(format!("{}/v1/pools", d.url)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    let r = c
        .post(format!("{}/v1/leases", d.url))
        .bearer_auth("wrong")
        .json(&json!({"pool": "au"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = c
        .get(format!("{}/v1/pools", d.url))
        .bearer_auth("t0ps3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        c.get(format!("{}/healthz", d.url))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}
