//! Lease hibernation end to end (issue 25): on an engine of the test's own running gVisor's
//! `runsc` as its default runtime, in experimental mode (checkpoint and restore), the real
//! daemon suspends a lease (`docker checkpoint create`: the container stops, its memory on the
//! engine's disk) and resumes it (`docker start --checkpoint`): a shell loop's counter goes on
//! from where it was, files are kept, and so are the lease's environment and, through the agent,
//! its secrets. A call resumes a suspended lease first, or answers 409 where the pool refuses;
//! an idle lease is suspended on its own; a suspended lease survives `kill -9` of the daemon.
//! On the host's engine (runc, not experimental) a suspend answers 409 with the engine's reason.
//! The engine is stopped by PID when the test ends, even when it fails.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use warmpool_e2e::{Daemon, ExtraEngines, IMAGE, Setup, eventually, pool_yaml};

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A shell loop that counts in its own memory and shows the count in a file; `$!` is its PID.
const COUNTER: &str = "i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done";

fn id(v: &Value) -> String {
    v["lease_id"].as_str().unwrap().to_string()
}

async fn post(d: &Daemon, path: &str) -> (StatusCode, Value) {
    let (st, _, v) = d.call(Method::POST, path, None).await;
    (st, v)
}

async fn sh(d: &Daemon, lease: &str, script: &str) -> (StatusCode, Value) {
    let (st, _, v) = d
        .call(
            Method::POST,
            &format!("/v1/leases/{lease}/exec"),
            Some(json!({"cmd": ["sh", "-c", script], "timeout_ms": 20_000})),
        )
        .await;
    (st, v)
}

async fn out(d: &Daemon, lease: &str, script: &str) -> String {
    let (st, v) = sh(d, lease, script).await;
    assert_eq!(st, StatusCode::OK, "{script}: {v}\nlog:\n{}", d.log());
    v["stdout"].as_str().unwrap().trim().to_string()
}

async fn count(d: &Daemon, lease: &str) -> u64 {
    out(d, lease, "cat /tmp/count").await.parse().unwrap()
}

/// The lease's state as shown.
async fn state(d: &Daemon, lease: &str) -> String {
    let (st, _, v) = d
        .call(Method::GET, &format!("/v1/leases/{lease}"), None)
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v["state"].as_str().unwrap().to_string()
}

/// One engine with runsc as its default runtime and checkpoints on, holding the test image.
fn runsc_engine() -> ExtraEngines {
    let engines = ExtraEngines::up_with(
        1,
        &[
            "--runsc",
            "all",
            "--experimental",
            "--default-runtime",
            "runsc",
        ],
    );
    engines.load("e1", IMAGE);
    engines
}

