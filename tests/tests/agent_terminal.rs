//! A terminal in a sandbox over WebSocket (issue 22): input, output, resize, signals and the
//! exit, through the agent; and a closed socket kills what the terminal ran.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use warmpool_e2e::{Daemon, eventually, pool_yaml};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(d: &Daemon, lease: &str, start: Value) -> Ws {
    let url = format!(
        "{}/v1/leases/{lease}/pty",
        d.url.replace("http://", "ws://")
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("upgrade");
    ws.send(Message::Text(start.to_string().into()))
        .await
        .unwrap();
    ws
}

/// Read output until `want` shows; what was read. A terminal program's question for the cursor
/// position (busybox's line editor asks, `ESC [6n`) is answered as a terminal would.
async fn until(ws: &mut Ws, want: &str) -> String {
    let mut seen = String::new();
    let r = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(m) = ws.next().await {
            match m.unwrap() {
                Message::Binary(b) => {
                    assert!(b[0] == 1 || b[0] == 2, "a stream tag");
                    let text = String::from_utf8_lossy(&b[1..]).into_owned();
                    if text.contains("\u{1b}[6n") {
                        ws.send(Message::Binary(b"\x1b[1;1R".to_vec().into()))
                            .await
                            .unwrap();
                    }
                    seen.push_str(&text);
                    if seen.contains(want) {
                        return;
                    }
                }
                Message::Text(t) => {
                    panic!("unexpected {t} while waiting for {want:?}; saw {seen:?}")
                }
                _ => {}
            }
        }
    })
    .await;
    assert!(r.is_ok(), "no {want:?} within 10 s; saw {seen:?}");
    seen
}

async fn typed(ws: &mut Ws, s: &str) {
    ws.send(Message::Binary(s.as_bytes().to_vec().into()))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_terminal_takes_keys_resizes_interrupts_and_exits() {
    let d = Daemon::start(&[pool_yaml("t", "min_ready: 1\nmax_ready: 1")]).await;
    d.warm_up("t").await;
    let lease = d
        .acquire(json!({"pool": "t", "env": {"FROM_LEASE": "lease-env"}}))
        .await;
    let l = lease["lease_id"].as_str().unwrap();
    let mut ws = open(
        &d,
        l,
        json!({"cmd": ["sh"], "tty": {"rows": 30, "cols": 100}}),
    )
    .await;
    typed(&mut ws, "stty size; echo $FROM_LEASE\n").await;
    let seen = until(&mut ws, "lease-env").await;
    assert!(
        seen.contains("30 100"),
        "the size asked at the start: {seen:?}"
    );
    ws.send(Message::Text(
        json!({"resize": {"rows": 40, "cols": 120}})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    typed(&mut ws, "stty size\n").await;
    until(&mut ws, "40 120").await;
    // A running job is interrupted, as Ctrl-C would (130: killed by SIGINT), and the shell
    // goes on.
    typed(&mut ws, "sleep 100\n").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    ws.send(Message::Text(json!({"signal": "INT"}).to_string().into()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    typed(&mut ws, "echo after-$?\n").await;
    until(&mut ws, "after-130").await;
    typed(&mut ws, "exit 3\n").await;
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(m) = ws.next().await {
            if let Message::Text(t) = m.unwrap() {
                return serde_json::from_str::<Value>(&t).unwrap();
            }
        }
        panic!("closed without an exit");
    })
    .await
    .expect("an exit within 10 s");
    assert_eq!(end["exit_code"], 3, "{end}");
    // The end says what the buffered exec's answer says (the session ran more than 600 ms).
    assert_eq!(end["truncated"], false, "{end}");
    assert!(
        end["duration_ms"].as_u64().is_some_and(|ms| ms >= 600),
        "{end}"
    );
}

#[tokio::test]
async fn closing_the_socket_kills_what_the_terminal_ran() {
    let d = Daemon::start(&[pool_yaml("tc", "min_ready: 1\nmax_ready: 1")]).await;
    d.warm_up("tc").await;
    let lease = d.acquire(json!({"pool": "tc"})).await;
    let (l, c) = (
        lease["lease_id"].as_str().unwrap(),
        lease["container_id"].as_str().unwrap().to_string(),
    );
    let mut ws = open(&d, l, json!({})).await;
    typed(&mut ws, "sleep 4747\n").await;
    let top = |c: &str| {
        String::from_utf8_lossy(
            &std::process::Command::new("docker")
                .args(["top", c])
                .output()
                .unwrap()
                .stdout,
        )
        .into_owned()
    };
    eventually(Duration::from_secs(10), "the job runs", || async {
        top(&c).contains("sleep 4747").then_some(())
    })
    .await;
    drop(ws);
    eventually(Duration::from_secs(10), "the job is gone", || async {
        (!top(&c).contains("sleep 4747")).then_some(())
    })
    .await;
}
