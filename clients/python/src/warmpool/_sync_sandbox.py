# Generated from _async_sandbox.py by scripts/unasync.py; do not edit.
"""A leased container: :class:`Sandbox`, as :meth:`Client.acquire` and
:meth:`Client.lease` give it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Literal, overload

from . import _base as b
from ._sync_streams import ExecStream, FileStream
from ._sync_terminal import Terminal
from ._backends import FileData, shield
from ._errors import NotFound, WarmpoolError
from ._models import ExecResult, Lease, ReuseOutcome

if TYPE_CHECKING:
    from ._sync import Client

__all__ = ["Sandbox"]


class Sandbox:
    """A leased container, as :meth:`Client.acquire` and :meth:`Client.lease` give it.

    ``with`` it to release it at the end of the block (also on an exception; a lease that is
    already gone is fine). :attr:`lease` holds the lease as last seen.
    """

    def __init__(
        self,
        client: Client,
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
        #: With ``reuse=True``: what the release did, once the ``with`` block has ended.
        self.reuse_outcome: ReuseOutcome | None = None

    @property
    def lease(self) -> Lease:
        if self._lease is None:
            raise RuntimeError("not acquired yet: enter the `with` block first")
        return self._lease

    @property
    def id(self) -> str:
        return self.lease.lease_id

    @property
    def token(self) -> str | None:
        """The lease token (from the acquire's answer): it opens this lease alone, until the
        lease ends. ``None`` for a sandbox from :meth:`Client.attach`."""
        return self.lease.lease_token

    @property
    def container_id(self) -> str:
        return self.lease.container_id

    def __repr__(self) -> str:
        if self._lease is None:
            return "<Sandbox (not acquired)>"
        return f"<Sandbox {self._lease.lease_id} pool={self._lease.pool!r}>"

    def __enter__(self) -> Sandbox:
        if self._lease is None:
            if self._pending is None:
                raise RuntimeError("this sandbox has no lease")
            got = self.client.acquire(**self._pending)
            self._lease, self._pending = got._lease, None
        return self

    def __exit__(
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
            with shield():
                self._end(self._reuse)
        except WarmpoolError as e:
            if exc is None:
                raise
            # The block's own exception wins; the failed release is told alongside it.
            b.add_note(exc, f"warmpool: releasing lease {self.id} failed too: {e}")

    def _end(self, reuse: bool) -> ReuseOutcome | None:
        try:
            out = self.client.release(self.id, reuse=reuse)
        except NotFound:
            out = None  # already released or expired: nothing to do
        self.released = True
        self.reuse_outcome = out
        return out

    # Each of these is the Client method of the same name on this lease.

    def exec(
        self,
        cmd: b.Cmd,
        *,
        stdin: bytes | str | None = None,
        env: Mapping[str, str] | None = None,
        workdir: str | None = None,
        timeout: float | None = None,
    ) -> ExecResult:
        return self.client.exec(
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
    ) -> ExecStream:
        return self.client.exec_stream(
            self.id, cmd, stdin=stdin, env=env, workdir=workdir, timeout=timeout
        )

    def pty(
        self,
        cmd: b.Cmd | None = None,
        *,
        rows: int = 24,
        cols: int = 80,
        env: Mapping[str, str] | None = None,
        workdir: str | None = None,
        timeout: float | None = None,
    ) -> Terminal:
        return self.client.pty(
            self.id, cmd, rows=rows, cols=cols, env=env, workdir=workdir, timeout=timeout
        )

    def write_file(self, path: str, data: FileData, *, size: int | None = None) -> None:
        self.client.write_file(self.id, path, data, size=size)

    def read_file(self, path: str) -> bytes:
        return self.client.read_file(self.id, path)

    def stream_file(self, path: str) -> FileStream:
        return self.client.stream_file(self.id, path)

    def download_file(self, path: str, dest: str | os.PathLike[str] | IO[bytes]) -> int:
        return self.client.download_file(self.id, path, dest)

    def renew(self, ttl: float) -> Lease:
        self._lease = self.client.renew(self.id, ttl)
        return self._lease

    def resize(
        self, *, cpus: float | None = None, memory: int | str | None = None
    ) -> Lease:
        """Change this lease's CPU and memory limits, live (see ``Client.resize``)."""
        self._lease = self.client.resize(self.id, cpus=cpus, memory=memory)
        return self._lease

    def suspend(self) -> Lease:
        """Suspend the sandbox (see :meth:`Client.suspend`); a later call resumes it
        first unless its pool refuses (:class:`LeaseSuspended`)."""
        self._lease = self.client.suspend(self.id)
        return self._lease

    def resume(self) -> Lease:
        """Resume the suspended sandbox."""
        self._lease = self.client.resume(self.id)
        return self._lease

    def refresh(self) -> Lease:
        """Read the lease again (``GET /v1/leases/{id}``)."""
        self._lease = self.client.get_lease(self.id)
        return self._lease

    @overload
    def release(self, *, reuse: Literal[False] = ...) -> None: ...
    @overload
    def release(self, *, reuse: Literal[True]) -> ReuseOutcome: ...
    @overload
    def release(self, *, reuse: bool) -> ReuseOutcome | None: ...

    def release(self, *, reuse: bool = False) -> ReuseOutcome | None:
        """Release now (the ``with`` block then does nothing more). Unlike the end
        of a ``with`` block, a lease that is already gone raises
        :class:`UnknownLease`."""
        out = self.client.release(self.id, reuse=reuse)
        self.released = True
        self.reuse_outcome = out
        return out
