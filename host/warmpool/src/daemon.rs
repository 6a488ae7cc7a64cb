//! The daemon as three stages: [`Daemon::build`] (from a config file to every part running),
//! [`Daemon::run`] (the control supervisor applies requests until one asks to stop) and
//! [`Daemon::drain`] (the bounded shutdown).
//!
//! The listener is bound before anything else starts (a port in use fails before any container
//! exists) and serves at once: plugins compile in the background while their pools' built-ins
//! serve. The audit log subscribes before any task starts, so it holds every event from the
//! first.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use futures_util::FutureExt;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tracing::{error, info, warn};
use warmpool_config::Config;
use warmpool_core::Manager;
use warmpool_core::lease_store::LeaseStore;
use warmpool_docker::DockerBackend;
use warmpool_plugin_host::PluginHost;
use warmpool_store::RedbStore;

use crate::control::supervisor::{Supervisor, Watchers};
use crate::control::{Control, Inbox, Source, signals};
use crate::engines::connect_engines;
use crate::policies::plugin_limits;

/// A running daemon: its manager, the control supervisor and its inbox, and the HTTP server.
pub struct Daemon {
    cfg: Config,
    manager: Arc<Manager<DockerBackend>>,
    supervisor: Supervisor<DockerBackend>,
    /// The control inbox's receiving end; the supervisor reads it while running, and the drain
    /// reads it for a second stop signal.
    rx: mpsc::Receiver<Control>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    /// Whether the supervisor still runs (it may have failed; then a stop signal cancels the
    /// daemon's token directly, and the drain has no inbox to watch).
    supervised: bool,
}

/// Why [`Daemon::run`] returned: what the log says the shutdown was for.
pub type StopReason = &'static str;

