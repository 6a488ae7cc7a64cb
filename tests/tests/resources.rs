//! A lease's own cpus and memory against the real engine: applied to the warm container before
//! the 201 (read back from the engine's `HostConfig` and from the container's own cgroup),
//! changed on a live lease by `PATCH`, refused with a 422 naming the bound, put back to the
//! pool's before a reuse, and every malformed ask answered 4xx with a JSON reason.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use warmpool_e2e::{Daemon, docker, pool_yaml};

const MIB: u64 = 1 << 20;

/// 1 CPU and 64 MiB of its own; a lease may ask up to 2 CPUs and 256 MiB.
const BOUNDED: &str = "cpus: 1\nmemory: 64m\nresources: { max_cpus: 2, max_memory: 256m }";

/// `NanoCpus Memory MemorySwap` as the engine holds them.
fn host_config(container: &str) -> String {
    docker(&[
        "inspect",
        "-f",
        "{{.HostConfig.NanoCpus}} {{.HostConfig.Memory}} {{.HostConfig.MemorySwap}}",
        container,
    ])
}

/// The memory limit and CPU quota (per 100 ms period) the container's own cgroup says, under
/// cgroup v2 or v1.
async fn cgroup(d: &Daemon, lease: &str) -> (u64, u64) {
    let out = d
        .exec(
            lease,
            json!({"cmd": ["sh", "-c", "if [ -f /sys/fs/cgroup/memory.max ]; then cat /sys/fs/cgroup/memory.max; cut -d' ' -f1 /sys/fs/cgroup/cpu.max; else cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.cfs_quota_us; fi"]}),
        )
        .await;
    assert_eq!(out["exit_code"], 0, "{out}");
    let text = out["stdout"].as_str().unwrap();
    let mut v = text.split_whitespace().map(|s| s.parse::<u64>().unwrap());
    (v.next().unwrap(), v.next().unwrap())
}

fn error_of(v: &Value) -> (&str, &str) {
    (
        v["error"]["code"].as_str().unwrap_or_default(),
        v["error"]["bound"].as_str().unwrap_or_default(),
    )
}

