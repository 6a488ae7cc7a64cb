# The source of _sync_streams.py: edit this file, then run scripts/unasync.py.
"""The answers that come as a stream: :class:`AsyncFileStream` (a file read from a container),
:class:`AsyncEventStream` (``GET /v1/events``) and :class:`AsyncExecStream` (a command's
output as it is written, ``POST /v1/leases/{id}/exec/stream``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import IO, TYPE_CHECKING

import httpx

from . import _base as b
from ._interactive import ExecChunk, ExecExit, chunk_of, is_end, no_end, parse_line
from ._models import Event
from ._sse import SSEDecoder

if TYPE_CHECKING:
    from ._async import AsyncClient

__all__ = ["AsyncFileStream", "AsyncEventStream", "AsyncExecStream"]


class AsyncFileStream:
    """A file being read from a container; see :meth:`AsyncClient.stream_file`."""

    def __init__(self, client: AsyncClient, req: httpx.Request) -> None:
        self._client = client
        self._req = req
        self._resp: httpx.Response | None = None
        #: The file's size, from ``Content-Length``, once open.
        self.size: int | None = None

    async def __aenter__(self) -> AsyncFileStream:
        self._resp = await self._client._send(self._req, stream=True)
        cl = self._resp.headers.get("content-length")
        self.size = int(cl) if cl is not None and cl.isdigit() else None
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._resp is not None:
            await self._resp.aclose()

    async def aiter_bytes(self, chunk_size: int | None = None) -> AsyncIterator[bytes]:
        if self._resp is None:
            raise RuntimeError("use the stream in an `async with` block")
        try:
            async for c in self._resp.aiter_bytes(chunk_size):
                yield c
        except httpx.HTTPError as e:
            raise b.transport_error(e) from e

    async def read(self) -> bytes:
        return b"".join([c async for c in self.aiter_bytes()])

    async def copy_to(self, out: IO[bytes]) -> int:
        n = 0
        async for c in self.aiter_bytes(b.UPLOAD_CHUNK):
            out.write(c)
            n += len(c)
        return n


class AsyncEventStream:
    """Iterator of :class:`Event` over ``GET /v1/events``; see :meth:`AsyncClient.events`."""

    def __init__(self, client: AsyncClient, req: httpx.Request) -> None:
        self._client = client
        self._req = req
        self._resp: httpx.Response | None = None
        self._chunks: AsyncIterator[bytes] | None = None
        self._decoder = SSEDecoder()
        self._pending: list[Event] = []
        self._done = False

    async def open(self) -> AsyncEventStream:
        """Subscribe now (entering the ``async with`` block does this)."""
        if self._resp is None and not self._done:
            self._resp = await self._client._send(self._req, stream=True)
            self._chunks = self._resp.aiter_bytes()
        return self

    async def __aenter__(self) -> AsyncEventStream:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._done = True
        if self._resp is not None:
            await self._resp.aclose()

    def __aiter__(self) -> AsyncEventStream:
        return self

    async def __anext__(self) -> Event:
        await self.open()
        while not self._pending:
            if self._done or self._chunks is None:
                raise StopAsyncIteration
            chunk: bytes | None
            try:
                chunk = await self._chunks.__anext__()
            except StopAsyncIteration:
                chunk = None
            except httpx.HTTPError as e:
                await self.aclose()
                raise b.transport_error(e) from e
            if chunk is None:
                msgs = self._decoder.close()
                await self.aclose()
            else:
                msgs = self._decoder.feed(chunk)
            self._pending.extend(Event.from_sse(m.event, m.data) for m in msgs)
        return self._pending.pop(0)


class AsyncExecStream:
    """A command whose output comes as it is written; see :meth:`AsyncClient.exec_stream`::

        async with sb.exec_stream(["sh", "-c", "make 2>&1"]) as s:
            async for chunk in s:
                print(chunk.stream, chunk.text, end="")
        print(s.exit.exit_code)
    """

    def __init__(self, client: AsyncClient, req: httpx.Request) -> None:
        self._client = client
        self._req = req
        self._resp: httpx.Response | None = None
        self._lines: AsyncIterator[str] | None = None
        #: How the command ended, once the stream is drained.
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
        """Stop reading; the daemon kills the command's tree if it still runs."""
        if self._resp is not None:
            await self._resp.aclose()

    def __aiter__(self) -> AsyncExecStream:
        return self

    async def __anext__(self) -> ExecChunk:
        await self.open()
        assert self._lines is not None
        url = str(self._req.url)
        while self.exit is None:
            line: str | None
            try:
                line = await self._lines.__anext__()
            except StopAsyncIteration:
                line = None
            except httpx.HTTPError as e:
                await self.aclose()
                raise b.transport_error(e) from e
            if line is None:
                await self.aclose()
                raise no_end(url)
            if not line.strip():
                continue
            d = parse_line(line.encode("utf-8"), url)
            c = chunk_of(d)
            if c is not None:
                return c
            if is_end(d):
                self.exit = ExecExit.from_json(d)
                await self.aclose()
        raise StopAsyncIteration

    async def wait(self) -> ExecExit:
        """Read to the end (output not yet read is dropped); how the command ended."""
        async for _ in self:
            pass
        assert self.exit is not None
        return self.exit
