# The source of _sync_terminal.py: edit this file, then run scripts/unasync.py.
"""A terminal in a leased container (``GET /v1/leases/{id}/pty``, WebSocket):
:class:`AsyncTerminal`, opened by :func:`open_terminal`."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from ._backends import async_ws_recv
from ._errors import TransportError, WarmpoolError
from ._interactive import (
    ExecExit,
    TerminalState,
    handshake_error,
    signal_value,
    ws_headers,
    ws_url,
)

__all__ = ["AsyncTerminal", "open_terminal"]


class AsyncTerminal:
    """A terminal in a leased container over WebSocket (asyncio only, not trio); see
    :meth:`AsyncClient.pty`::

        async with await sb.pty(rows=30, cols=100) as t:
            await t.send("ls /\\n")
            print((await t.read_until(b"# ")).decode())
            await t.send("exit 3\\n")
            assert (await t.wait()).exit_code == 3

    Closing it (the end of the ``async with`` block) kills what it ran, if it still runs.
    """

    def __init__(self, conn: ClientConnection, url: str) -> None:
        self._ws = conn
        self._state = TerminalState(url)

    @property
    def exit(self) -> ExecExit | None:
        """How its command ended, once it has (``None`` before)."""
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
        """Keys for the terminal (text is sent as UTF-8; ``"\\x03"`` is Ctrl-C)."""
        await self._send(data.encode("utf-8") if isinstance(data, str) else bytes(data))

    async def resize(self, rows: int, cols: int) -> None:
        await self._send(json.dumps({"resize": {"rows": int(rows), "cols": int(cols)}}))

    async def signal(self, sig: str | int) -> None:
        """Send a signal (``"INT"``, ``"TERM"``, … or a number) to the terminal's foreground
        job, as its keys would."""
        await self._send(json.dumps({"signal": signal_value(sig)}))

    async def recv(self, timeout: float | None = None) -> bytes:
        """The next output, as it came; ``b""`` once the command has ended (then
        :attr:`exit` says how). :class:`TimeoutError` when nothing comes within ``timeout``
        seconds."""
        if self._state.exit is not None:
            return b""
        while True:
            try:
                msg = await async_ws_recv(self._ws, timeout)
            except ConnectionClosed:
                return self._state.closed()
            except WebSocketException as e:
                raise TransportError(e, method="GET", url=self._state.url) from e
            out = self._state.take(msg)
            if out is not None:
                return out

    async def read_until(self, want: bytes | str, timeout: float = 30.0) -> bytes:
        """Read output until it contains ``want``; everything read. :class:`TimeoutError`
        after ``timeout`` seconds (with what was read in its message), :class:`WarmpoolError`
        if the command ends first."""
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
        """Read to the command's end (output not read is dropped); how it ended."""
        while await self.recv(timeout) != b"":
            pass
        assert self._state.exit is not None
        return self._state.exit


async def open_terminal(
    base_url: str,
    path: str,
    headers: Mapping[str, str],
    start: dict[str, Any],
    open_timeout: float | None,
) -> AsyncTerminal:
    """Connect, send the start message; the terminal."""
    url = ws_url(base_url, path)
    try:
        conn = await connect(
            url,
            additional_headers=ws_headers(headers),
            open_timeout=open_timeout,
            max_size=None,
            user_agent_header=None,
        )
    except (InvalidStatus, WebSocketException, OSError, TimeoutError) as e:
        raise handshake_error(e, url) from e
    t = AsyncTerminal(conn, url)
    try:
        await t._send(json.dumps(start))
    except BaseException:
        await t.aclose()
        raise
    return t
