"""A daemon with a bearer token: the right one works, a wrong or missing one is a typed 401."""

from __future__ import annotations

import pytest
from daemon import Daemon

import warmpool

TOKEN = "s3cret-token-for-tests"
DAEMON = dict(pools={"busybox": {"min_ready": 1}}, token=TOKEN)


def test_the_right_token_works(daemon: Daemon) -> None:
    assert daemon.token == TOKEN
    with warmpool.Client(daemon.url, token=TOKEN) as wp:
        with wp.lease("busybox") as sb:
            assert sb.exec(["echo", "ok"]).stdout == b"ok\n"
        assert wp.leases() == []


@pytest.mark.parametrize("token", ["wrong", ""], ids=["wrong", "missing"])
def test_a_wrong_or_missing_token_is_unauthorized(daemon: Daemon, token: str) -> None:
    with warmpool.Client(daemon.url, token=token) as wp:
        for call in (lambda: wp.acquire("busybox"), wp.pools, wp.leases, wp.engines):
            with pytest.raises(warmpool.Unauthorized) as e:
                call()
            assert (e.value.status, e.value.code) == (401, "unauthorized")
        with pytest.raises(warmpool.Unauthorized):
            with wp.events() as events:
                next(events)
        # /readyz is outside /v1: no token needed.
        assert wp.ready()


async def test_async_wrong_token_is_unauthorized(daemon: Daemon) -> None:
    async with warmpool.AsyncClient(daemon.url, token="wrong") as wp:
        with pytest.raises(warmpool.Unauthorized):
            await wp.pools()
        with pytest.raises(warmpool.Unauthorized):
            async with wp.lease("busybox"):
                pass
