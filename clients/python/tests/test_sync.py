"""The blocking client against the real daemon and the real engine."""

from __future__ import annotations

import hashlib
import io
import os
import threading
import time
from pathlib import Path

import pytest
from wp_helpers import REUSE, container_exists, eventually
from daemon import IMAGE, Daemon

import warmpool

DAEMON = dict(
    pools={
        "busybox": {"min_ready": 2, "max_ready": 4, "workdir": "/work"},
        # One container only, reused after a verified reset: the next lease gets it back.
        "ru": {
            "min_ready": 1,
            "max_ready": 1,
            "max_total": 1,
            "workdir": "/work",
            "exhaustion": {"strategy": "wait", "wait_timeout": "20s"},
            "reuse": REUSE,
        },
        # One container at most, and 429 at once when it is taken.
        "tiny": {"min_ready": 1, "max_ready": 1, "max_total": 1, "exhaustion": {"strategy": "fail"}},
    },
    warm=True,
)


def test_lease_exec_with_stdin_env_workdir_and_timeout(wp: warmpool.Client) -> None:
    with wp.lease("busybox", ttl=300, owner="pytest") as sb:
        lease = sb.lease
        assert lease.pool == "busybox" and lease.image == IMAGE
        assert lease.source in ("pool", "cold") and lease.state == "active"
        assert lease.owner == "pytest"
        assert 0 < lease.ttl_remaining_s <= 300
        assert [x.lease_id for x in wp.leases()] == [sb.id]

        r = sb.exec(["sh", "-c", "pwd; cat; echo err >&2; exit 3"], stdin="hello\n")
        assert (r.exit_code, r.stdout, r.stderr) == (3, b"/work\nhello\n", b"err\n")
        assert not r.ok and not r.timed_out and not r.truncated

        # Binary stdin in, binary stdout out, byte for byte.
        blob = bytes(range(256)) * 4
        r = sb.exec(["cat"], stdin=blob)
        assert r.ok and r.stdout == blob

        r = sb.exec(["sh", "-c", 'echo "$FOO"; pwd'], env={"FOO": "b a r"}, workdir="/tmp")
        assert r.stdout_text == "b a r\n/tmp\n"

        assert sb.exec("echo via sh -c | tr a-z A-Z").stdout == b"VIA SH -C\n"

        r = sb.exec(["sleep", "30"], timeout=0.5)
        assert r.timed_out and r.exit_code is None


def test_files_roundtrip_binary_streamed_and_nested(wp: warmpool.Client, tmp_path: Path) -> None:
    with wp.lease("busybox") as sb:
        small = bytes(range(256)) + b"\0\r\n\xff"
        sb.write_file("/work/small.bin", small)
        assert sb.read_file("/work/small.bin") == small

        sb.write_file("/work/deep/er/text.txt", "héllo\n")  # parents are created
        assert sb.read_file("/work/deep/er/text.txt") == "héllo\n".encode()

        # A few MB from a file object: the client sends Content-Length, the daemon streams it.
        big = os.urandom(4 * 1024 * 1024 + 123)
        src = tmp_path / "big.bin"
        src.write_bytes(big)
        with open(src, "rb") as f:
            sb.write_file("/work/big.bin", f)
        r = sb.exec(["md5sum", "/work/big.bin"])
        assert r.stdout_text.split()[0] == hashlib.md5(big).hexdigest()

        with sb.stream_file("/work/big.bin") as fs:
            assert fs.size == len(big)
            h, n, chunks = hashlib.md5(), 0, 0
            for chunk in fs.iter_bytes():
                h.update(chunk)
                n += len(chunk)
                chunks += 1
        assert n == len(big) and h.hexdigest() == hashlib.md5(big).hexdigest()

        dest = tmp_path / "back.bin"
        assert sb.download_file("/work/big.bin", dest) == len(big)
        assert dest.read_bytes() == big

        # A generator: length unknown, sent chunked; and an in-memory file object.
        sb.write_file("/work/gen.bin", (bytes([i]) * 1000 for i in range(200)))
        assert sb.read_file("/work/gen.bin") == b"".join(bytes([i]) * 1000 for i in range(200))
        sb.write_file("/work/mem.bin", io.BytesIO(big[:100_000]))
        assert sb.read_file("/work/mem.bin") == big[:100_000]

        with pytest.raises(warmpool.FileNotFound) as e:
            sb.read_file("/work/nope")
        assert e.value.status == 404 and e.value.code == "file_not_found"
        with pytest.raises(ValueError):
            sb.read_file("/work/../etc/passwd")
        with pytest.raises(ValueError):
            sb.write_file("relative.txt", b"x")


