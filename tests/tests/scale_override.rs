//! The scale override against the real engine, through the real binary: `PUT
//! /v1/pools/{name}/scale` raises the ready count to the new floor and `DELETE` gives the
//! config's sizes back; a request outside a bound is 422 naming the bound, a bad body 400, an
//! unknown pool 404; with `state_dir` the override survives `kill -9` right after its 200 and a
//! clean restart; a reload keeps it unless it changes the pool's sizes; `warmpool scale` does
//! the same from the command line.

use std::process::Command;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use warmpool_e2e::{Daemon, Setup, binary, eventually, pool_yaml};

const PERSIST: &str = "  state_dir: {STATE_DIR}\n  commit_interval: 20ms\n";

async fn put_scale(d: &Daemon, pool: &str, body: Value) -> (StatusCode, Value) {
    let (st, _, v) = d
        .call(Method::PUT, &format!("/v1/pools/{pool}/scale"), Some(body))
        .await;
    (st, v)
}

/// The pool's stats once it holds exactly `n` ready containers.
async fn ready_exactly(d: &Daemon, pool: &str, n: u64) -> Value {
    d.wait_pool(pool, Duration::from_secs(60), |p| {
        p["counts"]["ready"] == n && p["counts"]["creating"] == 0
    })
    .await
}

