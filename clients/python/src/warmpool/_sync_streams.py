# Generated from _async_streams.py by scripts/unasync.py; do not edit.
"""The answers that come as a stream: :class:`FileStream` (a file read from a container),
:class:`EventStream` (``GET /v1/events``) and :class:`ExecStream` (a command's
output as it is written, ``POST /v1/leases/{id}/exec/stream``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, TYPE_CHECKING

import httpx

from . import _base as b
from ._interactive import ExecChunk, ExecExit, chunk_of, is_end, no_end, parse_line
from ._models import Event
from ._sse import SSEDecoder

if TYPE_CHECKING:
    from ._sync import Client

__all__ = ["FileStream", "EventStream", "ExecStream"]


class FileStream:
    """A file being read from a container; see :meth:`Client.stream_file`."""

    def __init__(self, client: Client, req: httpx.Request) -> None:
        self._client = client
        self._req = req
        self._resp: httpx.Response | None = None
        #: The file's size, from ``Content-Length``, once open.
        self.size: int | None = None

    def __enter__(self) -> FileStream:
        self._resp = self._client._send(self._req, stream=True)
        cl = self._resp.headers.get("content-length")
        self.size = int(cl) if cl is not None and cl.isdigit() else None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._resp is not None:
            self._resp.close()

    def iter_bytes(self, chunk_size: int | None = None) -> Iterator[bytes]:
        if self._resp is None:
            raise RuntimeError("use the stream in a `with` block")
        try:
            for c in self._resp.iter_bytes(chunk_size):
                yield c
        except httpx.HTTPError as e:
            raise b.transport_error(e) from e

    def read(self) -> bytes:
        return b"".join([c for c in self.iter_bytes()])

    def copy_to(self, out: IO[bytes]) -> int:
        n = 0
        for c in self.iter_bytes(b.UPLOAD_CHUNK):
            out.write(c)
            n += len(c)
        return n


class EventStream:
    """Iterator of :class:`Event` over ``GET /v1/events``; see :meth:`Client.events`."""

    def __init__(self, client: Client, req: httpx.Request) -> None:
        self._client = client
        self._req = req
        self._resp: httpx.Response | None = None
        self._chunks: Iterator[bytes] | None = None
        self._decoder = SSEDecoder()
        self._pending: list[Event] = []
        self._done = False

    def open(self) -> EventStream:
        """Subscribe now (entering the ``with`` block does this)."""
        if self._resp is None and not self._done:
            self._resp = self._client._send(self._req, stream=True)
            self._chunks = self._resp.iter_bytes()
        return self

    def __enter__(self) -> EventStream:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._done = True
        if self._resp is not None:
            self._resp.close()

    def __iter__(self) -> EventStream:
        return self

    def __next__(self) -> Event:
        self.open()
        while not self._pending:
            if self._done or self._chunks is None:
                raise StopIteration
            chunk: bytes | None
            try:
                chunk = self._chunks.__next__()
            except StopIteration:
                chunk = None
            except httpx.HTTPError as e:
                self.close()
                raise b.transport_error(e) from e
            if chunk is None:
                msgs = self._decoder.close()
                self.close()
            else:
                msgs = self._decoder.feed(chunk)
            self._pending.extend(Event.from_sse(m.event, m.data) for m in msgs)
        return self._pending.pop(0)


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
            line: str | None
            try:
                line = self._lines.__next__()
            except StopIteration:
                line = None
            except httpx.HTTPError as e:
                self.close()
                raise b.transport_error(e) from e
            if line is None:
                self.close()
                raise no_end(url)
            if not line.strip():
                continue
            d = parse_line(line.encode("utf-8"), url)
            c = chunk_of(d)
            if c is not None:
                return c
            if is_end(d):
                self.exit = ExecExit.from_json(d)
                self.close()
        raise StopIteration

    def wait(self) -> ExecExit:
        """Read to the end (output not yet read is dropped); how the command ended."""
        for _ in self:
            pass
        assert self.exit is not None
        return self.exit
