"""Streamed exec, terminals and a lease's set-up, blocking and async, against the real daemon."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from daemon import Daemon

import warmpool

DAEMON = dict(
    pools={"busybox": {"min_ready": 2, "max_ready": 3, "workdir": "/work"}},
    warm=True,
)


@pytest.fixture
async def awp(daemon: Daemon) -> AsyncIterator[warmpool.AsyncClient]:
    async with warmpool.AsyncClient(daemon.url, token=daemon.token or "") as c:
        yield c
        left = [lease.lease_id for lease in await c.leases()]
        assert not left, f"leases left behind: {left}"


SLOW = "echo first; echo oops >&2; sleep 2; printf 'second'; exit 7"


def test_exec_stream_gives_output_as_it_comes_then_the_exit(wp: warmpool.Client) -> None:
    with wp.lease("busybox") as sb:
        t0 = time.monotonic()
        seen: list[tuple[str, bytes, float]] = []
        with sb.exec_stream(["sh", "-c", SLOW]) as s:
            for chunk in s:
                seen.append((chunk.stream, chunk.data, time.monotonic() - t0))
        assert s.exit is not None
        assert (s.exit.exit_code, s.exit.signal, s.exit.timed_out) == (7, None, False)
        assert not s.exit.ok and not s.exit.truncated and s.exit.duration_ms is not None
        assert s.exit.duration_ms >= 2000
        out = b"".join(d for st, d, _ in seen if st == "stdout")
        err = b"".join(d for st, d, _ in seen if st == "stderr")
        assert (out, err) == (b"first\nsecond", b"oops\n")
        # The first line came while the command still slept.
        first_at = next(t for st, d, t in seen if st == "stdout")
        last_at = seen[-1][2]
        assert last_at - first_at > 1.5, seen

        # Bytes stay exact; stdin goes in whole, then closes.
        blob = bytes(range(256)) * 64
        with sb.exec_stream(["cat"], stdin=blob) as s:
            got = b"".join(c.data for c in s)
        assert got == blob and s.exit is not None and s.exit.ok

        # Killed by a signal; timed out; env and workdir.
        assert sb.exec_stream("kill -9 $$").wait().signal == 9
        ex = sb.exec_stream(["sleep", "30"], timeout=0.3).wait()
        assert ex.timed_out and ex.exit_code is None
        with sb.exec_stream("echo $A; pwd", env={"A": "b c"}, workdir="/tmp") as s:
            assert b"".join(c.data for c in s) == b"b c\n/tmp\n"
        # A command that cannot start says why on stderr and exits 127.
        with sb.exec_stream(["/no/such/cmd"]) as s:
            err = b"".join(c.data for c in s if c.stream == "stderr")
        assert s.exit is not None and s.exit.exit_code == 127 and b"/no/such/cmd" in err, err

    with pytest.raises(warmpool.UnknownLease):
        with wp.exec_stream("no-such-lease", ["true"]) as s:
            list(s)


def test_a_terminal_sends_keys_resizes_signals_and_exits(wp: warmpool.Client) -> None:
    with wp.lease("busybox", env={"FROM_LEASE": "lease-env"}) as sb:
        with sb.pty(rows=30, cols=100) as t:
            t.send("echo size=$(stty size)=$FROM_LEASE\n")
            t.read_until(b"size=30 100=lease-env")
            t.resize(40, 120)
            t.send("echo size=$(stty size)=\n")
            t.read_until(b"size=40 120=")
            # A signal for the foreground job, as Ctrl-C would; the shell goes on.
            t.send("sleep 100\n")
            time.sleep(0.5)
            t.signal("INT")
            t.send("echo after-$?-\n")
            t.read_until(b"after-130-")
            # Ctrl-C as a key does the same.
            t.send("sleep 100\n")
            time.sleep(0.5)
            t.send("\x03")
            t.send("echo again-$?-\n")
            t.read_until(b"again-130-")
            # Once the prompt is drawn, nothing more comes: recv gives up after its timeout.
            with pytest.raises(TimeoutError):
                for _ in range(50):
                    t.recv(timeout=0.5)
            t.send("exit 3\n")
            ex = t.wait(timeout=10)
            assert ex.exit_code == 3 and ex.duration_ms is not None and ex.duration_ms > 0
            assert t.exit == ex and t.recv() == b""

        # A command of its own; a closed terminal kills what it ran.
        with sb.pty(["sh", "-c", "echo $((6*7)); sleep 4747"]) as t:
            t.read_until(b"42")
        deadline = time.monotonic() + 10
        while "sleep 4747" in sb.exec("ps").stdout_text:
            assert time.monotonic() < deadline, "the terminal's command outlived it"
            time.sleep(0.2)

    with pytest.raises(warmpool.UnknownLease):
        wp.pty("no-such-lease")


def test_acquire_sets_env_secrets_files_and_workdir(wp: warmpool.Client) -> None:
    with wp.lease(
        "busybox",
        env={"A": "1"},
        secrets={"TOKEN": "s3cret"},
        files={
            "/work/app/run.sh": (b"#!/bin/sh\necho ran\n", 0o750),
            "/work/app/note.txt": "text",
            "/work/app/blob": bytes([0, 255, 1]),
        },
        workdir="/work/app",
    ) as sb:
        assert "s3cret" not in repr(sb.lease.raw)
        r = sb.exec("echo $A $TOKEN; pwd; ./run.sh; stat -c %a run.sh; cat note.txt; echo; od -An -tu1 blob")
        assert r.stdout_text.split("\n")[:5] == ["1 s3cret", "/work/app", "ran", "750", "text"]
        assert r.stdout_text.split()[-3:] == ["0", "255", "1"]


async def test_async_exec_stream_and_terminal(awp: warmpool.AsyncClient) -> None:
    async with awp.lease("busybox", env={"X": "async-env"}, workdir="/tmp") as sb:
        t0 = time.monotonic()
        times: list[float] = []
        data = b""
        async with sb.exec_stream(["sh", "-c", SLOW]) as s:
            async for chunk in s:
                times.append(time.monotonic() - t0)
                data += chunk.data
        assert s.exit is not None and s.exit.exit_code == 7
        assert times[-1] - times[0] > 1.5
        assert b"first\n" in data and b"second" in data
        ex = await sb.exec_stream(["sleep", "30"], timeout=0.3).wait()
        assert ex.timed_out

        async with await sb.pty(rows=25, cols=90) as t:
            await t.send("echo v=$X=$(pwd)=$(stty size)\n")
            await t.read_until(b"v=async-env=/tmp=25 90")
            await t.resize(33, 77)
            await t.send("echo s=$(stty size)=\n")
            await t.read_until(b"s=33 77=")
            await t.send("sleep 100\n")
            await asyncio.sleep(0.5)
            await t.signal("INT")
            await t.send("echo after-$?-\n")
            await t.read_until(b"after-130-")
            await t.send("exit 5\n")
            ex = await t.wait(timeout=10)
            assert ex.exit_code == 5

    with pytest.raises(warmpool.UnknownLease):
        await awp.pty("no-such-lease")
