# The source of _sync.py: edit this file, then run scripts/unasync.py.
"""The client: :class:`AsyncClient`, whose leases are :class:`AsyncSandbox` objects."""

from __future__ import annotations

import math
import os
import time
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import IO, Any, Literal, overload

import httpx

from . import _base as b
from ._async_sandbox import AsyncSandbox
from ._async_streams import AsyncEventStream, AsyncExecStream, AsyncFileStream
from ._async_terminal import AsyncTerminal, open_terminal
from ._backends import AsyncFileData, async_byte_stream, async_sleep
from ._errors import WarmpoolError
from ._interactive import terminal_start
from ._models import Engine, ExecResult, Lease, Plugin, PoolStats, ReuseOutcome

__all__ = ["AsyncClient", "AsyncSandbox", "AsyncEventStream", "AsyncFileStream"]

# Module-level so tests can replace them.
_sleep = async_sleep
_monotonic = time.monotonic


def _upload(data: AsyncFileData, size: int | None) -> tuple[Any, dict[str, str]]:
    """The request content and headers for a file upload. A known length is sent as
    ``Content-Length`` so the daemon streams the body instead of buffering it."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    if isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
        return raw, {"content-length": str(len(raw))}
    if hasattr(data, "read"):
        f: IO[bytes] = data  # type: ignore[assignment]
        n = size if size is not None else b.known_size(f)

        # Blocking reads (by both clients): fine for local files; to read from elsewhere,
        # pass an async iterable to the async client.
        async def from_file() -> AsyncIterator[bytes]:
            while True:
                c = f.read(b.UPLOAD_CHUNK)
                if not c:
                    return
                if not isinstance(c, (bytes, bytearray)):
                    raise TypeError("write_file needs a binary file object (open with 'rb')")
                yield bytes(c)

        content: Any = from_file()
    else:
        n = size
        content = async_byte_stream(data)
    headers = {"content-type": "application/octet-stream"}
    if n is not None:
        headers["content-length"] = str(n)
    return content, headers


class AsyncClient:
    """An async client of the warmpool API.

    ``url`` defaults to ``$WARMPOOL_URL``, else ``http://127.0.0.1:7070``; ``token`` to
    ``$WARMPOOL_TOKEN`` (pass ``token=""`` to send none). ``timeout`` (seconds, or an
    ``httpx.Timeout``) bounds each request; calls that wait on purpose (exec, an acquire with
    ``wait_ms``, warm-up) stretch it by their own bound. Use it as a context manager, or call
    :meth:`aclose`. ``http_client`` lends an ``httpx.AsyncClient`` of your own (its base URL and
    headers are left alone and it is not closed); ``transport`` is handed to the one the
    client makes (for tests: ``httpx.MockTransport``).
    """

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
        """Send; raise the API error of a 4xx/5xx (its body read and the answer closed)."""
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
        cpus: float | None = None,
        memory: int | str | None = None,
    ) -> AsyncSandbox:
        """Lease a container from ``pool``; you release it (or use :meth:`lease`).

        ``ttl`` (seconds) defaults to the pool's ``default_ttl`` and is capped at its
        ``max_ttl``. ``wait_ms`` bounds the wait of a ``wait`` pool. ``engine`` takes only
        from engines with these labels. ``retry_for`` (seconds): on 429, and on 503 with
        ``Retry-After``, sleep as the daemon says (never past the bound) and try again;
        by default the first :class:`PoolExhausted` is raised.

        The lease's own set-up, applied to the warm container before it is handed over and to
        every later exec and terminal of the lease: ``env`` and ``secrets`` (variables;
        secrets never appear in the lease's answers), ``files`` (absolute path → text, bytes,
        or ``(content, mode)``; parents are created) and ``workdir``.

        ``cpus`` (CPUs, fractions allowed) and ``memory`` (bytes, or a size string such as
        ``"512m"``): the lease's own limits, within the pool's ``resources:`` bounds, applied
        before it is handed over (:class:`BadRequest`, its ``code`` ``out_of_bounds``, outside them);
        :meth:`resize` changes them later.
        """
        body = b.acquire_body(
            pool, ttl, wait_ms, owner, engine, env, secrets, files, workdir, cpus, memory
        )
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
        cpus: float | None = None,
        memory: int | str | None = None,
    ) -> AsyncSandbox:
        """As :meth:`acquire`, to use in an ``async with`` block: leaving it releases the lease (with
        ``reuse=True``: for reuse; the outcome is then ``sandbox.reuse_outcome``), also when
        the block raises. The acquire happens when the block is entered."""
        return AsyncSandbox(
            self,
            None,
            reuse=reuse,
            pending=dict(
                pool=pool, ttl=ttl, wait_ms=wait_ms, owner=owner, engine=engine,
                retry_for=retry_for, env=env, secrets=secrets, files=files, workdir=workdir,
                cpus=cpus, memory=memory,
            ),
        )

    async def leases(self) -> list[Lease]:
        """The live leases this token may see: a tenant's own, or all of them."""
        v = await self._json("GET", "/v1/leases")
        return [Lease.from_json(x) for x in v.get("leases", [])]

    async def get_lease(self, lease_id: str) -> Lease:
        return Lease.from_json(await self._json("GET", b.lease_path(lease_id)))

    async def attach(self, lease_id: str | None = None) -> AsyncSandbox:
        """A lease already held, as a sandbox: lease ``lease_id``, or, when this client was
        made with a lease token (``AsyncClient(url, token=sandbox.token)``), the lease that token
        opens. This is how an untrusted agent gets its sandbox without any other token."""
        if lease_id is None:
            lease_id = b.lease_of_token(self._token)
            if lease_id is None:
                raise ValueError("pass a lease_id, or make the client with a lease token")
        return AsyncSandbox(self, await self.get_lease(lease_id))

    async def tenants(self) -> list[dict[str, Any]]:
        """The tenants this token may see (every one for an admin, itself for a tenant): each
        one's leases, quotas, use and rejections, as ``GET /v1/tenants`` gives them."""
        v = await self._json("GET", "/v1/tenants")
        return list(v.get("tenants", []))

    async def renew(self, lease_id: str, ttl: float) -> Lease:
        """Make the lease expire ``ttl`` seconds from now (capped at the pool's ``max_ttl``)."""
        v = await self._json(
            "POST", f"{b.lease_path(lease_id)}/renew", json={"ttl_s": math.ceil(ttl)}
        )
        return Lease.from_json(v)

    async def resize(
        self, lease_id: str, *, cpus: float | None = None, memory: int | str | None = None
    ) -> Lease:
        """Change the lease's CPU and memory limits, live (``PATCH /v1/leases/{id}``), within
        its pool's ``resources:`` bounds; a limit not given stays. Returns the lease with its
        new ``resources``."""
        body = b.resources_body(cpus, memory)
        if not body:
            raise ValueError("give cpus, memory or both")
        v = await self._json("PATCH", b.lease_path(lease_id), json=body)
        return Lease.from_json(v)

    async def suspend(self, lease_id: str) -> Lease:
        """Suspend the lease: its container is checkpointed to the engine's disk and stopped
        (memory and files kept, memory freed); the TTL runs on. Raises
        :class:`CannotSuspend` when the engine cannot checkpoint."""
        v = await self._json("POST", f"{b.lease_path(lease_id)}/suspend", json={})
        return Lease.from_json(v)

    async def resume(self, lease_id: str) -> Lease:
        """Resume a suspended lease from its checkpoint (a running lease is returned as is)."""
        v = await self._json("POST", f"{b.lease_path(lease_id)}/resume", json={})
        return Lease.from_json(v)

    @overload
    async def release(self, lease_id: str, *, reuse: Literal[False] = ...) -> None: ...
    @overload
    async def release(self, lease_id: str, *, reuse: Literal[True]) -> ReuseOutcome: ...
    @overload
    async def release(self, lease_id: str, *, reuse: bool) -> ReuseOutcome | None: ...

    async def release(self, lease_id: str, *, reuse: bool = False) -> ReuseOutcome | None:
        """End the lease. By default its container is destroyed and ``None`` returned. With
        ``reuse=True`` the call returns once the pool's reset and verify ran, with the
        outcome: back in the pool, or destroyed and why."""
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
        """Run ``cmd`` (an argv, or a string run by ``sh -c``) in the lease's container.
        ``timeout`` in seconds (daemon default 60 s); a timed-out command is killed and
        answers ``timed_out=True, exit_code=None``. Output comes back byte for byte."""
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
        """As :meth:`exec`, with the output as it comes: an :class:`AsyncExecStream` of
        :class:`ExecChunk` (stdout or stderr bytes), then its ``exit`` (an :class:`ExecExit`).
        ``stdin`` is sent whole with the request, then closed. Use it in an ``async with`` block;
        leaving it early kills the command."""
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
        """A terminal in the lease's container running ``cmd`` (default ``/bin/sh``), of
        ``rows`` × ``cols``: a :class:`AsyncTerminal` (send keys, recv output, resize, signal,
        its exit). ``timeout`` (seconds) kills its tree after that long (default: a day). It
        speaks WebSocket (asyncio only, not trio) on its own connection (``http_client`` and
        ``transport`` are not used), with this client's token; use it in an ``async with``
        block, which closes it and so kills what it ran."""
        start = terminal_start(cmd, rows, cols, env, workdir, timeout)
        return await open_terminal(
            self.url, f"{b.lease_path(lease_id)}/pty", self._headers, start, self._timeout.connect
        )

    async def write_file(
        self, lease_id: str, path: str, data: AsyncFileData, *, size: int | None = None
    ) -> None:
        """Write a file (absolute ``path``; parents are created). ``data``: bytes, text
        (UTF-8), a binary file object or an iterable of byte chunks (or an async one),
        streamed. ``size`` tells the length of a stream whose length the client cannot find
        out itself; a body of unknown length is buffered by the daemon (up to
        ``server.max_upload_bytes``)."""
        content, headers = _upload(data, size)
        await self._call("PUT", b.file_path(lease_id, path), content=content, headers=headers)

    async def read_file(self, lease_id: str, path: str) -> bytes:
        """A file's bytes (use :meth:`stream_file` for large files)."""
        async with self.stream_file(lease_id, path) as f:
            return await f.read()

    def stream_file(self, lease_id: str, path: str) -> AsyncFileStream:
        """A file as a stream, to use in an ``async with`` block::

            async with wp.stream_file(lease_id, "/work/big.bin") as f:
                async for chunk in f.aiter_bytes():
                    ...
        """
        req = self._build("GET", b.file_path(lease_id, path), headers={"accept": "*/*"})
        return AsyncFileStream(self, req)

    async def download_file(
        self, lease_id: str, path: str, dest: str | os.PathLike[str] | IO[bytes]
    ) -> int:
        """Stream a file into ``dest`` (a path or a binary file object); returns its size."""
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
        """Block until the pool holds its target of ready containers; :class:`Timeout` (504)
        after ``timeout`` seconds (daemon default 60 s, at most 600 s)."""
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
        """``POST /v1/admin/reload``: reload the config now; the summary of what changed.
        Raises :class:`BadRequest` (422 ``config_rejected``) when the new config is refused."""
        v: dict[str, Any] = await self._json("POST", "/v1/admin/reload")
        return v

    async def ready(self) -> bool:
        """``GET /readyz`` answered 200."""
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
        """The lifecycle events (``GET /v1/events``), as an iterator of :class:`Event`::

            async with wp.events(pool="busybox") as events:
                async for ev in events:
                    ...

        The subscription is live once the ``async with`` block is entered (or at the first
        ``anext``). The stream ends when the daemon shuts down, or after ``duration`` seconds
        when given (the daemon's ``for_ms``, at most an hour). ``read_timeout`` bounds the
        silence between two chunks (the daemon sends a keep-alive every 15 s); ``None``: no
        bound.
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