impl Daemon {
    /// Load the config at `path` and start everything: engines, store, manager and its tasks,
    /// audit log, signals, file watchers, supervisor, HTTP server. Fails, before any container
    /// exists, on a bad config, a port in use, an unreadable state dir or audit log.
    pub async fn build(path: &Path) -> Result<Self> {
        let path = std::path::absolute(path)?;
        let cfg: Config = warmpool_config::load(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
        let tenants = cfg.tenants().map_err(anyhow::Error::msg)?;
        let history = Arc::new(warmpool_api::History::new(history_interval()?));
        let engines = connect_engines(&cfg)?;
        let plugin_host = PluginHost::new(plugin_limits(&cfg), Some(&cfg.plugins.cache_dir))?;
        let store = open_store(&cfg)?;
        // Bind before starting anything: a port in use should fail before any container exists.
        let listener = TcpListener::bind(cfg.server.listen)
            .await
            .with_context(|| format!("server.listen: cannot bind {}", cfg.server.listen))?;
        // Plugin slots start loading in the background; the built-ins serve meanwhile.
        let pools = cfg
            .pools
            .iter()
            .map(|p| (p.pool.clone(), crate::policies::policies(p, &plugin_host)))
            .collect();
        let manager = Manager::builder(cfg.manager.clone(), engines[0].1.clone())
            .engines(engines)
            .pools(pools)
            .store(store)
            .build();
        start_audit_log(&cfg, &manager).await?;
        manager.start();
        {
            let m = manager.clone();
            plugin_host.on_reload(Arc::new(move |pool: &str, what: String| {
                m.publish("reload", pool, what)
            }));
        }

        let (inbox, rx) = Inbox::new();
        signals::spawn(inbox.clone(), manager.cancel_token(), manager.tracker())
            .context("signal handlers")?;
        let watchers = match Watchers::new(&path, &inbox) {
            Ok(w) => Some(w),
            Err(e) => {
                warn!(error = %e, "cannot watch the config and plugin files; SIGHUP and POST /v1/admin/reload still reload");
                None
            }
        };
        let supervisor = Supervisor::new(
            &path,
            cfg.clone(),
            manager.clone(),
            plugin_host.clone(),
            Box::new(|p: &Path| warmpool_config::load(p)),
            watchers,
        );
        info!(
            listen = %cfg.server.listen,
            host_id = %cfg.server.host_id,
            pools = manager.pool_names().join(","),
            auth = !tenants.is_empty(),
            tenants = tenants.len(),
            "warmpool serving"
        );
        let api = api_config(
            &cfg,
            &listener,
            tenants,
            plugin_host.clone(),
            supervisor.alive(),
            inbox,
            history.clone(),
        )?;
        let app = warmpool_api::router(manager.clone(), api);
        // The pools' history, for the status page's charts: sampled by one of the manager's
        // tasks, so it stops with the daemon's token.
        warmpool_api::history::sampler::spawn(history, &manager);
        let server = tokio::spawn(
            axum::serve(listener, app)
                .with_graceful_shutdown(manager.cancel_token().cancelled_owned())
                .into_future(),
        );
        Ok(Daemon {
            cfg,
            manager,
            supervisor,
            rx,
            server,
            supervised: true,
        })
    }

    /// Serve until a request asks to stop: the supervisor applies every control request in
    /// order. A supervisor that dies (which its own guards should prevent) is reported through
    /// /readyz, and a stop signal then cancels the daemon directly.
    pub async fn run(&mut self) -> StopReason {
        let cancel = self.manager.cancel_token();
        tokio::select! {
            biased;
            why = std::panic::AssertUnwindSafe(self.supervisor.run(&mut self.rx)).catch_unwind() => match why {
                Ok(why) => why,
                Err(_) => {
                    error!("the control supervisor panicked; /readyz now fails, and a stop signal stops the daemon");
                    // Senders now fail, so a stop signal cancels the daemon directly.
                    self.rx.close();
                    self.supervised = false;
                    cancel.cancelled().await;
                    "a stop signal (after the supervisor failed)"
                }
            },
            _ = cancel.cancelled() => "cancelled",
        }
    }

    /// The bounded shutdown: no new work, the manager's drain within `server.shutdown_grace`
    /// (a second stop signal skips the wait, not the clean-up of what is known), then the HTTP
    /// requests still in flight get a moment to answer.
    pub async fn drain(mut self, why: StopReason) {
        let grace = self.cfg.server.shutdown_grace;
        if self.cfg.manager.keep_on_shutdown {
            info!(
                signal = why,
                ?grace,
                "shutting down: no new work; leases and unlent containers stay for the next start"
            );
        } else {
            info!(
                signal = why,
                ?grace,
                "shutting down: no new work, removing every container"
            );
        }
        let supervised = self.supervised;
        let rx = &mut self.rx;
        let second = async {
            if !supervised {
                return std::future::pending().await;
            }
            loop {
                match rx.recv().await {
                    Some(Control::Shutdown(_)) => return,
                    Some(_) => {}
                    None => return std::future::pending().await,
                }
            }
        };
        let report = tokio::select! {
            biased;
            r = self.manager.shutdown(grace) => r,
            _ = second => { warn!("second signal: exiting without waiting"); return; }
        };
        // Requests still in flight had their containers removed; give them a moment to answer.
        match tokio::time::timeout(Duration::from_secs(2), self.server).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => warn!(error = %e, "HTTP server ended with an error"),
            Ok(Err(e)) => warn!(error = %e, "HTTP server task failed"),
            Err(_) => warn!("HTTP requests still open at exit"),
        }
        info!(
            destroyed = report.destroyed,
            swept = report.swept,
            drained = report.drained,
            kept = report.kept,
            "bye"
        );
    }
}

/// How often the pools' history is sampled: every 10 s, or, for tests that cannot wait that
/// long, every `WARMPOOL_HISTORY_INTERVAL_MS` milliseconds (not a setting: an hour of samples
/// at the default is what the status page charts).
fn history_interval() -> Result<Duration> {
    match std::env::var("WARMPOOL_HISTORY_INTERVAL_MS") {
        Err(_) => Ok(warmpool_api::history::DEFAULT_INTERVAL),
        Ok(v) => {
            let ms: u64 = v
                .parse()
                .ok()
                .filter(|ms| (100..=3_600_000).contains(ms))
                .with_context(|| {
                    format!("WARMPOOL_HISTORY_INTERVAL_MS={v:?}: a whole number of milliseconds, 100 to 3600000")
                })?;
            warn!(
                ms,
                "WARMPOOL_HISTORY_INTERVAL_MS: the pools' history is sampled at this interval instead of every 10 s"
            );
            Ok(Duration::from_millis(ms))
        }
    }
}

/// Persisted leases: a crash (even kill -9) keeps every lease older than one commit interval.
fn open_store(cfg: &Config) -> Result<Option<Arc<dyn LeaseStore>>> {
    match &cfg.server.state_dir {
        Some(dir) => {
            let s = tokio::task::block_in_place(|| RedbStore::open(dir))
                .with_context(|| "server.state_dir".to_string())?;
            info!(path = %s.path().display(), commit_interval = ?cfg.manager.commit_interval, "leases persisted");
            Ok(Some(Arc::new(s)))
        }
        None => {
            warn!(
                "server.state_dir is not set: leases are not persisted, and a restart removes every container of this host id"
            );
            Ok(None)
        }
    }
}

