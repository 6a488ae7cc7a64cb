//! Sessions, lease set-up and tar on the fake engine: enough for the API's routes and the
//! simulation to drive them.
//!
//! A session understands `echo WORDS…` (prints them), `cat` (echoes its input until its
//! stdin closes), `sleep MS`, and `env NAME` (prints the variable from the lease's set-up or
//! the request); anything else prints its argv and exits 0.

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use warmpool_core::{
    BackendError, ByteStream, ExecEvent, ExecInput, ExecRequest, ExecSession, ExitStatus,
    LeaseSetup,
};

use crate::FakeBackend;
use crate::gate::CALL_DEADLINE;

fn exit(code: i64) -> ExecEvent {
    ExecEvent::Exit(ExitStatus {
        exit_code: Some(code),
        ..ExitStatus::default()
    })
}

impl FakeBackend {
    pub(crate) async fn session(
        &self,
        id: &str,
        req: ExecRequest,
    ) -> Result<ExecSession, BackendError> {
        self.gate("exec session", CALL_DEADLINE).await?;
        self.fail(|f| f.fail_exec, "exec", id)?;
        self.running(id)?;
        self.agent(id, "exec session", CALL_DEADLINE).await?;
        if req.cmd.is_empty() || req.cmd[0].is_empty() {
            return Err(BackendError::Invalid("cmd must not be empty".into()));
        }
        let (tx, events) = mpsc::channel(16);
        let (input, mut inputs) = mpsc::channel::<ExecInput>(16);
        let env_of = |name: &str| {
            req.env.get(name).cloned().or_else(|| {
                self.state()
                    .containers
                    .get(id)
                    .and_then(|c| c.lease_env.get(name).cloned())
            })
        };
        let args: Vec<String> = req.cmd.clone();
        let printed = match args.first().map(String::as_str) {
            Some("echo") => Some(format!("{}\n", args[1..].join(" "))),
            Some("env") => Some(format!(
                "{}\n",
                args.get(1).and_then(|n| env_of(n)).unwrap_or_default()
            )),
            Some("cat" | "sleep") => None,
            _ => Some(format!("{}\n", args.join(" "))),
        };
        let stop = req.stop.clone();
        let stdin = req.stdin.clone();
        tokio::spawn(async move {
            if let Some(text) = printed {
                let _ = tx.send(ExecEvent::Stdout(Bytes::from(text))).await;
                let _ = tx.send(exit(0)).await;
                return;
            }
            if args[0] == "sleep" {
                let ms: u64 = args.get(1).and_then(|m| m.parse().ok()).unwrap_or(0);
                let t = if req.timeout.is_zero() {
                    Duration::from_secs(60)
                } else {
                    req.timeout
                };
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(ms).min(t)) => {
                        let timed_out = Duration::from_millis(ms) > t;
                        let _ = tx.send(ExecEvent::Exit(ExitStatus {
                            exit_code: (!timed_out).then_some(0),
                            timed_out,
                            ..ExitStatus::default()
                        })).await;
                    }
                    () = stop.stopped() => {
                        let _ = tx.send(ExecEvent::Exit(ExitStatus { signal: Some(9), ..ExitStatus::default() })).await;
                    }
                }
                return;
            }
            // cat: the input back, until it ends.
            if let Some(s) = stdin {
                let _ = tx.send(ExecEvent::Stdout(Bytes::from(s))).await;
            }
            loop {
                tokio::select! {
                    i = inputs.recv() => match i {
                        Some(ExecInput::Stdin(d)) => {
                            if tx.send(ExecEvent::Stdout(d)).await.is_err() {
                                return;
                            }
                        }
                        Some(ExecInput::Signal(s)) => {
                            let _ = tx.send(ExecEvent::Exit(ExitStatus { signal: Some(s), ..ExitStatus::default() })).await;
                            return;
                        }
                        Some(ExecInput::Resize(_)) => {}
                        Some(ExecInput::CloseStdin) | None => {
                            let _ = tx.send(exit(0)).await;
                            return;
                        }
                    },
                    () = stop.stopped() => {
                        let _ = tx.send(ExecEvent::Exit(ExitStatus { signal: Some(9), ..ExitStatus::default() })).await;
                        return;
                    }
                }
            }
        });
        self.answer(Ok(ExecSession { events, input })).await
    }

    pub(crate) async fn setup_lease(
        &self,
        id: &str,
        setup: &LeaseSetup,
    ) -> Result<(), BackendError> {
        self.gate("lease setup", CALL_DEADLINE).await?;
        self.fail(|f| f.fail_exec, "lease setup", id)?;
        self.running(id)?;
        self.agent(id, "lease setup", CALL_DEADLINE).await?;
        {
            let mut w = self.state();
            if let Some(c) = w.containers.get_mut(id) {
                c.lease_env = setup.env.clone();
                c.lease_env.extend(
                    setup
                        .secrets
                        .iter()
                        .map(|(k, v)| (k.clone(), v.expose().to_string())),
                );
            }
        }
        for f in &setup.files {
            self.land(id, &f.path, f.content.to_vec());
        }
        self.answer(Ok(())).await
    }

    pub(crate) async fn tar_in(
        &self,
        id: &str,
        dir: &str,
        mut body: ByteStream,
    ) -> Result<(), BackendError> {
        self.gate("tar upload", CALL_DEADLINE).await?;
        self.running(id)?;
        self.agent(id, "tar upload", CALL_DEADLINE).await?;
        let mut data = Vec::new();
        while let Some(c) = body.next().await {
            data.extend_from_slice(&c?);
        }
        if let Some(t) = self.in_transit() {
            tokio::time::sleep(t).await;
        }
        self.land(id, &format!("{}/.tar", dir.trim_end_matches('/')), data);
        self.answer(Ok(())).await
    }

    pub(crate) async fn tar_out(&self, id: &str, path: &str) -> Result<ByteStream, BackendError> {
        self.gate("tar download", CALL_DEADLINE).await?;
        self.running(id)?;
        self.agent(id, "tar download", CALL_DEADLINE).await?;
        let data: Vec<u8> = {
            let w = self.state();
            let c = w.containers.get(id).expect("checked running");
            c.files
                .iter()
                .chain(c.tmpfs.iter())
                .filter(|(p, _)| crate::gate::under(p, path))
                .flat_map(|(_, d)| d.clone())
                .collect()
        };
        let s: ByteStream = Box::pin(futures_util::stream::once(std::future::ready(Ok(
            Bytes::from(data),
        ))));
        self.answer(Ok(s)).await
    }
}
