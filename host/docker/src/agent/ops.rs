//! Operations over an agent's channel: exec (buffered, and as a session for streaming and
//! terminals), files and directories, the lease's environment, and the readings the reuse
//! scrub compares.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use warmpool_agent_proto::msg::{Ev, ExecSpec, Inspect, Inspected, LeaseEnv, Req, Winsize};
use warmpool_core::{
    BackendError, ByteStream, ExecEvent, ExecInput, ExecOutput, ExecRequest, ExecSession,
    ExitStatus, FileBody, LeaseSetup,
};

use super::channel::{Channel, OpEvents};

/// Largest chunk sent in one frame.
const CHUNK: usize = 64 << 10;
/// How long a killed exec may take to report its end.
const KILL_WITHIN: Duration = Duration::from_secs(15);
/// How long a request that is not an exec may take to be answered.
const ANSWER_WITHIN: Duration = Duration::from_secs(120);

fn failed(ch: &Channel, stage: &'static str, message: String) -> BackendError {
    BackendError::Operation {
        stage,
        container: ch.container.clone(),
        message,
    }
}

/// The queue of an operation ended before its answer: the connection dropped.
fn dropped(ch: &Channel) -> BackendError {
    BackendError::Unavailable(format!(
        "the agent channel to {} dropped during the call",
        ch.container
    ))
}

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

