//! The daemon's end of one container's agent channel: the container's attached stdio, through
//! the Engine API. One attach connection per container carries every operation at once; each
//! operation has an id and its own queue of events.
//!
//! A frame that does not verify, or comes out of order, is an attack: the channel dies and
//! reports the container dead, so it is destroyed and never handed out. The same goes for an
//! agent that stops answering pings. A connection that merely drops (the engine restarted, a
//! network cut) is not the agent's fault: operations under way fail as the engine being
//! unreachable, and the next use re-attaches and resumes the session.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::query_parameters::AttachContainerOptionsBuilder;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use warmpool_agent_proto::frame::{Dir, KEY_LEN, NONCE_LEN, Opener, Sealer};
use warmpool_agent_proto::msg::{Ev, FromAgent, Req, ToAgent, decode, encode};
use warmpool_core::BackendError;

/// How long a fresh agent may take to answer its hello (the container's start included).
pub const READY_WITHIN: Duration = Duration::from_secs(15);
/// How often a channel pings its agent, and how long the answer may take.
const PING_EVERY: Duration = Duration::from_secs(15);
const PONG_WITHIN: Duration = Duration::from_secs(10);

/// Where a channel reports that its container must be treated as dead.
pub type DeathReport = Arc<dyn Fn(&str, String) + Send + Sync>;

/// Events of one operation.
pub type OpEvents = mpsc::UnboundedReceiver<Ev>;

/// The state of a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Serving.
    Up,
    /// Its connection dropped: the next use re-attaches.
    Dropped(String),
    /// The agent is dead, silent or forged: the container is dead.
    Dead(String),
}

/// One container's channel.
pub struct Channel {
    /// The container's id.
    pub container: String,
    writer: tokio::sync::Mutex<(Sealer, mpsc::Sender<Vec<u8>>)>,
    ops: Mutex<HashMap<u32, mpsc::UnboundedSender<Ev>>>,
    next: AtomicU32,
    state: Mutex<State>,
    /// Cancelled when the channel stops serving (dropped or dead).
    pub closed: CancellationToken,
    report: DeathReport,
    /// The agent's last word: how the container's command ended, and its last output.
    last_word: Mutex<Option<String>>,
}

impl Channel {
    /// Attach to container `id` (created, not necessarily started) and start a session with
    /// `hello` (a start or a resume, as bytes), under `key` and the session `nonce`. The
    /// caller starts the container if it must, then waits with [`Channel::ready`].
    pub async fn attach(
        docker: &Docker,
        id: &str,
        key: [u8; KEY_LEN],
        nonce: [u8; NONCE_LEN],
        hello: Vec<u8>,
        fresh: bool,
        report: DeathReport,
    ) -> Result<(Arc<Channel>, oneshot::Receiver<bool>), BackendError> {
        let opts = AttachContainerOptionsBuilder::default()
            .stream(true)
            .stdin(true)
            .stdout(true)
            .stderr(true)
            .logs(false)
            .build();
        let attached = docker
            .attach_container(id, Some(opts))
            .await
            .map_err(|e| crate::op_error("attach", id, e))?;
        let (tx, mut frames) = mpsc::channel::<Vec<u8>>(256);
        let ch = Arc::new(Channel {
            container: id.to_string(),
            writer: tokio::sync::Mutex::new((Sealer::new(key, nonce, Dir::ToAgent), tx)),
            ops: Mutex::default(),
            next: AtomicU32::new(1),
            state: Mutex::new(State::Up),
            closed: CancellationToken::new(),
            report,
            last_word: Mutex::default(),
        });
        let mut input = attached.input;
        input
            .write_all(&hello)
            .await
            .map_err(|e| BackendError::Unavailable(format!("agent hello to {id}: {e}")))?;
        input.flush().await.ok();
        // The writer: frames in the order they were sealed. Frames already queued go out in
        // one write (a lease's set-up is a handful of frames sent at once): every write is a
        // wake-up of the engine's attach relay and of the agent, which costs more than the
        // bytes.
        let w = ch.clone();
        tokio::spawn(async move {
            let mut batch = Vec::new();
            loop {
                tokio::select! {
                    f = frames.recv() => match f {
                        Some(f) => {
                            batch.clear();
                            batch.extend_from_slice(&f);
                            while batch.len() < 256 << 10 {
                                match frames.try_recv() {
                                    Ok(more) => batch.extend_from_slice(&more),
                                    Err(_) => break,
                                }
                            }
                            if let Err(e) = input.write_all(&batch).await {
                                w.drop_connection(format!("writing to the agent: {e}"));
                                return;
                            }
                            let _ = input.flush().await;
                        }
                        None => return,
                    },
                    () = w.closed.cancelled() => return,
                }
            }
        });
        let (ready_tx, ready) = oneshot::channel();
        let r = ch.clone();
        let mut output = attached.output;
        tokio::spawn(async move {
            let mut opener = Opener::new(key, nonce, Dir::ToDaemon, fresh);
            let mut ready_tx = Some(ready_tx);
            loop {
                let chunk = tokio::select! {
                    c = output.next() => c,
                    () = r.closed.cancelled() => return,
                };
                let bytes = match chunk {
                    Some(Ok(LogOutput::StdOut { message } | LogOutput::Console { message })) => {
                        message
                    }
                    Some(Ok(LogOutput::StdErr { message })) => {
                        tracing::debug!(container = %r.container, agent = %String::from_utf8_lossy(&message).trim(), "agent stderr");
                        continue;
                    }
                    Some(Ok(LogOutput::StdIn { .. })) => continue,
                    Some(Err(e)) => {
                        r.drop_connection(format!("reading from the agent: {e}"));
                        return;
                    }
                    None => {
                        r.drop_connection("the agent's stream ended".into());
                        return;
                    }
                };
                opener.feed(&bytes);
                loop {
                    match opener.next_frame() {
                        Ok(Some(p)) => match decode::<FromAgent>(&p) {
                            Ok(m) => {
                                if m.id == 0
                                    && let Ev::Ready { version, resumed } = &m.ev
                                {
                                    if *version != warmpool_agent_proto::VERSION {
                                        r.kill(format!(
                                            "the agent speaks protocol {version}, the daemon {}",
                                            warmpool_agent_proto::VERSION
                                        ));
                                        return;
                                    }
                                    if let Some(t) = ready_tx.take() {
                                        let _ = t.send(*resumed);
                                    }
                                    continue;
                                }
                                if m.id == 0
                                    && let Ev::Gone { code, signal, tail } = &m.ev
                                {
                                    let how = match (code, signal) {
                                        (Some(c), _) => format!("exit code {c}"),
                                        (None, Some(s)) => format!("killed by signal {s}"),
                                        (None, None) => "ended".into(),
                                    };
                                    let text = String::from_utf8_lossy(tail);
                                    let lines: Vec<&str> =
                                        text.lines().filter(|l| !l.trim().is_empty()).collect();
                                    let last = lines[lines.len().saturating_sub(5)..].join(" | ");
                                    *r.last_word.lock().unwrap_or_else(|p| p.into_inner()) =
                                        Some(format!("{how}; last output: {last}"));
                                    continue;
                                }
                                r.deliver(m);
                            }
                            Err(e) => {
                                r.kill(format!("the agent sent an undecodable message: {e}"));
                                return;
                            }
                        },
                        Ok(None) => break,
                        Err(e) => {
                            r.kill(format!("the agent's channel: {e}"));
                            return;
                        }
                    }
                }
            }
        });
        let k = ch.clone();
        tokio::spawn(async move { k.keepalive().await });
        Ok((ch, ready))
    }

