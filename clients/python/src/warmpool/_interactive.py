"""Streamed exec (``POST /v1/leases/{id}/exec/stream``, NDJSON) and terminals (``GET
/v1/leases/{id}/pty``, WebSocket), blocking and async.

:class:`ExecStream` iterates :class:`ExecChunk` (stdout or stderr bytes, as they come); once
it is drained, :attr:`ExecStream.exit` is the :class:`ExecExit`. :class:`Terminal` is a
terminal in the container: :meth:`Terminal.send` keys, :meth:`Terminal.recv` output,
:meth:`Terminal.resize`, :meth:`Terminal.signal`, and :attr:`Terminal.exit` at its end.
The terminals speak WebSocket through the ``websockets`` library (its asyncio client for the
async twin, so :class:`AsyncTerminal` needs asyncio, not trio).
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import httpx
from websockets.asyncio.client import ClientConnection as AsyncConnection
from websockets.asyncio.client import connect as async_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.sync.client import ClientConnection as SyncConnection
from websockets.sync.client import connect as sync_connect

from . import _base as b
from ._errors import TransportError, WarmpoolError, error_from_response

if TYPE_CHECKING:
    from ._async import AsyncClient
    from ._sync import Client

__all__ = [
    "ExecChunk",
    "ExecExit",
    "ExecStream",
    "AsyncExecStream",
    "Terminal",
    "AsyncTerminal",
]

JSON = Mapping[str, Any]


@dataclass(frozen=True)
class ExecChunk:
    """Output of a streamed command as it came: ``stream`` is ``"stdout"`` or ``"stderr"``,
    ``data`` the exact bytes."""

    stream: Literal["stdout", "stderr"]
    data: bytes

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class ExecExit:
    """How a streamed command or a terminal ended.

    ``exit_code`` is ``None`` when a signal killed it (``signal``), when it timed out
    (``timed_out``, its tree killed), or when the connection to the container was lost
    (``lost``). ``duration_ms`` is its wall time as the daemon measured it. Streamed output is
    never cut, so ``truncated`` is always ``False`` (it is there to match
    :class:`ExecResult`)."""

    exit_code: int | None
    signal: int | None
    timed_out: bool
    lost: bool
    truncated: bool
    duration_ms: int | None
    raw: JSON = field(default_factory=dict, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    @classmethod
    def from_json(cls, d: JSON) -> ExecExit:
        def opt_int(k: str) -> int | None:
            v = d.get(k)
            return v if isinstance(v, int) and not isinstance(v, bool) else None

        return cls(
            exit_code=opt_int("exit_code"),
            signal=opt_int("signal"),
            timed_out=d.get("timed_out") is True,
            lost=d.get("lost") is True,
            truncated=d.get("truncated") is True,
            duration_ms=opt_int("duration_ms"),
            raw=d,
        )


def _is_end(d: JSON) -> bool:
    return "exit_code" in d or "timed_out" in d


def _parse_line(line: bytes, url: str) -> JSON:
    try:
        d = json.loads(line)
    except ValueError as e:
        raise WarmpoolError(
            f"a line of the exec stream is not JSON: {line[:200]!r}",
            code="bad_answer",
            method="POST",
            url=url,
        ) from e
    if not isinstance(d, dict):
        raise WarmpoolError(
            f"a line of the exec stream is not an object: {line[:200]!r}",
            code="bad_answer",
            method="POST",
            url=url,
        )
    return d


def _chunk(d: JSON) -> ExecChunk | None:
    for name in ("stdout", "stderr"):
        v = d.get(f"{name}_b64")
        if isinstance(v, str):
            return ExecChunk(name, base64.b64decode(v))
        t = d.get(name)
        if isinstance(t, str):
            return ExecChunk(name, t.encode("utf-8"))
    return None


def _no_end(url: str) -> WarmpoolError:
    return WarmpoolError(
        "the exec stream ended before the command's end",
        code="bad_answer",
        method="POST",
        url=url,
    )


class ExecStream:
    """A command whose output comes as it is written; see :meth:`Client.exec_stream`::

        with sb.exec_stream(["sh", "-c", "make 2>&1"]) as s:
            for chunk in s:
                print(chunk.stream, chunk.text, end="")
        print(s.exit.exit_code)
    """

    def __init__(self, client: Client, req: httpx.Request) -> None:
        self._client = client
        self._req = req
        self._resp: httpx.Response | None = None
        self._lines: Iterator[str] | None = None
        #: How the command ended, once the stream is drained.
        self.exit: ExecExit | None = None

    def open(self) -> ExecStream:
        if self._resp is None:
            self._resp = self._client._send(self._req, stream=True)
            self._lines = self._resp.iter_lines()
        return self

    def __enter__(self) -> ExecStream:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop reading; the daemon kills the command's tree if it still runs."""
        if self._resp is not None:
            self._resp.close()

    def __iter__(self) -> ExecStream:
        return self

    def __next__(self) -> ExecChunk:
        self.open()
        assert self._lines is not None
        url = str(self._req.url)
        while self.exit is None:
            try:
                line = next(self._lines, None)
            except httpx.HTTPError as e:
                self.close()
                raise b.transport_error(e) from e
            if line is None:
                self.close()
                raise _no_end(url)
            if not line.strip():
                continue
            d = _parse_line(line.encode("utf-8"), url)
            c = _chunk(d)
            if c is not None:
                return c
            if _is_end(d):
                self.exit = ExecExit.from_json(d)
                self.close()
        raise StopIteration

    def wait(self) -> ExecExit:
        """Read to the end (output not yet read is dropped); how the command ended."""
        for _ in self:
            pass
        assert self.exit is not None
        return self.exit