async fn send_bytes(
    ch: &Channel,
    id: u32,
    data: &[u8],
    wrap: fn(Vec<u8>) -> Req,
) -> Result<(), BackendError> {
    for c in data.chunks(CHUNK) {
        ch.send(id, wrap(c.to_vec())).await?;
    }
    Ok(())
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
                Some(Ev::Started) => {}
                Some(Ev::Exit {
                    code,
                    signal,
                    truncated,
                    timed_out,
                }) => {
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
    // Wait for the start (or the failure to start) before answering.
    loop {
        match rx.recv().await {
            Some(Ev::Started) => break,
            Some(Ev::Failed(why)) => {
                ch.close_op(id);
                return Err(failed(&ch, "exec", why));
            }
            // A command that could not start says so on stderr, then exits 127: the session
            // reports that.
            Some(ev @ (Ev::Stderr(_) | Ev::Exit { .. })) => {
                let (tx, events) = mpsc::channel(4);
                let (input, _) = mpsc::channel(1);
                let _ = tx.try_send(convert(ev).expect("an event"));
                if let Ok(Some(last)) = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                    .await
                    .map(|e| e.and_then(convert))
                {
                    let _ = tx.try_send(last);
                }
                ch.close_op(id);
                return Ok(ExecSession { events, input });
            }
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

/// Wait for the answer to a request that answers `Done` or `Failed`.
async fn done(ch: &Channel, rx: &mut OpEvents, stage: &'static str) -> Result<(), BackendError> {
    match tokio::time::timeout(ANSWER_WITHIN, rx.recv()).await {
        Ok(Some(Ev::Done)) => Ok(()),
        Ok(Some(Ev::Failed(why))) => Err(BackendError::Invalid(why)),
        Ok(Some(other)) => Err(failed(ch, stage, format!("unexpected answer {other:?}"))),
        Ok(None) => Err(dropped(ch)),
        Err(_) => Err(BackendError::Unavailable(format!(
            "the agent did not answer {stage} within {ANSWER_WITHIN:?}"
        ))),
    }
}

/// Write `file` at `path`, as the container's user.
pub async fn put_file(ch: &Channel, path: &str, mut file: FileBody) -> Result<(), BackendError> {
    warmpool_core::checked_path(path)?;
    let (id, mut rx) = ch.open_op();
    let r = async {
        ch.send(
            id,
            Req::WriteFile {
                path: path.to_string(),
                mode: None,
                len: file.len,
            },
        )
        .await?;
        while let Some(chunk) = file.body.next().await {
            match chunk {
                Ok(c) => send_bytes(ch, id, &c, Req::Data).await?,
                Err(e) => {
                    let _ = ch.send(id, Req::Kill).await;
                    return Err(e);
                }
            }
        }
        ch.send(id, Req::End).await?;
        done(ch, &mut rx, "write file").await
    }
    .await;
    ch.close_op(id);
    r
}

/// Unpack the tar stream `body` into directory `dir`.
pub async fn put_tar(ch: &Channel, dir: &str, mut body: ByteStream) -> Result<(), BackendError> {
    let (id, mut rx) = ch.open_op();
    let r = async {
        ch.send(
            id,
            Req::PutTar {
                dir: dir.to_string(),
            },
        )
        .await?;
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(c) => send_bytes(ch, id, &c, Req::Data).await?,
                Err(e) => {
                    let _ = ch.send(id, Req::Kill).await;
                    return Err(e);
                }
            }
        }
        ch.send(id, Req::End).await?;
        done(ch, &mut rx, "unpack").await
    }
    .await;
    ch.close_op(id);
    r
}

/// A stream of an operation's `Data` until `End`, granting credit as it is read.
fn data_stream(ch: std::sync::Arc<Channel>, id: u32, rx: OpEvents) -> ByteStream {
    Box::pin(futures_util::stream::unfold(
        (ch, rx, false),
        move |(ch, mut rx, done)| async move {
            if done {
                ch.close_op(id);
                return None;
            }
            match rx.recv().await {
                Some(Ev::Data(d)) => {
                    let _ = ch.send(id, Req::Credit(d.len() as u32)).await;
                    Some((Ok(Bytes::from(d)), (ch, rx, false)))
                }
                Some(Ev::End) => {
                    ch.close_op(id);
                    None
                }
                Some(Ev::Failed(why)) => Some((Err(BackendError::Invalid(why)), (ch, rx, true))),
                Some(other) => Some((
                    Err(BackendError::Invalid(format!(
                        "unexpected answer {other:?}"
                    ))),
                    (ch, rx, true),
                )),
                None => Some((Err(dropped(&ch)), (ch, rx, true))),
            }
        },
    ))
}

/// Read the regular file at `path`.
pub async fn get_file(ch: std::sync::Arc<Channel>, path: &str) -> Result<FileBody, BackendError> {
    warmpool_core::checked_path(path)?;
    let (id, mut rx) = ch.open_op();
    if let Err(e) = ch.send(id, Req::ReadFile(path.to_string())).await {
        ch.close_op(id);
        return Err(e);
    }
    match tokio::time::timeout(ANSWER_WITHIN, rx.recv()).await {
        Ok(Some(Ev::Size(len))) => Ok(FileBody {
            len,
            body: data_stream(ch, id, rx),
        }),
        Ok(Some(Ev::Failed(why))) => {
            ch.close_op(id);
            Err(if why.contains("No such file") {
                BackendError::NotFound {
                    what: "file",
                    subject: path.into(),
                }
            } else {
                BackendError::Invalid(why)
            })
        }
        Ok(other) => {
            ch.close_op(id);
            Err(other.map_or_else(
                || dropped(&ch),
                |o| failed(&ch, "read file", format!("unexpected answer {o:?}")),
            ))
        }
        Err(_) => {
            ch.close_op(id);
            Err(BackendError::Unavailable(
                "the agent did not start the read in time".into(),
            ))
        }
    }
}

/// `path` (a directory or a file) as a tar stream.
pub async fn get_tar(ch: std::sync::Arc<Channel>, path: &str) -> Result<ByteStream, BackendError> {
    let (id, rx) = ch.open_op();
    if let Err(e) = ch.send(id, Req::GetTar(path.to_string())).await {
        ch.close_op(id);
        return Err(e);
    }
    Ok(data_stream(ch, id, rx))
}

/// The lease's environment and files, applied before the lease is handed out: the requests
/// go out together, then every answer is awaited.
pub async fn lease_setup(ch: &Channel, setup: &LeaseSetup) -> Result<(), BackendError> {
    let (id, mut rx) = ch.open_op();
    let env = LeaseEnv {
        env: setup
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        secrets: setup
            .secrets
            .iter()
            .map(|(k, v)| (k.clone(), v.expose().to_string()))
            .collect(),
        workdir: setup.workdir.clone(),
    };
    let r = async {
        ch.send(id, Req::SetLease(env)).await?;
        let mut writes = Vec::new();
        for f in &setup.files {
            let (fid, frx) = ch.open_op();
            writes.push((fid, frx));
            ch.send(
                fid,
                Req::WriteFile {
                    path: f.path.clone(),
                    mode: f.mode,
                    len: f.content.len() as u64,
                },
            )
            .await?;
            send_bytes(ch, fid, &f.content, Req::Data).await?;
            ch.send(fid, Req::End).await?;
        }
        done(ch, &mut rx, "set the lease's environment").await?;
        for (fid, mut frx) in writes {
            let r = done(ch, &mut frx, "write a lease file").await;
            ch.close_op(fid);
            r?;
        }
        Ok(())
    }
    .await;
    ch.close_op(id);
    r
}

/// Ask the agent to record its baseline of processes; the container's clock in ticks.
pub async fn baseline(ch: &Channel) -> Result<u64, BackendError> {
    let (id, mut rx) = ch.open_op();
    let r = async {
        ch.send(id, Req::Baseline).await?;
        let ticks = match tokio::time::timeout(ANSWER_WITHIN, rx.recv()).await {
            Ok(Some(Ev::Ticks(t))) => t,
            Ok(other) => {
                return Err(failed(
                    ch,
                    "baseline",
                    format!("unexpected answer {other:?}"),
                ));
            }
            Err(_) => return Err(BackendError::Unavailable("no baseline answer".into())),
        };
        done(ch, &mut rx, "baseline").await?;
        Ok(ticks)
    }
    .await;
    ch.close_op(id);
    r
}

/// Kill everything but the baseline, forget the lease, empty `emptied` (mode, path).
pub async fn scrub(ch: &Channel, emptied: Vec<(u32, String)>) -> Result<(), BackendError> {
    let (id, mut rx) = ch.open_op();
    let r = async {
        ch.send(id, Req::Scrub { emptied }).await?;
        done(ch, &mut rx, "scrub")
            .await
            .map_err(|e| failed(ch, "scrub", e.to_string()))
    }
    .await;
    ch.close_op(id);
    r
}

/// Read `items` inside the container.
pub async fn inspect(
    ch: &Channel,
    items: Vec<Inspect>,
) -> Result<Vec<Result<Vec<String>, String>>, BackendError> {
    let n = items.len();
    let (id, mut rx) = ch.open_op();
    let r = async {
        ch.send(id, Req::Inspect(items)).await?;
        match tokio::time::timeout(ANSWER_WITHIN, rx.recv()).await {
            Ok(Some(Ev::Inspected(v))) if v.len() == n => {
                Ok(v.into_iter().map(|Inspected::Lines(l)| l).collect())
            }
            Ok(other) => Err(failed(
                ch,
                "inspect",
                format!("unexpected answer {other:?}"),
            )),
            Err(_) => Err(BackendError::Unavailable("no inspect answer".into())),
        }
    }
    .await;
    ch.close_op(id);
    r
}
