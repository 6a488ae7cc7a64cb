"""What the streamed exec (``POST /v1/leases/{id}/exec/stream``, NDJSON) and the terminals
(``GET /v1/leases/{id}/pty``, WebSocket) of both clients share: their models
(:class:`ExecChunk`, :class:`ExecExit`), decoding the exec stream's lines and the terminal's
messages, and the terminal's start message.

The streams themselves are in ``_async_streams`` (:class:`AsyncExecStream`) and
``_sync_streams`` (:class:`ExecStream`), the terminals in ``_async_terminal`` and
``_sync_terminal``; the blocking modules are generated from the async ones.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from websockets.exceptions import InvalidStatus

from . import _base as b
from ._errors import TransportError, WarmpoolError, error_from_response

__all__ = ["ExecChunk", "ExecExit"]

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


def is_end(d: JSON) -> bool:
    return "exit_code" in d or "timed_out" in d


def parse_line(line: bytes, url: str) -> JSON:
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


def chunk_of(d: JSON) -> ExecChunk | None:
    for name in ("stdout", "stderr"):
        v = d.get(f"{name}_b64")
        if isinstance(v, str):
            return ExecChunk(name, base64.b64decode(v))
        t = d.get(name)
        if isinstance(t, str):
            return ExecChunk(name, t.encode("utf-8"))
    return None


def no_end(url: str) -> WarmpoolError:
    return WarmpoolError(
        "the exec stream ended before the command's end",
        code="bad_answer",
        method="POST",
        url=url,
    )


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


def ws_headers(headers: Mapping[str, str]) -> dict[str, str]:
    # The WebSocket library sets its own accept and upgrade headers.
    return {k: v for k, v in headers.items() if k.lower() not in ("accept",)}


def handshake_error(e: Exception, url: str) -> WarmpoolError:
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


def signal_value(sig: str | int) -> str | int:
    return sig if isinstance(sig, int) else str(sig)


class TerminalState:
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
        if is_end(d):
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
