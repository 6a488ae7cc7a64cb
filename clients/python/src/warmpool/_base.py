"""What the sync and async clients share: settings, request bodies, paths, timeouts, error
mapping and the retry rule. Neither does any I/O here."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx

from ._errors import (
    TooManyRequests,
    TransportError,
    Unavailable,
    WarmpoolError,
    error_from_response,
)

__version__ = "0.1.0"

DEFAULT_URL = "http://127.0.0.1:7070"
#: Seconds; the bound on connecting and on each request, stretched by the calls that wait on
#: purpose (an exec up to its own timeout, an acquire up to its ``wait_ms``, a warm-up).
DEFAULT_TIMEOUT = 60.0
#: Slack added to a call's own time limit before the client gives up on the answer.
SLACK = 30.0
#: Chunk size for uploads read from a file object.
UPLOAD_CHUNK = 256 * 1024
#: Largest sleep when an answer carries no ``Retry-After`` (should not happen on a 429).
DEFAULT_RETRY_AFTER = 1.0

Cmd = Sequence[str] | str


def resolve_url(url: str | None) -> str:
    u = url or os.environ.get("WARMPOOL_URL") or DEFAULT_URL
    return u.rstrip("/")


def resolve_token(token: str | None) -> str | None:
    if token is not None:
        return token or None
    return os.environ.get("WARMPOOL_TOKEN") or None


def default_headers(token: str | None, extra: Mapping[str, str] | None) -> dict[str, str]:
    h = {"user-agent": f"warmpool-client-python/{__version__}", "accept": "application/json"}
    if token:
        h["authorization"] = f"Bearer {token}"
    if extra:
        h.update(extra)
    return h


def make_timeout(timeout: float | httpx.Timeout | None) -> httpx.Timeout:
    if isinstance(timeout, httpx.Timeout):
        return timeout
    return httpx.Timeout(timeout)


def stretched(base: httpx.Timeout, waits_s: float | None) -> httpx.Timeout:
    """``base`` with its read and write bounds raised to cover a wait of ``waits_s`` seconds
    the daemon takes on purpose, plus slack. ``None`` bounds stay ``None`` (no bound)."""
    if waits_s is None:
        return base

    def up(v: float | None) -> float | None:
        return None if v is None else max(v, waits_s + SLACK)

    return httpx.Timeout(connect=base.connect, read=up(base.read), write=base.write, pool=base.pool)


def lease_path(lease_id: str) -> str:
    if not isinstance(lease_id, str) or not lease_id:
        raise ValueError("lease_id must be a non-empty string")
    return f"/v1/leases/{quote(lease_id, safe='')}"


def file_path(lease_id: str, path: str) -> str:
    """The route of a file in the lease's container. ``path`` must be absolute; ``..``
    segments and NUL are refused here, before any HTTP library can normalise them away."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError(f"path must be absolute in the container, got {path!r}")
    if "\0" in path:
        raise ValueError("path must not contain NUL")
    if ".." in path.split("/"):
        raise ValueError(f"path must not contain '..' segments: {path!r}")
    rel = path.lstrip("/")
    if not rel:
        raise ValueError("path names no file")
    return f"{lease_path(lease_id)}/files/{quote(rel, safe='/')}"


def pool_path(name: str) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError("pool name must be a non-empty string")
    return f"/v1/pools/{quote(name, safe='')}"


#: A file of a lease's set-up: text, bytes, or (content, permission bits).
SetupFile = str | bytes | tuple[str | bytes, int]


def files_body(files: Mapping[str, SetupFile]) -> dict[str, Any]:
    """The acquire body's ``files``: text as it is, bytes in base64, a mode when given."""
    import base64

    out: dict[str, Any] = {}
    for path, f in files.items():
        mode: int | None = None
        if isinstance(f, tuple):
            f, mode = f
        if isinstance(f, str) and mode is None:
            out[path] = f
            continue
        raw = f.encode("utf-8") if isinstance(f, str) else bytes(f)
        entry: dict[str, Any] = {"content_b64": base64.b64encode(raw).decode("ascii")}
        if mode is not None:
            entry["mode"] = int(mode)
        out[path] = entry
    return out


