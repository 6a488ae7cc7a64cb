//! Exec returns stdout, stderr and the exit code, takes stdin, env and workdir, caps its
//! output and its time; files round-trip through the lease, and `..` is refused.

use reqwest::{Method, StatusCode};
use serde_json::json;
use warmpool_e2e::{Daemon, pool_yaml};

#[tokio::test]
async fn exec_reports_streams_exit_code_and_limits() {
    let d = Daemon::start_with(
        &[pool_yaml(
            "ex",
            "min_ready: 1\nmax_ready: 1\nmax_total: 3\nworkdir: /work",
        )],
        "  exec_output_bytes: 1000\n",
        &[],
    )
    .await;
    d.warm_up("ex").await;
    let lease = d.acquire(json!({"pool": "ex"})).await;
    let id = lease["lease_id"].as_str().unwrap();

    let out = d
        .exec(id, json!({"cmd": ["sh", "-c", "echo out; echo err >&2; pwd; cat; echo $GREETING; exit 7"], "stdin": "piped\n", "env": {"GREETING": "hi"}}))
        .await;
    assert_eq!(out["exit_code"], 7, "{out}");
    assert_eq!(out["stdout"], "out\n/work\npiped\nhi\n");
    assert_eq!(out["stderr"], "err\n");
    assert_eq!(out["timed_out"], false);
    assert_eq!(out["truncated"], false);

    let out = d.exec(id, json!({"cmd": ["pwd"], "workdir": "/tmp"})).await;
    assert_eq!(out["stdout"], "/tmp\n");

    let out = d
        .exec(id, json!({"cmd": ["sh", "-c", "yes | head -c 5000"]}))
        .await;
    assert_eq!(out["truncated"], true);
    assert_eq!(out["stdout"].as_str().unwrap().len(), 1000);

    let out = d
        .exec(id, json!({"cmd": ["sleep", "5"], "timeout_ms": 300}))
        .await;
    assert_eq!(out["timed_out"], true);
    assert!(out["exit_code"].is_null());

    let (st, _, err) = d
        .call(
            Method::POST,
            &format!("/v1/leases/{id}/exec"),
            Some(json!({"cmd": "ls"})),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{err}");
    assert!(
        err["error"]["message"].as_str().unwrap().contains("cmd"),
        "{err}"
    );
}

#[tokio::test]
async fn files_round_trip_and_paths_are_checked() {
    let d = Daemon::start(&[pool_yaml("fs", "min_ready: 1\nmax_ready: 1\nmax_total: 3")]).await;
    d.warm_up("fs").await;
    let lease = d.acquire(json!({"pool": "fs"})).await;
    let id = lease["lease_id"].as_str().unwrap();
    let payload: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();

    let (st, _) = d
        .raw(
            Method::PUT,
            &format!("/v1/leases/{id}/files/work/deep/dir/data.bin"),
            payload.clone(),
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, back) = d
        .raw(
            Method::GET,
            &format!("/v1/leases/{id}/files/work/deep/dir/data.bin"),
            vec![],
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(back, payload, "file changed on the round trip");
    let out = d
        .exec(id, json!({"cmd": ["wc", "-c", "/work/deep/dir/data.bin"]}))
        .await;
    assert!(
        out["stdout"].as_str().unwrap().starts_with("100000"),
        "{out}"
    );

    for bad in ["tmp/../etc/passwd", "tmp/%2E%2E/etc/passwd"] {
        let st = d
            .get_path_as_is(&format!("/v1/leases/{id}/files/{bad}"))
            .await;
        assert_eq!(st, 400, "{bad} was not refused");
    }
    let (st, _) = d
        .raw(
            Method::GET,
            &format!("/v1/leases/{id}/files/no/such/file"),
            vec![],
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = d
        .raw(Method::GET, &format!("/v1/leases/{id}/files/etc"), vec![])
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "a directory is not a file");
}
