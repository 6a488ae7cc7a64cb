//! Exec over the channel: buffered (output collected, capped) and as a session (output as it
//! comes, under flow control; input, a terminal's size and signals as they are given).

use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;
use warmpool_agent_proto::msg::{Ev, ExecSpec, Req, Winsize};
use warmpool_core::{
    BackendError, ExecEvent, ExecInput, ExecOutput, ExecRequest, ExecSession, ExitStatus,
};

use super::{CHUNK, dropped, failed, send_bytes};
use crate::agent::channel::Channel;

/// How long a killed exec may take to report its end.
const KILL_WITHIN: Duration = Duration::from_secs(15);

fn spec(req: &ExecRequest, stdin: bool, limit: u64) -> ExecSpec {
    ExecSpec {
        argv: req.cmd.clone(),
        env: req
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        workdir: req.workdir.clone(),
        stdin,
        tty: req.tty.map(|t| Winsize {
            rows: t.rows,
            cols: t.cols,
        }),
        timeout_ms: if req.timeout.is_zero() {
            60_000
        } else {
            req.timeout.as_millis() as u64
        },
        output_limit: limit,
    }
}

/// Run `req` and collect its output (the buffered exec). A stop kills the command's tree and
/// answers an error once the agent reported its end.
pub async fn exec(ch: &Channel, req: &ExecRequest) -> Result<ExecOutput, BackendError> {
    if req.cmd.is_empty() || req.cmd[0].is_empty() {
        return Err(BackendError::Invalid("cmd must not be empty".into()));
    }
    if req.stop.is_stopped() {
        return Err(stopped(ch));
    }
    let started = Instant::now();
    let limit = if req.output_limit == 0 {
        1 << 20
    } else {
        req.output_limit
    } as u64;
    let (id, mut rx) = ch.open_op();
    let r = async {
        ch.send(id, Req::Exec(spec(req, req.stdin.is_some(), limit)))
            .await?;
        if let Some(stdin) = &req.stdin {
            send_bytes(ch, id, stdin, Req::Stdin).await?;
            ch.send(id, Req::CloseStdin).await?;
        }
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut killed = false;
        loop {
            let ev = tokio::select! {
                ev = rx.recv() => ev,
                () = req.stop.stopped(), if !killed => {
                    killed = true;
                    ch.send(id, Req::Kill).await?;
                    continue;
                }
            };
            match ev {
                Some(Ev::Stdout(d)) => out.extend_from_slice(&d),
                Some(Ev::Stderr(d)) => err.extend_from_slice(&d),
                Some(Ev::Started) => {
                    tracing::trace!(container = %ch.container, us = started.elapsed().as_micros() as u64, "exec started");
                }
                Some(Ev::Exit {
                    code,
                    signal,
                    truncated,
                    timed_out,
                }) => {
                    tracing::trace!(container = %ch.container, us = started.elapsed().as_micros() as u64, "exec ended");
                    if killed {
                        return Err(stopped(ch));
                    }
                    return Ok(ExecOutput {
                        exit_code: if timed_out {
                            None
                        } else {
                            code.map(i64::from).or(signal.map(|s| 128 + i64::from(s)))
                        },
                        stdout: out,
                        stderr: err,
                        timed_out,
                        truncated,
                        duration_ms: started.elapsed().as_millis() as u64,
                    });
                }
                Some(Ev::Failed(why)) => return Err(failed(ch, "exec", why)),
                Some(other) => {
                    return Err(failed(ch, "exec", format!("unexpected answer {other:?}")));
                }
                None => return Err(dropped(ch)),
            }
        }
    }
    .await;
    ch.close_op(id);
    r
}

fn stopped(ch: &Channel) -> BackendError {
    BackendError::Operation {
        stage: "exec",
        container: ch.container.clone(),
        message: "stopped: its lease ended or its client went away".into(),
    }
}

