//! The labels that mark warmpool's containers. Everything warmpool creates carries them; the
//! sweep and the event filter select by `warmpool.host`, so a daemon never touches a container
//! of another host id.

/// `true` on every container warmpool creates.
pub const MANAGED: &str = "warmpool.managed";
/// The daemon's host id: a daemon acts only on containers of its own.
pub const HOST: &str = "warmpool.host";
/// The pool the container belongs to.
pub const POOL: &str = "warmpool.pool";
/// Hash of the pool's container spec and the image ID it ran.
pub const SPEC: &str = "warmpool.spec";

/// Docker `label=` filters selecting this host's managed containers.
pub fn host_filter(host_id: &str) -> Vec<String> {
    vec![format!("{MANAGED}=true"), format!("{HOST}={host_id}")]
}
