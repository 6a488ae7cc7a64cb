//! Tenants (issue 24): two tenants on one daemon cannot see, exec into, read from or release
//! each other's leases, whatever IDs they guess or list; a tenant sees only its pools and its
//! own events; the admin routes are an admin's; the audit log and the metrics name the tenant.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use warmpool_e2e::{Daemon, eventually, pool_yaml};

const A: &str = "tok-team-a-0123456789";
const B: &str = "tok-team-b-9876543210";
const OPS: &str = "tok-ops-admin-5555";

const TENANTS: &str = "  audit_log: {STATE_DIR}-audit.jsonl
  tenants:
    - name: team-a
      token_env: E2E_TEAM_A
      pools: [shared]
    - name: team-b
      token_env: E2E_TEAM_B
      pools: [shared, private-b]
    - name: ops
      token_env: E2E_OPS
      admin: true
";

async fn start() -> Daemon {
    let d = Daemon::start_with(
        &[
            pool_yaml("shared", "min_ready: 2\nmax_ready: 3"),
            pool_yaml("private-b", "min_ready: 1\nmax_ready: 1"),
        ],
        TENANTS,
        &[("E2E_TEAM_A", A), ("E2E_TEAM_B", B), ("E2E_OPS", OPS)],
    )
    .await;
    for pool in ["shared", "private-b"] {
        let (st, _, v) = d
            .call_as(
                OPS,
                Method::POST,
                &format!("/v1/pools/{pool}/warm-up"),
                Some(json!({})),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }
    d
}

async fn acquire(d: &Daemon, token: &str, pool: &str) -> Value {
    let (st, _, v) = d
        .call_as(
            token,
            Method::POST,
            "/v1/leases",
            Some(json!({"pool": pool, "ttl_s": 300})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    v
}

fn ids(v: &Value) -> Vec<String> {
    v["leases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["lease_id"].as_str().unwrap().to_string())
        .collect()
}

/// Every route of one lease, as (method, path, body).
fn lease_routes(id: &str) -> Vec<(Method, String, Option<Value>)> {
    vec![
        (Method::GET, format!("/v1/leases/{id}"), None),
        (
            Method::POST,
            format!("/v1/leases/{id}/exec"),
            Some(json!({"cmd": ["touch", "/tmp/pwned"]})),
        ),
        (
            Method::POST,
            format!("/v1/leases/{id}/exec/stream"),
            Some(json!({"cmd": ["true"]})),
        ),
        (
            Method::POST,
            format!("/v1/leases/{id}/renew"),
            Some(json!({"ttl_s": 5})),
        ),
        (
            Method::GET,
            format!("/v1/leases/{id}/files/etc/hostname"),
            None,
        ),
        (Method::GET, format!("/v1/leases/{id}/archive/etc"), None),
        (Method::GET, format!("/v1/leases/{id}/pty"), None),
        (Method::GET, format!("/v1/leases/{id}/exec/ws"), None),
        (Method::DELETE, format!("/v1/leases/{id}"), None),
        (Method::DELETE, format!("/v1/leases/{id}?reuse=true"), None),
    ]
}

/// Upload a file as `token` (a PUT with a raw body).
async fn put_file(d: &Daemon, token: &str, id: &str, path: &str) -> (StatusCode, Value) {
    let r = reqwest::Client::new()
        .put(format!("{}/v1/leases/{id}/files{path}", d.url))
        .bearer_auth(token)
        .body("pwned")
        .send()
        .await
        .unwrap();
    let st = r.status();
    (st, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn two_tenants_cannot_reach_each_others_leases() {
    let d = start().await;
    let la = acquire(&d, A, "shared").await;
    let lb = acquire(&d, B, "shared").await;
    let (la_id, lb_id) = (
        la["lease_id"].as_str().unwrap(),
        lb["lease_id"].as_str().unwrap(),
    );
    assert_eq!(la["tenant"], "team-a");
    assert_eq!(lb["tenant"], "team-b");

    // Each lists its own; the admin lists both.
    let (_, _, v) = d.call_as(A, Method::GET, "/v1/leases", None).await;
    assert_eq!(ids(&v), vec![la_id.to_string()]);
    let (_, _, v) = d.call_as(B, Method::GET, "/v1/leases", None).await;
    assert_eq!(ids(&v), vec![lb_id.to_string()]);
    let (_, _, v) = d.call_as(OPS, Method::GET, "/v1/leases", None).await;
    assert_eq!(ids(&v).len(), 2);

    // Team A on every route of B's lease: the same 404 as a lease that never existed.
    let ghost = "00000000-0000-4000-8000-000000000000";
    for ((m, path, body), (_, ghost_path, _)) in
        lease_routes(lb_id).into_iter().zip(lease_routes(ghost))
    {
        let (st, _, v) = d.call_as(A, m.clone(), &path, body.clone()).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{m} {path}: {v}");
        assert_eq!(v["error"]["code"], "unknown_lease", "{m} {path}");
        let (_, _, g) = d.call_as(A, m.clone(), &ghost_path, body).await;
        assert_eq!(
            v["error"]["message"].as_str().unwrap().replace(lb_id, "ID"),
            g["error"]["message"].as_str().unwrap().replace(ghost, "ID"),
            "{m} {path}: another tenant's lease must look like no lease"
        );
    }
    let (st, v) = put_file(&d, A, lb_id, "/tmp/pwned").await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    // No token at all, or a wrong one: 401.
    let (st, _, _) = d
        .call(Method::GET, &format!("/v1/leases/{lb_id}"), None)
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _, _) = d
        .call_as("tok-team-a-012345678", Method::GET, "/v1/leases", None)
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);

    // B's lease is untouched: still there, and nothing was written into it.
    let (st, _, v) = d
        .call_as(
            B,
            Method::POST,
            &format!("/v1/leases/{lb_id}/exec"),
            Some(json!({"cmd": ["sh", "-c", "test ! -e /tmp/pwned && echo clean"]})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["stdout"], "clean\n");

    // Pools: A sees and uses only its own.
    let (_, _, v) = d.call_as(A, Method::GET, "/v1/pools", None).await;
    let names: Vec<&str> = v["pools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["shared"]);
    for (m, path, body) in [
        (Method::GET, "/v1/pools/private-b", None),
        (
            Method::POST,
            "/v1/leases",
            Some(json!({"pool": "private-b"})),
        ),
    ] {
        let (st, _, v) = d.call_as(A, m, path, body).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{path}: {v}");
        assert_eq!(v["error"]["code"], "unknown_pool");
    }
    acquire(&d, B, "private-b").await;

    // The admin routes are the admin's.
    for (m, path, body) in [
        (Method::GET, "/v1/engines", None),
        (Method::GET, "/v1/plugins", None),
        (Method::POST, "/v1/admin/reload", Some(json!({}))),
        (Method::POST, "/v1/pools/shared/warm-up", Some(json!({}))),
        (
            Method::PUT,
            "/v1/pools/shared/scale",
            Some(json!({"min_ready": 2})),
        ),
        (Method::DELETE, "/v1/pools/shared/scale", None),
    ] {
        let (st, _, v) = d.call_as(A, m.clone(), path, body.clone()).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{path}: {v}");
        assert_eq!(v["error"]["code"], "forbidden");
        let (st, _, v) = d.call_as(OPS, m, path, body).await;
        assert!(st.is_success(), "admin {path}: {st} {v}");
    }

    // The admin may release anyone's lease; the tenant's own still works for it.
    let (st, _, _) = d
        .call_as(OPS, Method::DELETE, &format!("/v1/leases/{lb_id}"), None)
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _, _) = d
        .call_as(A, Method::DELETE, &format!("/v1/leases/{la_id}"), None)
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);

    // The metrics count each tenant's leases (B holds its private-b lease), for an admin's
    // scrape alone: without a token, or with a tenant's, no tenant shows.
    for token in [None, Some(A)] {
        let text = d.metrics_as(token, None).await;
        assert!(text.contains("warmpool_containers"), "{text}");
        assert!(!text.contains("warmpool_tenant_"), "{token:?}: {text}");
    }
    let text = d.metrics_as(Some(OPS), None).await;
    assert!(
        text.contains("warmpool_tenant_leases{tenant=\"team-b\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("warmpool_tenant_leases{tenant=\"team-a\"} 0"),
        "{text}"
    );

    // The audit log names the tenant of every event about a lease.
    // (Written as the events come: wait for the last release's.)
    let path = d.dir.path().join("state-audit.jsonl");
    let lease_events: Vec<Value> = eventually(
        std::time::Duration::from_secs(10),
        "3 leased and 2 released in the audit log",
        || async {
            let audit = std::fs::read_to_string(&path).unwrap_or_default();
            let v: Vec<Value> = audit
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .filter(|e| e.get("lease").is_some())
                .collect();
            (v.len() == 5).then_some(v)
        },
    )
    .await;
    for e in &lease_events {
        let want = if e["lease"] == la_id {
            "team-a"
        } else {
            "team-b"
        };
        assert_eq!(e["tenant"], want, "{e}");
    }
}

/// Read `/v1/events` as `token` for `ms`, returning the events' JSON.
async fn events_as(url: String, token: &'static str, ms: u64) -> Vec<Value> {
    let text = reqwest::Client::new()
        .get(format!("{url}/v1/events?for_ms={ms}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| serde_json::from_str(d.trim()).unwrap())
        .collect()
}

#[tokio::test]
async fn a_tenant_sees_only_its_own_events() {
    let d = start().await;
    let a_events = tokio::spawn(events_as(d.url.clone(), A, 4000));
    let all_events = tokio::spawn(events_as(d.url.clone(), OPS, 4000));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let la = acquire(&d, A, "shared").await;
    let lb = acquire(&d, B, "shared").await;
    for (t, l) in [(A, &la), (B, &lb)] {
        let id = l["lease_id"].as_str().unwrap();
        let (st, _, _) = d
            .call_as(t, Method::DELETE, &format!("/v1/leases/{id}"), None)
            .await;
        assert_eq!(st, StatusCode::NO_CONTENT);
    }
    let a_events = a_events.await.unwrap();
    let all_events = all_events.await.unwrap();
    let kinds: Vec<&str> = a_events
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["leased", "released"], "{a_events:?}");
    for e in &a_events {
        assert_eq!(e["lease"], la["lease_id"]);
        assert_eq!(e["tenant"], "team-a");
    }
    // The admin sees both leases, and the pool's own events (the refills).
    assert!(all_events.iter().any(|e| e["lease"] == lb["lease_id"]));
    assert!(
        all_events
            .iter()
            .any(|e| e["kind"] == "created" || e["kind"] == "ready")
    );
}
