//! An in-memory [`Backend`] for tests of the pool logic (run under paused tokio time) and of the
//! API. It keeps the set of live "containers", can be told to fail, to go down, or to kill a
//! container, and records the peak of concurrent creates.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use warmpool_policy::{Probe, ProbeResult};

use crate::backend::{
    Backend, BackendError, BackendEvent, ContainerSpec, Created, ExecOutput, ExecRequest, Existing,
};
use crate::manager::lock;

/// A container spec for tests: the hardened defaults, `sleep infinity` as the command.
pub fn test_spec(image: &str) -> ContainerSpec {
    ContainerSpec {
        image: image.into(),
        cmd: vec!["sleep".into(), "infinity".into()],
        env: BTreeMap::new(),
        workdir: None,
        user: None,
        labels: BTreeMap::new(),
        memory: None,
        nano_cpus: None,
        pids_limit: None,
        network: "none".into(),
        read_only: false,
        init: true,
        cap_drop: vec!["ALL".into()],
        cap_add: vec![],
        no_new_privileges: true,
        setup: vec![],
        setup_timeout: Duration::from_secs(10),
    }
}

#[derive(Debug, Default)]
pub struct FakeState {
    pub live: BTreeSet<String>,
    pub created_total: u64,
    pub destroyed_total: u64,
    pub creating_now: u32,
    pub creating_peak: u32,
    /// Fail this many creates from now on.
    pub fail_next: u32,
    /// Fail every create with this message while set.
    pub fail_always: Option<String>,
    /// The engine is unreachable while set.
    pub down: bool,
    /// Containers whose health probe fails.
    pub sick: BTreeSet<String>,
    pub files: BTreeMap<(String, String), Vec<u8>>,
    /// What the pools' image resolves to; new containers get it.
    pub image_id: String,
    /// What `list` reports of each container (kept beside `live`, which tests inspect).
    pub meta: BTreeMap<String, Existing>,
    next_id: u64,
}

pub struct FakeBackend {
    pub create_latency: Duration,
    state: Mutex<FakeState>,
    events: Mutex<Option<mpsc::Sender<BackendEvent>>>,
}

impl FakeBackend {
    pub fn new(create_latency: Duration) -> Self {
        let state = FakeState {
            image_id: "sha256:one".into(),
            ..Default::default()
        };
        Self {
            create_latency,
            state: Mutex::new(state),
            events: Mutex::default(),
        }
    }

    /// Inspect or change the fake's state.
    pub fn state(&self) -> std::sync::MutexGuard<'_, FakeState> {
        lock(&self.state)
    }

    /// Simulate `docker kill`: the container stops and the engine reports its death.
    pub async fn kill(&self, id: &str) {
        self.state().live.remove(id);
        let tx = lock(&self.events).clone();
        if let Some(tx) = tx {
            let _ = tx
                .send(BackendEvent::Died {
                    id: id.into(),
                    reason: "killed".into(),
                })
                .await;
        }
    }

    fn check_up(&self) -> Result<(), BackendError> {
        if self.state().down {
            return Err(BackendError::Unavailable("fake engine is down".into()));
        }
        Ok(())
    }

    fn check_live(&self, id: &str) -> Result<(), BackendError> {
        self.check_up()?;
        if !self.state().live.contains(id) {
            return Err(BackendError::NotFound {
                what: "container",
                subject: id.into(),
            });
        }
        Ok(())
    }
}

