//! Interactive commands over WebSocket: `GET /v1/leases/{id}/pty` (a terminal) and `GET
//! /v1/leases/{id}/exec/ws` (a command whose stdin streams in, with or without a terminal).
//!
//! The protocol, after the upgrade:
//! - the client's first message is text, a JSON object: `{"cmd": […], "env"?: {…},
//!   "workdir"?: "…", "tty"?: {"rows": R, "cols": C}, "timeout_ms"?: N}`. On the terminal
//!   route `cmd` defaults to `["/bin/sh"]` and `tty` to 24 × 80;
//! - then binary messages are the command's input (its terminal's keystrokes), and text
//!   messages are control: `{"resize": {"rows": R, "cols": C}}`, `{"signal": "INT"}` (a name
//!   or a number), `{"eof": true}` (closes stdin; ignored under a terminal, whose end-of-file
//!   is the Ctrl-D key, byte 4);
//! - the server sends binary messages whose first byte says the stream (1 stdout, 2 stderr)
//!   followed by the bytes, then one text message `{"exit_code", "signal", "timed_out",
//!   "lost", "truncated", "duration_ms"}` (as the buffered exec's; `truncated` is always false:
//!   streamed output is never cut) and a normal close. A failure to start is a text
//!   `{"error": {"code", "message"}}` and a close.
//!
//! The lease is checked before the upgrade (404, 410 and 503 answer as HTTP). A browser page
//! of another origin cannot open one: every request's `Origin` is checked (`web.rs`). Closing
//! the socket kills the command's whole tree; so does the lease's end.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use warmpool_core::{Backend, ExecEvent, ExecInput, ExecRequest, TermSize};

use crate::code::{Code, route_errors};
use crate::core_errors::LOOKUP_CODES;
use crate::{ApiError, Shared};

/// Longest a session may run (its lease's end ends it sooner).
const MAX_SESSION: Duration = Duration::from_secs(24 * 3600);

/// The first message of a session.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Start {
    /// The command, as argv; on the terminal route `["/bin/sh"]` when absent.
    #[serde(default)]
    pub cmd: Vec<String>,
    /// Extra environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory; the lease's, else the container's, when absent.
    pub workdir: Option<String>,
    /// Run under a terminal of this size; on the terminal route 24 × 80 when absent.
    pub tty: Option<Size>,
    /// Kill its tree after this many milliseconds; at most a day, the default.
    pub timeout_ms: Option<u64>,
}

/// A terminal's size.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
pub struct Size {
    /// Rows (1-1000).
    pub rows: u16,
    /// Columns (1-1000).
    pub cols: u16,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Control {
    resize: Option<Size>,
    signal: Option<serde_json::Value>,
    eof: Option<bool>,
}

fn signal_number(v: &serde_json::Value) -> Option<i32> {
    if let Some(n) = v.as_i64() {
        return i32::try_from(n).ok().filter(|n| (1..=64).contains(n));
    }
    let name = v.as_str()?.to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    Some(match name {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "KILL" => 9,
        "USR1" => 10,
        "USR2" => 12,
        "TERM" => 15,
        "CONT" => 18,
        "STOP" => 19,
        "TSTP" => 20,
        "WINCH" => 28,
        _ => return None,
    })
}

fn size(s: Size) -> Option<TermSize> {
    ((1..=1000).contains(&s.rows) && (1..=1000).contains(&s.cols)).then_some(TermSize {
        rows: s.rows,
        cols: s.cols,
    })
}

route_errors!(
    /// What answers as HTTP, before the upgrade: a request that is not a WebSocket upgrade
    /// (400, or 426 when the connection cannot be upgraded), and a lease that cannot serve.
    /// What fails after it is a text message on the socket.
    UpgradeErrors = LOOKUP_CODES,
    [Code::ContainerGone, Code::BadRequest, Code::UpgradeRequired],
);

/// `GET /v1/leases/{id}/pty`: a terminal in the lease's container.
#[utoipa::path(get, path = "/v1/leases/{id}/pty", tag = "leases", operation_id = "pty",
    params(("id" = String, Path, description = "The lease id")),
    responses(
        (status = 101, description = "WebSocket: first message `Start` (cmd defaults to /bin/sh, tty to 24×80); then binary input and text control (`resize`, `signal`, `eof`; `eof` is ignored under a terminal, whose end-of-file is the Ctrl-D byte 4); the server sends stream-tagged binary output (1 stdout, 2 stderr) and a final `{exit_code, signal, timed_out, lost, truncated, duration_ms}` (`truncated` always false: streamed output is never cut)"),
        UpgradeErrors,
    ))]
pub async fn pty<B: Backend>(
    State(s): State<Shared<B>>,
    Path(id): Path<String>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    upgrade(s, id, ws, true).await
}

/// `GET /v1/leases/{id}/exec/ws`: a command whose input streams in.
#[utoipa::path(get, path = "/v1/leases/{id}/exec/ws", tag = "leases", operation_id = "exec_ws",
    params(("id" = String, Path, description = "The lease id")),
    responses(
        (status = 101, description = "WebSocket: as `/pty`, without a terminal unless `tty` is given (then `eof` closes the command's stdin)"),
        UpgradeErrors,
    ))]
pub async fn exec_ws<B: Backend>(
    State(s): State<Shared<B>>,
    Path(id): Path<String>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    upgrade(s, id, ws, false).await
}

