"""Errors raised by the client.

Every error the daemon answers (``{"error": {"code", "message"}}``) becomes a
:class:`WarmpoolError` subclass chosen by its status and, more precisely, by its code. A body
that is not the API's JSON (a proxy's HTML page, an empty answer) still gives a
:class:`WarmpoolError` with the status, a code derived from it and the text as message.
Network failures (refused connection, timeout, a stream cut short) are
:class:`TransportError`, which wraps the ``httpx`` exception as ``__cause__``.
"""

from __future__ import annotations

import email.utils
import json
import time
from typing import Any

import httpx

__all__ = [
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
    "error_from_response",
    "parse_retry_after",
]


class WarmpoolError(Exception):
    """An error answer of the daemon, or (as :class:`TransportError`) no answer at all.

    Attributes:
        status: the HTTP status; ``None`` for a :class:`TransportError`.
        code: the API's machine-readable code (``pool_exhausted``, ``unknown_lease``...).
        message: the human-readable reason.
        retry_after: seconds to wait before retrying, from the ``Retry-After`` header;
            ``None`` when the answer carried none.
        method, url: the request that failed, when known.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str = "error",
        retry_after: float | None = None,
        method: str | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(message)
        #: The error object's other fields (``quota`` of a ``quota_exceeded``).
        self.detail: dict[str, Any] = {}
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.method = method
        self.url = url

    def __str__(self) -> str:
        where = f" ({self.method} {self.url})" if self.method and self.url else ""
        status = f"{self.status} " if self.status is not None else ""
        return f"{status}{self.code}: {self.message}{where}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, "
            f"message={self.message!r}, retry_after={self.retry_after!r})"
        )


class TransportError(WarmpoolError):
    """The request got no usable answer: connection refused or reset, a timeout, a body cut
    short. The ``httpx`` exception (a terminal's: the ``websockets`` or OS one) is
    ``__cause__`` (and :attr:`cause`)."""

    def __init__(self, cause: Exception, *, method: str | None = None, url: str | None = None):
        name = type(cause).__name__
        super().__init__(
            f"{name}: {cause}" if str(cause) else name,
            status=None,
            code="transport",
            method=method,
            url=url,
        )
        self.cause = cause


class BadRequest(WarmpoolError):
    """400, 413, 415 or 422: the request itself is wrong; retrying it unchanged will not
    help."""


class PayloadTooLarge(BadRequest):
    """413: a body past ``server.max_request_bytes`` or a file past ``max_upload_bytes``."""


class NoSuchEngine(BadRequest):
    """422 ``no_such_engine``: no engine carries the labels the acquire asked for."""


class Unauthorized(WarmpoolError):
    """401: the token is missing or wrong."""


class Conflict(WarmpoolError):
    """409: the request does not fit the state it met."""


class LeaseSuspended(Conflict):
    """409 ``lease_suspended``: the lease is suspended and its pool refuses calls on it until
    :meth:`resume`."""


class CannotSuspend(Conflict):
    """409 ``cannot_suspend``: the engine cannot checkpoint the lease's container (the message
    has its reason), or calls on the lease are under way."""


class Forbidden(WarmpoolError):
    """403 ``forbidden``: this token may not use the route (an admin route for a tenant, or
    anything but its own lease's routes for a lease token)."""


class NotFound(WarmpoolError):
    """404: an unknown pool, lease, file or route."""


class UnknownPool(NotFound):
    """404 ``unknown_pool``."""


class UnknownLease(NotFound):
    """404 ``unknown_lease``: never existed, released, or expired."""


class FileNotFound(NotFound):
    """404 ``file_not_found``: no such file in the container."""


class Gone(WarmpoolError):
    """410: the lease's container died under it."""


class ContainerGone(Gone):
    """410 ``container_gone``."""


class TooManyRequests(WarmpoolError):
    """429: try again after :attr:`retry_after`."""


class PoolExhausted(TooManyRequests):
    """429 ``pool_exhausted``: no container could be had in time; see :attr:`retry_after`."""


class QuotaExceeded(TooManyRequests):
    """429 ``quota_exceeded``: a quota of the tenant refused the request; :attr:`quota`
    names it (``max_leases``, ``acquires_per_s``, ``lease_seconds_per_hour``)."""

    @property
    def quota(self) -> str | None:
        return self.detail.get("quota") if isinstance(self.detail.get("quota"), str) else None


class ServerError(WarmpoolError):
    """A 5xx: ``create_failed``, ``engine_error``, ``internal``...; 503 and 504 are the
    subclasses :class:`Unavailable` and :class:`Timeout`."""


class Unavailable(ServerError):
    """503: the pool is degraded, the engine is down, or the daemon is shutting down."""


class PoolDegraded(Unavailable):
    """503 ``pool_degraded``: the pool's create breaker is open."""


class EngineUnavailable(Unavailable):
    """503 ``engine_unavailable``: the engine is unreachable; the lease is kept."""


class ShuttingDown(Unavailable):
    """503 ``shutting_down``."""


class Timeout(ServerError):
    """504: the daemon gave up waiting (``warm_up_timeout``)."""


_BY_CODE: dict[str, type[WarmpoolError]] = {
    "payload_too_large": PayloadTooLarge,
    "no_such_engine": NoSuchEngine,
    "unknown_pool": UnknownPool,
    "unknown_lease": UnknownLease,
    "file_not_found": FileNotFound,
    "container_gone": ContainerGone,
    "pool_exhausted": PoolExhausted,
    "quota_exceeded": QuotaExceeded,
    "forbidden": Forbidden,
    "pool_degraded": PoolDegraded,
    "engine_unavailable": EngineUnavailable,
    "shutting_down": ShuttingDown,
    "lease_suspended": LeaseSuspended,
    "cannot_suspend": CannotSuspend,
}

_BY_STATUS: dict[int, type[WarmpoolError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    413: PayloadTooLarge,
    415: BadRequest,
    422: BadRequest,
    429: TooManyRequests,
    503: Unavailable,
    504: Timeout,
}

_FALLBACK_CODE: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    410: "gone",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "too_many_requests",
    503: "unavailable",
    504: "timeout",
}


def _class_for(status: int, code: str) -> type[WarmpoolError]:
    by_status = _BY_STATUS.get(status)
    if by_status is None:
        by_status = ServerError if status >= 500 else WarmpoolError
    by_code = _BY_CODE.get(code)
    # The code refines the status's class only when it agrees with it (a 404 whose code says
    # `pool_exhausted` would be a daemon bug; keep the class the status promises).
    if by_code is not None and issubclass(by_code, by_status):
        return by_code
    return by_status


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` in seconds: delta-seconds or an HTTP date; ``None`` if absent or bad."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        secs = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        secs = when.timestamp() - (time.time() if now is None else now)
    if secs != secs or secs in (float("inf"), float("-inf")):  # NaN, inf
        return None
    return max(0.0, secs)


def error_from_response(
    status: int,
    headers: httpx.Headers,
    body: bytes,
    *,
    method: str | None = None,
    url: str | None = None,
) -> WarmpoolError:
    """Build the error for an answer with a 4xx or 5xx status, whatever its body."""
    code: str | None = None
    message: str | None = None
    detail: dict[str, Any] = {}
    try:
        parsed: Any = json.loads(body) if body else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        err = parsed.get("error")
        if isinstance(err, dict):
            c, m = err.get("code"), err.get("message")
            code = c if isinstance(c, str) and c else None
            message = m if isinstance(m, str) else None
            detail = {k: v for k, v in err.items() if k not in ("code", "message")}
        elif isinstance(err, str):
            message = err
    if message is None:
        text = body.decode("utf-8", errors="replace").strip()
        if len(text) > 2000:
            text = text[:2000] + "…"
        message = text or httpx.codes.get_reason_phrase(status) or f"HTTP {status}"
    if code is None:
        code = _FALLBACK_CODE.get(status, "internal" if status >= 500 else f"http_{status}")
    cls = _class_for(status, code)
    e = cls(
        message,
        status=status,
        code=code,
        retry_after=parse_retry_after(headers.get("retry-after")),
        method=method,
        url=url,
    )
    e.detail = detail
    return e
