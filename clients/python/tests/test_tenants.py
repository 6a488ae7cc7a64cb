"""A daemon with tenants: a lease token opens its sandbox alone (``Client(token=sb.token)
.attach()``), a tenant's quota is a typed ``QuotaExceeded`` naming the quota, and an admin route
a tenant may not use is a typed ``Forbidden``."""

from __future__ import annotations

import pytest
from daemon import Daemon

import warmpool

ADMIN = "py-tenants-admin"
TEAM = "py-tenants-team-a"
DAEMON = dict(
    pools={"busybox": {"min_ready": 2, "max_ready": 2}},
    token=ADMIN,
    server_extra={"tenants": [{
        "name": "team-a",
        "token_env": "WARMPOOL_PY_TEAM_A",
        "pools": ["busybox"],
        "quotas": {"max_leases": 1},
    }]},
    env={"WARMPOOL_PY_TEAM_A": TEAM},
)


def test_a_lease_token_opens_its_sandbox_and_nothing_else(daemon: Daemon) -> None:
    with warmpool.Client(daemon.url, token=TEAM) as wp:
        with wp.lease("busybox") as sb:
            assert sb.lease.tenant == "team-a"
            token = sb.token
            assert token is not None and token.startswith("wpl.")
            # The agent's side: a client with the lease token alone.
            with warmpool.Client(daemon.url, token=token) as agent:
                mine = agent.attach()
                assert mine.id == sb.id
                assert mine.exec(["echo", "hi"]).stdout == b"hi\n"
                mine.write_file("/tmp/x", b"data")
                assert sb.read_file("/tmp/x") == b"data"
                with pytest.raises(warmpool.Forbidden) as e:
                    agent.leases()
                assert e.value.code == "forbidden"
                with pytest.raises(warmpool.Forbidden):
                    agent.acquire("busybox")
            # A token that is not a lease token names no lease.
            with pytest.raises(ValueError):
                wp.attach()
        # Released: the lease token opens nothing any more.
        with warmpool.Client(daemon.url, token=token) as agent:
            with pytest.raises(warmpool.Unauthorized):
                agent.attach()


def test_a_quota_is_a_typed_error_naming_it(daemon: Daemon) -> None:
    with warmpool.Client(daemon.url, token=TEAM) as wp:
        with wp.lease("busybox"):
            with pytest.raises(warmpool.QuotaExceeded) as e:
                wp.acquire("busybox")
            assert e.value.status == 429
            assert e.value.quota == "max_leases"
            assert e.value.retry_after is not None
            assert isinstance(e.value, warmpool.TooManyRequests)
            assert not isinstance(e.value, warmpool.PoolExhausted)
        with pytest.raises(warmpool.Forbidden):
            wp.engines()
        (me,) = wp.tenants()
        assert me["name"] == "team-a" and me["rejections"]["max_leases"] == 1


async def test_async_attach_with_a_lease_token(daemon: Daemon) -> None:
    async with warmpool.AsyncClient(daemon.url, token=TEAM) as wp:
        async with wp.lease("busybox") as sb:
            async with warmpool.AsyncClient(daemon.url, token=sb.token) as agent:
                mine = await agent.attach()
                assert (await mine.exec(["true"])).exit_code == 0
