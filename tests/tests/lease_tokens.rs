//! Lease tokens (issue 24): the `lease_token` of an acquire's answer opens that lease's routes
//! (show, exec, files, terminal, renew, release) and nothing else, and stops working when the
//! lease ends; a forged or altered one opens nothing.

use futures_util::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use warmpool_e2e::{Daemon, pool_yaml};

const A: &str = "tok-lease-tenant-a-42";

async fn start() -> Daemon {
    let d = Daemon::start_with(
        &[pool_yaml("lt", "min_ready: 2\nmax_ready: 3")],
        "  tenants:\n    - name: team-a\n      token_env: E2E_TEAM_A\n      admin: false\n",
        &[("E2E_TEAM_A", A)],
    )
    .await;
    warmpool_e2e::eventually(std::time::Duration::from_secs(60), "2 ready", || async {
        let (_, _, v) = d.call_as(A, Method::GET, "/v1/pools/lt", None).await;
        (v["counts"]["ready"].as_u64() >= Some(2)).then_some(())
    })
    .await;
    d
}

async fn acquire(d: &Daemon) -> (String, String) {
    let (st, _, v) = d
        .call_as(A, Method::POST, "/v1/leases", Some(json!({"pool": "lt"})))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let token = v["lease_token"].as_str().unwrap().to_string();
    assert!(token.starts_with("wpl."), "{token}");
    (v["lease_id"].as_str().unwrap().to_string(), token)
}

/// A terminal over WebSocket as `token`: run `echo` and see it.
async fn terminal_echo(d: &Daemon, lease: &str, token: &str) -> Result<String, u16> {
    let mut req = format!(
        "{}/v1/leases/{lease}/pty",
        d.url.replace("http://", "ws://")
    )
    .into_client_request()
    .unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (mut ws, _) = match tokio_tungstenite::connect_async(req).await {
        Ok(ok) => ok,
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => return Err(r.status().as_u16()),
        Err(e) => panic!("{e}"),
    };
    ws.send(Message::Text(
        json!({"cmd": ["sh", "-c", "echo from-the-terminal"]})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let mut seen = String::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Binary(b) = m {
                seen.push_str(&String::from_utf8_lossy(&b[1..]));
            }
            if seen.contains("from-the-terminal") {
                return;
            }
        }
    })
    .await;
    Ok(seen)
}

