//! A command as a session through the engine's exec: the `exec: engine` side of streaming
//! and terminals.

use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::CreateExecOptions;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use warmpool_core::{BackendError, ExecEvent, ExecInput, ExecRequest, ExecSession, ExitStatus};

use super::{EXEC_MARK, kill_exec};

/// Start `req` as a session through the engine's exec: its output as it comes, its input
/// (stdin, a terminal's size; a terminal's interrupt as Ctrl-C, and SIGKILL or SIGTERM as the
/// kill of its whole tree, which is all the engine's exec can do) as it is given. A stop,
/// dropping the session, or the timeout kills its tree.
pub async fn session(
    docker: &Docker,
    id: &str,
    req: ExecRequest,
) -> Result<ExecSession, BackendError> {
    if req.cmd.is_empty() || req.cmd[0].is_empty() {
        return Err(BackendError::Invalid("cmd must not be empty".into()));
    }
    let mark = uuid::Uuid::new_v4().simple().to_string();
    let mut env: Vec<String> = req.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    env.push(format!("{EXEC_MARK}={mark}"));
    let tty = req.tty;
    let opts = CreateExecOptions {
        attach_stdin: Some(true),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: Some(tty.is_some()),
        cmd: Some(req.cmd.clone()),
        env: Some(env),
        working_dir: req.workdir.clone(),
        ..Default::default()
    };
    let (exec_id, mut output, mut input) = super::start_attached(docker, id, opts).await?;
    if let Some(t) = tty {
        let _ = docker
            .resize_exec(
                &exec_id,
                bollard::exec::ResizeExecOptions {
                    height: t.rows,
                    width: t.cols,
                },
            )
            .await;
    }
    if let Some(stdin) = &req.stdin {
        input.write_all(stdin).await.ok();
    }
    if !req.stdin_stream && tty.is_none() {
        input.shutdown().await.ok();
    }
    let (tx, events) = tokio::sync::mpsc::channel::<ExecEvent>(16);
    let (inputs_tx, mut inputs) = tokio::sync::mpsc::channel::<ExecInput>(16);
    let (docker, id) = (docker.clone(), id.to_string());
    let timeout = if req.timeout.is_zero() {
        Duration::from_secs(60)
    } else {
        req.timeout
    };
    let stop = req.stop.clone();
    tokio::spawn(async move {
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut inputs_open = true;
        let end = loop {
            tokio::select! {
                chunk = output.next() => match chunk {
                    Some(Ok(LogOutput::StdErr { message })) => {
                        if tx.send(ExecEvent::Stderr(message)).await.is_err() { break Some(false); }
                    }
                    Some(Ok(LogOutput::StdOut { message } | LogOutput::Console { message })) => {
                        if tx.send(ExecEvent::Stdout(message)).await.is_err() { break Some(false); }
                    }
                    Some(Ok(LogOutput::StdIn { .. })) => {}
                    Some(Err(_)) | None => break None,
                },
                i = inputs.recv(), if inputs_open => match i {
                    Some(ExecInput::Stdin(d)) => { input.write_all(&d).await.ok(); }
                    Some(ExecInput::CloseStdin) => { input.shutdown().await.ok(); }
                    Some(ExecInput::Resize(t)) => {
                        let _ = docker.resize_exec(&exec_id, bollard::exec::ResizeExecOptions { height: t.rows, width: t.cols }).await;
                    }
                    Some(ExecInput::Signal(s)) if s == 2 && tty.is_some() => { input.write_all(b"\x03").await.ok(); }
                    Some(ExecInput::Signal(9 | 15)) => break Some(false),
                    Some(ExecInput::Signal(_)) => {}
                    None => inputs_open = false,
                },
                () = &mut deadline => break Some(true),
                () = stop.stopped() => break Some(false),
                () = tx.closed() => break Some(false),
            }
        };
        let status = match end {
            // The stream ended: the command exited.
            None => ExitStatus {
                exit_code: docker
                    .inspect_exec(&exec_id)
                    .await
                    .ok()
                    .and_then(|i| i.exit_code),
                ..ExitStatus::default()
            },
            Some(timed_out) => {
                kill_exec(&docker, &id, &mark).await;
                ExitStatus {
                    signal: Some(9),
                    timed_out,
                    ..ExitStatus::default()
                }
            }
        };
        let _ = tx.send(ExecEvent::Exit(status)).await;
    });
    Ok(ExecSession {
        events,
        input: inputs_tx,
    })
}
