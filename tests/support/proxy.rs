//! A cuttable proxy socket in front of the engine, for the engine-outage test.

use std::path::PathBuf;

/// A Unix-socket proxy in front of the Docker engine that a test can cut and restore, to
/// simulate an engine outage without stopping the real engine other tests use.
pub struct EngineProxy {
    pub path: PathBuf,
    cut: tokio::sync::watch::Sender<bool>,
    _dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl EngineProxy {
    pub async fn start() -> EngineProxy {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("docker.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let (cut, rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if *rx.borrow() {
                    continue; // cut: drop the connection at once
                }
                let mut rx = rx.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) =
                        tokio::net::UnixStream::connect("/var/run/docker.sock").await
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = rx.wait_for(|c| *c) => {} // a cut also breaks open streams (events)
                    }
                });
            }
        });
        EngineProxy {
            path,
            cut,
            _dir: dir,
            task,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    pub fn restore(&self) {
        self.cut.send_replace(false);
    }
}

impl Drop for EngineProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