/// Start `req` as a session: its events as they come (under flow control: the agent sends
/// more only as the events are taken), its input as it is given. Dropping the session's input
/// and events kills the command's tree.
pub async fn session(
    ch: std::sync::Arc<Channel>,
    req: ExecRequest,
) -> Result<ExecSession, BackendError> {
    if req.cmd.is_empty() || req.cmd[0].is_empty() {
        return Err(BackendError::Invalid("cmd must not be empty".into()));
    }
    let (id, mut rx) = ch.open_op();
    if let Err(e) = ch
        .send(
            id,
            Req::Exec(spec(
                &req,
                req.stdin.is_some() || req.stdin_stream || req.tty.is_some(),
                0,
            )),
        )
        .await
    {
        ch.close_op(id);
        return Err(e);
    }
    // Wait for the start (or the failure to start) before answering. The agent's output pumps
    // run beside the supervisor that reports the start, so output (and, for a quick command,
    // its end) may come before `Started`: every event is kept, in order, whatever came first.
    let mut early: Vec<Ev> = Vec::new();
    loop {
        match rx.recv().await {
            Some(Ev::Started) => break,
            Some(Ev::Failed(why)) => {
                ch.close_op(id);
                return Err(failed(&ch, "exec", why));
            }
            // It ended (or could not start: stderr says why, then exit 127) before its start
            // was reported: the session is what came, then its end.
            Some(ev @ Ev::Exit { .. }) => {
                early.push(ev);
                let (tx, events) = mpsc::channel(early.len());
                let (input, _) = mpsc::channel(1);
                for e in early.into_iter().filter_map(convert) {
                    let _ = tx.try_send(e);
                }
                ch.close_op(id);
                return Ok(ExecSession { events, input });
            }
            Some(ev @ (Ev::Stdout(_) | Ev::Stderr(_))) => early.push(ev),
            Some(_) => {}
            None => {
                ch.close_op(id);
                return Err(dropped(&ch));
            }
        }
    }
    let (tx, events) = mpsc::channel::<ExecEvent>(16);
    let (input, mut inputs) = mpsc::channel::<ExecInput>(16);
    if let Some(stdin) = &req.stdin {
        for c in stdin.chunks(CHUNK) {
            let _ = ch.send(id, Req::Stdin(c.to_vec())).await;
        }
        if !req.stdin_stream && req.tty.is_none() {
            let _ = ch.send(id, Req::CloseStdin).await;
        }
    }
    let stop = req.stop.clone();
    tokio::spawn(async move {
        let mut ended = false;
        let mut inputs_open = true;
        // What came before the start, first, under the same flow control.
        for ev in early {
            let n = match &ev {
                Ev::Stdout(d) | Ev::Stderr(d) => d.len(),
                _ => 0,
            };
            let Some(e) = convert(ev) else { continue };
            if tx.send(e).await.is_err() {
                break;
            }
            let _ = ch.send(id, Req::Credit(n as u32)).await;
        }
        while !ended {
            tokio::select! {
                ev = rx.recv() => match ev {
                    Some(ev) => {
                        let n = match &ev {
                            Ev::Stdout(d) | Ev::Stderr(d) => d.len(),
                            _ => 0,
                        };
                        ended = matches!(ev, Ev::Exit { .. } | Ev::Failed(_));
                        let Some(e) = convert(ev) else { continue };
                        // Taken by the consumer: the agent may send as much again.
                        if tx.send(e).await.is_err() {
                            let _ = ch.send(id, Req::Kill).await;
                            // Drain to the end so the operation closes.
                            while let Some(ev) = rx.recv().await {
                                if matches!(ev, Ev::Exit { .. }) {
                                    break;
                                }
                            }
                            break;
                        }
                        if n > 0 {
                            let _ = ch.send(id, Req::Credit(n as u32)).await;
                        }
                    }
                    None => {
                        let _ = tx.send(ExecEvent::Exit(ExitStatus {
                            exit_code: None,
                            signal: None,
                            timed_out: false,
                            lost: true,
                        })).await;
                        break;
                    }
                },
                i = inputs.recv(), if inputs_open => match i {
                    Some(ExecInput::Stdin(d)) => { let _ = send_bytes(&ch, id, &d, Req::Stdin).await; }
                    Some(ExecInput::CloseStdin) => { let _ = ch.send(id, Req::CloseStdin).await; }
                    Some(ExecInput::Resize(t)) => {
                        let _ = ch.send(id, Req::Resize(Winsize { rows: t.rows, cols: t.cols })).await;
                    }
                    Some(ExecInput::Signal(s)) => { let _ = ch.send(id, Req::Signal(s)).await; }
                    None => inputs_open = false,
                },
                // The consumer went away: kill the tree, wait for its end.
                () = tx.closed() => {
                    let _ = ch.send(id, Req::Kill).await;
                    let _ = tokio::time::timeout(KILL_WITHIN, async {
                        while let Some(ev) = rx.recv().await {
                            if matches!(ev, Ev::Exit { .. }) { break; }
                        }
                    }).await;
                    break;
                }
                () = stop.stopped() => {
                    let _ = ch.send(id, Req::Kill).await;
                    // The Exit that follows ends the loop.
                    let _ = tokio::time::timeout(KILL_WITHIN, async {
                        while let Some(ev) = rx.recv().await {
                            if let Some(e) = convert(ev) {
                                let last = matches!(e, ExecEvent::Exit(_));
                                let _ = tx.send(e).await;
                                if last { break; }
                            }
                        }
                    }).await;
                    break;
                }
            }
        }
        ch.close_op(id);
    });
    Ok(ExecSession { events, input })
}

fn convert(ev: Ev) -> Option<ExecEvent> {
    match ev {
        Ev::Stdout(d) => Some(ExecEvent::Stdout(Bytes::from(d))),
        Ev::Stderr(d) => Some(ExecEvent::Stderr(Bytes::from(d))),
        Ev::Exit {
            code,
            signal,
            timed_out,
            ..
        } => Some(ExecEvent::Exit(ExitStatus {
            exit_code: if timed_out { None } else { code.map(i64::from) },
            signal,
            timed_out,
            lost: false,
        })),
        Ev::Failed(why) => Some(ExecEvent::Stderr(Bytes::from(format!("{why}\n")))),
        _ => None,
    }
}
