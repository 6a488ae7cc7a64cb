"""A lease's own cpus and memory through the client: ``acquire(cpus=, memory=)`` is on the
lease (and on the engine) before it is handed over, ``resize`` changes it live, and an ask
outside the pool's bounds is a typed ``BadRequest`` naming the bound."""

from __future__ import annotations

import subprocess

import pytest
from daemon import Daemon

import warmpool

MIB = 1 << 20
DAEMON = dict(
    pools={
        "sized": {
            "min_ready": 1,
            "max_ready": 1,
            "cpus": 1,
            "memory": "64m",
            "resources": {"max_cpus": 2, "max_memory": "256m"},
        },
    },
)


def host_config(container: str) -> str:
    return subprocess.run(
        ["docker", "inspect", "-f", "{{.HostConfig.NanoCpus}} {{.HostConfig.Memory}}", container],
        check=True, capture_output=True, text=True,
    ).stdout.strip()


def test_acquire_with_resources_then_resize(wp: warmpool.Client) -> None:
    with wp.lease("sized", cpus=1.5, memory="128m") as sb:
        assert sb.lease.resources == warmpool.Resources(cpus=1.5, memory=128 * MIB)
        assert host_config(sb.lease.container_id) == f"1500000000 {128 * MIB}"
        after = sb.resize(memory=200 * MIB)
        assert after.resources == warmpool.Resources(cpus=1.5, memory=200 * MIB)
        assert host_config(sb.lease.container_id) == f"1500000000 {200 * MIB}"
        with pytest.raises(warmpool.BadRequest) as e:
            sb.resize(cpus=3)
        assert e.value.status == 422
        assert e.value.code == "out_of_bounds"
        assert e.value.detail.get("bound") == "resources.max_cpus"
        with pytest.raises(ValueError):
            sb.resize()


def test_an_ask_beyond_the_bounds_takes_no_lease(wp: warmpool.Client) -> None:
    with pytest.raises(warmpool.BadRequest) as e:
        wp.acquire("sized", memory="1g")
    assert (e.value.code, e.value.detail.get("bound")) == ("out_of_bounds", "resources.max_memory")
