//! Commands in a container: exec with stdin, env, workdir, a deadline and capped output; and the
//! health probes (exec, HTTP GET, TCP connect) run on a health check's behalf.

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

/// Run `req` in container `id` and collect its output.
///
/// On timeout the answer says `timed_out` and has no exit code. The process itself keeps
/// running in the container until the lease ends: the Engine API has no call to kill an exec.
pub async fn run(docker: &Docker, id: &str, req: &ExecRequest) -> Result<ExecOutput, BackendError> {
    if req.cmd.is_empty() || req.cmd[0].is_empty() {
        return Err(BackendError::Invalid("cmd must not be empty".into()));
    }
    let started = Instant::now();
    let opts = CreateExecOptions {
        attach_stdin: Some(req.stdin.is_some()),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: Some(false),
        cmd: Some(req.cmd.clone()),
        env: (!req.env.is_empty())
            .then(|| req.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        working_dir: req.workdir.clone(),
        ..Default::default()
    };
    let exec = docker
        .create_exec(id, opts)
        .await
        .map_err(|e| op_error("exec create", id, e))?;
    let start = StartExecOptions {
        detach: false,
        tty: false,
        output_capacity: None,
    };
    let StartExecResults::Attached {
        mut output,
        mut input,
    } = docker
        .start_exec(&exec.id, Some(start))
        .await
        .map_err(|e| op_error("exec start", id, e))?
    else {
        return Err(BackendError::Operation {
            stage: "exec start",
            container: id.into(),
            message: "engine detached the exec".into(),
        });
    };
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
    let timed_out = match tokio::time::timeout(timeout, collect).await {
        Ok(r) => {
            r?;
            false
        }
        Err(_) => true,
    };
    let exit_code = if timed_out {
        None
    } else {
        docker
            .inspect_exec(&exec.id)
            .await
            .map_err(|e| op_error("exec inspect", id, e))?
            .exit_code
    };
    Ok(ExecOutput {
        exit_code,
        truncated: out.truncated || err.truncated,
        stdout: String::from_utf8_lossy(&out.buf).into_owned(),
        stderr: String::from_utf8_lossy(&err.buf).into_owned(),
        timed_out,
        duration_ms: started.elapsed().as_millis() as u64,
    })
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
            match run(docker, id, &req).await {
                Ok(o) if o.timed_out => ProbeResult::TimedOut,
                Ok(o) => ProbeResult::Exec {
                    exit_code: o.exit_code.unwrap_or(-1),
                    output: o.stdout + &o.stderr,
                },
                Err(e) => ProbeResult::Error {
                    reason: e.to_string(),
                },
            }
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