    /// Wait for the agent's `Ready`: whether the session was resumed.
    pub async fn ready(
        &self,
        ready: oneshot::Receiver<bool>,
        within: Duration,
    ) -> Result<bool, BackendError> {
        match tokio::time::timeout(within, ready).await {
            Ok(Ok(resumed)) => Ok(resumed),
            Ok(Err(_)) => Err(BackendError::Operation {
                stage: "agent",
                container: self.container.clone(),
                message: format!(
                    "the agent did not come up: {}",
                    self.why().unwrap_or_else(|| "its channel closed".into())
                ),
            }),
            Err(_) => Err(BackendError::Operation {
                stage: "agent",
                container: self.container.clone(),
                message: format!("the agent did not come up within {within:?}"),
            }),
        }
    }

    /// The agent's last word, once the container's command ended.
    pub fn last_word(&self) -> Option<String> {
        self.last_word
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether the channel serves; why not when it does not.
    pub fn state(&self) -> State {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn why(&self) -> Option<String> {
        match self.state() {
            State::Up => None,
            State::Dropped(w) | State::Dead(w) => Some(w),
        }
    }

    /// A new operation: its id and its events.
    pub fn open_op(&self) -> (u32, OpEvents) {
        let id = self.next.fetch_add(1, Ordering::Relaxed).max(1);
        let (tx, rx) = mpsc::unbounded_channel();
        self.ops
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, tx);
        (id, rx)
    }

    /// Forget operation `id`.
    pub fn close_op(&self, id: u32) {
        self.ops
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }

    /// Send `req` about operation `id`.
    pub async fn send(&self, id: u32, req: Req) -> Result<(), BackendError> {
        if let Some(why) = self.why() {
            return Err(BackendError::Unavailable(format!("agent channel: {why}")));
        }
        let payload = encode(&ToAgent { id, req });
        let mut w = self.writer.lock().await;
        let frame = w.0.seal(&payload);
        w.1.send(frame)
            .await
            .map_err(|_| BackendError::Unavailable("agent channel closed".into()))
    }

    fn deliver(&self, m: FromAgent) {
        let ops = self.ops.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = ops.get(&m.id) {
            let _ = tx.send(m.ev);
        }
    }

    /// The connection dropped: operations under way end (their queues close), and the next
    /// use re-attaches.
    fn drop_connection(&self, why: String) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if *s == State::Up {
            tracing::info!(container = %self.container, %why, "agent channel dropped");
            *s = State::Dropped(why);
        }
        drop(s);
        self.ops.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.closed.cancel();
    }

    /// The agent is dead, silent or forged: the container is dead.
    pub fn kill(&self, why: String) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(*s, State::Dead(_)) {
            return;
        }
        tracing::warn!(container = %self.container, %why, "agent channel refused; the container is treated as dead");
        *s = State::Dead(why.clone());
        drop(s);
        self.ops.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.closed.cancel();
        (self.report)(&self.container, format!("agent: {why}"));
    }

    /// Ping the agent now and then; one that does not answer in time is silent, so dead.
    async fn keepalive(self: Arc<Self>) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(PING_EVERY) => {}
                () = self.closed.cancelled() => return,
            }
            let (id, mut rx) = self.open_op();
            if self.send(id, Req::Ping).await.is_err() {
                self.close_op(id);
                return;
            }
            let answered = tokio::time::timeout(PONG_WITHIN, rx.recv()).await;
            self.close_op(id);
            match answered {
                Ok(Some(Ev::Pong)) => {}
                Ok(Some(other)) => {
                    self.kill(format!("the agent answered a ping with {other:?}"));
                    return;
                }
                // The queue closed: the connection dropped (handled there).
                Ok(None) => return,
                Err(_) => {
                    self.kill(format!(
                        "the agent did not answer a ping within {PONG_WITHIN:?}"
                    ));
                    return;
                }
            }
        }
    }
}
