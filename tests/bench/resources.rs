//! Section 13: what a lease's own cpus and memory cost on the warm path (issue 25): warm
//! acquires over the HTTP API, the real daemon and the real engine, with and without
//! `cpus`/`memory` in the body, interleaved in one run so drift hits both. The difference is
//! the engine's container update (`POST /containers/{id}/update`) made before the 201, which
//! is also timed alone, straight on the Engine API, in the same loop: the floor of the cost.

use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::ContainerUpdateBody;
use reqwest::{Method, StatusCode};
use serde_json::json;
use warmpool_e2e::{Daemon, IMAGE, pool_yaml};

use crate::raw::{raw_create_start, raw_remove_all};
use crate::{Report, row, stats};

const WARM: u32 = 4;

pub async fn resources(docker: &Docker, quick: bool, r: &mut Report) {
    let pairs = if quick { 5 } else { 60 };
    r.section("13. A lease's own cpus and memory: warm acquire with and without them");
    let d = Daemon::start(&[pool_yaml(
        "wr",
        &format!(
            "min_ready: {WARM}\nmax_ready: {WARM}\nmax_total: {}\ncpus: 1\nmemory: 64m\nresources: {{ max_cpus: 2, max_memory: 256m }}\nexhaustion: {{ strategy: wait, wait_timeout: 30s }}",
            WARM + 4
        ),
    )])
    .await;
    d.warm_up("wr").await;
    let bodies = [
        ("without", json!({"pool": "wr"})),
        ("with", json!({"pool": "wr", "cpus": 1.5, "memory": "128m"})),
    ];
    let (mut plain, mut sized, mut engine) = (Vec::new(), Vec::new(), Vec::new());
    let (raw, _) = raw_create_start(docker, IMAGE).await;
    for i in 0..pairs {
        // The engine's update alone, on a running container of its own: the asked limits and
        // back, as a lease and its reuse would set them.
        for (nano, mem) in [(1_500_000_000, 128 << 20), (1_000_000_000, 64 << 20)] {
            let body = ContainerUpdateBody {
                nano_cpus: Some(nano),
                memory: Some(mem),
                memory_swap: Some(mem),
                ..Default::default()
            };
            let t = Instant::now();
            docker.update_container(&raw, body).await.expect("update");
            engine.push(t.elapsed().as_secs_f64() * 1e3);
        }
        // Each pair in turn order, so neither always goes first.
        let order = if i % 2 == 0 { [0, 1] } else { [1, 0] };
        for k in order {
            // A full pool before each acquire: every one is served warm.
            d.wait_pool("wr", Duration::from_secs(60), |p| {
                p["counts"]["ready"].as_u64() == Some(u64::from(WARM))
            })
            .await;
            let t = Instant::now();
            let (st, _, l) = d
                .call(Method::POST, "/v1/leases", Some(bodies[k].1.clone()))
                .await;
            let ms = t.elapsed().as_secs_f64() * 1e3;
            assert_eq!(st, StatusCode::CREATED, "{l}");
            assert_eq!(l["source"], "pool", "{l}");
            if k == 0 { &mut plain } else { &mut sized }.push(ms);
            let id = l["lease_id"].as_str().unwrap();
            let (st, _, _) = d
                .call(Method::DELETE, &format!("/v1/leases/{id}"), None)
                .await;
            assert_eq!(st, StatusCode::NO_CONTENT);
        }
    }
    raw_remove_all(docker).await;
    let (a, b, e) = (stats(plain), stats(sized), stats(engine));
    r.line(&format!(
        "One pool of {WARM} warm busybox containers (1 CPU, 64 MiB; bounds 2 CPUs, 256 MiB); \
         {pairs} pairs of acquires, interleaved, each on a full pool and released (destroyed) \
         before the next. Client-side milliseconds per acquire, over HTTP on localhost."
    ));
    r.line("| acquire | n | median | p90 | p99 | note |\n|---|---|---|---|---|---|");
    r.line(&row(bodies[0].0, &a, "ms", "the pool's limits"));
    r.line(&row(
        bodies[1].0,
        &b,
        "ms",
        &format!(
            "`\"cpus\": 1.5, \"memory\": \"128m\"`: +{:.2} ms at the median",
            b.p50 - a.p50
        ),
    ));
    r.line(&row(
        "the engine's update alone",
        &e,
        "ms",
        "`POST /containers/{id}/update` (NanoCpus, Memory, MemorySwap) on the Engine API, no daemon",
    ));
    r.record("resources_engine_update_ms_p50", e.p50);
    r.record("resources_warm_without_ms_p50", a.p50);
    r.record("resources_warm_with_ms_p50", b.p50);
    r.record("resources_warm_with_ms_p90", b.p90);
    r.record("resources_cost_ms_p50", b.p50 - a.p50);
}