impl Backend for FakeBackend {
    async fn create(&self, pool: &str, spec: &ContainerSpec) -> Result<Created, BackendError> {
        self.check_up()?;
        {
            let mut st = self.state();
            st.creating_now += 1;
            st.creating_peak = st.creating_peak.max(st.creating_now);
        }
        tokio::time::sleep(self.create_latency).await;
        let mut st = self.state();
        st.creating_now -= 1;
        if let Some(msg) = st.fail_always.clone() {
            return Err(BackendError::Create {
                image: spec.image.clone(),
                message: msg,
            });
        }
        if st.fail_next > 0 {
            st.fail_next -= 1;
            return Err(BackendError::Create {
                image: spec.image.clone(),
                message: "injected failure".into(),
            });
        }
        st.next_id += 1;
        let id = format!("fake-{}", st.next_id);
        st.live.insert(id.clone());
        st.created_total += 1;
        let image_id = st.image_id.clone();
        let name = format!("warmpool-{pool}-{}", st.next_id);
        st.meta.insert(
            id.clone(),
            Existing {
                id: id.clone(),
                name,
                pool: Some(pool.into()),
                fingerprint: Some(spec.fingerprint(&image_id)),
                image: spec.image.clone(),
                image_id,
                running: true,
                created: std::time::SystemTime::now(),
            },
        );
        Ok(Created {
            name: format!("warmpool-{pool}-{}", st.next_id),
            id,
            image: spec.image.clone(),
            image_id: st.image_id.clone(),
        })
    }

    async fn destroy(&self, id: &str) -> Result<(), BackendError> {
        self.check_up()?;
        let mut st = self.state();
        if st.live.remove(id) {
            st.destroyed_total += 1;
        }
        Ok(())
    }

    async fn exec(&self, id: &str, req: ExecRequest) -> Result<ExecOutput, BackendError> {
        self.check_live(id)?;
        let failing = req.cmd.first().is_some_and(|c| c == "false");
        Ok(ExecOutput {
            exit_code: Some(if failing { 1 } else { 0 }),
            stdout: req.cmd.join(" "),
            ..Default::default()
        })
    }

    async fn put_file(&self, id: &str, path: &str, data: Vec<u8>) -> Result<(), BackendError> {
        crate::backend::checked_path(path)?;
        self.check_live(id)?;
        self.state().files.insert((id.into(), path.into()), data);
        Ok(())
    }

    async fn get_file(&self, id: &str, path: &str) -> Result<Vec<u8>, BackendError> {
        crate::backend::checked_path(path)?;
        self.check_live(id)?;
        self.state()
            .files
            .get(&(id.to_string(), path.to_string()))
            .cloned()
            .ok_or_else(|| BackendError::NotFound {
                what: "file",
                subject: path.into(),
            })
    }

    async fn probe(&self, id: &str, _probe: &Probe) -> ProbeResult {
        if self.check_live(id).is_err() {
            return ProbeResult::Error {
                reason: "no such container".into(),
            };
        }
        let sick = self.state().sick.contains(id);
        ProbeResult::Exec {
            exit_code: i64::from(sick),
            output: String::new(),
        }
    }

    async fn image_id(&self, _image: &str) -> Result<Option<String>, BackendError> {
        self.check_up()?;
        Ok(Some(self.state().image_id.clone()))
    }

    async fn ping(&self) -> Result<(), BackendError> {
        self.check_up()
    }

    async fn list(&self) -> Result<Vec<Existing>, BackendError> {
        self.check_up()?;
        let st = self.state();
        Ok(st
            .live
            .iter()
            .map(|id| {
                st.meta.get(id).cloned().unwrap_or_else(|| Existing {
                    id: id.clone(),
                    name: id.clone(),
                    pool: None,
                    fingerprint: None,
                    image: String::new(),
                    image_id: String::new(),
                    running: true,
                    created: std::time::SystemTime::now(),
                })
            })
            .collect())
    }

    async fn sweep(&self) -> Result<usize, BackendError> {
        self.check_up()?;
        let mut st = self.state();
        let n = st.live.len();
        st.destroyed_total += n as u64;
        st.live.clear();
        Ok(n)
    }

    async fn watch(&self, tx: mpsc::Sender<BackendEvent>, cancel: CancellationToken) {
        *lock(&self.events) = Some(tx);
        cancel.cancelled().await;
    }
}
