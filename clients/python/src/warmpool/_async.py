"""The async client (asyncio or trio, as httpx): :class:`AsyncClient`, :class:`AsyncSandbox`,
:class:`AsyncEventStream`, :class:`AsyncFileStream`. The same calls as the blocking client,
awaited."""

from __future__ import annotations

import math
import os
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping
from types import TracebackType
from typing import IO, Any, Literal, overload

import anyio  # httpx's own dependency (pinned below 1.0): sleeping and shielding on any backend
import httpx

from . import _base as b
from ._errors import NotFound, WarmpoolError
from ._models import Engine, Event, ExecResult, Lease, Plugin, PoolStats, ReuseOutcome
from ._interactive import AsyncExecStream, AsyncTerminal, open_async_terminal, terminal_start
from ._sse import SSEDecoder

__all__ = ["AsyncClient", "AsyncSandbox", "AsyncEventStream", "AsyncFileStream"]

# Module-level so tests can replace them.
_sleep = anyio.sleep
_monotonic = time.monotonic

AsyncFileData = (
    bytes | bytearray | memoryview | str | IO[bytes] | Iterable[bytes] | AsyncIterable[bytes]
)


def _upload(data: AsyncFileData, size: int | None) -> tuple[Any, dict[str, str]]:
    """As the blocking client's: a file object is read in chunks (blocking reads: fine for
    local files; pass an async iterable to read from elsewhere)."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    if isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
        return raw, {"content-length": str(len(raw))}
    n: int | None
    if hasattr(data, "read"):
        f: IO[bytes] = data  # type: ignore[assignment]
        n = size if size is not None else b.known_size(f)

        async def from_file() -> AsyncIterator[bytes]:
            while True:
                c = f.read(b.UPLOAD_CHUNK)
                if not c:
                    return
                if not isinstance(c, (bytes, bytearray)):
                    raise TypeError("write_file needs a binary file object (open with 'rb')")
                yield bytes(c)

        content: Any = from_file()
    elif isinstance(data, AsyncIterable):
        n = size
        src_a: AsyncIterable[bytes] = data

        async def from_async() -> AsyncIterator[bytes]:
            async for c in src_a:
                yield bytes(c)

        content = from_async()
    else:
        n = size
        src: Iterable[bytes] = data

        async def from_iter() -> AsyncIterator[bytes]:
            for c in src:
                yield bytes(c)

        content = from_iter()
    headers = {"content-type": "application/octet-stream"}
    if n is not None:
        headers["content-length"] = str(n)
    return content, headers


class AsyncClient:
    """The async twin of :class:`warmpool.Client`: same arguments, same calls, awaited.
    Use it with ``async with``, or call :meth:`aclose`."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float | httpx.Timeout | None = b.DEFAULT_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = b.resolve_url(url)
        self._token = b.resolve_token(token)
        self._timeout = b.make_timeout(timeout)
        self._headers = b.default_headers(self._token, headers)
        self._own = http_client is None
        self._http = http_client or httpx.AsyncClient(
            base_url=self.url, timeout=self._timeout, transport=transport
        )

    # -- plumbing ---------------------------------------------------------------------------

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._own:
            await self._http.aclose()

    def _build(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        content: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: httpx.Timeout | None = None,
    ) -> httpx.Request:
        h = dict(self._headers)
        if headers:
            h.update(headers)
        if method == "POST" and json is None and content is None:
            # The daemon refuses a POST that does not say it is JSON, even an empty one (a web
            # page could send that cross-site): send ``{}``.
            json = {}
        return self._http.build_request(
            method,
            self.url + path,
            json=json,
            params=params,
            content=content,
            headers=h,
            timeout=timeout or self._timeout,
        )

    async def _send(self, req: httpx.Request, *, stream: bool = False) -> httpx.Response:
        try:
            resp = await self._http.send(req, stream=stream)
            if resp.status_code >= 400:
                try:
                    body = await resp.aread()
                finally:
                    await resp.aclose()
                b.raise_for(resp, body)
        except httpx.HTTPError as e:
            raise b.transport_error(e) from e
        return resp

    async def _call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return await self._send(self._build(method, path, **kw))

    async def _json(self, method: str, path: str, **kw: Any) -> Any:
        resp = await self._call(method, path, **kw)
        try:
            return resp.json()
        except ValueError as e:
            raise WarmpoolError(
                f"the daemon answered {resp.status_code} with a body that is not JSON: "
                f"{resp.text[:200]!r}",
                status=resp.status_code,
                code="bad_answer",
                method=method,
                url=str(resp.request.url),
            ) from e

    # -- leases -----------------------------------------------------------------------------

    async def acquire(
        self,
        pool: str,
        *,
        ttl: float | None = None,
        wait_ms: int | None = None,
        owner: str | None = None,
        engine: Mapping[str, str] | None = None,
        retry_for: float | None = None,
        env: Mapping[str, str] | None = None,
        secrets: Mapping[str, str] | None = None,
        files: Mapping[str, b.SetupFile] | None = None,
        workdir: str | None = None,
    ) -> AsyncSandbox:
        """See :meth:`warmpool.Client.acquire`."""
        body = b.acquire_body(pool, ttl, wait_ms, owner, engine, env, secrets, files, workdir)
        timeout = b.stretched(self._timeout, wait_ms / 1000 if wait_ms else None)
        deadline = None if retry_for is None else _monotonic() + max(0.0, retry_for)
        while True:
            try:
                v = await self._json("POST", "/v1/leases", json=body, timeout=timeout)
                return AsyncSandbox(self, Lease.from_json(v))
            except WarmpoolError as e:
                if deadline is None:
                    raise
                delay = b.retry_delay(e, deadline - _monotonic())
                if delay is None:
                    raise
                await _sleep(delay)

    def lease(
        self,
        pool: str,
        *,
        ttl: float | None = None,
        wait_ms: int | None = None,
        owner: str | None = None,
        engine: Mapping[str, str] | None = None,
        retry_for: float | None = None,
        reuse: bool = False,
        env: Mapping[str, str] | None = None,
        secrets: Mapping[str, str] | None = None,
        files: Mapping[str, b.SetupFile] | None = None,
        workdir: str | None = None,
    ) -> AsyncSandbox:
        """See :meth:`warmpool.Client.lease`; use with ``async with``."""
        return AsyncSandbox(
            self,
            None,
            reuse=reuse,
            pending=dict(
                pool=pool, ttl=ttl, wait_ms=wait_ms, owner=owner, engine=engine,
                retry_for=retry_for, env=env, secrets=secrets, files=files, workdir=workdir,
            ),
        )

    async def leases(self) -> list[Lease]:
        v = await self._json("GET", "/v1/leases")
        return [Lease.from_json(x) for x in v.get("leases", [])]

    async def get_lease(self, lease_id: str) -> Lease:
        return Lease.from_json(await self._json("GET", b.lease_path(lease_id)))

    async def renew(self, lease_id: str, ttl: float) -> Lease:
        v = await self._json(
            "POST", f"{b.lease_path(lease_id)}/renew", json={"ttl_s": math.ceil(ttl)}
        )
        return Lease.from_json(v)

    @overload
    async def release(self, lease_id: str, *, reuse: Literal[False] = ...) -> None: ...
    @overload
    async def release(self, lease_id: str, *, reuse: Literal[True]) -> ReuseOutcome: ...
    @overload
    async def release(self, lease_id: str, *, reuse: bool) -> ReuseOutcome | None: ...

    async def release(self, lease_id: str, *, reuse: bool = False) -> ReuseOutcome | None:
        """See :meth:`warmpool.Client.release`."""
        if reuse:
            v = await self._json(
                "DELETE",
                b.lease_path(lease_id),
                params={"reuse": "true"},
                timeout=b.stretched(self._timeout, b.DEFAULT_TIMEOUT),
            )
            return ReuseOutcome.from_json(v)
        await self._call("DELETE", b.lease_path(lease_id))
        return None

    async def exec(
        self,
        lease_id: str,
        cmd: b.Cmd,
        *,
        stdin: bytes | str | None = None,
        env: Mapping[str, str] | None = None,
        workdir: str | None = None,
        timeout: float | None = None,
    ) -> ExecResult:
        """See :meth:`warmpool.Client.exec`."""
        body = b.exec_body(cmd, stdin, env, workdir, timeout)
        t = b.stretched(self._timeout, timeout if timeout is not None else 60.0)
        return ExecResult.from_json(
            await self._json("POST", f"{b.lease_path(lease_id)}/exec", json=body, timeout=t)
        )

    def exec_stream(
        self,
        lease_id: str,
        cmd: b.Cmd,
        *,
        stdin: bytes | str | None = None,
        env: Mapping[str, str] | None = None,
        workdir: str | None = None,
        timeout: float | None = None,
    ) -> AsyncExecStream:
        """See :meth:`warmpool.Client.exec_stream`; use with ``async with`` and
        ``async for``."""
        body = b.exec_body(cmd, stdin, env, workdir, timeout)
        t = b.stretched(self._timeout, timeout if timeout is not None else 60.0)
        req = self._build(
            "POST", f"{b.lease_path(lease_id)}/exec/stream", json=body, timeout=t,
            headers={"accept": "application/x-ndjson"},
        )
        return AsyncExecStream(self, req)

    async def pty(
        self,
        lease_id: str,
        cmd: b.Cmd | None = None,
        *,
        rows: int = 24,
        cols: int = 80,
        env: Mapping[str, str] | None = None,
        workdir: str | None = None,
        timeout: float | None = None,
    ) -> AsyncTerminal:
        """See :meth:`warmpool.Client.pty` (asyncio only: the ``websockets`` library's
        asyncio client)."""
        start = terminal_start(cmd, rows, cols, env, workdir, timeout)
        return await open_async_terminal(
            self.url, f"{b.lease_path(lease_id)}/pty", self._headers, start, self._timeout.connect
        )

    async def write_file(
        self, lease_id: str, path: str, data: AsyncFileData, *, size: int | None = None
    ) -> None:
        """See :meth:`warmpool.Client.write_file`; ``data`` may also be an async iterable."""
        content, headers = _upload(data, size)
        await self._call("PUT", b.file_path(lease_id, path), content=content, headers=headers)

    async def read_file(self, lease_id: str, path: str) -> bytes:
        async with self.stream_file(lease_id, path) as f:
            return await f.read()

    def stream_file(self, lease_id: str, path: str) -> AsyncFileStream:
        """A file as a stream::

            async with wp.stream_file(lease_id, "/work/big.bin") as f:
                async for chunk in f.aiter_bytes():
                    ...
        """
        req = self._build("GET", b.file_path(lease_id, path), headers={"accept": "*/*"})
        return AsyncFileStream(self, req)

    async def download_file(
        self, lease_id: str, path: str, dest: str | os.PathLike[str] | IO[bytes]
    ) -> int:
        """Stream a file into ``dest`` (a path or a binary file object; blocking writes)."""
        async with self.stream_file(lease_id, path) as f:
            if isinstance(dest, (str, os.PathLike)):
                with open(dest, "wb") as out:
                    return await f.copy_to(out)
            return await f.copy_to(dest)

    # -- pools, engines, plugins, events ----------------------------------------------------

    async def pools(self) -> list[PoolStats]:
        v = await self._json("GET", "/v1/pools")
        return [PoolStats.from_json(x) for x in v.get("pools", [])]

    async def pool(self, name: str) -> PoolStats:
        return PoolStats.from_json(await self._json("GET", b.pool_path(name)))

    async def warm_up(self, name: str, *, timeout: float | None = None) -> PoolStats:
        body: dict[str, Any] = {}
        if timeout is not None:
            body["timeout_ms"] = max(0, int(timeout * 1000))
        t = b.stretched(self._timeout, timeout if timeout is not None else 60.0)
        return PoolStats.from_json(
            await self._json("POST", f"{b.pool_path(name)}/warm-up", json=body, timeout=t)
        )

    async def engines(self) -> list[Engine]:
        v = await self._json("GET", "/v1/engines")
        return [Engine.from_json(x) for x in v.get("engines", [])]

    async def plugins(self) -> list[Plugin]:
        v = await self._json("GET", "/v1/plugins")
        return [Plugin.from_json(x) for x in v.get("plugins", [])]

    async def reload(self) -> dict[str, Any]:
        v: dict[str, Any] = await self._json("POST", "/v1/admin/reload")
        return v

    async def ready(self) -> bool:
        try:
            await self._call("GET", "/readyz")
            return True
        except WarmpoolError:
            return False

    def events(
        self,
        pool: str | None = None,
        *,
        duration: float | None = None,
        read_timeout: float | None = 60.0,
    ) -> AsyncEventStream:
        """The lifecycle events as an async iterator::

            async with wp.events(pool="busybox") as events:
                async for ev in events:
                    ...
        """
        t = httpx.Timeout(
            connect=self._timeout.connect,
            read=read_timeout,
            write=self._timeout.write,
            pool=self._timeout.pool,
        )
        req = self._build(
            "GET",
            "/v1/events",
            params=b.events_params(pool, duration),
            headers={"accept": "text/event-stream"},
            timeout=t,
        )
        return AsyncEventStream(self, req)


