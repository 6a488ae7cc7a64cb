//! A client's process killed for memory does not end its lease: the engine reports an `oom`
//! for any process of the container, and only the container's own death (`die`) is one. The
//! old daemon took the `oom` for a death and answered 410 from then on.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use warmpool_e2e::{Daemon, pool_yaml};

#[tokio::test]
async fn a_process_killed_for_memory_leaves_the_lease_working() {
    let d = Daemon::start(&[pool_yaml("oom", "min_ready: 1\nmax_ready: 1\nmemory: 32m")]).await;
    d.warm_up("oom").await;
    let l = d.acquire(json!({"pool": "oom"})).await;
    let id = l["lease_id"].as_str().unwrap();
    // Holds 256 MiB in one shell variable: the kernel kills it.
    let out = d
        .exec(
            id,
            json!({"cmd": ["sh", "-c", "x=$(head -c 268435456 /dev/zero | tr '\\0' x); echo survived"], "timeout_ms": 30000}),
        )
        .await;
    assert_ne!(
        out["stdout"], "survived\n",
        "the kernel did not kill it: {out}"
    );
    // Let the engine's events arrive.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (st, _, body) = d
        .call(
            Method::POST,
            &format!("/v1/leases/{id}/exec"),
            Some(json!({"cmd": ["echo", "still here"]})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["stdout"], "still here\n");
}
