//! The labels that mark warmpool's containers. Everything warmpool creates carries them; the
//! sweep and the event filter select by `warmpool.host`, so a daemon never touches a container
//! of another host id.

pub const MANAGED: &str = "warmpool.managed";
pub const HOST: &str = "warmpool.host";
pub const POOL: &str = "warmpool.pool";
/// Hash of the pool's container spec and the image ID it ran.
pub const SPEC: &str = "warmpool.spec";

use sha2::{Digest, Sha256};
use warmpool_core::ContainerSpec;

/// The `warmpool.spec` value: 16 hex digits of sha256 over the spec (as stable JSON) and image ID.
pub fn spec_hash(spec: &ContainerSpec, image_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(spec).expect("a spec always serialises"));
    h.update(b"\0");
    h.update(image_id.as_bytes());
    hex::encode(&h.finalize()[..8])
}

/// Docker `label=` filters selecting this host's managed containers.
pub fn host_filter(host_id: &str) -> Vec<String> {
    vec![format!("{MANAGED}=true"), format!("{HOST}={host_id}")]
}
