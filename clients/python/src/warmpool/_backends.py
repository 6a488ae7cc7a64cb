"""What the async client and the blocking one do genuinely differently, hand-written, the two
sides next to each other. Everything else of the blocking client is generated from the async
one (``scripts/unasync.py``), which turns each ``AsyncX`` and ``async_x`` name used from here
into its blocking twin ``X`` and ``x``.

- Sleeping between retries: anyio's (asyncio or trio, as httpx) / :func:`time.sleep`.
- Shielding a lease's release from the cancellation of the block that ends it: anyio's
  shielded cancel scope / nothing (a blocking call is not cancelled).
- An upload from an iterable of chunks: async iterables are taken too / plain iterables.
- Receiving on a terminal's WebSocket within a timeout: the ``websockets`` library's asyncio
  connection has no timeout of its own (``asyncio.wait_for``; so terminals need asyncio, not
  trio) / its threaded connection takes one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import IO

import anyio  # httpx's own dependency (pinned below 1.0): sleeping and shielding on any backend
from websockets.asyncio.client import ClientConnection as AsyncConnection
from websockets.sync.client import ClientConnection as Connection

# -- async --------------------------------------------------------------------------------------

async_sleep = anyio.sleep

AsyncFileData = (
    bytes | bytearray | memoryview | str | IO[bytes] | Iterable[bytes] | AsyncIterable[bytes]
)


def async_shield() -> anyio.CancelScope:
    # Bounded by the request timeout of what runs inside.
    return anyio.CancelScope(shield=True)


async def async_byte_stream(
    data: Iterable[bytes] | AsyncIterable[bytes],
) -> AsyncIterator[bytes]:
    if isinstance(data, AsyncIterable):
        async for c in data:
            yield bytes(c)
    else:
        for c in data:
            yield bytes(c)


async def async_ws_recv(ws: AsyncConnection, timeout: float | None) -> str | bytes:
    return await asyncio.wait_for(ws.recv(), timeout)


# -- blocking -----------------------------------------------------------------------------------

sleep = time.sleep

FileData = bytes | bytearray | memoryview | str | IO[bytes] | Iterable[bytes]


def shield() -> contextlib.nullcontext[None]:
    return contextlib.nullcontext()


def byte_stream(data: Iterable[bytes]) -> Iterator[bytes]:
    return (bytes(c) for c in data)


def ws_recv(ws: Connection, timeout: float | None) -> str | bytes:
    return ws.recv(timeout)