def test_renew_moves_the_expiry_and_is_capped(wp: warmpool.Client) -> None:
    with wp.lease("busybox", ttl=60) as sb:
        assert sb.lease.ttl_remaining_s <= 60
        renewed = sb.renew(1200)
        assert 600 < renewed.ttl_remaining_s <= 1200
        assert wp.get_lease(sb.id).expires_at == renewed.expires_at
        # The pool's max_ttl (1 h by default) caps it.
        assert sb.renew(10**7).ttl_remaining_s <= 3600


def test_release_destroys_the_container(wp: warmpool.Client) -> None:
    sb = wp.acquire("busybox")
    cid = sb.container_id
    assert container_exists(cid)
    sb.release()
    assert sb.released and sb.reuse_outcome is None
    assert sb.id not in [x.lease_id for x in wp.leases()]
    with pytest.raises(warmpool.UnknownLease):
        wp.get_lease(sb.id)
    with pytest.raises(warmpool.UnknownLease):
        sb.release()  # an explicit second release says so
    eventually(lambda: not container_exists(cid), f"container {cid} removed")


def test_release_with_reuse_returns_the_scrubbed_container(wp: warmpool.Client) -> None:
    with wp.lease("ru", reuse=True) as sb:
        first = sb.container_id
        sb.write_file("/work/secret.txt", b"private")
        assert sb.exec("echo t > /tmp/t").ok
    assert sb.reuse_outcome is not None
    assert sb.reuse_outcome.reused, sb.reuse_outcome
    assert sb.reuse_outcome.lease_id == sb.id

    # max_total 1: the next lease must be the same container, scrubbed.
    with wp.lease("ru", wait_ms=15_000) as sb2:
        assert sb2.container_id == first
        assert sb2.exec(["ls", "-A", "/work", "/tmp"]).stdout == b"/tmp:\n\n/work:\n"
        # Something the reset does not clean: the daemon's own diff refuses the container.
        assert sb2.exec("echo x > /root/leftover").ok
        out = sb2.release(reuse=True)
    assert not out.reused and out.reason, out
    eventually(lambda: not container_exists(first), "the refused container removed")
    assert wp.pool("ru").counters["reused_total"] >= 1


def test_a_block_that_raises_still_releases(wp: warmpool.Client, daemon: Daemon) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with wp.lease("busybox") as sb:
            lid, cid = sb.id, sb.container_id
            assert [x.lease_id for x in wp.leases()] == [lid]
            raise Boom()
    assert sb.released
    assert wp.leases() == []
    with pytest.raises(warmpool.UnknownLease):
        wp.get_lease(lid)
    eventually(lambda: not container_exists(cid), f"container {cid} removed")

    # A lease released inside the block (here by someone else) is not an error at its end.
    with wp.lease("busybox") as sb:
        wp.release(sb.id)
    assert sb.released and sb.reuse_outcome is None


def test_a_block_with_reuse_that_raises_releases_for_reuse(wp: warmpool.Client) -> None:
    with pytest.raises(KeyError):
        with wp.lease("ru", reuse=True, wait_ms=15_000) as sb:
            raise KeyError("x")
    assert sb.reuse_outcome is not None and sb.reuse_outcome.reused


def test_pools_warm_up_engines_plugins(wp: warmpool.Client, daemon: Daemon) -> None:
    names = {p.name for p in wp.pools()}
    assert names == {"busybox", "ru", "tiny"}
    p = wp.warm_up("busybox", timeout=60)
    assert p.name == "busybox" and p.status == "ok"
    assert p.counts.ready >= p.target >= p.min_ready == 2
    assert p.max_ready == 4 and p.image == IMAGE
    assert p.raw["name"] == "busybox"  # the whole answer is kept
    tiny = wp.pool("tiny")
    assert tiny.max_total == 1 and tiny.raw["policies"]["exhaustion"].startswith("builtin:fail")

    engines = wp.engines()
    assert [e.name for e in engines] == ["default"]
    assert engines[0].state == "up" and engines[0].version
    assert engines[0].counted >= 4  # busybox 2 + ru 1 + tiny 1 ready at least

    assert wp.plugins() == []  # none configured
    assert wp.ready()

    with pytest.raises(warmpool.UnknownPool):
        wp.pool("nope")
    with pytest.raises(warmpool.UnknownPool):
        wp.warm_up("nope")


