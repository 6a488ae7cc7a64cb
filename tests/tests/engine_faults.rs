//! Faults of one engine among several, on two engines of the test's own (each a dockerd in its
//! own network namespace, over TCP): an engine cut off the network shows `down` within seconds
//! while the other serves, and its lease answers again once the network is back; an engine
//! whose creates fail opens its own breaker for the pool, which keeps serving from the other
//! engine without being `degraded`, and closes it once the engine can create again.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use warmpool_e2e::{
    Daemon, ExtraEngines, IMAGE, Setup, engines_of, eventually, exec_status, pool_yaml,
};

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Two engines, `e1` holding the test image and `e2` holding it too when `both`, and a daemon
/// with pool `p` (`extra` added to its settings).
async fn two_engines(both: bool, pool: &str) -> (ExtraEngines, Daemon) {
    let engines = ExtraEngines::up(2, &[], false);
    engines.load("e1", IMAGE);
    if both {
        engines.load("e2", IMAGE);
    }
    let docker = engines.docker_yaml(|name| format!("{{name: {name}}}"), None);
    let d = Daemon::start_setup(
        &[pool_yaml("p", pool)],
        Setup {
            server: &docker,
            limits: "  max_containers: 10\n",
            ..Setup::default()
        },
    )
    .await;
    (engines, d)
}

async fn release(d: &Daemon, l: &Value) {
    let id = l["lease_id"].as_str().unwrap();
    let (st, _, _) = d
        .call(Method::DELETE, &format!("/v1/leases/{id}"), None)
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_cut_off_the_network_is_down_within_seconds_and_serves_again_when_back() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (engines, d) = two_engines(true, "min_ready: 4\nmax_ready: 4\nmax_total: 8").await;
    d.warm_up("p").await;
    let on_e2 = d
        .acquire(json!({"pool": "p", "engine": {"name": "e2"}}))
        .await;
    let l2 = on_e2["lease_id"].as_str().unwrap().to_string();

    // Connections to e2 now hang rather than fail: only the monitor's bounded ping notices.
    engines.cut("e2");
    let cut_at = std::time::Instant::now();
    eventually(Duration::from_secs(30), "engine e2 shown down", || async {
        (engines_of(&d).await["e2"]["state"] == "down").then_some(())
    })
    .await;
    let noticed = cut_at.elapsed();
    let (st, _, _) = d.call(Method::GET, "/readyz", None).await;
    assert_eq!(st, StatusCode::OK, "e1 is up");
    let (st, err) = exec_status(&d, &l2).await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{err}");
    assert_eq!(err["error"]["code"], "engine_unavailable");
    // The pool serves from e1 alone, and refills there.
    for _ in 0..4 {
        let l = d.acquire(json!({"pool": "p", "wait_ms": 20_000})).await;
        assert_eq!(l["engine"], "e1", "{l}");
        let (st, out) = exec_status(&d, l["lease_id"].as_str().unwrap()).await;
        assert_eq!(st, StatusCode::OK, "{out}");
        release(&d, &l).await;
    }

    engines.restore("e2");
    eventually(Duration::from_secs(30), "engine e2 back up", || async {
        (engines_of(&d).await["e2"]["state"] == "up").then_some(())
    })
    .await;
    eventually(Duration::from_secs(20), "e2's lease answers", || async {
        (exec_status(&d, &l2).await.0 == StatusCode::OK).then_some(())
    })
    .await;
    engines
        .books_match(&d, "books agree with both engines")
        .await;
    // Said last, as a fact of the run rather than a timed assertion: the ping's own bound is
    // 5 s, and the wait above allowed 30.
    eprintln!("e2's cut was noticed after {noticed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_whose_creates_fail_opens_its_own_breaker_and_the_pool_serves_from_the_other() {
    let _one = ONE_AT_A_TIME.lock().await;
    // e2 lacks the image and may not fetch it: every create there fails.
    let (engines, d) = two_engines(
        false,
        "min_ready: 4\nmax_ready: 4\nmax_total: 8\nimage_source: none\nlifecycle: {probation: 2s}",
    )
    .await;
    d.warm_up("p").await;
    // Steady demand: each lease taken makes the refill place a create, and the spread sends
    // one to e2 whenever its breaker lets it try.
    let open = eventually(Duration::from_secs(90), "e2's breaker opens", || async {
        let l = d.acquire(json!({"pool": "p", "wait_ms": 20_000})).await;
        assert_eq!(l["engine"], "e1", "{l}");
        release(&d, &l).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let p = d.pool("p").await;
        (p["creates"]["breakers"]["e2"]["open"] == true).then_some(p)
    })
    .await;
    assert_eq!(open["status"], "ok", "e1 still makes containers: {open}");
    assert!(open["creates"]["breakers"].get("e1").is_none(), "{open}");
    let err = open["creates"]["last_error"].as_str().unwrap_or_default();
    assert!(err.to_lowercase().contains("image"), "{open}");
    assert!(engines.containers_of("e2", &d.host_id).is_empty());
    let (st, _, _) = d.call(Method::GET, "/readyz", None).await;
    assert_eq!(st, StatusCode::OK);

    // e2 gets the image: a trial create works, its breaker closes, and the pool spreads again.
    engines.load("e2", IMAGE);
    let healed = eventually(Duration::from_secs(120), "e2 serves again", || async {
        let l = d.acquire(json!({"pool": "p", "wait_ms": 20_000})).await;
        release(&d, &l).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let p = d.pool("p").await;
        let closed = p["creates"]["breakers"].get("e2").is_none();
        (closed && p["engines"]["e2"]["ready"].as_u64() >= Some(1)).then_some(p)
    })
    .await;
    assert_eq!(healed["status"], "ok", "{healed}");
    engines
        .books_match(&d, "books agree with both engines")
        .await;
}
