//! A container's CPU and memory limits changed live, through the engine's container update
//! (`POST /containers/{id}/update`): a lease's own, and the pool's put back before a reuse.

use bollard::Docker;
use bollard::models::ContainerUpdateBody;
use warmpool_core::{BackendError, Resources};

use crate::op_error;

/// Set `id`'s limits to `r`. Memory and swap move together (swap equal to memory, as at
/// create: no swap on top of the limit); the engine refuses a memory limit above the swap
/// limit already set, so both are always sent. A `None` CPU limit is sent as 0, which the
/// engine reads as "leave it": the core only sends one when the pool has none and the lease
/// asked none.
pub(crate) async fn update(docker: &Docker, id: &str, r: Resources) -> Result<(), BackendError> {
    let body = ContainerUpdateBody {
        nano_cpus: Some(r.nano_cpus.unwrap_or(0)),
        memory: r.memory,
        memory_swap: r.memory,
        ..Default::default()
    };
    docker
        .update_container(id, body)
        .await
        .map_err(|e| op_error("update resources", id, e))
}
