# The source of _sync_sandbox.py: edit this file, then run scripts/unasync.py.
"""A leased container: :class:`AsyncSandbox`, as :meth:`AsyncClient.acquire` and
:meth:`AsyncClient.lease` give it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Literal, overload

from . import _base as b
from ._async_streams import AsyncExecStream, AsyncFileStream
from ._async_terminal import AsyncTerminal
from ._backends import AsyncFileData, async_shield
from ._errors import NotFound, WarmpoolError
from ._models import ExecResult, Lease, ReuseOutcome

if TYPE_CHECKING:
    from ._async import AsyncClient

__all__ = ["AsyncSandbox"]


class AsyncSandbox:
    """A leased container, as :meth:`AsyncClient.acquire` and :meth:`AsyncClient.lease` give it.

    ``async with`` it to release it at the end of the block (also on an exception; a lease that is
    already gone is fine). :attr:`lease` holds the lease as last seen.
    """

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
        #: With ``reuse=True``: what the release did, once the ``async with`` block has ended.
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
    def token(self) -> str | None:
        """The lease token (from the acquire's answer): it opens this lease alone, until the
        lease ends. ``None`` for a sandbox from :meth:`AsyncClient.attach`."""
        return self.lease.lease_token

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
            # A block left by cancellation still releases its lease (the async client's
            # shield; the blocking one has nothing to shield from).
            with async_shield():
                await self._end(self._reuse)
        except WarmpoolError as e:
            if exc is None:
                raise
            # The block's own exception wins; the failed release is told alongside it.
            b.add_note(exc, f"warmpool: releasing lease {self.id} failed too: {e}")

    async def _end(self, reuse: bool) -> ReuseOutcome | None:
        try:
            out = await self.client.release(self.id, reuse=reuse)
        except NotFound:
            out = None  # already released or expired: nothing to do
        self.released = True
        self.reuse_outcome = out
        return out

    # Each of these is the AsyncClient method of the same name on this lease.

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

    async def resize(
        self, *, cpus: float | None = None, memory: int | str | None = None
    ) -> Lease:
        """Change this lease's CPU and memory limits, live (see ``AsyncClient.resize``)."""
        self._lease = await self.client.resize(self.id, cpus=cpus, memory=memory)
        return self._lease

    async def suspend(self) -> Lease:
        """Suspend the sandbox (see :meth:`AsyncClient.suspend`); a later call resumes it
        first unless its pool refuses (:class:`LeaseSuspended`)."""
        self._lease = await self.client.suspend(self.id)
        return self._lease

    async def resume(self) -> Lease:
        """Resume the suspended sandbox."""
        self._lease = await self.client.resume(self.id)
        return self._lease

    async def refresh(self) -> Lease:
        """Read the lease again (``GET /v1/leases/{id}``)."""
        self._lease = await self.client.get_lease(self.id)
        return self._lease

    @overload
    async def release(self, *, reuse: Literal[False] = ...) -> None: ...
    @overload
    async def release(self, *, reuse: Literal[True]) -> ReuseOutcome: ...
    @overload
    async def release(self, *, reuse: bool) -> ReuseOutcome | None: ...

    async def release(self, *, reuse: bool = False) -> ReuseOutcome | None:
        """Release now (the ``async with`` block then does nothing more). Unlike the end
        of an ``async with`` block, a lease that is already gone raises
        :class:`UnknownLease`."""
        out = await self.client.release(self.id, reuse=reuse)
        self.released = True
        self.reuse_outcome = out
        return out
