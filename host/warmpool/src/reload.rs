//! Config reload: SIGHUP, or a change to the config file, reloads it without a restart.
//!
//! Watchers only *request* a reload (vector's config watcher, zed's extension host): the notify
//! callback and the SIGHUP handler send on a channel, and one task applies. It debounces,
//! loads and validates the whole file, and only then hands the pools to
//! `Manager::reconfigure`. An invalid file logs every error and keeps the old config serving.
//! Settings that cannot change while running (listen address, host id, state dir, limits,
//! plugin limits) are reported as needing a restart and otherwise ignored.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tracing::{error, info, warn};
use warmpool_config::{Config, PoolPlan};
use warmpool_core::Manager;
use warmpool_docker::DockerBackend;
use warmpool_plugin_host::PluginHost;

/// Quiet time after the last request before reloading: an editor's save is several events.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// What a pool's policies are built from; equal keys mean the built policies are equal.
fn policy_key(p: &PoolPlan) -> String {
    format!(
        "{:?}|{:?}|{:?}|{:?}",
        p.sizing, p.exhaustion, p.health, p.plugins
    )
}

/// The settings that only a restart applies and that differ between `old` and `new`.
fn restart_only(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut v = Vec::new();
    let (a, b) = (&old.server, &new.server);
    if a.listen != b.listen {
        v.push("server.listen");
    }
    if a.host_id != b.host_id {
        v.push("server.host_id");
    }
    if a.state_dir != b.state_dir
        || a.commit_interval != b.commit_interval
        || a.keep_on_shutdown != b.keep_on_shutdown
    {
        v.push("server.state_dir/commit_interval/keep_on_shutdown");
    }
    if a.auth_token_env != b.auth_token_env
        || a.max_request_bytes != b.max_request_bytes
        || a.max_upload_bytes != b.max_upload_bytes
        || a.audit_log != b.audit_log
    {
        v.push("server (auth, sizes, audit_log)");
    }
    let (m, n) = (&old.manager, &new.manager);
    if m.max_containers != n.max_containers
        || m.max_concurrent_creates != n.max_concurrent_creates
        || m.max_concurrent_removes != n.max_concurrent_removes
        || m.exec_output_limit != n.exec_output_limit
    {
        v.push("limits (and server.exec_output_bytes)");
    }
    if format!("{:?}", old.docker) != format!("{:?}", new.docker) {
        v.push("docker");
    }
    if format!("{:?}", old.plugins) != format!("{:?}", new.plugins) {
        v.push("plugins");
    }
    v
}

/// Start the reload machinery: the SIGHUP listener, the file watcher, and the one task that
/// applies. All stop with the manager's token.
pub fn spawn(
    path: &Path,
    current: Config,
    manager: Arc<Manager<DockerBackend>>,
    host: Arc<PluginHost>,
) -> anyhow::Result<()> {
    let path = std::path::absolute(path)?;
    let (tx, rx) = mpsc::unbounded_channel::<&'static str>();
    let cancel = manager.cancel_token();

    let mut hup = signal(SignalKind::hangup())?;
    {
        let (tx, cancel) = (tx.clone(), cancel.clone());
        manager.tracker().spawn(async move {
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    s = hup.recv() => {
                        if s.is_none() { return; }
                        let _ = tx.send("SIGHUP");
                    }
                }
            }
        });
    }

    // Watch the directory: saving by rename replaces the file's inode, which a file watch
    // would lose.
    let file_name = path.file_name().map(|n| n.to_os_string());
    let dir = path
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let watcher_tx = tx.clone();
    let mut watcher: RecommendedWatcher =
        notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
            Ok(ev) if ev.kind.is_access() => {}
            Ok(ev) => {
                if ev
                    .paths
                    .iter()
                    .any(|p| p.file_name() == file_name.as_deref())
                {
                    let _ = watcher_tx.send("file change");
                }
            }
            Err(e) => warn!(error = %e, "config file watcher error; SIGHUP still reloads"),
        })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;

    manager.tracker().spawn(apply_loop(
        path,
        current,
        manager.clone(),
        host,
        rx,
        watcher,
        dir,
    ));
    Ok(())
}

async fn apply_loop(
    path: PathBuf,
    mut current: Config,
    manager: Arc<Manager<DockerBackend>>,
    host: Arc<PluginHost>,
    mut rx: mpsc::UnboundedReceiver<&'static str>,
    mut watcher: RecommendedWatcher,
    dir: PathBuf,
) {
    let cancel = manager.cancel_token();
    loop {
        let why = tokio::select! {
            _ = cancel.cancelled() => return,
            w = rx.recv() => match w { Some(w) => w, None => return },
        };
        while let Ok(Some(_)) = tokio::time::timeout(DEBOUNCE, rx.recv()).await {}
        // A directory that was renamed or recreated loses its watch: add it again.
        if let Err(e) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
            warn!(dir = %dir.display(), error = %e, "cannot watch the config directory again; SIGHUP still reloads");
        }
        // One attempt can fail in any way, a panic included; the loop survives it and says so.
        let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            reload_once(&path, &current, &manager, &host, why)
        }));
        match attempt {
            Ok(Some(new)) => current = new,
            Ok(None) => {}
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                error!(trigger = why, panic = %msg, "config reload failed; the old config keeps serving, and the next change is tried again");
                manager.publish("reload", "*", format!("config reload failed: {msg}"));
            }
        }
    }
}

/// One reload: load and validate the file, then apply it. Returns the config now in force, or
/// `None` when the file was rejected (the old config keeps serving).
fn reload_once(
    path: &Path,
    current: &Config,
    manager: &Arc<Manager<DockerBackend>>,
    host: &Arc<PluginHost>,
    why: &str,
) -> Option<Config> {
    let new = match warmpool_config::load(path) {
        Ok(c) => c,
        Err(e) => {
            error!(
                trigger = why,
                "config reload rejected; the old config keeps serving:\n{e}"
            );
            manager.publish("reload", "*", format!("config rejected: {e}"));
            return None;
        }
    };
    for what in restart_only(current, &new) {
        warn!(
            setting = what,
            "config reload: this setting changes only at a restart; the running value stays"
        );
    }
    let updates = new
        .pools
        .iter()
        .map(|plan| {
            let old = current.pools.iter().find(|p| p.pool.name == plan.pool.name);
            let same = old.is_some_and(|o| policy_key(o) == policy_key(plan));
            if same {
                (plan.pool.clone(), None)
            } else {
                // Rebuilt: forget the old plugin slots first, then load the new ones.
                host.drop_pool(&plan.pool.name);
                (plan.pool.clone(), Some(crate::serve::policies(plan, host)))
            }
        })
        .collect();
    for old in &current.pools {
        if !new.pools.iter().any(|p| p.pool.name == old.pool.name) {
            host.drop_pool(&old.pool.name);
        }
    }
    let report = manager.reconfigure(updates);
    host.rewatch();
    if report.is_empty() {
        info!(trigger = why, "config reloaded: no pool changed");
    }
    Some(new)
}