def test_events_stream_leased_then_released(wp: warmpool.Client) -> None:
    # `duration` bounds the stream: a missing event fails the test instead of hanging it.
    with wp.events(pool="busybox", duration=60) as events:
        with wp.lease("busybox") as sb:
            lid, cid = sb.id, sb.container_id
        kinds: list[str] = []
        for ev in events:
            assert ev.pool == "busybox", ev  # the filter holds
            assert isinstance(ev, warmpool.Event) and ev.at
            if ev.lease == lid:
                kinds.append(ev.kind)
                assert ev.container == cid and ev.engine == "default"
            if "released" in kinds:
                break
    assert kinds == ["leased", "released"]


def test_typed_errors(wp: warmpool.Client) -> None:
    with pytest.raises(warmpool.UnknownPool) as e:
        wp.acquire("no-such-pool")
    assert (e.value.status, e.value.code) == (404, "unknown_pool")
    assert isinstance(e.value, warmpool.NotFound) and "no-such-pool" in e.value.message

    with pytest.raises(warmpool.BadRequest) as bad:
        wp.acquire("busybox", ttl=0)
    assert (bad.value.status, bad.value.code) == (400, "bad_request")

    with pytest.raises(warmpool.NoSuchEngine) as labels:
        wp.acquire("busybox", engine={"zone": "nowhere"})
    assert (labels.value.status, labels.value.code) == (422, "no_such_engine")
    assert isinstance(labels.value, warmpool.BadRequest)

    with pytest.raises(warmpool.UnknownLease):
        wp.exec("0000-not-a-lease", ["true"])

    with wp.lease("busybox") as sb:
        with pytest.raises(warmpool.BadRequest) as empty:
            sb.exec([])
        assert empty.value.status == 400 and "cmd" in empty.value.message
        with pytest.raises(warmpool.BadRequest):
            sb.exec(["true"], env={"A=B": "x"})
        with pytest.raises(warmpool.BadRequest):
            sb.renew(0)


def test_exhausted_pool_raises_429_with_retry_after(wp: warmpool.Client) -> None:
    # The pool may still be refilling after an earlier test: wait for its one container.
    with wp.lease("tiny", retry_for=30):
        with pytest.raises(warmpool.PoolExhausted) as e:
            wp.acquire("tiny")
    err = e.value
    assert (err.status, err.code) == (429, "pool_exhausted")
    assert err.retry_after is not None and err.retry_after >= 1


def test_retry_for_is_bounded(wp: warmpool.Client) -> None:
    with wp.lease("tiny", retry_for=30):
        rejected = wp.pool("tiny").acquires.rejected
        t0 = time.monotonic()
        with pytest.raises(warmpool.PoolExhausted):
            wp.acquire("tiny", retry_for=2.5)
        took = time.monotonic() - t0
        # It kept trying for the bound (Retry-After is ≥ 1 s, so at least 3 attempts)...
        assert took >= 2.4, took
        assert wp.pool("tiny").acquires.rejected - rejected >= 3
        # ... and gave up near it, not after another full Retry-After (generous: slow CI).
        assert took < 2.5 + 15, took


def test_retry_for_waits_until_a_container_frees_up(wp: warmpool.Client) -> None:
    holder = wp.acquire("tiny", retry_for=30)
    rejected = wp.pool("tiny").acquires.rejected
    timer = threading.Timer(1.0, holder.release)
    timer.start()
    try:
        with wp.lease("tiny", retry_for=60) as sb:
            assert sb.container_id != holder.container_id  # single-use: a fresh one
    finally:
        timer.cancel()
        timer.join()
        if not holder.released:
            holder.release()
    assert wp.pool("tiny").acquires.rejected > rejected  # it did get refused first
