//! The interactive client commands: `warmpool shell` (a terminal over the `/pty` WebSocket)
//! and `warmpool exec --stream` (output as it comes, over `/exec/stream`).
//!
//! The shell puts the local terminal in raw mode, so every key (Ctrl-C included) goes to the
//! remote terminal, whose line discipline does what a local one would; a guard puts the local
//! terminal back on every way out (the remote end, a lost connection, an error, a signal, a
//! panic that unwinds).

use std::io::{IsTerminal, Read, Write};
use std::os::fd::AsFd;
use std::process::ExitCode;

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use rustix::termios::{self, OptionalActions, Termios};
use serde_json::{Value, json};
use tokio::signal::unix::{SignalKind, signal};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::client::Conn;

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::FAILURE
}

/// The exit code for a command's end, as a shell gives it: its code, 128 + the signal that
/// killed it, 124 when it timed out (as `timeout(1)`), 255 when the end is unknown.
fn exit_of(end: &Value) -> (u8, Option<String>) {
    if end["timed_out"].as_bool() == Some(true) {
        return (124, Some("the command timed out".into()));
    }
    if let Some(c) = end["exit_code"].as_i64() {
        return (c.clamp(0, 255) as u8, None);
    }
    if let Some(s) = end["signal"].as_i64() {
        return ((128 + s).clamp(0, 255) as u8, None);
    }
    if end["lost"].as_bool() == Some(true) {
        return (255, Some("the connection to the container was lost".into()));
    }
    (
        255,
        Some(format!("the command ended without a code: {end}")),
    )
}

/// `warmpool exec --stream`: the command's stdout and stderr written as they come; exits with
/// the command's code (see [`exit_of`]).
pub async fn exec_stream(
    c: &Conn,
    lease: &str,
    cmd: Vec<String>,
    timeout_ms: Option<u64>,
) -> ExitCode {
    let body = json!({ "cmd": cmd, "timeout_ms": timeout_ms, "output": "base64" });
    let resp = match c
        .req(Method::POST, &format!("/v1/leases/{lease}/exec/stream"))
        .json(&body)
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => return fail(format!("cannot reach the daemon at {}: {e}", c.url())),
    };
    if !resp.status().is_success() {
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        return fail(format!(
            "{status}: {}: {}",
            v["error"]["code"].as_str().unwrap_or("error"),
            v["error"]["message"].as_str().unwrap_or("")
        ));
    }
    let mut resp = resp;
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let chunk = match resp.chunk().await {
            Ok(Some(c)) => c,
            Ok(None) => return fail("the stream ended before the command's end"),
            Err(e) => return fail(format!("the stream broke: {e}")),
        };
        buf.extend_from_slice(&chunk);
        while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=nl).collect();
            let v: Value = match serde_json::from_slice(&line) {
                Ok(v) => v,
                Err(e) => return fail(format!("a line of the stream is not JSON: {e}")),
            };
            let b64 = |k: &str| {
                v[k].as_str()
                    .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
            };
            if let Some(d) = b64("stdout_b64") {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(&d);
                let _ = out.flush();
            } else if let Some(d) = b64("stderr_b64") {
                let mut err = std::io::stderr().lock();
                let _ = err.write_all(&d);
                let _ = err.flush();
            } else if v.get("exit_code").is_some() || v.get("timed_out").is_some() {
                let (code, msg) = exit_of(&v);
                if let Some(m) = msg {
                    eprintln!("error: {m}");
                }
                return ExitCode::from(code);
            }
        }
    }
}

/// The local terminal in raw mode while this lives; put back as it was when dropped.
struct RawMode {
    saved: Termios,
}

impl RawMode {
    fn enter() -> std::io::Result<Self> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd())?;
        let mut raw = saved.clone();
        raw.make_raw();
        termios::tcsetattr(stdin.as_fd(), OptionalActions::Flush, &raw)?;
        Ok(Self { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(
            std::io::stdin().as_fd(),
            OptionalActions::Flush,
            &self.saved,
        );
    }
}

/// The local terminal's size (of stdout, else stdin), when either is a terminal.
fn local_size() -> Option<(u16, u16)> {
    let from = |fd: std::os::fd::BorrowedFd<'_>| {
        termios::tcgetwinsize(fd)
            .ok()
            .filter(|w| w.ws_row > 0 && w.ws_col > 0)
            .map(|w| (w.ws_row.min(1000), w.ws_col.min(1000)))
    };
    from(std::io::stdout().as_fd()).or_else(|| from(std::io::stdin().as_fd()))
}

fn ws_url(c: &Conn, path: &str) -> String {
    let base = c.url().trim_end_matches('/');
    let base = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        base.to_string()
    };
    format!("{base}{path}")
}