/// The audit log subscribes before any task starts, so it holds every event from the first (the
/// startup sweep's removals, the first creates); a file that cannot be opened stops the start
/// before any container exists.
async fn start_audit_log(cfg: &Config, manager: &Arc<Manager<DockerBackend>>) -> Result<()> {
    let Some(file) = &cfg.server.audit_log else {
        return Ok(());
    };
    let f = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .await
        .with_context(|| format!("server.audit_log: cannot open {}", file.display()))?;
    manager.tracker().spawn(crate::audit::audit_log(
        f,
        manager.subscribe(),
        manager.cancel_token(),
    ));
    Ok(())
}

/// What the HTTP API is told: the token, the Host names it answers to, the body limits, the
/// engines as shown, and its hooks into the daemon (plugin statuses, the supervisor's liveness
/// for /readyz, the admin reload through the control inbox, the pools' history).
fn api_config(
    cfg: &Config,
    listener: &TcpListener,
    tenants: Vec<warmpool_config::tenants::ResolvedTenant>,
    plugin_host: Arc<PluginHost>,
    alive: Arc<AtomicBool>,
    inbox: Inbox,
    history: Arc<warmpool_api::History>,
) -> Result<warmpool_api::ApiConfig> {
    // The Host names the API answers to: its own (on the port actually bound) and the config's.
    let allowed_hosts = warmpool_api::AllowedHosts {
        listen_port: Some(listener.local_addr()?.port()),
        names: cfg
            .server
            .allowed_hosts
            .iter()
            .map(|h| (h.name.clone(), h.port))
            .collect(),
        any: cfg.server.allow_any_host,
    };
    if allowed_hosts.any {
        warn!(
            "server.allowed_hosts has \"*\": any Host is served, so a web page on a name pointed at this machine (DNS rebinding) can reach the API"
        );
    }
    // Lease tokens outlive a restart with the leases they open: the key is kept beside them.
    let lease_key = crate::engines::kept_key(
        cfg,
        "lease-token.key",
        warmpool_api::tenancy::lease_token::random_key,
    )?;
    Ok(warmpool_api::ApiConfig {
        tenants: tenants.into_iter().map(tenant_spec).collect(),
        lease_keys: Some(warmpool_api::tenancy::lease_token::LeaseKeys::new(
            lease_key,
        )),
        allowed_hosts,
        max_request_bytes: cfg.server.max_request_bytes,
        max_upload_bytes: cfg.server.max_upload_bytes,
        engine_endpoints: cfg
            .docker
            .engines
            .iter()
            .map(|e| e.redacted_endpoint())
            .collect(),
        plugins: Some(Arc::new(move || plugin_host.statuses())),
        ready_check: Some(Arc::new(move || {
            (!alive.load(Ordering::Acquire)).then(|| "the control supervisor stopped".to_string())
        })),
        admin_reload: Some(Arc::new(move || admin_reload(inbox.clone()).boxed())),
        history: Some(history),
    })
}

/// A configured tenant as the API takes it.
fn tenant_spec(r: warmpool_config::tenants::ResolvedTenant) -> warmpool_api::tenancy::TenantSpec {
    let t = r.tenant;
    warmpool_api::tenancy::TenantSpec {
        name: t.name,
        token: r.token,
        admin: t.admin,
        pools: t.pools,
        quotas: warmpool_api::tenancy::Quotas {
            max_leases: t.quotas.max_leases,
            acquires_per_s: t.quotas.acquires_per_s,
            lease_seconds_per_hour: t.quotas.lease_seconds_per_hour,
        },
    }
}

/// `POST /v1/admin/reload`: a reload request through the control inbox, answered within 60 s.
async fn admin_reload(inbox: Inbox) -> Result<serde_json::Value, String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let sent = inbox
        .send(Control::Reload {
            source: Source::Admin,
            reply: Some(tx),
        })
        .await;
    if !sent {
        return Err("the control supervisor is not running".to_string());
    }
    match tokio::time::timeout(Duration::from_secs(60), rx).await {
        Ok(Ok(Ok(summary))) => Ok(serde_json::to_value(summary).unwrap_or_default()),
        Ok(Ok(Err(problems))) => Err(problems),
        _ => Err("the reload did not answer in time".to_string()),
    }
}
