"""The async client against the real daemon and the real engine."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from collections.abc import AsyncIterator

import pytest
from wp_helpers import REUSE, container_exists, eventually
from daemon import Daemon

import warmpool

DAEMON = dict(
    pools={
        "busybox": {"min_ready": 2, "max_ready": 4, "workdir": "/work"},
        "ru": {
            "min_ready": 1,
            "max_ready": 1,
            "max_total": 1,
            "workdir": "/work",
            "exhaustion": {"strategy": "wait", "wait_timeout": "20s"},
            "reuse": REUSE,
        },
        "tiny": {"min_ready": 1, "max_ready": 1, "max_total": 1, "exhaustion": {"strategy": "fail"}},
    },
    warm=True,
)


@pytest.fixture
async def awp(daemon: Daemon) -> AsyncIterator[warmpool.AsyncClient]:
    async with warmpool.AsyncClient(daemon.url, token=daemon.token or "") as c:
        yield c
        left = [lease.lease_id for lease in await c.leases()]
        assert not left, f"leases left behind: {left}"


async def test_lease_exec_and_files(awp: warmpool.AsyncClient) -> None:
    async with awp.lease("busybox", ttl=120) as sb:
        assert isinstance(sb, warmpool.AsyncSandbox) and sb.lease.pool == "busybox"
        r = await sb.exec(["sh", "-c", "cat; echo e >&2; exit 7"], stdin=b"\x00\x01bin\xff")
        assert (r.exit_code, r.stdout, r.stderr) == (7, b"\x00\x01bin\xff", b"e\n")

        await sb.write_file("/work/t.txt", "text")
        assert await sb.read_file("/work/t.txt") == b"text"

        # ~3 MB from an async generator (length unknown: sent chunked), then the same with
        # its size given (Content-Length: streamed by the daemon), read back streamed.
        big = os.urandom(3 * 1024 * 1024 + 7)

        async def chunks() -> AsyncIterator[bytes]:
            for i in range(0, len(big), 100_000):
                yield big[i : i + 100_000]
                await asyncio.sleep(0)

        await sb.write_file("/work/a.bin", chunks())
        await sb.write_file("/work/b.bin", chunks(), size=len(big))
        md5 = hashlib.md5(big).hexdigest()
        r = await sb.exec("md5sum /work/a.bin /work/b.bin")
        assert [line.split()[0] for line in r.stdout_text.splitlines()] == [md5, md5]
        async with sb.stream_file("/work/b.bin") as f:
            assert f.size == len(big)
            got = b"".join([c async for c in f.aiter_bytes()])
        assert got == big

        renewed = await sb.renew(900)
        assert 120 < renewed.ttl_remaining_s <= 900
        assert (await sb.refresh()).expires_at == renewed.expires_at


async def test_concurrent_leases_get_distinct_containers(awp: warmpool.AsyncClient) -> None:
    async def one(i: int) -> tuple[str, bytes]:
        async with awp.lease("busybox") as sb:
            r = await sb.exec(["sh", "-c", f"echo {i} > /work/i && cat /work/i"])
            return sb.container_id, r.stdout

    got = await asyncio.gather(*(one(i) for i in range(3)))
    assert [out for _, out in got] == [b"0\n", b"1\n", b"2\n"]
    assert len({cid for cid, _ in got}) == 3


async def test_a_block_that_raises_or_is_cancelled_still_releases(
    awp: warmpool.AsyncClient,
) -> None:
    with pytest.raises(ZeroDivisionError):
        async with awp.lease("busybox") as sb:
            cid = sb.container_id
            1 / 0
    assert sb.released and await awp.leases() == []
    eventually(lambda: not container_exists(cid), "container removed")

    leased = asyncio.Event()

    async def hold() -> None:
        async with awp.lease("busybox"):
            leased.set()
            await asyncio.sleep(60)

    task = asyncio.create_task(hold())
    await asyncio.wait_for(leased.wait(), 60)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await awp.leases() == []


async def test_release_with_reuse(awp: warmpool.AsyncClient) -> None:
    async with awp.lease("ru", reuse=True, wait_ms=15_000) as sb:
        first = sb.container_id
        await sb.write_file("/work/x", b"1")
    assert sb.reuse_outcome is not None and sb.reuse_outcome.reused
    sb2 = await awp.acquire("ru", wait_ms=15_000)
    assert sb2.container_id == first
    assert (await sb2.exec(["ls", "-A", "/work"])).stdout == b""
    await sb2.release()
    assert sb2.released and sb2.reuse_outcome is None


async def test_events_async(awp: warmpool.AsyncClient) -> None:
    async with awp.events(duration=60) as events:
        async with awp.lease("busybox") as sb:
            lid = sb.id

        async def collect() -> list[str]:
            kinds = []
            async for ev in events:
                if ev.lease == lid:
                    kinds.append(ev.kind)
                if "released" in kinds:
                    return kinds
            return kinds

        kinds = await asyncio.wait_for(collect(), 30)
    assert kinds == ["leased", "released"]


async def test_errors_and_bounded_retry(awp: warmpool.AsyncClient) -> None:
    with pytest.raises(warmpool.UnknownPool):
        await awp.acquire("nope")
    with pytest.raises(warmpool.BadRequest):
        await awp.acquire("busybox", owner="")
    async with awp.lease("tiny", retry_for=30):
        with pytest.raises(warmpool.PoolExhausted) as e:
            await awp.acquire("tiny")
        assert e.value.retry_after is not None and e.value.retry_after >= 1
        t0 = time.monotonic()
        with pytest.raises(warmpool.PoolExhausted):
            await awp.acquire("tiny", retry_for=1.5)
        took = time.monotonic() - t0
        assert 1.4 <= took < 1.5 + 15, took


async def test_pools_engines_plugins(awp: warmpool.AsyncClient) -> None:
    assert {p.name for p in await awp.pools()} == {"busybox", "ru", "tiny"}
    p = await awp.warm_up("busybox")
    assert p.counts.ready >= p.target >= 2
    assert (await awp.pool("tiny")).max_total == 1
    assert [e.state for e in await awp.engines()] == ["up"]
    assert await awp.plugins() == []
    assert await awp.ready()
