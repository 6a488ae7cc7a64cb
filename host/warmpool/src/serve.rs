//! `serve`: from a config file to a running daemon, and back down to nothing.
//!
//! The listener is bound before anything else starts (a port in use fails before any container
//! exists) and serves at once: plugins compile in the background while their pools' built-ins
//! serve. Then one supervisor applies every control request (see [`crate::control`]) until a
//! signal asks for a shutdown.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result};
use futures_util::FutureExt;
use tracing::{error, info, warn};
use tracing_subscriber::EnvFilter;
use warmpool_config::Config;
use warmpool_core::lease_store::LeaseStore;
use warmpool_core::{EngineSpec, Manager};
use warmpool_docker::{DockerBackend, TlsPaths};
use warmpool_plugin_host::{Limits, PluginHost};
use warmpool_store::RedbStore;

use crate::control::supervisor::{Supervisor, Watchers};
use crate::control::{Control, Inbox, Source, signals};

/// `warmpool serve`: run the daemon on this config until SIGTERM or SIGINT.
pub async fn run(path: &Path) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colours only on a terminal: a log file or journald gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match serve(path).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The plugin limits a config asks for.
pub fn plugin_limits(cfg: &Config) -> Limits {
    let ps = &cfg.plugins;
    Limits {
        deadline: ps.deadline,
        load_deadline: ps.load_deadline,
        max_memory: ps.max_memory,
        bench_after: ps.bench_after,
        ..Limits::default()
    }
}

/// The agents' master key: kept in `server.state_dir` (`agent.key`, mode 0600), so that a
/// restarted daemon reaches the agents of the containers it finds; a fresh one for a daemon
/// that keeps no state (a restart removes every container then anyway).
fn agent_master(cfg: &Config) -> Result<[u8; 32]> {
    let Some(dir) = &cfg.server.state_dir else {
        return Ok(warmpool_docker::agent::Agents::random_master());
    };
    let path = dir.join("agent.key");
    match std::fs::read(&path) {
        Ok(b) if b.len() == 32 => Ok(b.try_into().expect("32 bytes")),
        Ok(_) => anyhow::bail!("{}: not a 32-byte key", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::create_dir_all(dir).with_context(|| format!("{}", dir.display()))?;
            let key = warmpool_docker::agent::Agents::random_master();
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("{}", path.display()))?;
            f.write_all(&key)?;
            f.sync_all()?;
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("{}", path.display())),
    }
}

/// The agent binary the daemon places into containers: the one built into it, or, for tests
/// of a deliberately broken agent, the file `WARMPOOL_AGENT_BIN` names.
fn agent_binary() -> Result<Option<Vec<u8>>> {
    match std::env::var_os("WARMPOOL_AGENT_BIN") {
        Some(p) => {
            warn!(path = ?p, "WARMPOOL_AGENT_BIN: placing this agent instead of the built-in one");
            Ok(Some(
                std::fs::read(&p).with_context(|| format!("WARMPOOL_AGENT_BIN {p:?}"))?,
            ))
        }
        None => Ok(None),
    }
}

/// One Docker client per configured engine, with the core's view of it.
pub fn connect_engines(cfg: &Config) -> Result<Vec<(EngineSpec, Arc<DockerBackend>)>> {
    let master = agent_master(cfg)?;
    let agent = agent_binary()?;
    let engines: Vec<(EngineSpec, Arc<DockerBackend>)> = cfg
        .docker
        .engines
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let tls = e.tls.as_ref().map(|t| TlsPaths {
                ca: t.ca.clone(),
                cert: t.cert.clone(),
                key: t.key.clone(),
            });
            let backend = DockerBackend::connect_with(
                e.endpoint.as_deref(),
                tls.as_ref(),
                &cfg.server.host_id,
            )
            .with_context(|| format!("docker.engines[{i}] ({})", e.name))?
            .with_agents(master, agent.clone());
            let spec = EngineSpec {
                name: e.name.clone(),
                labels: e.labels.clone(),
                max_containers: e.max_containers,
            };
            Ok((spec, Arc::new(backend)))
        })
        .collect::<Result<_>>()?;
    // Each engine may copy a missing image from any other.
    for (spec, b) in &engines {
        let peers = engines
            .iter()
            .filter(|(s, _)| s.name != spec.name)
            .map(|(s, p)| (s.name.clone(), p.client().clone()))
            .collect();
        b.set_peers(peers);
    }
    Ok(engines)
}

