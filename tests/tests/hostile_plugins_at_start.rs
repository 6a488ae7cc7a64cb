//! A daemon started with hostile plugins configured, in Rust and in Python, serves at once:
//! it answers before its Python plugins finish compiling, each hostile pool runs on its
//! built-in policy with the reason reported, the other pools serve warm acquires, every answer
//! a guest gives is cut to bounds, a log flood is cut, and SIGTERM exits on time.

use std::time::{Duration, SystemTime};

use reqwest::{Method, StatusCode};
use serde_json::json;
use warmpool_e2e::{Daemon, Guest, eventually, plugin_yaml, pool_yaml};

const RS_SIZING: Guest = Guest::Rust("test_guest_hostile_sizing");
const PY_SIZING: Guest = Guest::Python("hostile_sizing", "sizing-policy");
const PY_EXHAUSTION: Guest = Guest::Python("hostile_exhaustion", "exhaustion-strategy");

/// Pool body: one container, served by `plugin`.
fn one(plugin: String) -> String {
    format!("min_ready: 1\nmax_ready: 1\nmax_total: 1\n{plugin}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_plugins_at_startup_leave_the_daemon_serving() {
    let dir = tempfile::tempdir().unwrap();
    let (rs, py, px) = (
        RS_SIZING.copy_to(dir.path(), "rs.wasm"),
        PY_SIZING.copy_to(dir.path(), "py.wasm"),
        PY_EXHAUSTION.copy_to(dir.path(), "px.wasm"),
    );
    let sizing =
        |file: &std::path::Path, mode: &str| plugin_yaml("sizing", file, &[("mode", mode)]);
    let pools = [
        pool_yaml("good", "min_ready: 2\nmax_ready: 2"),
        pool_yaml("rs_sleep", &one(sizing(&rs, "sleep-decide"))),
        pool_yaml("rs_init", &one(sizing(&rs, "sleep-init"))),
        pool_yaml("rs_huge", &one(sizing(&rs, "huge-reason"))),
        pool_yaml("rs_flood", &one(sizing(&rs, "flood-log"))),
        pool_yaml("py_sleep", &one(sizing(&py, "sleep-decide"))),
        pool_yaml("py_udp", &one(sizing(&py, "udp"))),
        pool_yaml("py_fine", &one(sizing(&py, "fine"))),
        pool_yaml(
            "py_exh",
            &one(plugin_yaml("exhaustion", &px, &[("mode", "huge")])),
        ),
    ];
    // Started on the daemon's own, empty compile cache: the Python guests compile now. The
    // deadline is 1 s, not the default 50 ms: building and lifting a 50 MiB reason in a debug
    // build, on 2 cores busy compiling Python, can take longer than 50 ms, and that pool must
    // get as far as answering for its answer to be cut. The sleepers are abandoned all the same.
    let mut d = Daemon::start_with(&pools, "plugins:\n  deadline: 1s\n", &[]).await;
    let ready_by = SystemTime::now();

    // The API was up before the Python plugin finished compiling: its load time is later than
    // the moment the daemon had answered /readyz.
    let fine = eventually(
        Duration::from_secs(180),
        "the python plugin loads",
        || async {
            let p = d.plugin("py_fine", "sizing").await;
            (p["state"] == "active").then_some(p)
        },
    )
    .await;
    let loaded_at =
        humantime::parse_rfc3339(fine["last_reload_at"].as_str().expect("a load time")).unwrap();
    assert!(
        loaded_at > ready_by,
        "the daemon became ready only after compiling its plugins: {fine}"
    );
    assert!(fine["memory_bytes"].as_u64().unwrap() > 0, "{fine}");
    // Its memory is in /metrics too.
    let (_, _, metrics) = d.call(Method::GET, "/metrics", None).await;
    let line = metrics
        .as_str()
        .unwrap()
        .lines()
        .find(|l| l.starts_with("warmpool_plugin_memory_bytes{pool=\"py_fine\",kind=\"sizing\"}"))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no memory gauge for py_fine:\n{metrics}"));
    let bytes: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(bytes > 1 << 20, "{line}");

    // Each hostile sizing plugin failed its trial: the pool's built-in serves, with the reason.
    for (pool, why) in [
        ("rs_sleep", "deadline"),
        ("rs_init", "deadline"),
        ("rs_flood", ""),
        ("py_sleep", "deadline"),
        ("py_udp", "PermissionError"),
    ] {
        let p = eventually(Duration::from_secs(120), pool, || async {
            let p = d.plugin(pool, "sizing").await;
            (p["state"] != "compiling").then_some(p)
        })
        .await;
        if pool == "rs_flood" {
            // A flood is not a failure; it is cut and counted.
            assert!(p["log_dropped"].as_u64().unwrap() > 0, "{pool}: {p}");
            continue;
        }
        assert_eq!(p["state"], "fallback", "{pool}: {p}");
        let err = p["last_error"].as_str().unwrap_or_default();
        assert!(err.contains(why), "{pool}: {err}");
        // The pool is served by its built-in policy all the same.
        d.wait_pool(pool, Duration::from_secs(60), |v| v["counts"]["ready"] == 1)
            .await;
        let serving = d.pool(pool).await["policies"]["sizing"].clone();
        assert!(
            serving.as_str().unwrap().ends_with("fallback)"),
            "{pool}: {serving}"
        );
    }

    // A 50 MiB reason is cut to a short one.
    let huge = eventually(Duration::from_secs(60), "rs_huge decides", || async {
        let v = d.pool("rs_huge").await;
        (v["target_reason"]
            .as_str()
            .unwrap_or_default()
            .starts_with("xxx"))
        .then_some(v)
    })
    .await;
    assert!(
        huge["target_reason"].as_str().unwrap().len() <= 256,
        "reason not cut"
    );
    assert!(
        d.plugin("rs_huge", "sizing").await["truncated"]
            .as_u64()
            .unwrap()
            > 0
    );

    // The other pool serves warm acquires.
    d.warm_up("good").await;
    let lease = d.acquire(json!({"pool": "good"})).await;
    assert_eq!(lease["source"], "pool", "{lease}");

    // The Python exhaustion strategy's 2^64-1 ms retry and 1 MiB reason are cut to bounds.
    eventually(
        Duration::from_secs(180),
        "the exhaustion plugin loads",
        || async { (d.plugin("py_exh", "exhaustion").await["state"] == "active").then_some(()) },
    )
    .await;
    d.warm_up("py_exh").await;
    let _held = d.acquire(json!({"pool": "py_exh"})).await;
    let (st, headers, v) = d
        .call(Method::POST, "/v1/leases", Some(json!({"pool": "py_exh"})))
        .await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS, "{v}");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry <= 300, "Retry-After {retry}");
    assert!(
        v.to_string().len() < 2048,
        "an unbounded reason went out: {} bytes",
        v.to_string().len()
    );

    // The flood reached the log cut: a few lines per call, not 100,000.
    let flood_lines = d.log().matches("flood line").count();
    assert!(flood_lines <= 64, "{flood_lines} flood lines in the log");

    // SIGTERM: a guest parked in a 90 s sleep does not hold the exit (grace is 15 s).
    let (status, took) = d.terminate(Duration::from_secs(14));
    assert!(status.success(), "exit {status} after {took:?}");
}
