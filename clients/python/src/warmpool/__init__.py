"""warmpool: a Python client for the warmpool daemon's HTTP API.

Lease a pre-warmed Docker sandbox, run commands and move files in it, and give it back::

    import warmpool

    with warmpool.Client("http://127.0.0.1:7070", token=None) as wp:
        with wp.lease("python", ttl=300) as sb:
            r = sb.exec(["python3", "-c", "print(1)"])
            sb.write_file("/work/a.py", b"print(2)")

The async twin is :class:`AsyncClient` (``async with``, ``await``). Every error is a
:class:`WarmpoolError`; see the README for the classes and for retries and events.
"""

from ._async import AsyncClient, AsyncEventStream, AsyncFileStream, AsyncSandbox
from ._base import __version__
from ._errors import (
    BadRequest,
    CannotSuspend,
    Conflict,
    ContainerGone,
    EngineUnavailable,
    FileNotFound,
    Forbidden,
    Gone,
    LeaseSuspended,
    NoSuchEngine,
    NotFound,
    PayloadTooLarge,
    PoolDegraded,
    PoolExhausted,
    QuotaExceeded,
    ServerError,
    ShuttingDown,
    Timeout,
    TooManyRequests,
    TransportError,
    Unauthorized,
    Unavailable,
    UnknownLease,
    UnknownPool,
    WarmpoolError,
)
from ._models import (
    AcquireStats,
    CreateStats,
    Engine,
    Event,
    ExecResult,
    Lease,
    Plugin,
    PoolStats,
    Resources,
    ReuseOutcome,
    StateCounts,
)
from ._async_streams import AsyncExecStream
from ._async_terminal import AsyncTerminal
from ._interactive import ExecChunk, ExecExit
from ._sync import Client, EventStream, FileStream, Sandbox
from ._sync_streams import ExecStream
from ._sync_terminal import Terminal

__all__ = [
    "__version__",
    "Client",
    "AsyncClient",
    "Sandbox",
    "AsyncSandbox",
    "EventStream",
    "AsyncEventStream",
    "FileStream",
    "AsyncFileStream",
    "Lease",
    "Resources",
    "ExecResult",
    "ExecStream",
    "AsyncExecStream",
    "ExecChunk",
    "ExecExit",
    "Terminal",
    "AsyncTerminal",
    "ReuseOutcome",
    "PoolStats",
    "StateCounts",
    "AcquireStats",
    "CreateStats",
    "Engine",
    "Plugin",
    "Event",
    "WarmpoolError",
    "TransportError",
    "BadRequest",
    "PayloadTooLarge",
    "NoSuchEngine",
    "Unauthorized",
    "Forbidden",
    "NotFound",
    "UnknownPool",
    "UnknownLease",
    "FileNotFound",
    "Gone",
    "LeaseSuspended",
    "CannotSuspend",
    "Conflict",
    "ContainerGone",
    "TooManyRequests",
    "PoolExhausted",
    "QuotaExceeded",
    "ServerError",
    "Unavailable",
    "PoolDegraded",
    "EngineUnavailable",
    "ShuttingDown",
    "Timeout",
]
