//! A Unix-socket proxy in front of the engine that holds one request back: the first request
//! after [`DelayProxy::arm`] whose head matches reaches the engine only after a delay, as a
//! busy engine or network would deliver it. Tests of races between a call under way and what
//! the daemon does meanwhile (a release, a scrub) use it to make the race happen every run.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Default)]
struct Armed {
    /// Method, a fragment of the path, and the delay.
    next: Mutex<Option<(String, String, Duration)>>,
    fired: AtomicBool,
}

impl Armed {
    /// Whether `chunk` starts a request the armed rule matches; disarms when it does.
    fn take(&self, chunk: &[u8]) -> Option<Duration> {
        let mut next = self.next.lock().unwrap();
        let (method, fragment, delay) = next.as_ref()?;
        let text = String::from_utf8_lossy(chunk);
        let hit = text
            .split("\r\n")
            .any(|l| l.starts_with(&format!("{method} ")) && l.contains(fragment.as_str()));
        if !hit {
            return None;
        }
        let d = *delay;
        *next = None;
        self.fired.store(true, Ordering::Release);
        Some(d)
    }
}

/// See the module's docs.
pub struct DelayProxy {
    pub path: PathBuf,
    armed: Arc<Armed>,
    _dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl DelayProxy {
    pub async fn start() -> DelayProxy {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let armed = Arc::new(Armed::default());
        let a = armed.clone();
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let a = a.clone();
                tokio::spawn(async move {
                    let Ok(outbound) =
                        tokio::net::UnixStream::connect("/var/run/docker.sock").await
                    else {
                        return;
                    };
                    let (mut in_r, mut in_w) = inbound.into_split();
                    let (mut out_r, mut out_w) = outbound.into_split();
                    let back = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut out_r, &mut in_w).await;
                    });
                    let mut buf = vec![0u8; 64 << 10];
                    loop {
                        let n = match in_r.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if let Some(d) = a.take(&buf[..n]) {
                            tokio::time::sleep(d).await;
                        }
                        if out_w.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = out_w.shutdown().await;
                    let _ = back.await;
                });
            }
        });
        DelayProxy {
            path,
            armed,
            _dir: dir,
            task,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    /// Hold back the next request whose request line has `method` and contains `fragment`
    /// (e.g. `PUT`, `/archive`) for `delay`.
    pub fn arm(&self, method: &str, fragment: &str, delay: Duration) {
        self.armed.fired.store(false, Ordering::Release);
        *self.armed.next.lock().unwrap() = Some((method.into(), fragment.into(), delay));
    }

    /// Whether the armed request has arrived (and is being held).
    pub fn fired(&self) -> bool {
        self.armed.fired.load(Ordering::Acquire)
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