class AsyncExecStream:
    """The async twin of :class:`ExecStream` (``async with``, ``async for``)."""

    def __init__(self, client: AsyncClient, req: httpx.Request) -> None:
        self._client = client
        self._req = req
        self._resp: httpx.Response | None = None
        self._lines: AsyncIterator[str] | None = None
        self.exit: ExecExit | None = None

    async def open(self) -> AsyncExecStream:
        if self._resp is None:
            self._resp = await self._client._send(self._req, stream=True)
            self._lines = self._resp.aiter_lines()
        return self

    async def __aenter__(self) -> AsyncExecStream:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._resp is not None:
            await self._resp.aclose()

    def __aiter__(self) -> AsyncExecStream:
        return self

    async def __anext__(self) -> ExecChunk:
        await self.open()
        assert self._lines is not None
        url = str(self._req.url)
        while self.exit is None:
            try:
                line = await self._lines.__anext__()
            except StopAsyncIteration:
                await self.aclose()
                raise _no_end(url) from None
            except httpx.HTTPError as e:
                await self.aclose()
                raise b.transport_error(e) from e
            if not line.strip():
                continue
            d = _parse_line(line.encode("utf-8"), url)
            c = _chunk(d)
            if c is not None:
                return c
            if _is_end(d):
                self.exit = ExecExit.from_json(d)
                await self.aclose()
        raise StopAsyncIteration

    async def wait(self) -> ExecExit:
        async for _ in self:
            pass
        assert self.exit is not None
        return self.exit


# -- terminals ---------------------------------------------------------------------------------


def ws_url(base: str, path: str) -> str:
    if base.startswith("https://"):
        return "wss://" + base[len("https://") :] + path
    if base.startswith("http://"):
        return "ws://" + base[len("http://") :] + path
    return base + path


def terminal_start(
    cmd: b.Cmd | None,
    rows: int,
    cols: int,
    env: Mapping[str, str] | None,
    workdir: str | None,
    timeout: float | None,
) -> dict[str, Any]:
    start: dict[str, Any] = {"tty": {"rows": int(rows), "cols": int(cols)}}
    if cmd is not None:
        start["cmd"] = ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
    if env:
        start["env"] = dict(env)
    if workdir is not None:
        start["workdir"] = workdir
    if timeout is not None:
        start["timeout_ms"] = max(1, math.ceil(timeout * 1000))
    return start


def _ws_headers(headers: Mapping[str, str]) -> dict[str, str]:
    # The WebSocket library sets its own accept and upgrade headers.
    return {k: v for k, v in headers.items() if k.lower() not in ("accept",)}


