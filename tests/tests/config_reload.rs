//! Config reload against the real engine, through the real binary: editing the config file
//! resizes a pool without recreating its containers and adds a pool; removing a pool drains it
//! while its open lease keeps working; an invalid file logs every error and the old config
//! keeps serving; SIGHUP reloads too.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;
use warmpool_e2e::{Daemon, containers_of, eventually, peak_rss, pool_yaml};

/// Poll the daemon's log until it contains `needle`.
async fn wait_log(d: &Daemon, needle: &str, within: Duration) {
    let t0 = Instant::now();
    while !d.log().contains(needle) {
        assert!(
            t0.elapsed() < within,
            "log never said {needle:?}:\n{}",
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn reload_resizes_adds_removes_and_rejects_without_losing_anything() {
    let a1 = pool_yaml("a", "min_ready: 1\nmax_ready: 1\nmax_total: 6");
    let d = Daemon::start(&[a1]).await;
    d.warm_up("a").await;
    let lease = d.acquire(json!({"pool": "a"})).await;
    let lease_id = lease["lease_id"].as_str().unwrap().to_string();
    d.wait_pool("a", Duration::from_secs(30), |p| p["counts"]["ready"] == 1)
        .await;
    let before: BTreeSet<String> = containers_of(&d.host_id).into_iter().collect();

    // Edit the file: resize a, add b. Nothing of a is recreated.
    let a2 = pool_yaml("a", "min_ready: 2\nmax_ready: 2\nmax_total: 6");
    let b = pool_yaml("b", "min_ready: 1\nmax_ready: 1\nmax_total: 2");
    d.write_pools(&[a2.clone(), b.clone()]);
    let p = d
        .wait_pool("a", Duration::from_secs(30), |p| {
            p["min_ready"] == 2 && p["counts"]["ready"] == 2
        })
        .await;
    assert_eq!(
        p["counters"]["destroyed_total"], 0,
        "a resize destroyed: {p:#}"
    );
    d.wait_pool("b", Duration::from_secs(30), |p| p["counts"]["ready"] == 1)
        .await;
    let now: BTreeSet<String> = containers_of(&d.host_id).into_iter().collect();
    assert!(
        before.is_subset(&now),
        "a container was recreated by a resize"
    );

    // An invalid file: every error is logged with its path, and the old config keeps serving.
    d.write_config(
        "pools:\n  a:\n    image: x\n    min_ready: 5\n    max_ready: 2\n    colour: red\n",
    );
    wait_log(&d, "config reload rejected", Duration::from_secs(10)).await;
    let log = d.log();
    assert!(log.contains("pools.a.colour"), "{log}");
    assert!(log.contains("pools.a.min_ready"), "{log}");
    let (st, _, _) = d.call(Method::GET, "/v1/pools/b", None).await;
    assert_eq!(st, StatusCode::OK, "the old config stopped serving");
    let l2 = d.acquire(json!({"pool": "b"})).await;
    assert_eq!(l2["pool"], "b");

    // Remove a: its ready containers go, its open lease keeps working until released.
    d.write_pools(std::slice::from_ref(&b));
    let t0 = Instant::now();
    loop {
        let (st, _, _) = d.call(Method::GET, "/v1/pools/a", None).await;
        if st == StatusCode::NOT_FOUND {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "pool a never removed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (st, _, err) = d
        .call(Method::POST, "/v1/leases", Some(json!({"pool": "a"})))
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{err}");
    let out = d
        .exec(&lease_id, json!({"cmd": ["echo", "still here"]}))
        .await;
    assert_eq!(out["stdout"], "still here\n");
    let lease_container = lease["container_id"].as_str().unwrap().to_string();
    let t0 = Instant::now();
    loop {
        let left: BTreeSet<String> = containers_of(&d.host_id).into_iter().collect();
        // What remains of a is its leased container; b keeps its ready one and its lease.
        let a_ready_gone = before
            .iter()
            .filter(|id| **id != lease_container)
            .all(|id| !left.contains(id));
        if a_ready_gone {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "a's ready containers stayed: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (st, _, _) = d
        .call(Method::DELETE, &format!("/v1/leases/{lease_id}"), None)
        .await;
    assert!(st.is_success());
    let t0 = Instant::now();
    while containers_of(&d.host_id).contains(&lease_container) {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "released container of a removed pool stayed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Everything left on the engine is b's: one ready, one leased.
    let b_stats = d
        .wait_pool("b", Duration::from_secs(30), |p| {
            p["counts"]["ready"] == 1
                && p["counts"]["removing"] == 0
                && p["counts"]["creating"] == 0
        })
        .await;
    assert_eq!(b_stats["counts"]["leased"], 1);
    assert_eq!(containers_of(&d.host_id).len(), 2);

    // SIGHUP reloads as well (here: nothing changed).
    d.signal("HUP");
    wait_log(&d, "trigger=\"SIGHUP\"", Duration::from_secs(10)).await;
}

#[tokio::test]
async fn an_alias_bomb_saved_over_the_config_is_refused_without_eating_memory() {
    let d = Daemon::start(&[pool_yaml("ab", "min_ready: 1")]).await;
    d.warm_up("ab").await;
    let mut bomb = String::from("x-a: &a [a, a, a, a, a, a, a, a, a, a]\n");
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    for w in names.windows(2) {
        let (prev, cur) = (w[0], w[1]);
        bomb.push_str(&format!(
            "x-{cur}: &{cur} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
        ));
    }
    bomb.push_str(&format!("pools:\n{}", pool_yaml("ab", "min_ready: 1")));
    d.write_config(&bomb);
    eventually(Duration::from_secs(20), "the reload refused", || async {
        d.log().contains("config reload rejected").then_some(())
    })
    .await;
    assert!(d.log().contains("nodes"), "the refusal says why");
    let (st, _, _) = d.call(Method::GET, "/healthz", None).await;
    assert_eq!(st, StatusCode::OK);
    d.warm_up("ab").await;
    let peak = peak_rss(d.pid());
    assert!(
        peak < 200 << 20,
        "the daemon reached {} MiB reading a 1 KB file",
        peak >> 20
    );
}
