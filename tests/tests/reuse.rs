//! Opt-in reuse against the real engine: the next session gets the same container back only
//! after a verified reset, and sees none of the previous session's files.

use reqwest::{Method, StatusCode};
use serde_json::json;
use warmpool_e2e::{Daemon, pool_yaml};

const REUSE: &str = r#"reuse: { enabled: true, max_uses: 3, reset: ["rm -rf /work/* /work/.[!.]* /work/..?* /tmp/* /tmp/.[!.]* /tmp/..?*"], verify: ["test -z \"$(ls -A /work)\" && test -z \"$(ls -A /tmp)\""] }"#;

#[tokio::test]
async fn a_reused_container_carries_no_files_from_the_last_session() {
    // max_total 1: the reused container is the only one, so the next lease must get it back.
    let d = Daemon::start(&[pool_yaml("ru", &format!("min_ready: 1\nmax_ready: 1\nmax_total: 1\nworkdir: /work\nexhaustion: {{ strategy: wait, wait_timeout: 20s }}\n{REUSE}"))]).await;
    d.warm_up("ru").await;

    let one = d.acquire(json!({"pool": "ru"})).await;
    let id1 = one["lease_id"].as_str().unwrap();
    let out = d
        .exec(id1, json!({"cmd": ["sh", "-c", "echo secret > /work/a && echo s > /work/.hidden && mkdir -p /work/d && echo t > /tmp/b && echo u > /tmp/.u"]}))
        .await;
    assert_eq!(out["exit_code"], 0, "{out}");
    let (st, _) = d
        .raw(
            Method::PUT,
            &format!("/v1/leases/{id1}/files/work/uploaded.txt"),
            b"private".to_vec(),
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);

    let (st, _, outcome) = d
        .call(
            Method::DELETE,
            &format!("/v1/leases/{id1}?reuse=true"),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{outcome}");
    assert_eq!(outcome["reused"], true, "{outcome}");

    let two = d.acquire(json!({"pool": "ru"})).await;
    assert_eq!(
        two["container_id"], one["container_id"],
        "expected the reset container back"
    );
    let id2 = two["lease_id"].as_str().unwrap();
    let out = d
        .exec(id2, json!({"cmd": ["ls", "-A", "/work", "/tmp"]}))
        .await;
    assert_eq!(
        out["stdout"], "/tmp:\n\n/work:\n",
        "files leaked into the next session: {out}"
    );
    let (st, _) = d
        .raw(
            Method::GET,
            &format!("/v1/leases/{id2}/files/work/uploaded.txt"),
            vec![],
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(d.pool("ru").await["counters"]["reused_total"], 1);

    let (st, _, outcome) = d
        .call(
            Method::DELETE,
            &format!("/v1/leases/{id2}?reuse=true"),
            None,
        )
        .await;
    assert_eq!(
        (st, outcome["reused"].clone()),
        (StatusCode::OK, json!(true)),
        "{outcome}"
    );

    // A bad query is refused with a reason.
    let three = d.acquire(json!({"pool": "ru"})).await;
    let id3 = three["lease_id"].as_str().unwrap();
    let (st, _, e) = d
        .call(
            Method::DELETE,
            &format!("/v1/leases/{id3}?reuse=maybe"),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{e}");
    // Single-use release still answers 204.
    let (st, _, _) = d
        .call(Method::DELETE, &format!("/v1/leases/{id3}"), None)
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn an_incomplete_reset_is_caught_by_verify_and_the_container_destroyed() {
    // This reset forgets /work; the verify notices, so the container is not reused.
    let d = Daemon::start(&[pool_yaml(
        "rv",
        r#"min_ready: 1
max_ready: 1
max_total: 2
workdir: /work
reuse: { enabled: true, reset: ["rm -rf /tmp/*"], verify: ["test -z \"$(ls -A /work)\" && test -z \"$(ls -A /tmp)\""] }"#,
    )])
    .await;
    d.warm_up("rv").await;
    let one = d.acquire(json!({"pool": "rv"})).await;
    let id = one["lease_id"].as_str().unwrap();
    d.exec(id, json!({"cmd": ["sh", "-c", "echo secret > /work/a"]}))
        .await;
    let (st, _, outcome) = d
        .call(Method::DELETE, &format!("/v1/leases/{id}?reuse=true"), None)
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(outcome["reused"], false, "{outcome}");
    // The daemon's own check of what the client left finds the file before the verify runs.
    assert!(
        outcome["reason"].as_str().unwrap().contains("/work/a"),
        "{outcome}"
    );
    d.wait_pool("rv", std::time::Duration::from_secs(20), |p| {
        p["counters"]["reset_failures"] == 1 && p["counts"]["ready"] == 1
    })
    .await;
    let next = d.acquire(json!({"pool": "rv"})).await;
    assert_ne!(
        next["container_id"], one["container_id"],
        "a container that failed verification came back"
    );
    let out = d
        .exec(
            next["lease_id"].as_str().unwrap(),
            json!({"cmd": ["ls", "-A", "/work"]}),
        )
        .await;
    assert_eq!(out["stdout"], "");
}
