//! The one task that applies control requests, in order (see [`crate::control`]).
//!
//! A reload validates the whole file first (an invalid one logs every problem and keeps the old
//! config serving), then applies the `ReloadPlan` the config crate makes of the running and the
//! new config, pool by pool, through `Manager::reconfigure`; plugin slots it creates load in the
//! background, so a reload never waits for a compile. Each attempt runs under `catch_unwind`:
//! whatever goes wrong, a panic included, is logged, published as a `reload` event, answered to
//! whoever asked, and the loop goes on. Requests are taken in bursts (an editor's save is several
//! events), each applied once. Generic over the backend, so it is tested without Docker.

use std::collections::BTreeSet;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tracing::{error, info, warn};
use warmpool_config::{Config, ConfigError, PoolPlan, PoolReload, ReloadPlan};
use warmpool_core::{Backend, Manager, PoolChange};
use warmpool_plugin_host::{PluginHost, PluginWatcher};

use super::{Control, Inbox, ReloadReply, ReloadSummary, Source};

/// Quiet time after the last reload request: an editor's save is several events.
pub const RELOAD_DEBOUNCE: Duration = Duration::from_millis(200);
/// Quiet time after the last plugin file event: a write, rename and chmod coalesce.
pub const PLUGIN_DEBOUNCE: Duration = Duration::from_millis(60);

/// Reads and validates the config file (`warmpool_config::load` in the daemon).
pub type Loader = Box<dyn Fn(&Path) -> Result<Config, ConfigError> + Send>;

/// The file watchers the supervisor re-arms: the config file's directory and the plugins'.
pub struct Watchers {
    config: RecommendedWatcher,
    config_dir: PathBuf,
    plugins: PluginWatcher,
}

impl Watchers {
    /// Watch the config file's directory (saving by rename replaces the file's inode) and the
    /// plugin files' directories, reporting into `inbox`.
    pub fn new(config_path: &Path, inbox: &Inbox) -> notify::Result<Self> {
        let file_name = config_path.file_name().map(|n| n.to_os_string());
        let config_dir = config_path
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let tx = inbox.clone();
        let mut config =
            notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
                Ok(ev)
                    if warmpool_plugin_host::watch::relevant(&ev.kind)
                        && ev
                            .paths
                            .iter()
                            .any(|p| p.file_name() == file_name.as_deref()) =>
                {
                    tx.offer(Control::Reload {
                        source: Source::File,
                        reply: None,
                    });
                }
                Ok(_) => {}
                Err(e) => warn!(error = %e, "config file watcher error; SIGHUP still reloads"),
            })?;
        config.watch(&config_dir, RecursiveMode::NonRecursive)?;
        let tx = inbox.clone();
        let plugins = PluginWatcher::new(move |paths| {
            tx.offer(Control::PluginChanged(paths));
        })?;
        Ok(Self {
            config,
            config_dir,
            plugins,
        })
    }

    /// Watch the plugin directories of the current slots; re-add every watch when `renew`
    /// (a directory renamed or recreated loses its watch).
    fn rearm(&mut self, host: &PluginHost, renew: bool) {
        if renew
            && let Err(e) = self
                .config
                .watch(&self.config_dir, RecursiveMode::NonRecursive)
        {
            warn!(dir = %self.config_dir.display(), error = %e, "cannot watch the config directory again; SIGHUP still reloads");
        }
        self.plugins.watch(host.dirs(), renew);
    }
}

/// The one task that applies control requests in order: reloads, plugin changes, shutdown.
pub struct Supervisor<B: Backend> {
    path: PathBuf,
    current: Config,
    manager: Arc<Manager<B>>,
    host: Arc<PluginHost>,
    load: Loader,
    watchers: Option<Watchers>,
    /// False once the supervisor stopped: `/readyz` reads it.
    alive: Arc<AtomicBool>,
}

impl<B: Backend> Supervisor<B> {
    /// A supervisor for the daemon that loaded `current` from `path`.
    pub fn new(
        path: &Path,
        current: Config,
        manager: Arc<Manager<B>>,
        host: Arc<PluginHost>,
        load: Loader,
        watchers: Option<Watchers>,
    ) -> Self {
        let mut s = Self {
            path: path.to_path_buf(),
            current,
            manager,
            host,
            load,
            watchers,
            alive: Arc::new(AtomicBool::new(true)),
        };
        if let Some(w) = &mut s.watchers {
            w.rearm(&s.host, false);
        }
        s
    }

    /// Whether the supervisor still runs.
    pub fn alive(&self) -> Arc<AtomicBool> {
        self.alive.clone()
    }

    /// The config now applied (the last one that loaded and validated).
    pub fn config(&self) -> &Config {
        &self.current
    }

    /// Apply requests until a shutdown is asked for (returns the signal's name) or every sender
    /// is gone. Requests are taken in bursts (`Burst`), each applied once.
    pub async fn run(&mut self, rx: &mut mpsc::Receiver<Control>) -> &'static str {
        struct Alive(Arc<AtomicBool>);
        impl Drop for Alive {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let _alive = Alive(self.alive.clone());
        loop {
            let Some(first) = rx.recv().await else {
                return "inbox closed";
            };
            let mut burst = Burst::new(first);
            while !burst.closed {
                match tokio::time::timeout(burst.quiet(), rx.recv()).await {
                    Ok(Some(c)) => burst.add(c),
                    _ => break,
                }
            }
            if let Some(why) = self.apply(burst) {
                return why;
            }
        }
    }