async fn daemon_on(engines: &ExtraEngines) -> Daemon {
    let pools = [
        pool_yaml("en", "min_ready: 1\nmax_ready: 1\nmax_total: 4"),
        pool_yaml(
            "ag",
            "min_ready: 1\nmax_ready: 1\nmax_total: 3\nexec: agent",
        ),
        pool_yaml(
            "rf",
            "min_ready: 0\nmax_ready: 1\nmax_total: 2\nlease: {on_suspended: refuse}",
        ),
        pool_yaml(
            "idle",
            "min_ready: 0\nmax_ready: 1\nmax_total: 2\nlease: {suspend_after_idle: 3s}",
        ),
    ];
    let server = format!(
        "  state_dir: {{STATE_DIR}}\n  commit_interval: 5ms\n{}",
        engines.docker_yaml(|_| "{}".into(), None)
    );
    Daemon::start_setup(
        &pools,
        Setup {
            server: &server,
            ..Setup::default()
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_lease_keeps_its_memory_files_env_and_secrets_across_resume_and_restart() {
    let _one = ONE_AT_A_TIME.lock().await;
    let engines = runsc_engine();
    let mut d = daemon_on(&engines).await;
    d.warm_up("en").await;

    // Memory, files and env on the engine's exec path.
    let lease = d
        .acquire(json!({"pool": "en", "ttl_s": 600, "env": {"GREETING": "hello"}}))
        .await;
    let l = id(&lease);
    // gVisor's kernel says 4.4.0 whatever the host runs: the lease really is under runsc.
    assert_eq!(out(&d, &l, "uname -r").await, "4.4.0");
    out(
        &d,
        &l,
        &format!("({COUNTER}) >/dev/null 2>&1 & echo kept > /tmp/file; echo ok"),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let t0 = Instant::now();
    let (st, v) = post(&d, &format!("/v1/leases/{l}/suspend")).await;
    assert_eq!(st, StatusCode::OK, "{v}\nlog:\n{}", d.log());
    let took_suspend = t0.elapsed();
    assert_eq!(v["state"], "suspended", "{v}");
    assert!(v["suspended_at"].is_string(), "{v}");
    let cid = v["container_id"].as_str().unwrap().to_string();
    // The container is stopped: no process of it holds memory.
    let inspect = engines.docker(
        "e1",
        &["inspect", "-f", "{{.State.Running}} {{.State.Pid}}", &cid],
    );
    assert_eq!(
        String::from_utf8_lossy(&inspect.stdout).trim(),
        "false 0",
        "stopped"
    );
    let pool = d.pool("en").await;
    assert_eq!(pool["counts"]["suspended"], 1, "{pool}");
    assert_eq!(pool["counts"]["leased"], 0, "{pool}");
    // The checkpoint's stop is no death: after a while the lease is still suspended.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(state(&d, &l).await, "suspended");

    let t1 = Instant::now();
    let (st, v) = post(&d, &format!("/v1/leases/{l}/resume")).await;
    assert_eq!(st, StatusCode::OK, "{v}\nlog:\n{}", d.log());
    let took_resume = t1.elapsed();
    assert_eq!(v["state"], "active", "{v}");
    let before = {
        // The count the loop had reached when it was suspended is at most what it shows now,
        // and it goes on from there: the loop's variable came back from memory.
        let c = count(&d, &l).await;
        assert!(c >= 10, "the loop ran ~1.5 s before the suspend: {c}");
        c
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    let after = count(&d, &l).await;
    assert!(after > before, "the loop runs again: {before} -> {after}");
    assert_eq!(out(&d, &l, "cat /tmp/file").await, "kept");
    assert_eq!(out(&d, &l, "echo $GREETING").await, "hello");
    eprintln!("suspend {took_suspend:?}, resume {took_resume:?}");

    // A call on a suspended lease resumes it first (the pool's default).
    let (st, _) = post(&d, &format!("/v1/leases/{l}/suspend")).await;
    assert_eq!(st, StatusCode::OK);
    let c1 = out(&d, &l, "cat /tmp/count").await.parse::<u64>().unwrap();
    assert_eq!(state(&d, &l).await, "active");
    assert!(c1 >= after, "{after} -> {c1}");

    // Secrets and env through the agent, after a resume (its channel is attached anew).
    d.warm_up("ag").await;
    let lease = d
        .acquire(
            json!({"pool": "ag", "ttl_s": 600, "env": {"A": "1"}, "secrets": {"TOKEN": "s3cr3t"}}),
        )
        .await;
    let a = id(&lease);
    out(&d, &a, "x=41; echo $((x+1)) > /tmp/x").await;
    let (st, v) = post(&d, &format!("/v1/leases/{a}/suspend")).await;
    assert_eq!(st, StatusCode::OK, "{v}\nlog:\n{}", d.log());
    let (st, v) = post(&d, &format!("/v1/leases/{a}/resume")).await;
    assert_eq!(st, StatusCode::OK, "{v}\nlog:\n{}", d.log());
    assert_eq!(out(&d, &a, "echo $A:$TOKEN").await, "1:s3cr3t");
    assert_eq!(out(&d, &a, "cat /tmp/x").await, "42");

    // A pool that refuses: 409 until an explicit resume.
    let lease = d.acquire(json!({"pool": "rf", "ttl_s": 600})).await;
    let r = id(&lease);
    let (st, _) = post(&d, &format!("/v1/leases/{r}/suspend")).await;
    assert_eq!(st, StatusCode::OK);
    let (st, v) = sh(&d, &r, "true").await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "lease_suspended", "{v}");
    let (st, _) = post(&d, &format!("/v1/leases/{r}/resume")).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(out(&d, &r, "echo up").await, "up");

    // An idle lease is suspended on its own, and a call wakes it.
    let lease = d.acquire(json!({"pool": "idle", "ttl_s": 600})).await;
    let i = id(&lease);
    out(&d, &i, "echo 7 > /tmp/seven").await;
    eventually(
        Duration::from_secs(30),
        "the idle lease is suspended",
        || async { (state(&d, &i).await == "suspended").then_some(()) },
    )
    .await;
    assert_eq!(out(&d, &i, "cat /tmp/seven").await, "7");

    // Metrics: the gauge, the counters and the durations.
    let m = d.metrics_as(None, None).await;
    assert!(
        m.contains("warmpool_hibernations_total{pool=\"en\",op=\"suspend\"} 2"),
        "{m}"
    );
    assert!(m.contains("warmpool_hibernation_seconds_count{pool=\"en\",op=\"resume\"} 2"));
    assert!(m.contains("warmpool_leases_suspended{pool=\"idle\"} 0"));

    // Suspended through a kill -9: the lease comes back suspended, and resumes with its memory.
    let frozen = count(&d, &l).await;
    let (st, _) = post(&d, &format!("/v1/leases/{l}/suspend")).await;
    assert_eq!(st, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(300)).await;
    d.kill9();
    d.restart().await;
    let back = eventually(Duration::from_secs(60), "the lease is back", || async {
        let (st, _, v) = d.call(Method::GET, &format!("/v1/leases/{l}"), None).await;
        (st == StatusCode::OK).then_some(v)
    })
    .await;
    assert_eq!(back["state"], "suspended", "{back}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(state(&d, &l).await, "suspended", "not taken for dead");
    let c2 = count(&d, &l).await;
    assert!(c2 >= frozen, "{frozen} -> {c2}");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        count(&d, &l).await > c2,
        "the loop runs again after the restart"
    );
    assert_eq!(state(&d, &l).await, "active");

    // Release destroys a suspended container.
    let (st, _) = post(&d, &format!("/v1/leases/{l}/suspend")).await;
    assert_eq!(st, StatusCode::OK);
    let (st, _, _) = d
        .call(Method::DELETE, &format!("/v1/leases/{l}"), None)
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    eventually(
        Duration::from_secs(30),
        "the suspended container is removed",
        || async {
            let ps = engines.docker("e1", &["ps", "-aq", "--no-trunc"]);
            (!String::from_utf8_lossy(&ps.stdout).contains(&cid)).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_engine_without_checkpoints_answers_409_with_its_reason() {
    let _one = ONE_AT_A_TIME.lock().await;
    let d = Daemon::start(&[pool_yaml("p", "min_ready: 1\nmax_ready: 1\nmax_total: 3")]).await;
    d.warm_up("p").await;
    let lease = d.acquire(json!({"pool": "p"})).await;
    let l = id(&lease);
    let (st, v) = post(&d, &format!("/v1/leases/{l}/suspend")).await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "cannot_suspend", "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("experimental"), "the engine's reason: {msg}");
    // The lease runs on.
    assert_eq!(state(&d, &l).await, "active");
    assert_eq!(out(&d, &l, "echo still").await, "still");
}
