//! Lifecycle events: `GET /v1/events` streams them as Server-Sent Events, and the audit log
//! keeps the same records as JSON lines, shutdown included.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use warmpool_e2e::{Daemon, collect_events as collect, pool_yaml};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_over_sse_and_land_in_the_audit_log() {
    let logdir = tempfile::tempdir().unwrap();
    let audit = logdir.path().join("audit.jsonl");
    let mut d = Daemon::start_with(
        &[pool_yaml("ev", "min_ready: 1\nmax_ready: 1\nmax_total: 3")],
        &format!("  audit_log: {}\n", audit.display()),
        &[],
    )
    .await;
    d.warm_up("ev").await;
    let resp = reqwest::Client::new()
        .get(format!("{}/v1/events?pool=ev", d.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let reader = tokio::spawn(collect(
        resp,
        &["leased", "released", "removed", "created", "ready"],
    ));

    let lease = d.acquire(json!({"pool": "ev"})).await;
    let id = lease["lease_id"].as_str().unwrap();
    d.call(Method::DELETE, &format!("/v1/leases/{id}"), None)
        .await;
    let events = reader.await.unwrap();
    let leased = events.iter().find(|e| e["kind"] == "leased").unwrap();
    assert_eq!(leased["lease"], lease["lease_id"]);
    assert_eq!(leased["container"], lease["container_id"]);
    assert_eq!(leased["pool"], "ev");
    let removed = events
        .iter()
        .find(|e| e["kind"] == "removed" && e["container"] == lease["container_id"])
        .unwrap();
    assert_eq!(removed["reason"], "released");
    assert!(
        events
            .iter()
            .all(|e| e["at"].as_str().is_some_and(|t| t.ends_with('Z')))
    );

    let (status, _) = d.terminate(Duration::from_secs(20));
    assert!(status.success());
    let lines: Vec<Value> = std::fs::read_to_string(&audit)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each audit line is JSON"))
        .collect();
    let kinds: Vec<&str> = lines.iter().filter_map(|e| e["kind"].as_str()).collect();
    for k in ["created", "ready", "leased", "released", "removed"] {
        assert!(
            kinds.contains(&k),
            "{k} missing from the audit log: {kinds:?}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|e| e["kind"] == "removed" && e["reason"] == "shutdown"),
        "shutdown not audited: {kinds:?}"
    );
}