def acquire_body(
    pool: str,
    ttl: float | None,
    wait_ms: int | None,
    owner: str | None,
    engine: Mapping[str, str] | None,
    env: Mapping[str, str] | None = None,
    secrets: Mapping[str, str] | None = None,
    files: Mapping[str, SetupFile] | None = None,
    workdir: str | None = None,
    cpus: float | None = None,
    memory: int | str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"pool": pool}
    body.update(resources_body(cpus, memory))
    if env:
        body["env"] = dict(env)
    if secrets:
        body["secrets"] = dict(secrets)
    if files:
        body["files"] = files_body(files)
    if workdir is not None:
        body["workdir"] = workdir
    if ttl is not None:
        body["ttl_s"] = math.ceil(ttl)
    if wait_ms is not None:
        body["wait_ms"] = int(wait_ms)
    if owner is not None:
        body["owner"] = owner
    if engine:
        body["engine"] = dict(engine)
    return body


def exec_body(
    cmd: Cmd,
    stdin: bytes | str | None,
    env: Mapping[str, str] | None,
    workdir: str | None,
    timeout: float | None,
) -> dict[str, Any]:
    argv = ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
    body: dict[str, Any] = {"cmd": argv, "output": "base64"}
    if isinstance(stdin, str):
        body["stdin"] = stdin
    elif stdin is not None:
        import base64

        body["stdin_b64"] = base64.b64encode(bytes(stdin)).decode("ascii")
    if env:
        body["env"] = dict(env)
    if workdir is not None:
        body["workdir"] = workdir
    if timeout is not None:
        body["timeout_ms"] = max(1, math.ceil(timeout * 1000))
    return body


def raise_for(resp: httpx.Response, body: bytes) -> None:
    """Raise the API error of an answer with a 4xx or 5xx status."""
    if resp.status_code >= 400:
        req = resp.request
        raise error_from_response(
            resp.status_code, resp.headers, body, method=req.method, url=str(req.url)
        )


def transport_error(e: httpx.HTTPError) -> TransportError:
    method = url = None
    try:
        req = e.request
        method, url = req.method, str(req.url)
    except RuntimeError:  # no request attached
        pass
    return TransportError(e, method=method, url=url)


def lease_of_token(token: str | None) -> str | None:
    """The lease ID a lease token (``wpl.<id>.<mac>``) opens; ``None`` for any other token."""
    if not token or not token.startswith("wpl."):
        return None
    lease_id, dot, _ = token[4:].rpartition(".")
    return lease_id if dot and lease_id else None


def retry_delay(err: WarmpoolError, remaining: float) -> float | None:
    """How long to sleep before retrying an acquire that got ``err`` with ``remaining``
    seconds of its ``retry_for`` left; ``None``: do not retry. A 429 (an exhausted pool, a
    tenant's quota) is retried, and a 503
    that says when to come back (``Retry-After``: a degraded pool, an engine down); never
    past the bound."""
    if remaining <= 0:
        return None
    if isinstance(err, TooManyRequests):
        after = err.retry_after if err.retry_after is not None else DEFAULT_RETRY_AFTER
    elif isinstance(err, Unavailable) and err.retry_after is not None:
        after = err.retry_after
    else:
        return None
    return min(after, remaining)


def known_size(f: Any) -> int | None:
    """Bytes left to read in a binary file object, if it can tell without reading."""
    try:
        fd = f.fileno()
        st = os.fstat(fd)
        import stat

        if stat.S_ISREG(st.st_mode):
            return max(0, st.st_size - int(f.tell()))
    except (AttributeError, OSError, ValueError):
        pass
    try:
        if f.seekable():
            pos = int(f.tell())
            end = int(f.seek(0, os.SEEK_END))
            f.seek(pos)
            return max(0, end - pos)
    except (AttributeError, OSError, ValueError):
        pass
    return None


def add_note(exc: BaseException, note: str) -> None:
    """``exc.add_note`` where Python has it (3.11+)."""
    add = getattr(exc, "add_note", None)
    if add is not None:
        add(note)


def events_params(pool: str | None, duration: float | None) -> dict[str, str] | None:
    params: dict[str, str] = {}
    if pool is not None:
        params["pool"] = pool
    if duration is not None:
        params["for_ms"] = str(max(0, math.ceil(duration * 1000)))
    return params or None


def resources_body(cpus: float | None, memory: int | str | None) -> dict[str, Any]:
    """A lease's ``cpus`` (CPUs, fractions allowed) and ``memory`` (bytes, or a size string
    such as ``"512m"``), as the daemon reads them."""
    body: dict[str, Any] = {}
    if cpus is not None:
        body["cpus"] = cpus
    if memory is not None:
        body["memory"] = memory
    return body
