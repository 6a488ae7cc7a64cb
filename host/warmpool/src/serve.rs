//! `serve` and `validate`: from a config file to a running daemon, and back down to nothing.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use warmpool_core::store::LeaseStore;
use warmpool_store::RedbStore;

use anyhow::{Context, Result};
use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info, warn};
use tracing_subscriber::EnvFilter;
use warmpool_config::{Config, HealthPlan};
use warmpool_core::{
    BuiltinHealth, ExhaustionStrategy, HealthCheck, Manager, Policies, SizingPolicy,
};
use warmpool_docker::DockerBackend;
use warmpool_plugin_host::engine::TICK;
use warmpool_plugin_host::{Limits, PluginHost, WasmExhaustion, WasmHealth, WasmSizing, World};

pub fn validate(path: &Path) -> ExitCode {
    match warmpool_config::load(path) {
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
        Ok(cfg) => {
            println!(
                "{}: ok, {} pool(s), host_id {}, listen {}",
                path.display(),
                cfg.pools.len(),
                cfg.server.host_id,
                cfg.server.listen
            );
            match &cfg.server.state_dir {
                Some(dir) => println!(
                    "leases persisted in {} (group commit every {:?})",
                    dir.display(),
                    cfg.manager.commit_interval
                ),
                None => println!(
                    "leases not persisted (no server.state_dir): a restart removes every container"
                ),
            }
            println!(
                "{:<16} {:<36} {:>5} {:>5} {:>5}  {:<10} {:<9} {}",
                "POOL", "IMAGE", "MIN", "MAX", "TOTAL", "EXHAUSTION", "TTL", "HEALTH"
            );
            for p in &cfg.pools {
                let c = &p.pool;
                let health = match &p.health {
                    Some(HealthPlan::Exec(e)) => {
                        format!("exec {:?} every {:?}", e.argv, c.health_interval)
                    }
                    Some(HealthPlan::Http(h)) => {
                        format!("http :{}{} every {:?}", h.port, h.path, c.health_interval)
                    }
                    None => "events only".into(),
                };
                println!(
                    "{:<16} {:<36} {:>5} {:>5} {:>5}  {:<10} {:<9} {}",
                    c.name,
                    c.spec.image,
                    c.min_ready,
                    c.max_ready,
                    c.max_total,
                    format!("{:?}", p.exhaustion).to_lowercase(),
                    humantime::format_duration(c.default_ttl).to_string(),
                    health
                );
            }
            ExitCode::SUCCESS
        }
    }
}