#[tokio::test]
async fn an_ask_within_the_bounds_is_on_the_container_before_the_201_and_patch_changes_it() {
    let d = Daemon::start(&[pool_yaml("rs", &format!("min_ready: 1\n{BOUNDED}"))]).await;
    d.warm_up("rs").await;

    let l = d
        .acquire(json!({"pool": "rs", "cpus": 1.5, "memory": "128m"}))
        .await;
    assert_eq!(l["source"], "pool", "served warm: {l}");
    assert_eq!(l["resources"], json!({"cpus": 1.5, "memory": 128 * MIB}));
    let (id, cid) = (
        l["lease_id"].as_str().unwrap(),
        l["container_id"].as_str().unwrap(),
    );
    let want = format!("1500000000 {} {}", 128 * MIB, 128 * MIB);
    assert_eq!(host_config(cid), want);
    assert_eq!(cgroup(&d, id).await, (128 * MIB, 150_000));

    // Live: the memory in bytes this time; the cpus stay.
    let (st, _, after) = d
        .call(
            Method::PATCH,
            &format!("/v1/leases/{id}"),
            Some(json!({"memory": 200 * MIB})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{after}");
    assert_eq!(
        after["resources"],
        json!({"cpus": 1.5, "memory": 200 * MIB})
    );
    assert_eq!(
        host_config(cid),
        format!("1500000000 {} {}", 200 * MIB, 200 * MIB)
    );
    assert_eq!(cgroup(&d, id).await, (200 * MIB, 150_000));
    let (_, _, shown) = d.call(Method::GET, &format!("/v1/leases/{id}"), None).await;
    assert_eq!(shown["resources"], after["resources"]);

    // Outside the bounds: 422 naming the bound, and nothing changed.
    let (st, _, e) = d
        .call(
            Method::PATCH,
            &format!("/v1/leases/{id}"),
            Some(json!({"cpus": 3})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(error_of(&e), ("out_of_bounds", "resources.max_cpus"), "{e}");
    assert_eq!(
        host_config(cid),
        format!("1500000000 {} {}", 200 * MIB, 200 * MIB)
    );
    let (st, _, e) = d
        .call(
            Method::POST,
            "/v1/leases",
            Some(json!({"pool": "rs", "memory": "1g"})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(
        error_of(&e),
        ("out_of_bounds", "resources.max_memory"),
        "{e}"
    );
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("resources.max_memory"),
        "{e}"
    );
}

#[tokio::test]
async fn a_pool_without_resources_refuses_an_ask_with_422() {
    let d = Daemon::start(&[pool_yaml("plain", "min_ready: 1")]).await;
    d.warm_up("plain").await;
    let (st, _, e) = d
        .call(
            Method::POST,
            "/v1/leases",
            Some(json!({"pool": "plain", "memory": "128m"})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(error_of(&e).0, "unsupported", "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("resources"),
        "{e}"
    );
    assert_eq!(
        d.pool("plain").await["counts"]["leased"],
        0,
        "nothing taken"
    );
}

#[tokio::test]
async fn a_reused_container_has_the_pools_limits_back_for_the_next_lease() {
    let d = Daemon::start(&[pool_yaml(
        "rr",
        &format!(
            "min_ready: 1\nmax_ready: 1\nmax_total: 1\n{BOUNDED}\nexhaustion: {{ strategy: wait, wait_timeout: 20s }}\nreuse: {{ enabled: true, reset: [\"true\"], verify: [\"true\"] }}"
        ),
    )])
    .await;
    d.warm_up("rr").await;
    let one = d
        .acquire(json!({"pool": "rr", "cpus": 2, "memory": 256 * MIB}))
        .await;
    let cid = one["container_id"].as_str().unwrap().to_string();
    assert_eq!(
        host_config(&cid),
        format!("2000000000 {} {}", 256 * MIB, 256 * MIB)
    );
    let id1 = one["lease_id"].as_str().unwrap();
    let (st, _, out) = d
        .call(
            Method::DELETE,
            &format!("/v1/leases/{id1}?reuse=true"),
            None,
        )
        .await;
    assert_eq!(
        (st, out["reused"].clone()),
        (StatusCode::OK, json!(true)),
        "{out}"
    );

    let two = d.acquire(json!({"pool": "rr"})).await;
    assert_eq!(
        two["container_id"],
        cid.as_str(),
        "the same container, reused"
    );
    assert_eq!(two["resources"], json!({"cpus": 1.0, "memory": 64 * MIB}));
    assert_eq!(
        host_config(&cid),
        format!("1000000000 {} {}", 64 * MIB, 64 * MIB)
    );
    let id2 = two["lease_id"].as_str().unwrap();
    assert_eq!(cgroup(&d, id2).await, (64 * MIB, 100_000));
}

#[tokio::test]
async fn malformed_asks_answer_4xx_with_a_json_reason_never_500() {
    let d = Daemon::start(&[pool_yaml("rb", &format!("min_ready: 1\n{BOUNDED}"))]).await;
    d.warm_up("rb").await;
    let held = d.acquire(json!({"pool": "rb"})).await;
    let id = held["lease_id"].as_str().unwrap();
    let asks = [
        json!({"cpus": -1}),
        json!({"cpus": 0}),
        json!({"cpus": "2"}),
        json!({"cpus": 1e308}),
        json!({"cpus": 0.001}),
        json!({"cpus": [1]}),
        json!({"cpus": true}),
        json!({"memory": -5}),
        json!({"memory": 0}),
        json!({"memory": 1.5}),
        json!({"memory": "lots"}),
        json!({"memory": "-1g"}),
        json!({"memory": ""}),
        json!({"memory": "9999999t"}),
        json!({"memory": 1e30}),
        json!({"memory": 18446744073709551615u64}),
        json!({"memory": 1024}),
        json!({"memory": {"bytes": 1}}),
        json!({"cpus": 2.5, "memory": "128m"}),
    ];
    for ask in asks {
        let mut acquire = json!({"pool": "rb"});
        for (k, v) in ask.as_object().unwrap() {
            acquire[k] = v.clone();
        }
        for (method, path, body) in [
            (Method::POST, "/v1/leases".to_string(), acquire),
            (Method::PATCH, format!("/v1/leases/{id}"), ask.clone()),
        ] {
            let (st, _, e) = d.call(method.clone(), &path, Some(body.clone())).await;
            assert!(
                st.is_client_error(),
                "{method} {body}: {st} {e}\nlog:\n{}",
                d.log()
            );
            assert!(e["error"]["code"].is_string(), "{method} {body}: {e}");
        }
    }
    // A PATCH that asks nothing, or something else, is the body's fault.
    for body in [json!({}), json!({"ttl_s": 5}), json!([1])] {
        let (st, _, e) = d
            .call(
                Method::PATCH,
                &format!("/v1/leases/{id}"),
                Some(body.clone()),
            )
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{body}: {e}");
    }
    let (st, _, e) = d
        .call(
            Method::PATCH,
            "/v1/leases/no-such-lease",
            Some(json!({"cpus": 1})),
        )
        .await;
    assert_eq!(
        (st, error_of(&e).0),
        (StatusCode::NOT_FOUND, "unknown_lease"),
        "{e}"
    );
    // Only the held lease is out: no refused ask took a container.
    assert_eq!(d.pool("rb").await["counts"]["leased"], 1);
}

#[tokio::test]
async fn a_patch_keeps_the_lease_routes_rules_tenant_and_lease_token() {
    const A: &str = "tok-resources-tenant-a-42";
    const B: &str = "tok-resources-tenant-b-42";
    let d = Daemon::start_with(
        &[pool_yaml("rt", &format!("min_ready: 2\nmax_ready: 2\n{BOUNDED}"))],
        "  tenants:\n    - name: team-a\n      token_env: E2E_RES_A\n      admin: false\n    - name: team-b\n      token_env: E2E_RES_B\n      admin: false\n",
        &[("E2E_RES_A", A), ("E2E_RES_B", B)],
    )
    .await;
    let (st, _, l) = d
        .call_as(
            A,
            Method::POST,
            "/v1/leases",
            Some(json!({"pool": "rt", "memory": "96m"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{l}");
    assert_eq!(l["resources"]["memory"], 96 * MIB);
    let id = l["lease_id"].as_str().unwrap();
    let token = l["lease_token"].as_str().unwrap();
    let path = format!("/v1/leases/{id}");
    let body = json!({"cpus": 2});
    // Its lease token opens it, as every route of the lease.
    let (st, _, v) = d
        .call_as(token, Method::PATCH, &path, Some(body.clone()))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["resources"]["cpus"], 2.0);
    // Another tenant sees no such lease; no token is a 401.
    let (st, _, v) = d.call_as(B, Method::PATCH, &path, Some(body.clone())).await;
    assert_eq!(
        (st, error_of(&v).0),
        (StatusCode::NOT_FOUND, "unknown_lease"),
        "{v}"
    );
    let (st, _, _) = d.call(Method::PATCH, &path, Some(body)).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _, _) = d.call_as(A, Method::DELETE, &path, None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
}
