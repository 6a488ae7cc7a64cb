//! The engines a config names, each a Docker client with the agent it places into containers
//! (the built-in one, or a test's) and the agents' master key, which `server.state_dir` keeps
//! across restarts.

use std::sync::Arc;

use anyhow::{Context, Result};
use tracing::warn;
use warmpool_config::Config;
use warmpool_core::EngineSpec;
use warmpool_docker::{DockerBackend, TlsPaths};

/// The agents' master key: kept in `server.state_dir` (`agent.key`, mode 0600), so that a
/// restarted daemon reaches the agents of the containers it finds; a fresh one for a daemon
/// that keeps no state (a restart removes every container then anyway).
fn agent_master(cfg: &Config) -> Result<[u8; 32]> {
    kept_key(
        cfg,
        "agent.key",
        warmpool_docker::agent::Agents::random_master,
    )
}

/// A 32-byte key kept in `server.state_dir` as `file` (mode 0600), made by `fresh` the first
/// time; without a state dir, a fresh one each start.
pub(crate) fn kept_key(cfg: &Config, file: &str, fresh: fn() -> [u8; 32]) -> Result<[u8; 32]> {
    let Some(dir) = &cfg.server.state_dir else {
        return Ok(fresh());
    };
    let path = dir.join(file);
    match std::fs::read(&path) {
        Ok(b) if b.len() == 32 => Ok(b.try_into().expect("32 bytes")),
        Ok(_) => anyhow::bail!("{}: not a 32-byte key", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::create_dir_all(dir).with_context(|| format!("{}", dir.display()))?;
            let key = fresh();
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