/// Append events as JSON lines, flushing whenever the queue runs dry, until shutdown (after
/// which the events of the shutdown itself are written too).
async fn audit_log(
    file: tokio::fs::File,
    mut rx: tokio::sync::broadcast::Receiver<warmpool_core::Event>,
    cancel: tokio_util::sync::CancellationToken,
) {
    use tokio::io::AsyncWriteExt;
    use tokio::sync::broadcast::error::{RecvError, TryRecvError};
    let mut out = tokio::io::BufWriter::new(file);
    let mut draining = false;
    loop {
        let next = if draining {
            match rx.try_recv() {
                Ok(ev) => Ok(ev),
                Err(TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
                Err(_) => break,
            }
        } else {
            tokio::select! {
                _ = cancel.cancelled() => {
                    // Let the shutdown's own removals land first.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    draining = true;
                    continue;
                }
                r = rx.recv() => r,
            }
        };
        let line = match next {
            Ok(ev) => serde_json::to_string(&ev).unwrap_or_default(),
            Err(RecvError::Lagged(n)) => format!("{{\"kind\":\"lagged\",\"missed\":{n}}}"),
            Err(RecvError::Closed) => break,
        };
        if out
            .write_all(line.as_bytes())
            .await
            .and(out.write_all(b"\n").await)
            .is_err()
        {
            warn!("audit log: write failed; stopping it");
            return;
        }
        if rx.is_empty() {
            let _ = out.flush().await;
        }
    }
    let _ = out.flush().await;
}

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

/// A pool's policies: the built-ins from its YAML, each wrapped by its wasm plugin when one is
/// configured (the built-in then stays as the fallback).
pub(crate) fn policies(plan: &warmpool_config::PoolPlan, host: &PluginHost) -> Policies {
    let name = &plan.pool.name;
    let mut sizing: Arc<dyn SizingPolicy> = Arc::new(plan.sizing.clone());
    let mut exhaustion: Arc<dyn ExhaustionStrategy> = Arc::new(plan.exhaustion);
    let mut health: Option<Arc<dyn HealthCheck>> =
        plan.health.as_ref().map(|h| -> Arc<dyn HealthCheck> {
            match h {
                HealthPlan::Exec(e) => Arc::new(BuiltinHealth::Exec(e.clone())),
                HealthPlan::Http(p) => Arc::new(BuiltinHealth::Http(p.clone())),
            }
        });
    if let Some(r) = &plan.plugins.sizing {
        let slot = host.slot(name, World::Sizing, &r.path, r.config.clone());
        sizing = Arc::new(WasmSizing {
            slot,
            fallback: sizing,
        });
    }
    if let Some(r) = &plan.plugins.exhaustion {
        let slot = host.slot(name, World::Exhaustion, &r.path, r.config.clone());
        exhaustion = Arc::new(WasmExhaustion {
            slot,
            fallback: exhaustion,
        });
    }
    if let Some(r) = &plan.plugins.health {
        let slot = host.slot(name, World::Health, &r.path, r.config.clone());
        let fallback = health.unwrap_or_else(|| Arc::new(BuiltinHealth::Pass));
        health = Some(Arc::new(WasmHealth { slot, fallback }));
    }
    Policies {
        sizing,
        exhaustion,
        health,
    }
}

async fn serve(path: &Path) -> Result<()> {
    let cfg: Config = warmpool_config::load(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let token = cfg.auth_token().map_err(anyhow::Error::msg)?;
    let backend = Arc::new(
        DockerBackend::connect(cfg.docker.endpoint.as_deref(), &cfg.server.host_id)
            .context("docker")?,
    );
    let ps = &cfg.plugins;
    let limits = Limits {
        deadline_ticks: ps.deadline.as_millis().div_ceil(TICK.as_millis()).max(1) as u64,
        max_memory: ps.max_memory,
        bench_after: ps.bench_after,
    };
    let plugin_host = PluginHost::new(limits, Some(&ps.cache_dir))?;
    let pools = cfg
        .pools
        .iter()
        .map(|p| (p.pool.clone(), policies(p, &plugin_host)))
        .collect();
    // Persisted leases: a crash (even kill -9) keeps every lease older than one commit interval.
    let store: Option<Arc<dyn LeaseStore>> = match &cfg.server.state_dir {
        Some(dir) => {
            let s = RedbStore::open(dir).with_context(|| "server.state_dir".to_string())?;
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
    let manager = Manager::with_store(cfg.manager.clone(), pools, backend, store);

    // Bind before starting the loops: a port in use should fail before any container exists.
    let listener = tokio::net::TcpListener::bind(cfg.server.listen)
        .await
        .with_context(|| format!("server.listen: cannot bind {}", cfg.server.listen))?;
    manager.start();
    {
        let m = manager.clone();
        plugin_host.on_reload(Arc::new(move |pool: &str, what: String| {
            m.publish("reload", pool, what)
        }));
    }
    plugin_host
        .watch(manager.cancel_token(), manager.tracker())
        .context("watching plugin files for hot reload")?;
    crate::reload::spawn(path, cfg.clone(), manager.clone(), plugin_host.clone())
        .context("watching the config file for reload")?;
    if let Some(path) = &cfg.server.audit_log {
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .await
            .with_context(|| format!("server.audit_log: cannot open {}", path.display()))?;
        manager
            .tracker()
            .spawn(audit_log(file, manager.subscribe(), manager.cancel_token()));
    }
    info!(
        listen = %cfg.server.listen,
        host_id = %cfg.server.host_id,
        pools = manager.pool_names().join(","),
        auth = token.is_some(),
        "warmpool serving"
    );
    let app = warmpool_api::router(
        manager.clone(),
        warmpool_api::ApiConfig {
            token,
            max_request_bytes: cfg.server.max_request_bytes,
            max_upload_bytes: cfg.server.max_upload_bytes,
            plugins: Some({
                let h = plugin_host.clone();
                Arc::new(move || h.statuses())
            }),
        },
    );
    let cancel = manager.cancel_token();
    let server = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(cancel.clone().cancelled_owned())
            .into_future(),
    );

    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let which = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
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
    let report = tokio::select! {
        r = manager.shutdown(grace) => r,
        _ = term.recv() => { warn!("second signal: exiting without waiting"); return Ok(()); }
        _ = int.recv() => { warn!("second signal: exiting without waiting"); return Ok(()); }
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