#[tokio::test]
async fn put_raises_the_ready_count_delete_restores_and_bounds_are_named() {
    let d = Daemon::start(&[
        pool_yaml("sc", "min_ready: 1\nmax_ready: 2\nmax_total: 6"),
        pool_yaml("big", "min_ready: 0\nmax_ready: 1\nmax_total: 50"),
    ])
    .await;
    d.warm_up("sc").await;
    assert_eq!(d.pool("sc").await["override"], Value::Null);

    let (st, p) = put_scale(&d, "sc", json!({"min_ready": 4, "max_ready": 5})).await;
    assert_eq!(st, StatusCode::OK, "{p}");
    assert_eq!(p["override"], json!({"min_ready": 4, "max_ready": 5}));
    assert_eq!(
        (p["min_ready"].clone(), p["max_ready"].clone()),
        (json!(1), json!(2))
    );
    assert_eq!(p["target"], 4, "{p}");
    ready_exactly(&d, "sc", 4).await;

    let (st, _, p) = d.call(Method::DELETE, "/v1/pools/sc/scale", None).await;
    assert_eq!(st, StatusCode::OK, "{p}");
    assert_eq!(p["override"], Value::Null);
    // Back to the config's ceiling: the extra ready containers go, one per tick.
    let p = ready_exactly(&d, "sc", 2).await;
    assert_eq!(p["override"], Value::Null);

    // Each bound, named first in the message; nothing changes.
    let (lim_containers, lim_total, lim_ready) =
        ("limits.max_containers", "max_total", "max_ready");
    for (pool, body, bound) in [
        ("sc", json!({"max_ready": 7}), lim_total),
        ("sc", json!({"min_ready": 3}), lim_ready),
        ("sc", json!({"min_ready": 3, "max_ready": 2}), lim_ready),
        ("sc", json!({"max_ready": 0}), lim_ready),
        ("sc", json!({"min_ready": 99999999999u64}), lim_ready),
        // The daemon holds 20 containers at most (the tests' limits), sc keeps 1.
        (
            "big",
            json!({"min_ready": 25, "max_ready": 25}),
            lim_containers,
        ),
    ] {
        let (st, v) = put_scale(&d, pool, body.clone()).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {v}");
        assert_eq!(v["error"]["code"], "out_of_bounds", "{body}: {v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.starts_with(&format!("{bound}:")), "{body}: {msg}");
        // The numbers as asked, not cut to fit.
        for n in body.as_object().unwrap().values() {
            assert!(msg.contains(&n.to_string()), "{body}: {msg}");
        }
        assert_eq!(d.pool(pool).await["override"], Value::Null, "{body}");
    }

    // A bad body is 400, whatever the pool; an unknown pool 404 as on the other pool routes.
    for body in [
        json!({}),
        json!({"min_ready": 2, "colour": "red"}),
        json!({"min_ready": -1}),
    ] {
        let (st, v) = put_scale(&d, "sc", body.clone()).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert_eq!(v["error"]["code"], "bad_request");
    }
    let (st, body) = d
        .request_as_is(
            "PUT",
            b"/v1/pools/sc/scale",
            &[("Content-Type", "application/json")],
            b"",
        )
        .await;
    assert_eq!(st, 400, "an empty body: {body}");
    let (st, v) = put_scale(&d, "nope", json!({"min_ready": 1})).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(v["error"]["code"], "unknown_pool");
    let (st, _, v) = d.call(Method::DELETE, "/v1/pools/nope/scale", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");

    // The metrics follow: the target gauge shows the override's floor.
    put_scale(&d, "sc", json!({"min_ready": 3, "max_ready": 3})).await;
    let (_, _, m) = d.call(Method::GET, "/metrics", None).await;
    assert!(
        m.as_str()
            .unwrap()
            .lines()
            .any(|l| l == "warmpool_pool_target{pool=\"sc\"} 3"),
        "{m}"
    );
}

#[tokio::test]
async fn the_override_survives_kill_9_and_a_clean_restart_with_state_dir() {
    let mut d = Daemon::start_setup(
        &[pool_yaml("k9", "min_ready: 1\nmax_ready: 1\nmax_total: 5")],
        Setup {
            server: PERSIST,
            ..Setup::default()
        },
    )
    .await;
    d.warm_up("k9").await;
    let (st, p) = put_scale(&d, "k9", json!({"min_ready": 3, "max_ready": 3})).await;
    assert_eq!(st, StatusCode::OK, "{p}");
    // Killed right after the answer: the answer came only once the store had it.
    d.kill9();
    d.restart().await;
    let p = d.pool("k9").await;
    assert_eq!(
        p["override"],
        json!({"min_ready": 3, "max_ready": 3}),
        "{p}"
    );
    ready_exactly(&d, "k9", 3).await;

    // A clean shutdown forgets every lease and the lendable set, not the override.
    let (status, _) = d.terminate(Duration::from_secs(30));
    assert!(status.success(), "{status}");
    d.restart().await;
    assert_eq!(
        d.pool("k9").await["override"],
        json!({"min_ready": 3, "max_ready": 3})
    );
    ready_exactly(&d, "k9", 3).await;

    // Cleared, and killed again: it stays cleared.
    let (st, _, _) = d.call(Method::DELETE, "/v1/pools/k9/scale", None).await;
    assert_eq!(st, StatusCode::OK);
    d.kill9();
    d.restart().await;
    assert_eq!(d.pool("k9").await["override"], Value::Null);
}

#[tokio::test]
async fn a_reload_clears_it_only_when_it_changes_the_pools_sizes() {
    let d = Daemon::start(&[pool_yaml("rl", "min_ready: 1\nmax_ready: 2\nmax_total: 6")]).await;
    let (st, p) = put_scale(&d, "rl", json!({"min_ready": 2, "max_ready": 2})).await;
    assert_eq!(st, StatusCode::OK, "{p}");

    // A lease setting changed: reloaded (by the file watcher), the override kept.
    d.write_pools(&[pool_yaml(
        "rl",
        "min_ready: 1\nmax_ready: 2\nmax_total: 6\nlease: { default_ttl: 120s }",
    )]);
    eventually(
        Duration::from_secs(20),
        "the reload of the lease setting",
        || async {
            d.log()
                .lines()
                .any(|l| l.contains("config reloaded") && l.contains("changed=[\"rl\"]"))
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        d.pool("rl").await["override"],
        json!({"min_ready": 2, "max_ready": 2})
    );

    // Its sizes changed: the override goes, the new config's sizes apply.
    d.write_pools(&[pool_yaml(
        "rl",
        "min_ready: 1\nmax_ready: 3\nmax_total: 6\nlease: { default_ttl: 120s }",
    )]);
    let p = d
        .wait_pool("rl", Duration::from_secs(20), |p| p["max_ready"] == 3)
        .await;
    assert_eq!(p["override"], Value::Null, "{p}");
}

fn cli(d: &Daemon, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(binary())
        .args(args)
        .env("WARMPOOL_URL", &d.url)
        .env_remove("WARMPOOL_TOKEN")
        .output()
        .expect("run warmpool");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn warmpool_scale_sets_and_clears_from_the_command_line() {
    let d = Daemon::start(&[pool_yaml("cl", "min_ready: 1\nmax_ready: 2\nmax_total: 6")]).await;

    let (ok, out, err) = cli(&d, &["scale", "cl", "3", "--max", "4"]);
    assert!(ok, "{out}{err}");
    assert!(
        out.starts_with("cl: min_ready=3 max_ready=4 (override; config 1..2)"),
        "{out}"
    );
    ready_exactly(&d, "cl", 3).await;

    // Only a ceiling: the config's floor.
    let (ok, out, err) = cli(&d, &["scale", "cl", "--max", "3"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("min_ready=1 max_ready=3 (override"), "{out}");

    // Out of bounds: the daemon's answer, and a failing exit code.
    let (ok, _, err) = cli(&d, &["scale", "cl", "9"]);
    assert!(!ok);
    assert!(
        err.contains("out_of_bounds") && err.contains("max_ready"),
        "{err}"
    );
    let (ok, _, err) = cli(&d, &["scale", "nope", "1"]);
    assert!(!ok);
    assert!(err.contains("unknown_pool"), "{err}");
    // Nothing to do, or both a size and --clear: refused before any request.
    assert!(!cli(&d, &["scale", "cl"]).0);
    assert!(!cli(&d, &["scale", "cl", "2", "--clear"]).0);

    let (ok, out, err) = cli(&d, &["scale", "cl", "--clear"]);
    assert!(ok, "{out}{err}");
    assert!(
        out.starts_with("cl: min_ready=1 max_ready=2 (config)"),
        "{out}"
    );
    assert_eq!(d.pool("cl").await["override"], Value::Null);
}