async fn upgrade<B: Backend>(
    s: Shared<B>,
    id: String,
    ws: WebSocketUpgrade,
    terminal: bool,
) -> Result<Response, ApiError> {
    // A lease that cannot serve answers as HTTP, before the upgrade.
    let lease = s.manager.lease(&id)?;
    if lease.state == "gone" {
        return Err(warmpool_core::LeaseError::ContainerGone {
            lease: id,
            reason: lease.gone_reason.unwrap_or_default(),
        }
        .into());
    }
    Ok(ws
        .max_message_size(1 << 20)
        .on_upgrade(move |socket| serve(s, id, socket, terminal))
        .into_response())
}

async fn close_with(mut socket: WebSocket, e: ApiError) {
    let (code, message) = (e.code, e.message);
    let _ = socket
        .send(Message::Text(
            json!({"error": {"code": code, "message": message}})
                .to_string()
                .into(),
        ))
        .await;
    let _ = socket.send(Message::Close(None)).await;
}

async fn serve<B: Backend>(s: Shared<B>, id: String, mut socket: WebSocket, terminal: bool) {
    let start = match tokio::time::timeout(Duration::from_secs(30), socket.recv()).await {
        Ok(Some(Ok(Message::Text(t)))) => match serde_json::from_str::<Start>(&t) {
            Ok(st) => st,
            Err(e) => {
                return close_with(
                    socket,
                    ApiError::bad_request(format!("the first message: {e}")),
                )
                .await;
            }
        },
        _ => {
            return close_with(
                socket,
                ApiError::bad_request("the first message must be the JSON start object"),
            )
            .await;
        }
    };
    let cmd = if start.cmd.is_empty() && terminal {
        vec!["/bin/sh".to_string()]
    } else {
        start.cmd
    };
    let tty = match (start.tty, terminal) {
        (Some(t), _) => match size(t) {
            Some(t) => Some(t),
            None => {
                return close_with(
                    socket,
                    ApiError::bad_request("tty: rows and cols are 1-1000"),
                )
                .await;
            }
        },
        (None, true) => Some(TermSize { rows: 24, cols: 80 }),
        (None, false) => None,
    };
    let timeout = start
        .timeout_ms
        .map_or(MAX_SESSION, |ms| Duration::from_millis(ms).min(MAX_SESSION));
    let body = crate::exec::ExecBody {
        cmd,
        stdin: None,
        stdin_b64: None,
        env: start.env,
        workdir: start.workdir,
        timeout_ms: Some(timeout.as_millis() as u64),
        output: crate::exec::Encoding::Base64,
    };
    let mut req: ExecRequest = match crate::exec::exec_request(body, MAX_SESSION) {
        Ok((r, _)) => r,
        Err(e) => return close_with(socket, e).await,
    };
    req.tty = tty;
    req.stdin_stream = true;
    let started = std::time::Instant::now();
    let mut session = match s.manager.exec_session(&id, req).await {
        Ok(sess) => sess,
        Err(e) => return close_with(socket, e.into()).await,
    };
    let input = session.session.input.clone();
    loop {
        tokio::select! {
            ev = session.session.events.recv() => match ev {
                Some(ExecEvent::Stdout(d)) => {
                    if socket.send(Message::Binary(tagged(1, &d))).await.is_err() { break; }
                }
                Some(ExecEvent::Stderr(d)) => {
                    if socket.send(Message::Binary(tagged(2, &d))).await.is_err() { break; }
                }
                Some(ExecEvent::Exit(st)) => {
                    let _ = socket.send(Message::Text(json!({
                        "exit_code": st.exit_code,
                        "signal": st.signal,
                        "timed_out": st.timed_out,
                        "lost": st.lost,
                        // As the buffered exec's answer; streamed output is never cut.
                        "truncated": false,
                        "duration_ms": started.elapsed().as_millis() as u64,
                    }).to_string().into())).await;
                    let _ = socket.send(Message::Close(None)).await;
                    return;
                }
                None => break,
            },
            msg = socket.recv() => match msg {
                Some(Ok(Message::Binary(b))) => {
                    if input.send(ExecInput::Stdin(b)).await.is_err() { break; }
                }
                Some(Ok(Message::Text(t))) => match serde_json::from_str::<Control>(&t) {
                    Ok(c) => {
                        if let Some(r) = c.resize.and_then(size) {
                            let _ = input.send(ExecInput::Resize(r)).await;
                        }
                        if let Some(sig) = c.signal.as_ref().and_then(signal_number) {
                            let _ = input.send(ExecInput::Signal(sig)).await;
                        }
                        if c.eof == Some(true) {
                            let _ = input.send(ExecInput::CloseStdin).await;
                        }
                    }
                    Err(e) => {
                        let _ = socket.send(Message::Text(json!({"error": {"code": "bad_request", "message": format!("a control message: {e}")}}).to_string().into())).await;
                    }
                },
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                // The client went away: dropping the session kills the command's tree.
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
            },
        }
    }
    // Dropped here: the session's input and events, then its place in the lease's fence.
    let _ = input.send(ExecInput::Signal(9)).await;
    drop(session);
}

fn tagged(stream: u8, d: &Bytes) -> Bytes {
    let mut v = Vec::with_capacity(d.len() + 1);
    v.push(stream);
    v.extend_from_slice(d);
    Bytes::from(v)
}

#[cfg(test)]
mod tests {
    use super::signal_number;
    use serde_json::json;

    #[test]
    fn signals_by_name_or_number() {
        assert_eq!(signal_number(&json!("INT")), Some(2));
        assert_eq!(signal_number(&json!("sigterm")), Some(15));
        assert_eq!(signal_number(&json!(9)), Some(9));
        assert_eq!(signal_number(&json!(0)), None);
        assert_eq!(signal_number(&json!("NOPE")), None);
    }
}
