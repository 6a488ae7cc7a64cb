//! `POST /v1/admin/reload` reloads the config now, behind the token, and answers with the
//! outcome: 200 and what changed, or 422 naming every problem while the old config serves.

use reqwest::StatusCode;
use serde_json::Value;
use warmpool_e2e::{Daemon, pool_yaml};

#[tokio::test]
async fn the_admin_route_reloads_and_answers_with_the_outcome() {
    let d = Daemon::start_with(
        &[pool_yaml("a", "min_ready: 1\nmax_ready: 1")],
        "  auth_token_env: E2E_TOKEN\n",
        &[("E2E_TOKEN", "t0ps3cret")],
    )
    .await;
    let c = reqwest::Client::new();
    let reload = |token: Option<&'static str>| {
        // Every POST says it is JSON (the daemon refuses a cross-site "simple" request).
        let mut r = c
            .post(format!("{}/v1/admin/reload", d.url))
            .json(&serde_json::json!({}));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        async move {
            let r = r.send().await.unwrap();
            (r.status(), r.json::<Value>().await.unwrap())
        }
    };

    let (st, v) = reload(None).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{v}");

    // A broken config: 422 with the YAML path, and the old config keeps serving.
    d.write_pools(&[pool_yaml("a", "min_ready: 1\nmax_ready: lots")]);
    let (st, v) = reload(Some("t0ps3cret")).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["code"], "config_rejected");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("pools.a.max_ready"), "{msg}");

    // A valid one: 200, and the new pool serves.
    d.write_pools(&[
        pool_yaml("a", "min_ready: 1\nmax_ready: 1"),
        pool_yaml("b", "min_ready: 1\nmax_ready: 1"),
    ]);
    let (st, v) = reload(Some("t0ps3cret")).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["reloaded"], true);
    // The file watcher may have applied the same edit a moment earlier: either way b exists.
    let added = v["summary"]["added"].as_array().unwrap();
    assert!(added.is_empty() || added[0] == "b", "{v}");
    let r = c
        .get(format!("{}/v1/pools/b", d.url))
        .bearer_auth("t0ps3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}