    /// One burst: its plugin changes and its reload, in the order their kinds first came, every
    /// asker answered; then the shutdown it asked for, if any.
    fn apply(&mut self, burst: Burst) -> Option<&'static str> {
        let Burst {
            reload,
            replies,
            plugins,
            plugins_first,
            stop,
            closed: _,
        } = burst;
        let mut later = Vec::new();
        if plugins_first {
            self.plugins_changed(plugins);
        } else {
            later = plugins;
        }
        if let Some(source) = reload {
            let outcome = self.reload(source);
            for r in replies {
                let _ = r.send(outcome.clone());
            }
        }
        if !later.is_empty() {
            self.plugins_changed(later);
        }
        stop
    }

    /// Changed plugin files: the slots holding them reload in the background.
    fn plugins_changed(&mut self, paths: Vec<PathBuf>) {
        let set: BTreeSet<PathBuf> = paths.into_iter().collect();
        let guarded = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let n = self.host.files_changed(&set);
            if let Some(w) = &mut self.watchers {
                w.rearm(&self.host, true);
            }
            n
        }));
        if let Err(p) = guarded {
            let msg = panic_message(&p);
            error!(panic = %msg, "handling changed plugin files failed; the next change is tried again");
            self.manager
                .publish("reload", "*", format!("plugin reload failed: {msg}"));
        }
    }

    /// One reload, whatever happens in it: the summary, or why the old config keeps serving.
    pub fn reload(&mut self, source: Source) -> Result<ReloadSummary, String> {
        match std::panic::catch_unwind(AssertUnwindSafe(|| self.reload_once(source))) {
            Ok(r) => r,
            Err(p) => {
                let msg = panic_message(&p);
                error!(trigger = ?source.name(), panic = %msg, "config reload failed; the old config keeps serving, and the next request is tried again");
                self.manager
                    .publish("reload", "*", format!("config reload failed: {msg}"));
                Err(format!("reload failed: {msg}"))
            }
        }
    }

    fn reload_once(&mut self, source: Source) -> Result<ReloadSummary, String> {
        let new = match (self.load)(&self.path) {
            Ok(c) => c,
            Err(e) => {
                error!(
                    trigger = ?source.name(),
                    "config reload rejected; the old config keeps serving:\n{e}"
                );
                self.manager
                    .publish("reload", "*", format!("config rejected: {e}"));
                return Err(e.to_string());
            }
        };
        let plan = ReloadPlan::new(&self.current, &new);
        for what in &plan.restart {
            warn!(
                setting = what,
                "config reload: this setting changes only at a restart; the running value stays"
            );
        }
        let changes = new
            .pools
            .iter()
            .zip(&plan.pools)
            .map(|(pool, &class)| self.pool_change(pool, class))
            .collect();
        for name in &plan.removed {
            self.host.drop_pool(name);
        }
        let report = self.manager.reconfigure(changes);
        // The running config is the new one from here: the next plan is made against what the
        // manager now runs, whatever happens below.
        self.current = new;
        if let Some(w) = &mut self.watchers {
            w.rearm(&self.host, true);
        }
        if report.is_empty() {
            info!(trigger = ?source.name(), "config reloaded: no pool changed");
        }
        Ok(ReloadSummary {
            added: report.added,
            removed: report.removed,
            changed: report.changed,
            respec: report.respec,
            restart_only: plan.restart.iter().map(|s| s.to_string()).collect(),
        })
    }

    /// What the manager does with one pool of the new config, as the plan classed it; its
    /// policies are built here when the plan says they must be.
    fn pool_change(&self, plan: &PoolPlan, class: PoolReload) -> PoolChange {
        if class.builds_policies() {
            // Rebuilt: forget the old plugin slots first; the new ones load in the background.
            self.host.drop_pool(&plan.pool.name);
        }
        let policies = || crate::policies::policies(plan, &self.host);
        let cfg = plan.pool.clone();
        match class {
            PoolReload::Added => PoolChange::Add {
                policies: policies(),
                cfg,
            },
            PoolReload::Unchanged => PoolChange::Keep(cfg.name),
            PoolReload::Changed {
                policies: rebuild,
                respec,
                resize,
            } => PoolChange::Change {
                policies: rebuild.then(policies),
                cfg,
                respec,
                resize,
            },
        }
    }
}

/// The requests taken together: the first, and those that follow it each within the quiet time
/// of the first one's kind. A shutdown ends a burst; so does a reload joining a burst of plugin
/// changes (it is applied with them rather than held for its own quiet time).
struct Burst {
    /// A reload was asked for, by this first asker.
    reload: Option<Source>,
    /// Every reload asker waiting for the outcome.
    replies: Vec<ReloadReply>,
    /// Changed plugin files, every report of them.
    plugins: Vec<PathBuf>,
    /// The burst began with plugin changes: they are handled before its reload, not after.
    plugins_first: bool,
    /// A shutdown was asked for: applied after the rest.
    stop: Option<&'static str>,
    /// No further request joins.
    closed: bool,
}

impl Burst {
    fn new(first: Control) -> Self {
        let mut b = Self {
            reload: None,
            replies: Vec::new(),
            plugins: Vec::new(),
            plugins_first: matches!(first, Control::PluginChanged(_)),
            stop: None,
            closed: false,
        };
        b.add(first);
        b
    }

    /// How long the burst waits for one more request.
    fn quiet(&self) -> Duration {
        if self.plugins_first {
            PLUGIN_DEBOUNCE
        } else {
            RELOAD_DEBOUNCE
        }
    }

    fn add(&mut self, c: Control) {
        match c {
            Control::Reload { source, reply } => {
                self.reload.get_or_insert(source);
                self.replies.extend(reply);
                self.closed |= self.plugins_first;
            }
            Control::PluginChanged(paths) => self.plugins.extend(paths),
            Control::Shutdown(why) => {
                self.stop = Some(why);
                self.closed = true;
            }
        }
    }
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}