def _handshake_error(e: Exception, url: str) -> WarmpoolError:
    if isinstance(e, InvalidStatus):
        r = e.response
        return error_from_response(
            r.status_code,
            httpx.Headers(list(r.headers.raw_items())),
            bytes(r.body or b""),
            method="GET",
            url=url,
        )
    return TransportError(e, method="GET", url=url)


def _signal_value(sig: str | int) -> str | int:
    return sig if isinstance(sig, int) else str(sig)


class _TerminalState:
    """What the blocking and async terminals share: decoding the server's messages."""

    def __init__(self, url: str) -> None:
        self.url = url
        #: How the terminal's command ended, once it has.
        self.exit: ExecExit | None = None

    def take(self, msg: str | bytes) -> bytes | None:
        """The output in a message, ``b""`` at the end; ``None``: nothing for the caller."""
        if isinstance(msg, bytes):
            return msg[1:] if len(msg) > 1 else None
        try:
            d = json.loads(msg)
        except ValueError:
            return None
        if not isinstance(d, dict):
            return None
        err = d.get("error")
        if isinstance(err, dict):
            raise WarmpoolError(
                str(err.get("message", "")),
                code=str(err.get("code", "error")),
                method="GET",
                url=self.url,
            )
        if _is_end(d):
            self.exit = ExecExit.from_json(d)
            return b""
        return None

    def closed(self) -> bytes:
        if self.exit is None:
            raise WarmpoolError(
                "the terminal closed without its command's end",
                code="bad_answer",
                method="GET",
                url=self.url,
            )
        return b""


class Terminal:
    """A terminal in a leased container over WebSocket; see :meth:`Client.pty`::

        with sb.pty(rows=30, cols=100) as t:
            t.send("ls /\\n")
            print(t.read_until(b"# ").decode())
            t.send("exit 3\\n")
            assert t.wait().exit_code == 3

    Closing it (the end of the ``with`` block) kills what it ran, if it still runs.
    """

    def __init__(self, conn: SyncConnection, url: str) -> None:
        self._ws = conn
        self._state = _TerminalState(url)

    @property
    def exit(self) -> ExecExit | None:
        """How its command ended, once it has (``None`` before)."""
        return self._state.exit

    def __enter__(self) -> Terminal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._ws.close()

    def _send(self, m: str | bytes) -> None:
        try:
            self._ws.send(m)
        except (ConnectionClosed, OSError) as e:
            raise TransportError(e, method="GET", url=self._state.url) from e

    def send(self, data: bytes | str) -> None:
        """Keys for the terminal (text is sent as UTF-8; ``"\\x03"`` is Ctrl-C)."""
        self._send(data.encode("utf-8") if isinstance(data, str) else bytes(data))

    def resize(self, rows: int, cols: int) -> None:
        self._send(json.dumps({"resize": {"rows": int(rows), "cols": int(cols)}}))

    def signal(self, sig: str | int) -> None:
        """Send a signal (``"INT"``, ``"TERM"``, … or a number) to the terminal's foreground
        job, as its keys would."""
        self._send(json.dumps({"signal": _signal_value(sig)}))

    def recv(self, timeout: float | None = None) -> bytes:
        """The next output, as it came; ``b""`` once the command has ended (then
        :attr:`exit` says how). :class:`TimeoutError` when nothing comes within ``timeout``
        seconds."""
        if self._state.exit is not None:
            return b""
        while True:
            try:
                msg = self._ws.recv(timeout)
            except ConnectionClosed:
                return self._state.closed()
            except WebSocketException as e:
                raise TransportError(e, method="GET", url=self._state.url) from e
            out = self._state.take(msg)
            if out is not None:
                return out

    def read_until(self, want: bytes | str, timeout: float = 30.0) -> bytes:
        """Read output until it contains ``want``; everything read. :class:`TimeoutError`
        after ``timeout`` seconds (with what was read in its message), :class:`WarmpoolError`
        if the command ends first."""
        import time

        w = want.encode("utf-8") if isinstance(want, str) else want
        seen = b""
        deadline = time.monotonic() + timeout
        while w not in seen:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {w!r} within {timeout} s; read {seen[-500:]!r}")
            try:
                out = self.recv(left)
            except TimeoutError:
                raise TimeoutError(f"no {w!r} within {timeout} s; read {seen[-500:]!r}") from None
            if out == b"":
                raise WarmpoolError(
                    f"the terminal ended before {w!r}; read {seen[-500:]!r}",
                    code="ended",
                    method="GET",
                    url=self._state.url,
                )
            seen += out
        return seen

    def wait(self, timeout: float | None = None) -> ExecExit:
        """Read to the command's end (output not read is dropped); how it ended."""
        while self.recv(timeout) != b"":
            pass
        assert self._state.exit is not None
        return self._state.exit