/// `warmpool shell`: a terminal in the lease's container (`cmd`, else the daemon's
/// `/bin/sh`). With a local terminal: raw mode, its size at the start and on every SIGWINCH.
/// Without one (input piped in), the end of the input is sent as Ctrl-D, the terminal's
/// end-of-file. Exits with the remote command's code (see [`exit_of`]).
pub async fn shell(c: &Conn, lease: &str, cmd: Vec<String>) -> ExitCode {
    let mut req = match ws_url(c, &format!("/v1/leases/{lease}/pty")).into_client_request() {
        Ok(r) => r,
        Err(e) => return fail(format!("bad daemon URL {}: {e}", c.url())),
    };
    if let Some(t) = c.token() {
        match HeaderValue::from_str(&format!("Bearer {t}")) {
            Ok(v) => {
                req.headers_mut().insert("authorization", v);
            }
            Err(_) => return fail("the token is not a valid header value"),
        }
    }
    let (mut ws, _) = match tokio_tungstenite::connect_async(req).await {
        Ok(r) => r,
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let body = resp
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            return fail(format!(
                "{}: {}: {}",
                resp.status(),
                v["error"]["code"].as_str().unwrap_or("error"),
                v["error"]["message"].as_str().unwrap_or(&body)
            ));
        }
        Err(e) => return fail(format!("cannot open a terminal at {}: {e}", c.url())),
    };
    let interactive = std::io::stdin().is_terminal();
    let (rows, cols) = local_size().unwrap_or((24, 80));
    let mut start = json!({ "tty": { "rows": rows, "cols": cols } });
    if !cmd.is_empty() {
        start["cmd"] = json!(cmd);
    }
    if let Ok(term) = std::env::var("TERM") {
        start["env"] = json!({ "TERM": term });
    }
    if let Err(e) = ws.send(Message::Text(start.to_string().into())).await {
        return fail(format!("cannot start the terminal: {e}"));
    }

    // Raw mode from here; the guard restores the terminal however this function ends.
    let raw = if interactive {
        match RawMode::enter() {
            Ok(r) => Some(r),
            Err(e) => return fail(format!("cannot put the terminal in raw mode: {e}")),
        }
    } else {
        None
    };
    let outcome = session(&mut ws, interactive).await;
    drop(raw);
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(msg) => fail(msg),
    }
}

/// Keys from a thread of its own: a blocking read of a terminal cannot be cancelled, and the
/// process must be able to end while one waits. `None` at the end of the input.
fn stdin_keys() -> tokio::sync::mpsc::Receiver<Option<Vec<u8>>> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = [0u8; 4096];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let _ = tx.blocking_send(None);
                    return;
                }
                Ok(n) => {
                    if tx.blocking_send(Some(buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn session(ws: &mut Ws, interactive: bool) -> Result<u8, String> {
    let sig = |k: SignalKind| signal(k).map_err(|e| format!("cannot watch signals: {e}"));
    let mut winch = sig(SignalKind::window_change())?;
    let mut term = sig(SignalKind::terminate())?;
    let mut hup = sig(SignalKind::hangup())?;
    // Without raw mode (input piped in) a Ctrl-C of the local terminal still ends the local
    // client; with it, Ctrl-C is a key like any other.
    let mut int = sig(SignalKind::interrupt())?;
    let mut keys = stdin_keys();
    let mut keys_open = true;
    let mut out = std::io::stdout();
    loop {
        tokio::select! {
            msg = ws.next() => match msg {
                Some(Ok(Message::Binary(b))) => {
                    if b.len() > 1 {
                        // Under a terminal everything comes as stdout (tag 1); a tag 2 is
                        // written to stderr all the same.
                        let w: &mut dyn Write = if b[0] == 2 { &mut std::io::stderr() } else { &mut out };
                        let _ = w.write_all(&b[1..]);
                        let _ = w.flush();
                    }
                }
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                    if let Some(e) = v.get("error") {
                        return Err(format!(
                            "{}: {}",
                            e["code"].as_str().unwrap_or("error"),
                            e["message"].as_str().unwrap_or("")
                        ));
                    }
                    let (code, msg) = exit_of(&v);
                    if let Some(m) = msg {
                        return Err(m);
                    }
                    let _ = ws.close(None).await;
                    return Ok(code);
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(format!("the connection broke: {e}")),
                None => return Err("the daemon closed the terminal without an exit".into()),
            },
            k = keys.recv(), if keys_open => match k {
                Some(Some(bytes)) => {
                    if let Err(e) = ws.send(Message::Binary(bytes.into())).await {
                        return Err(format!("the connection broke: {e}"));
                    }
                }
                // The end of piped input: a terminal's end-of-file is Ctrl-D (an `eof`
                // message does nothing on a terminal).
                Some(None) | None => {
                    keys_open = false;
                    if !interactive {
                        let _ = ws.send(Message::Binary(vec![4u8].into())).await;
                    }
                }
            },
            _ = winch.recv() => {
                if let Some((rows, cols)) = local_size() {
                    let m = json!({ "resize": { "rows": rows, "cols": cols } });
                    let _ = ws.send(Message::Text(m.to_string().into())).await;
                }
            }
            _ = term.recv() => return Ok(128 + 15),
            _ = hup.recv() => return Ok(128 + 1),
            _ = int.recv() => return Ok(128 + 2),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::exit_of;
    use serde_json::json;

    #[test]
    fn exit_codes_as_a_shell_gives_them() {
        assert_eq!(exit_of(&json!({"exit_code": 3})).0, 3);
        assert_eq!(exit_of(&json!({"exit_code": 300})).0, 255);
        assert_eq!(exit_of(&json!({"exit_code": null, "signal": 9})).0, 137);
        assert_eq!(
            exit_of(&json!({"exit_code": null, "timed_out": true})).0,
            124
        );
        assert_eq!(exit_of(&json!({"exit_code": null, "lost": true})).0, 255);
    }
}