async fn serve(path: &Path) -> Result<()> {
    let path = std::path::absolute(path)?;
    let cfg: Config = warmpool_config::load(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let token = cfg.auth_token().map_err(anyhow::Error::msg)?;
    let engines = connect_engines(&cfg)?;
    let plugin_host = PluginHost::new(plugin_limits(&cfg), Some(&cfg.plugins.cache_dir))?;
    // Persisted leases: a crash (even kill -9) keeps every lease older than one commit interval.
    let store: Option<Arc<dyn LeaseStore>> = match &cfg.server.state_dir {
        Some(dir) => {
            let s = tokio::task::block_in_place(|| RedbStore::open(dir))
                .with_context(|| "server.state_dir".to_string())?;
            info!(path = %s.path().display(), commit_interval = ?cfg.manager.commit_interval, "leases persisted");
            Some(Arc::new(s))
        }
        None => {
            warn!(
                "server.state_dir is not set: leases are not persisted, and a restart removes every container of this host id"
            );
            None
        }
    };
    // Bind before starting anything: a port in use should fail before any container exists.
    let listener = tokio::net::TcpListener::bind(cfg.server.listen)
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
    // The audit log subscribes before any task starts, so it holds every event from the first
    // (the startup sweep's removals, the first creates); and a file that cannot be opened stops
    // the start before any container exists.
    if let Some(file) = &cfg.server.audit_log {
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
    }
    manager.start();
    {
        let m = manager.clone();
        plugin_host.on_reload(Arc::new(move |pool: &str, what: String| {
            m.publish("reload", pool, what)
        }));
    }

    let (inbox, mut rx) = Inbox::new();
    signals::spawn(inbox.clone(), manager.cancel_token(), manager.tracker())
        .context("signal handlers")?;
    let watchers = match Watchers::new(&path, &inbox) {
        Ok(w) => Some(w),
        Err(e) => {
            warn!(error = %e, "cannot watch the config and plugin files; SIGHUP and POST /v1/admin/reload still reload");
            None
        }
    };
    let mut supervisor = Supervisor::new(
        &path,
        cfg.clone(),
        manager.clone(),
        plugin_host.clone(),
        Box::new(|p: &Path| warmpool_config::load(p)),
        watchers,
    );
    let alive = supervisor.alive();

    info!(
        listen = %cfg.server.listen,
        host_id = %cfg.server.host_id,
        pools = manager.pool_names().join(","),
        auth = token.is_some(),
        "warmpool serving"
    );
    let admin_inbox = inbox.clone();
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
    let app = warmpool_api::router(
        manager.clone(),
        warmpool_api::ApiConfig {
            token,
            allowed_hosts,
            max_request_bytes: cfg.server.max_request_bytes,
            max_upload_bytes: cfg.server.max_upload_bytes,
            engine_endpoints: cfg
                .docker
                .engines
                .iter()
                .map(|e| e.redacted_endpoint())
                .collect(),
            plugins: Some({
                let h = plugin_host.clone();
                Arc::new(move || h.statuses())
            }),
            ready_check: Some({
                let alive = alive.clone();
                Arc::new(move || {
                    (!alive.load(Ordering::Acquire))
                        .then(|| "the control supervisor stopped".to_string())
                })
            }),
            admin_reload: Some(Arc::new(move || {
                let inbox = admin_inbox.clone();
                async move {
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
                        Ok(Ok(Ok(summary))) => {
                            Ok(serde_json::to_value(summary).unwrap_or_default())
                        }
                        Ok(Ok(Err(problems))) => Err(problems),
                        _ => Err("the reload did not answer in time".to_string()),
                    }
                }
                .boxed()
            })),
        },
    );
    let cancel = manager.cancel_token();
    let server = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(cancel.clone().cancelled_owned())
            .into_future(),
    );

    // The supervisor applies every request until one asks it to stop. A supervisor that dies
    // (which its own guards should prevent) is reported through /readyz, and a stop signal then
    // cancels the daemon directly.
    let mut supervised = true;
    let which = tokio::select! {
        biased;
        why = std::panic::AssertUnwindSafe(supervisor.run(&mut rx)).catch_unwind() => match why {
            Ok(why) => why,
            Err(_) => {
                error!("the control supervisor panicked; /readyz now fails, and a stop signal stops the daemon");
                // Senders now fail, so a stop signal cancels the daemon directly.
                rx.close();
                supervised = false;
                cancel.cancelled().await;
                "a stop signal (after the supervisor failed)"
            }
        },
        _ = cancel.cancelled() => "cancelled",
    };
    let grace = cfg.server.shutdown_grace;
    if cfg.manager.keep_on_shutdown {
        info!(
            signal = which,
            ?grace,
            "shutting down: no new work; leases and unlent containers stay for the next start"
        );
    } else {
        info!(
            signal = which,
            ?grace,
            "shutting down: no new work, removing every container"
        );
    }
    // A second signal while draining means "now": skip the wait, not the clean-up of what is known.
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
        r = manager.shutdown(grace) => r,
        _ = second => { warn!("second signal: exiting without waiting"); return Ok(()); }
    };
    // Requests still in flight had their containers removed; give them a moment to answer.
    match tokio::time::timeout(Duration::from_secs(2), server).await {
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
    Ok(())
}
