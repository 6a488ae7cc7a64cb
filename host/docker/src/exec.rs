//! Commands in a container: exec with stdin, env, workdir, a deadline and capped output; the
//! killing of a timed-out or abandoned exec's process tree; and the health probes (exec, HTTP
//! GET, TCP connect) run on a health check's behalf.

use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use warmpool_core::policy_logic::{Probe, ProbeResult};
use warmpool_core::{BackendError, ExecOutput, ExecRequest};

use crate::op_error;

mod session;
pub use session::session;

/// Output kept per stream, bounded by the request's limit.
#[derive(Default)]
struct Capped {
    buf: Vec<u8>,
    truncated: bool,
}

impl Capped {
    fn push(&mut self, bytes: &[u8], limit: usize) {
        let room = limit.saturating_sub(self.buf.len());
        if bytes.len() > room {
            self.truncated = true;
        }
        self.buf.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
}

/// The environment variable that marks every process an exec starts (children inherit it), so
/// that a timed-out or abandoned exec's whole process tree can be found and killed.
pub const EXEC_MARK: &str = "WARMPOOL_EXEC";

/// Kills every process of an exec: those carrying its mark, and every process in their
/// sessions (an exec is a session leader, and a background child stays in its session even
/// after its parent exits). PID 1 and the killer itself are spared. It reads `/proc` with shell
/// builtins; the `tr | grep` pair runs in the killer's own session.
const KILL_EXEC: &str = r#"m="WARMPOOL_EXEC=$1"; me=$$; sids=" "
for d in /proc/[0-9]*; do
  tr '\0' '\n' < "$d/environ" 2>/dev/null | grep -qxF "$m" || continue
  read -r s < "$d/stat" 2>/dev/null || continue
  s=${s##*) }; set -- $s; sids="$sids$4 "
done
[ "$sids" = " " ] && exit 0
for d in /proc/[0-9]*; do
  p=${d#/proc/}; [ "$p" = 1 ] && continue; [ "$p" = "$me" ] && continue
  read -r s < "$d/stat" 2>/dev/null || continue
  s=${s##*) }; set -- $s
  case "$sids" in *" $4 "*) kill -9 "$p" 2>/dev/null;; esac
done
exit 0"#;

/// Run `req` in container `id` and collect its output.
///
/// On timeout the answer says `timed_out` and has no exit code, and the command's whole process
/// tree is killed before it returns; so too when `req.stop` fires, which answers an error once
/// the tree is dead. If the future is dropped first, the tree is killed in the background.
pub async fn run(docker: &Docker, id: &str, req: &ExecRequest) -> Result<ExecOutput, BackendError> {
    if req.cmd.is_empty() || req.cmd[0].is_empty() {
        return Err(BackendError::Invalid("cmd must not be empty".into()));
    }
    if req.stop.is_stopped() {
        return Err(stopped(id));
    }
    let mark = uuid::Uuid::new_v4().simple().to_string();
    let mut guard = KillOnDrop {
        docker: docker.clone(),
        id: id.to_string(),
        mark: mark.clone(),
        armed: true,
    };
    let out = exec(docker, id, req, Some(&mark)).await;
    guard.armed = false;
    let out = out?;
    if out.timed_out {
        kill_exec(docker, id, &mark).await;
    }
    if req.stop.is_stopped() {
        // Its lease ended, or its client went away: its processes are dead now, and only
        // now does the caller leave the lease's fence.
        return Err(stopped(id));
    }
    Ok(out)
}

fn stopped(id: &str) -> BackendError {
    BackendError::Operation {
        stage: "exec",
        container: id.into(),
        message: "stopped: its lease ended or its client went away".into(),
    }
}

/// An attached exec's output and input, as the engine streams them.
type Attached = (
    String,
    std::pin::Pin<
        Box<dyn futures_util::Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>,
    >,
    std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
);

/// Create the exec `opts` describes in container `id` and start it attached (a terminal when
/// `opts.tty` says so): its id, output and input. The one way both the buffered exec and the
/// session start one.
async fn start_attached(
    docker: &Docker,
    id: &str,
    opts: CreateExecOptions<String>,
) -> Result<Attached, BackendError> {
    let tty = opts.tty.unwrap_or(false);
    let exec = docker
        .create_exec(id, opts)
        .await
        .map_err(|e| op_error("exec create", id, e))?;
    let start = StartExecOptions {
        detach: false,
        tty,
        output_capacity: None,
    };
    match docker
        .start_exec(&exec.id, Some(start))
        .await
        .map_err(|e| op_error("exec start", id, e))?
    {
        StartExecResults::Attached { output, input } => Ok((exec.id, output, input)),
        StartExecResults::Detached => Err(BackendError::Operation {
            stage: "exec start",
            container: id.into(),
            message: "engine detached the exec".into(),
        }),
    }
}

/// Create, start and collect one exec; `mark` tags its processes (see [`EXEC_MARK`]).
async fn exec(
    docker: &Docker,
    id: &str,
    req: &ExecRequest,
    mark: Option<&str>,
) -> Result<ExecOutput, BackendError> {
    let started = Instant::now();
    let mut env: Vec<String> = req.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if let Some(m) = mark {
        env.push(format!("{EXEC_MARK}={m}"));
    }
    let opts = CreateExecOptions {
        attach_stdin: Some(req.stdin.is_some()),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: Some(false),
        cmd: Some(req.cmd.clone()),
        env: (!env.is_empty()).then_some(env),
        working_dir: req.workdir.clone(),
        ..Default::default()
    };
    let (exec_id, mut output, mut input) = start_attached(docker, id, opts).await?;
    let limit = if req.output_limit == 0 {
        1 << 20
    } else {
        req.output_limit
    };
    let (mut out, mut err) = (Capped::default(), Capped::default());
    let collect = async {
        if let Some(stdin) = &req.stdin {
            // Write stdin, then close it so the command sees EOF.
            input.write_all(stdin).await.ok();
            input.shutdown().await.ok();
        }
        drop(input);
        while let Some(chunk) = output.next().await {
            match chunk {
                Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                    out.push(&message, limit)
                }
                Ok(LogOutput::StdErr { message }) => err.push(&message, limit),
                Ok(LogOutput::StdIn { .. }) => {}
                Err(e) => return Err(op_error("exec output", id, e)),
            }
        }
        Ok(())
    };
    let timeout = if req.timeout.is_zero() {
        Duration::from_secs(60)
    } else {
        req.timeout
    };
    // A stop (the lease ending) ends the wait like a timeout: the caller kills the tree. The
    // create and start above are never cut, so a started process is always known.
    let timed_out = tokio::select! {
        r = tokio::time::timeout(timeout, collect) => match r {
            Ok(r) => {
                r?;
                false
            }
            Err(_) => true,
        },
        () = req.stop.stopped() => true,
    };
    let exit_code = if timed_out {
        None
    } else {
        docker
            .inspect_exec(&exec_id)
            .await
            .map_err(|e| op_error("exec inspect", id, e))?
            .exit_code
    };
    Ok(ExecOutput {
        exit_code,
        truncated: out.truncated || err.truncated,
        stdout: out.buf,
        stderr: err.buf,
        timed_out,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

/// Run a command of the daemon's own, unmarked (so it never triggers a killer itself), with
/// the request's limits, and collect its output as it is: the caller judges a timeout or a
/// truncation.
pub async fn run_script(
    docker: &Docker,
    id: &str,
    req: &ExecRequest,
) -> Result<ExecOutput, BackendError> {
    exec(docker, id, req, None).await
}

/// Run a shell script of the daemon's own (the killer, the scrub), unmarked, so it never
/// triggers a killer itself. `args` become `$1…`.
pub async fn script(
    docker: &Docker,
    id: &str,
    script: &str,
    args: &[&str],
    timeout: Duration,
) -> Result<ExecOutput, BackendError> {
    let mut cmd = vec![
        "/bin/sh".to_string(),
        "-c".into(),
        script.into(),
        "warmpool".into(),
    ];
    cmd.extend(args.iter().map(|a| a.to_string()));
    let req = ExecRequest {
        cmd,
        timeout,
        output_limit: 64 << 10,
        ..Default::default()
    };
    exec(docker, id, &req, None).await
}

/// Kill every process of the exec marked `mark` (see [`KILL_EXEC`]). Best effort: an image
/// without `/bin/sh` cannot run the killer, and the processes then live until the lease ends
/// (when the container is removed or scrubbed).
pub async fn kill_exec(docker: &Docker, id: &str, mark: &str) {
    match script(docker, id, KILL_EXEC, &[mark], Duration::from_secs(10)).await {
        Ok(o) if o.exit_code == Some(0) => {}
        Ok(o) => {
            tracing::debug!(container = %id, stderr = %String::from_utf8_lossy(&o.stderr), "killing an exec's processes did not finish")
        }
        Err(e) => tracing::debug!(container = %id, error = %e, "cannot kill an exec's processes"),
    }
}

/// Kills an exec's process tree if the exec's future is dropped before it finished.
struct KillOnDrop {
    docker: Docker,
    id: String,
    mark: String,
    armed: bool,
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let (docker, id, mark) = (self.docker.clone(), self.id.clone(), self.mark.clone());
            rt.spawn(async move { kill_exec(&docker, &id, &mark).await });
        }
    }
}

/// What an exec probe's run says of the container's health.
pub fn judge(r: Result<ExecOutput, BackendError>) -> ProbeResult {
    match r {
        Ok(o) if o.timed_out => ProbeResult::TimedOut,
        Ok(o) => ProbeResult::Exec {
            exit_code: o.exit_code.unwrap_or(-1),
            output: String::from_utf8_lossy(&[o.stdout, o.stderr].concat()).into_owned(),
        },
        Err(e) => ProbeResult::Error {
            reason: e.to_string(),
        },
    }
}

/// Run one health probe.
pub async fn probe(docker: &Docker, id: &str, probe: &Probe) -> ProbeResult {
    match probe {
        Probe::Exec { argv, timeout_ms } => {
            let req = ExecRequest {
                cmd: argv.clone(),
                timeout: Duration::from_millis(*timeout_ms),
                output_limit: 2048,
                ..Default::default()
            };
            judge(run(docker, id, &req).await)
        }
        Probe::Tcp { port, timeout_ms } => match address(docker, id).await {
            Err(reason) => ProbeResult::Error { reason },
            Ok(ip) => match tokio::time::timeout(
                Duration::from_millis(*timeout_ms),
                TcpStream::connect((ip.as_str(), *port)),
            )
            .await
            {
                Ok(Ok(_)) => ProbeResult::TcpConnected,
                Ok(Err(e)) => ProbeResult::Error {
                    reason: format!("connect {ip}:{port}: {e}"),
                },
                Err(_) => ProbeResult::TimedOut,
            },
        },
        Probe::Http {
            port,
            path,
            timeout_ms,
        } => match address(docker, id).await {
            Err(reason) => ProbeResult::Error { reason },
            Ok(ip) => {
                let get = http_get_status(&ip, *port, path);
                match tokio::time::timeout(Duration::from_millis(*timeout_ms), get).await {
                    Ok(Ok(status)) => ProbeResult::Http { status },
                    Ok(Err(reason)) => ProbeResult::Error { reason },
                    Err(_) => ProbeResult::TimedOut,
                }
            }
        },
    }
}

/// The container's IP address on its first network, if it has one.
async fn address(docker: &Docker, id: &str) -> Result<String, String> {
    let c = docker
        .inspect_container(id, None)
        .await
        .map_err(|e| e.to_string())?;
    let nets = c
        .network_settings
        .and_then(|n| n.networks)
        .unwrap_or_default();
    nets.values()
        .filter_map(|n| n.ip_address.clone())
        .find(|ip| !ip.is_empty())
        .ok_or_else(|| "container has no IP address (is its network `none`?)".to_string())
}

/// A minimal HTTP/1.0 GET returning the status code: a probe needs nothing more, and the
/// daemon carries no HTTP client for it.
async fn http_get_status(ip: &str, port: u16, path: &str) -> Result<u16, String> {
    let mut s = TcpStream::connect((ip, port))
        .await
        .map_err(|e| format!("connect {ip}:{port}: {e}"))?;
    let req =
        format!("GET {path} HTTP/1.0\r\nHost: {ip}:{port}\r\nUser-Agent: warmpool-probe\r\n\r\n");
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut head = vec![0u8; 64];
    let n = s.read(&mut head).await.map_err(|e| e.to_string())?;
    let line = String::from_utf8_lossy(&head[..n]);
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| {
            format!(
                "not an HTTP answer: {:?}",
                line.lines().next().unwrap_or("")
            )
        })
}