class AsyncSandbox:
    """A leased container; ``async with`` it to release it at the end of the block."""

    def __init__(
        self,
        client: AsyncClient,
        lease: Lease | None,
        *,
        reuse: bool = False,
        pending: dict[str, Any] | None = None,
    ) -> None:
        self.client = client
        self._lease = lease
        self._reuse = reuse
        self._pending = pending
        self.released = False
        self.reuse_outcome: ReuseOutcome | None = None

    @property
    def lease(self) -> Lease:
        if self._lease is None:
            raise RuntimeError("not acquired yet: enter the `async with` block first")
        return self._lease

    @property
    def id(self) -> str:
        return self.lease.lease_id

    @property
    def container_id(self) -> str:
        return self.lease.container_id

    def __repr__(self) -> str:
        if self._lease is None:
            return "<AsyncSandbox (not acquired)>"
        return f"<AsyncSandbox {self._lease.lease_id} pool={self._lease.pool!r}>"

    async def __aenter__(self) -> AsyncSandbox:
        if self._lease is None:
            if self._pending is None:
                raise RuntimeError("this sandbox has no lease")
            got = await self.client.acquire(**self._pending)
            self._lease, self._pending = got._lease, None
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._lease is None or self.released:
            return
        try:
            # Shielded: a block left by cancellation still releases its lease (bounded by
            # the request timeout).
            with anyio.CancelScope(shield=True):
                await self._end(self._reuse)
        except WarmpoolError as e:
            if exc is None:
                raise
            b.add_note(exc, f"warmpool: releasing lease {self.id} failed too: {e}")

    async def _end(self, reuse: bool) -> ReuseOutcome | None:
        try:
            out = await self.client.release(self.id, reuse=reuse)
        except NotFound:
            out = None
        self.released = True
        self.reuse_outcome = out
        return out

    async def exec(
        self,
        cmd: b.Cmd,
        *,
        stdin: bytes | str | None = None,
        env: Mapping[str, str] | None = None,
        workdir: str | None = None,
        timeout: float | None = None,
    ) -> ExecResult:
        return await self.client.exec(
            self.id, cmd, stdin=stdin, env=env, workdir=workdir, timeout=timeout
        )

    def exec_stream(
        self,
        cmd: b.Cmd,
        *,
        stdin: bytes | str | None = None,
        env: Mapping[str, str] | None = None,
        workdir: str | None = None,
        timeout: float | None = None,
    ) -> AsyncExecStream:
        return self.client.exec_stream(
            self.id, cmd, stdin=stdin, env=env, workdir=workdir, timeout=timeout
        )

    async def pty(
        self,
        cmd: b.Cmd | None = None,
        *,
        rows: int = 24,
        cols: int = 80,
        env: Mapping[str, str] | None = None,
        workdir: str | None = None,
        timeout: float | None = None,
    ) -> AsyncTerminal:
        return await self.client.pty(
            self.id, cmd, rows=rows, cols=cols, env=env, workdir=workdir, timeout=timeout
        )

    async def write_file(self, path: str, data: AsyncFileData, *, size: int | None = None) -> None:
        await self.client.write_file(self.id, path, data, size=size)

    async def read_file(self, path: str) -> bytes:
        return await self.client.read_file(self.id, path)

    def stream_file(self, path: str) -> AsyncFileStream:
        return self.client.stream_file(self.id, path)

    async def download_file(self, path: str, dest: str | os.PathLike[str] | IO[bytes]) -> int:
        return await self.client.download_file(self.id, path, dest)

    async def renew(self, ttl: float) -> Lease:
        self._lease = await self.client.renew(self.id, ttl)
        return self._lease

    async def refresh(self) -> Lease:
        self._lease = await self.client.get_lease(self.id)
        return self._lease

    @overload
    async def release(self, *, reuse: Literal[False] = ...) -> None: ...
    @overload
    async def release(self, *, reuse: Literal[True]) -> ReuseOutcome: ...
    @overload
    async def release(self, *, reuse: bool) -> ReuseOutcome | None: ...

    async def release(self, *, reuse: bool = False) -> ReuseOutcome | None:
        out = await self.client.release(self.id, reuse=reuse)
        self.released = True
        self.reuse_outcome = out
        return out


class AsyncFileStream:
    """A file being read from a container; see :meth:`AsyncClient.stream_file`."""

    def __init__(self, client: AsyncClient, req: httpx.Request) -> None:
        self._client = client
        self._req = req
        self._resp: httpx.Response | None = None
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
    """Async iterator of :class:`Event` over ``GET /v1/events``."""

    def __init__(self, client: AsyncClient, req: httpx.Request) -> None:
        self._client = client
        self._req = req
        self._resp: httpx.Response | None = None
        self._chunks: AsyncIterator[bytes] | None = None
        self._decoder = SSEDecoder()
        self._pending: list[Event] = []
        self._done = False

    async def open(self) -> AsyncEventStream:
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