#[tokio::test]
async fn a_lease_token_opens_its_lease_and_nothing_else() {
    let d = start().await;
    let (id, token) = acquire(&d).await;
    let (other, _) = acquire(&d).await;

    // Its own lease: show, exec, files both ways, terminal, renew.
    let (st, _, v) = d
        .call_as(&token, Method::GET, &format!("/v1/leases/{id}"), None)
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert!(
        v.get("lease_token").is_none(),
        "the token is shown once, at acquire"
    );
    let (st, _, v) = d
        .call_as(
            &token,
            Method::POST,
            &format!("/v1/leases/{id}/exec"),
            Some(json!({"cmd": ["echo", "hi"]})),
        )
        .await;
    assert_eq!(
        (st, v["stdout"].as_str()),
        (StatusCode::OK, Some("hi\n")),
        "{v}"
    );
    let r = reqwest::Client::new()
        .put(format!("{}/v1/leases/{id}/files/tmp/note", d.url))
        .bearer_auth(&token)
        .body("kept")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let r = reqwest::Client::new()
        .get(format!("{}/v1/leases/{id}/files/tmp/note", d.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "kept");
    let seen = terminal_echo(&d, &id, &token).await.unwrap();
    assert!(seen.contains("from-the-terminal"), "{seen:?}");
    let (st, _, _) = d
        .call_as(
            &token,
            Method::POST,
            &format!("/v1/leases/{id}/renew"),
            Some(json!({"ttl_s": 120})),
        )
        .await;
    assert_eq!(st, StatusCode::OK);

    // Another lease of the same tenant: as if it did not exist.
    for (m, path, body) in [
        (Method::GET, format!("/v1/leases/{other}"), None),
        (
            Method::POST,
            format!("/v1/leases/{other}/exec"),
            Some(json!({"cmd": ["true"]})),
        ),
        (Method::DELETE, format!("/v1/leases/{other}"), None),
    ] {
        let (st, _, v) = d.call_as(&token, m, &path, body).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{path}: {v}");
    }
    assert_eq!(terminal_echo(&d, &other, &token).await.err(), Some(404));
    // Nothing outside its lease: no list, no acquire, no pools, no events, no admin route.
    for (m, path, body) in [
        (Method::GET, "/v1/leases", None),
        (Method::POST, "/v1/leases", Some(json!({"pool": "lt"}))),
        (Method::GET, "/v1/pools", None),
        (Method::GET, "/v1/pools/lt", None),
        (Method::GET, "/v1/events?for_ms=10", None),
        (Method::GET, "/v1/tenants", None),
        (Method::GET, "/v1/engines", None),
        (Method::POST, "/v1/admin/reload", Some(json!({}))),
    ] {
        let (st, _, v) = d.call_as(&token, m, path, body).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{path}: {v}");
        assert_eq!(v["error"]["code"], "forbidden");
    }

    // Forgeries: another lease's ID under this MAC, an altered MAC, made-up tokens.
    let mac = token.rsplit_once('.').unwrap().1;
    let mut altered = token.clone();
    let last = altered.pop().unwrap();
    altered.push(if last == 'A' { 'B' } else { 'A' });
    for forged in [
        format!("wpl.{other}.{mac}"),
        altered,
        format!("wpl.{other}.x"),
        format!("wpl.{id}"),
    ] {
        let (st, _, v) = d
            .call_as(&forged, Method::GET, &format!("/v1/leases/{other}"), None)
            .await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{forged}: {v}");
    }

    // Released with its own token: from then on it opens nothing.
    let (st, _, _) = d
        .call_as(&token, Method::DELETE, &format!("/v1/leases/{id}"), None)
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    for (m, path) in [
        (Method::GET, format!("/v1/leases/{id}")),
        (Method::POST, format!("/v1/leases/{id}/exec")),
    ] {
        let (st, _, v) = d
            .call_as(&token, m, &path, Some(json!({"cmd": ["true"]})))
            .await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{path}: {v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains("ended"),
            "{v}"
        );
    }
    // The tenant's other lease is still there.
    let (st, _, _) = d
        .call_as(A, Method::GET, &format!("/v1/leases/{other}"), None)
        .await;
    assert_eq!(st, StatusCode::OK);
}

#[tokio::test]
async fn a_lease_token_survives_a_restart_with_its_lease() {
    let mut d = Daemon::start_with(
        &[pool_yaml("lt", "min_ready: 1\nmax_ready: 1")],
        "  state_dir: {STATE_DIR}\n  tenants:\n    - name: team-a\n      token_env: E2E_TEAM_A\n",
        &[("E2E_TEAM_A", A)],
    )
    .await;
    warmpool_e2e::eventually(std::time::Duration::from_secs(60), "1 ready", || async {
        let (_, _, v) = d.call_as(A, Method::GET, "/v1/pools/lt", None).await;
        (v["counts"]["ready"].as_u64() >= Some(1)).then_some(())
    })
    .await;
    let (id, token) = acquire(&d).await;
    // Past one commit interval, then kill -9 and start again.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    d.kill9();
    d.restart().await;
    let v: Value = warmpool_e2e::eventually(
        std::time::Duration::from_secs(30),
        "the lease back",
        || async {
            let (st, _, v) = d
                .call_as(
                    &token,
                    Method::POST,
                    &format!("/v1/leases/{id}/exec"),
                    Some(json!({"cmd": ["echo", "back"]})),
                )
                .await;
            (st == StatusCode::OK).then_some(v)
        },
    )
    .await;
    assert_eq!(v["stdout"], "back\n");
    // It is still the tenant's lease.
    let (_, _, v) = d.call_as(A, Method::GET, "/v1/leases", None).await;
    assert_eq!(v["leases"][0]["tenant"], "team-a");
    let (st, _, _) = d
        .call_as(&token, Method::DELETE, &format!("/v1/leases/{id}"), None)
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
}