class AsyncTerminal:
    """The async twin of :class:`Terminal` (asyncio only); see :meth:`AsyncClient.pty`."""

    def __init__(self, conn: AsyncConnection, url: str) -> None:
        self._ws = conn
        self._state = _TerminalState(url)

    @property
    def exit(self) -> ExecExit | None:
        return self._state.exit

    async def __aenter__(self) -> AsyncTerminal:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._ws.close()

    async def _send(self, m: str | bytes) -> None:
        try:
            await self._ws.send(m)
        except (ConnectionClosed, OSError) as e:
            raise TransportError(e, method="GET", url=self._state.url) from e

    async def send(self, data: bytes | str) -> None:
        await self._send(data.encode("utf-8") if isinstance(data, str) else bytes(data))

    async def resize(self, rows: int, cols: int) -> None:
        await self._send(json.dumps({"resize": {"rows": int(rows), "cols": int(cols)}}))

    async def signal(self, sig: str | int) -> None:
        await self._send(json.dumps({"signal": _signal_value(sig)}))

    async def recv(self, timeout: float | None = None) -> bytes:
        import asyncio

        if self._state.exit is not None:
            return b""
        while True:
            try:
                msg = await asyncio.wait_for(self._ws.recv(), timeout)
            except ConnectionClosed:
                return self._state.closed()
            except WebSocketException as e:
                raise TransportError(e, method="GET", url=self._state.url) from e
            out = self._state.take(msg)
            if out is not None:
                return out

    async def read_until(self, want: bytes | str, timeout: float = 30.0) -> bytes:
        import time

        w = want.encode("utf-8") if isinstance(want, str) else want
        seen = b""
        deadline = time.monotonic() + timeout
        while w not in seen:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {w!r} within {timeout} s; read {seen[-500:]!r}")
            try:
                out = await self.recv(left)
            except TimeoutError:
                raise TimeoutError(f"no {w!r} within {timeout} s; read {seen[-500:]!r}") from None
            if out == b"":
                raise WarmpoolError(
                    f"the terminal ended before {w!r}; read {seen[-500:]!r}",
                    code="ended",
                    method="GET",
                    url=self._state.url,
                )
            seen += out
        return seen

    async def wait(self, timeout: float | None = None) -> ExecExit:
        while await self.recv(timeout) != b"":
            pass
        assert self._state.exit is not None
        return self._state.exit


def open_terminal(
    base_url: str, path: str, headers: Mapping[str, str], start: dict[str, Any], open_timeout: float | None
) -> Terminal:
    url = ws_url(base_url, path)
    try:
        conn = sync_connect(
            url,
            additional_headers=_ws_headers(headers),
            open_timeout=open_timeout,
            max_size=None,
            user_agent_header=None,
        )
    except (InvalidStatus, WebSocketException, OSError, TimeoutError) as e:
        raise _handshake_error(e, url) from e
    t = Terminal(conn, url)
    try:
        t._send(json.dumps(start))
    except BaseException:
        t.close()
        raise
    return t


async def open_async_terminal(
    base_url: str, path: str, headers: Mapping[str, str], start: dict[str, Any], open_timeout: float | None
) -> AsyncTerminal:
    url = ws_url(base_url, path)
    try:
        conn = await async_connect(
            url,
            additional_headers=_ws_headers(headers),
            open_timeout=open_timeout,
            max_size=None,
            user_agent_header=None,
        )
    except (InvalidStatus, WebSocketException, OSError, TimeoutError) as e:
        raise _handshake_error(e, url) from e
    t = AsyncTerminal(conn, url)
    try:
        await t._send(json.dumps(start))
    except BaseException:
        await t.aclose()
        raise
    return t
