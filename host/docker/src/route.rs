//! Which way the daemon reaches into each container: through its agent (`exec: agent`), or
//! through the engine's exec and archive endpoints with the lease's environment merged into
//! each exec (`exec: engine`). Every operation of the backend that acts inside a container asks
//! here first; a container this daemon did not create (found at a restart) is looked up once.

use std::sync::Arc;

use warmpool_core::{BackendError, ExecOutput, ExecRequest, USED_SUFFIX};

use crate::{DockerBackend, agent, create, exec, lock, op_error, scrub};

/// A lease's variables and working directory on a container without an agent.
pub(crate) type EngineEnv = (std::collections::BTreeMap<String, String>, Option<String>);

/// How the daemon talks to one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Through the engine's exec and archive endpoints.
    Engine,
    /// Through its agent; its name (its key derives from it).
    Agent(String),
}

impl DockerBackend {
    pub(crate) fn note_kind(&self, id: &str, name: &str, mode: warmpool_core::ExecMode) {
        let kind = match mode {
            warmpool_core::ExecMode::Agent => Kind::Agent(name.to_string()),
            warmpool_core::ExecMode::Engine => Kind::Engine,
        };
        lock(&self.kinds).insert(id.to_string(), kind);
    }

    /// Forget what is known of container `id` (it is being removed).
    pub(crate) async fn forget(&self, id: &str) {
        lock(&self.kinds).remove(id);
        lock(&self.engine_env).remove(id);
        self.agents.forget(id).await;
    }

    /// The image's own entrypoint (which the agent runs, with the pool's command, under it).
    pub(crate) async fn entrypoint_of(&self, image_id: &str) -> Result<Vec<String>, BackendError> {
        if let Some(e) = lock(&self.entrypoints).get(image_id) {
            return Ok(e.clone());
        }
        let i = self
            .docker
            .inspect_image(image_id)
            .await
            .map_err(|e| create::image_err(image_id, e.to_string()))?;
        let ep = i.config.and_then(|c| c.entrypoint).unwrap_or_default();
        lock(&self.entrypoints).insert(image_id.to_string(), ep.clone());
        Ok(ep)
    }

    /// The agent of container `id`, if it has one: its channel, resumed if need be. A
    /// container this daemon did not create is looked up once (its label says).
    pub(crate) async fn agent_of(
        &self,
        id: &str,
    ) -> Result<Option<Arc<agent::channel::Channel>>, BackendError> {
        let known = lock(&self.kinds).get(id).cloned();
        let kind = match known {
            Some(k) => k,
            None => {
                let c = self
                    .docker
                    .inspect_container(id, None)
                    .await
                    .map_err(|e| op_error("inspect", id, e))?;
                let agent = c
                    .config
                    .as_ref()
                    .and_then(|c| c.labels.as_ref())
                    .and_then(|l| l.get(agent::LABEL))
                    .is_some_and(|v| v == "agent");
                let name = c.name.unwrap_or_default();
                let name = name.trim_start_matches('/');
                let name = name.strip_suffix(USED_SUFFIX).unwrap_or(name).to_string();
                let k = if agent {
                    Kind::Agent(name)
                } else {
                    Kind::Engine
                };
                lock(&self.kinds).insert(id.to_string(), k.clone());
                k
            }
        };
        match kind {
            Kind::Engine => Ok(None),
            Kind::Agent(name) => self.agents.channel(&self.docker, id, &name).await.map(Some),
        }
    }

    /// Run `req` in container `id`: through its agent, or the engine's exec with the lease's
    /// environment merged in.
    pub(crate) async fn run(
        &self,
        id: &str,
        mut req: ExecRequest,
    ) -> Result<ExecOutput, BackendError> {
        match self.agent_of(id).await? {
            Some(ch) => agent::ops::exec(&ch, &req).await,
            None => {
                self.merge_env(id, &mut req);
                exec::run(&self.docker, id, &req).await
            }
        }
    }

    pub(crate) fn inside<'a>(
        &'a self,
        id: &'a str,
        ch: Option<&'a agent::channel::Channel>,
    ) -> scrub::Inside<'a> {
        match ch {
            Some(ch) => scrub::Inside::Agent(ch),
            None => scrub::Inside::Script {
                docker: &self.docker,
                id,
            },
        }
    }

    pub(crate) fn merge_env(&self, id: &str, req: &mut ExecRequest) {
        if let Some((env, workdir)) = lock(&self.engine_env).get(id) {
            for (k, v) in env {
                req.env.entry(k.clone()).or_insert_with(|| v.clone());
            }
            if req.workdir.is_none() {
                req.workdir = workdir.clone();
            }
        }
    }
}
