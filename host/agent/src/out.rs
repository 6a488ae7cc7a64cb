//! The agent's side of the channel: frames to the daemon on stdout (one writer, each frame
//! written whole), and the flow control of streamed output (credits per operation).

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Condvar, Mutex};

use warmpool_agent_proto::frame::{Dir, KEY_LEN, NONCE_LEN, Sealer};
use warmpool_agent_proto::msg::{Ev, FromAgent, encode};

/// Bytes of streamed output an operation may send before the daemon grants more.
pub const WINDOW: i64 = 1 << 20;
/// Largest chunk of output in one frame.
pub const CHUNK: usize = 64 << 10;

/// Writes sealed frames to the daemon.
pub struct Out {
    inner: Mutex<(Sealer, Box<dyn Write + Send>)>,
}

impl Out {
    /// A writer for the session `nonce`. Frames go to the agent's stdout as one `write` each:
    /// through a duplicate of the descriptor, not `std::io::stdout()`, whose line buffering
    /// would split a binary frame at every newline byte into several writes (each a wake-up of
    /// the engine's relay).
    pub fn new(key: [u8; KEY_LEN], nonce: [u8; NONCE_LEN]) -> Self {
        use std::os::fd::AsFd;
        let w: Box<dyn Write + Send> = match std::io::stdout().as_fd().try_clone_to_owned() {
            Ok(fd) => Box::new(std::fs::File::from(fd)),
            Err(_) => Box::new(std::io::stdout()),
        };
        Self {
            inner: Mutex::new((Sealer::new(key, nonce, Dir::ToDaemon), w)),
        }
    }

    /// Start a new session: frames from now on are sealed under `nonce`, numbered from 0.
    pub fn rekey(&self, key: [u8; KEY_LEN], nonce: [u8; NONCE_LEN]) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.0 = Sealer::new(key, nonce, Dir::ToDaemon);
    }

    /// Send `ev` about operation `id`. A write that fails means the daemon's side is gone;
    /// frames are then lost until a resume (the daemon re-attaches).
    pub fn send(&self, id: u32, ev: Ev) {
        let payload = encode(&FromAgent { id, ev });
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let frame = g.0.seal(&payload);
        let _ = g.1.write_all(&frame);
        let _ = g.1.flush();
    }
}

/// Credits of streamed operations: bytes each may still send.
#[derive(Default)]
pub struct Credits {
    left: Mutex<HashMap<u32, i64>>,
    more: Condvar,
}

impl Credits {
    /// Open a window for operation `id`.
    pub fn open(&self, id: u32) {
        self.lock().insert(id, WINDOW);
    }

    /// Forget operation `id` (and wake whoever waits on it).
    pub fn close(&self, id: u32) {
        self.lock().remove(&id);
        self.more.notify_all();
    }

    /// The daemon granted `n` more bytes to `id`.
    pub fn grant(&self, id: u32, n: u32) {
        if let Some(c) = self.lock().get_mut(&id) {
            *c += i64::from(n);
        }
        self.more.notify_all();
    }

    /// Wait until `id` may send, then take `n` bytes of its window. `false` when the operation
    /// was closed meanwhile.
    pub fn take(&self, id: u32, n: usize) -> bool {
        let mut g = self.lock();
        loop {
            match g.get_mut(&id) {
                None => return false,
                Some(c) if *c > 0 => {
                    *c -= n as i64;
                    return true;
                }
                Some(_) => g = self.more.wait(g).unwrap_or_else(|p| p.into_inner()),
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, i64>> {
        self.left.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What every operation shares: the writer and the credits.
pub struct Shared {
    /// Frames to the daemon.
    pub out: Out,
    /// Flow control of streamed output.
    pub credits: Credits,
}

/// The shared state, as operations hold it.
pub type Ctx = Arc<Shared>;
