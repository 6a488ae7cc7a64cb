"""Typed views of the daemon's answers.

Each is a frozen dataclass built from the JSON answer; the whole answer stays available as
``.raw`` for fields the dataclass does not model (a newer daemon may send more). Parsing is
lenient about absent optional fields and strict about types: a field of the wrong type is a
daemon bug and raises ``ValueError``.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

__all__ = [
    "Lease",
    "ExecResult",
    "ReuseOutcome",
    "StateCounts",
    "AcquireStats",
    "CreateStats",
    "PoolStats",
    "Engine",
    "Plugin",
    "Event",
]

JSON = Mapping[str, Any]


def _obj(v: Any, what: str) -> JSON:
    if not isinstance(v, dict):
        raise ValueError(f"{what}: expected a JSON object, got {type(v).__name__}")
    return v


def _str(d: JSON, k: str, default: str | None = None) -> str:
    v = d.get(k, default)
    if not isinstance(v, str):
        raise ValueError(f"field {k!r}: expected a string, got {v!r}")
    return v


def _opt_str(d: JSON, k: str) -> str | None:
    v = d.get(k)
    if v is not None and not isinstance(v, str):
        raise ValueError(f"field {k!r}: expected a string or null, got {v!r}")
    return v


def _int(d: JSON, k: str, default: int | None = None) -> int:
    v = d.get(k, default)
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"field {k!r}: expected an integer, got {v!r}")
    return v


def _opt_int(d: JSON, k: str) -> int | None:
    v = d.get(k)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"field {k!r}: expected an integer or null, got {v!r}")
    return v


def _float(d: JSON, k: str, default: float | None = None) -> float:
    v = d.get(k, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"field {k!r}: expected a number, got {v!r}")
    return float(v)


def _opt_float(d: JSON, k: str) -> float | None:
    v = d.get(k)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ValueError(f"field {k!r}: expected a number or null, got {v!r}")
    return float(v)


def _bool(d: JSON, k: str, default: bool | None = None) -> bool:
    v = d.get(k, default)
    if not isinstance(v, bool):
        raise ValueError(f"field {k!r}: expected a boolean, got {v!r}")
    return v


def _strs(d: JSON, k: str) -> list[str]:
    v = d.get(k) or []
    if not isinstance(v, list) or not all(isinstance(a, str) for a in v):
        raise ValueError(f"field {k!r}: expected a list of strings, got {v!r}")
    return list(v)


def _labels(d: JSON, k: str) -> dict[str, str]:
    v = d.get(k) or {}
    if not isinstance(v, dict) or not all(
        isinstance(a, str) and isinstance(b, str) for a, b in v.items()
    ):
        raise ValueError(f"field {k!r}: expected an object of strings, got {v!r}")
    return dict(v)


@dataclass(frozen=True)
class Resources:
    """A lease's CPU and memory limits: the pool's, or those the lease asked for."""

    #: CPU limit in CPUs; ``None``: unlimited.
    cpus: float | None = None
    #: Memory limit in bytes (swap included); ``None``: unlimited.
    memory: int | None = None

    @classmethod
    def from_json(cls, v: Any) -> Resources:
        d = _obj(v, "resources")
        return cls(cpus=_opt_float(d, "cpus"), memory=_opt_int(d, "memory"))


@dataclass(frozen=True)
class Lease:
    """A lease as ``POST /v1/leases`` and ``GET /v1/leases[/{id}]`` show it."""

    lease_id: str
    pool: str
    container_id: str
    container_name: str
    engine: str
    image: str
    #: ``pool`` (a warm container) or ``cold`` (created for this acquire).
    source: str
    #: Time the acquire took inside the daemon, in milliseconds.
    acquire_ms: float
    acquired_at: str
    expires_at: str
    ttl_remaining_s: int
    #: ``active``; ``suspending``, ``suspended`` or ``resuming`` (hibernation); or ``gone``
    #: when the container died under the lease.
    state: str
    owner: str | None = None
    gone_reason: str | None = None
    #: When the lease was suspended, while it is (RFC 3339).
    suspended_at: str | None = None
    #: The tenant whose lease it is, when the daemon has tenants.
    tenant: str | None = None
    #: Its container's CPU and memory limits now.
    resources: Resources = field(default_factory=Resources)
    #: Only in an acquire's answer: the token that opens this lease alone (exec, files,
    #: terminal, renew, release). Hand it, never your own token, to the agent in the sandbox.
    lease_token: str | None = field(default=None, repr=False)
    raw: JSON = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, v: Any) -> Lease:
        d = _obj(v, "lease")
        return cls(
            lease_id=_str(d, "lease_id"),
            pool=_str(d, "pool"),
            container_id=_str(d, "container_id"),
            container_name=_str(d, "container_name", ""),
            engine=_str(d, "engine", ""),
            image=_str(d, "image", ""),
            source=_str(d, "source", ""),
            acquire_ms=_float(d, "acquire_ms", 0.0),
            acquired_at=_str(d, "acquired_at", ""),
            expires_at=_str(d, "expires_at", ""),
            ttl_remaining_s=_int(d, "ttl_remaining_s", 0),
            state=_str(d, "state", "active"),
            owner=_opt_str(d, "owner"),
            gone_reason=_opt_str(d, "gone_reason"),
            suspended_at=_opt_str(d, "suspended_at"),
            tenant=_opt_str(d, "tenant"),
            resources=Resources.from_json(d.get("resources") or {}),
            lease_token=_opt_str(d, "lease_token"),
            raw=d,
        )


@dataclass(frozen=True)
class ExecResult:
    """What an exec did. ``stdout`` and ``stderr`` are the exact bytes (the client asks for
    base64 output); :attr:`stdout_text` and :attr:`stderr_text` decode them as UTF-8."""

    #: ``None`` when the command timed out.
    exit_code: int | None
    stdout: bytes
    stderr: bytes
    timed_out: bool
    #: stdout or stderr went past ``server.exec_output_bytes`` and was cut.
    truncated: bool
    duration_ms: int
    raw: JSON = field(default_factory=dict, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """Exited 0 (and so did not time out)."""
        return self.exit_code == 0

    @property
    def stdout_text(self) -> str:
        return self.stdout.decode("utf-8", errors="replace")

    @property
    def stderr_text(self) -> str:
        return self.stderr.decode("utf-8", errors="replace")

    @classmethod
    def from_json(cls, v: Any) -> ExecResult:
        d = _obj(v, "exec result")
        encoding = _str(d, "encoding", "text")

        def out(k: str) -> bytes:
            s = _str(d, k, "")
            if encoding == "base64":
                return base64.b64decode(s, validate=True)
            return s.encode("utf-8")

        return cls(
            exit_code=_opt_int(d, "exit_code"),
            stdout=out("stdout"),
            stderr=out("stderr"),
            timed_out=_bool(d, "timed_out", False),
            truncated=_bool(d, "truncated", False),
            duration_ms=_int(d, "duration_ms", 0),
            raw=d,
        )


@dataclass(frozen=True)
class ReuseOutcome:
    """What became of a container released with ``reuse=True``."""

    lease_id: str
    #: Back in the pool; ``False``: it is being destroyed, see :attr:`reason`.
    reused: bool
    reason: str | None = None
    raw: JSON = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, v: Any) -> ReuseOutcome:
        d = _obj(v, "reuse outcome")
        return cls(
            lease_id=_str(d, "lease_id"),
            reused=_bool(d, "reused"),
            reason=_opt_str(d, "reason"),
            raw=d,
        )


@dataclass(frozen=True)
class StateCounts:
    """Containers per state."""

    creating: int = 0
    ready: int = 0
    leased: int = 0
    resetting: int = 0
    removing: int = 0
    unhealthy: int = 0

    @property
    def total(self) -> int:
        return (
            self.creating + self.ready + self.leased + self.resetting + self.removing + self.unhealthy
        )

    @classmethod
    def from_json(cls, v: Any) -> StateCounts:
        d = _obj(v or {}, "counts")
        return cls(**{k: _int(d, k, 0) for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class AcquireStats:
    total: int = 0
    pool: int = 0
    cold: int = 0
    rejected: int = 0
    hit_rate: float | None = None
    latency_ms_p50: float | None = None
    latency_ms_p99: float | None = None

    @classmethod
    def from_json(cls, v: Any) -> AcquireStats:
        d = _obj(v or {}, "acquires")
        return cls(
            total=_int(d, "total", 0),
            pool=_int(d, "pool", 0),
            cold=_int(d, "cold", 0),
            rejected=_int(d, "rejected", 0),
            hit_rate=_opt_float(d, "hit_rate"),
            latency_ms_p50=_opt_float(d, "latency_ms_p50"),
            latency_ms_p99=_opt_float(d, "latency_ms_p99"),
        )


@dataclass(frozen=True)
class CreateStats:
    total: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    median_ms: int | None = None
    p99_ms: int | None = None
    last_error: str | None = None
    backoff_ms: int | None = None

    @classmethod
    def from_json(cls, v: Any) -> CreateStats:
        d = _obj(v or {}, "creates")
        return cls(
            total=_int(d, "total", 0),
            failures=_int(d, "failures", 0),
            consecutive_failures=_int(d, "consecutive_failures", 0),
            median_ms=_opt_int(d, "median_ms"),
            p99_ms=_opt_int(d, "p99_ms"),
            last_error=_opt_str(d, "last_error"),
            backoff_ms=_opt_int(d, "backoff_ms"),
        )


@dataclass(frozen=True)
class PoolStats:
    """A pool as ``GET /v1/pools/{name}`` shows it (also the answer of a warm-up). Fields not
    modelled here (``counters``, ``policies``, ``creates.breakers``...) are in :attr:`raw`."""

    name: str
    image: str
    #: ``ok``, ``degraded``, ``engine_down`` or ``draining``.
    status: str
    target: int
    target_reason: str
    min_ready: int
    max_ready: int
    max_total: int
    counts: StateCounts
    waiters: int
    lendable: int
    acquires: AcquireStats
    creates: CreateStats
    engines: dict[str, StateCounts] = field(default_factory=dict)
    #: Why the pool is ``degraded`` (the OCI runtime no engine has, or the last create
    #: failure); ``None`` otherwise.
    reason: str | None = None
    #: The OCI runtime its containers run under (``runsc``); ``None``: each engine's default.
    runtime: str | None = None
    raw: JSON = field(default_factory=dict, repr=False, compare=False)

    @property
    def counters(self) -> dict[str, int]:
        """Every monotonic counter of the pool (``reused_total``, ``destroyed_total``...)."""
        c = self.raw.get("counters") or {}
        return {k: v for k, v in c.items() if isinstance(v, int)}

    @classmethod
    def from_json(cls, v: Any) -> PoolStats:
        d = _obj(v, "pool stats")
        engines = _obj(d.get("engines") or {}, "engines")
        return cls(
            name=_str(d, "name"),
            image=_str(d, "image", ""),
            status=_str(d, "status", ""),
            target=_int(d, "target", 0),
            target_reason=_str(d, "target_reason", ""),
            min_ready=_int(d, "min_ready", 0),
            max_ready=_int(d, "max_ready", 0),
            max_total=_int(d, "max_total", 0),
            counts=StateCounts.from_json(d.get("counts")),
            waiters=_int(d, "waiters", 0),
            lendable=_int(d, "lendable", 0),
            acquires=AcquireStats.from_json(d.get("acquires")),
            creates=CreateStats.from_json(d.get("creates")),
            engines={k: StateCounts.from_json(c) for k, c in engines.items()},
            reason=_opt_str(d, "reason"),
            runtime=_opt_str(d, "runtime"),
            raw=d,
        )


@dataclass(frozen=True)
class Engine:
    """One engine as ``GET /v1/engines`` shows it; the rest (``images``, ``image_copy``,
    ``containers``...) is in :attr:`raw`."""

    name: str
    #: ``up`` or ``down``.
    state: str
    endpoint: str
    labels: dict[str, str]
    max_containers: int | None
    counted: int
    containers: StateCounts
    create_p50_ms: int | None
    version: str | None
    api_version: str | None
    last_error: str | None
    #: The OCI runtimes the engine registered (``runc``, ``runsc``...), as last read.
    runtimes: list[str] = field(default_factory=list)
    #: The runtime a container gets there when its pool names none.
    default_runtime: str | None = None
    raw: JSON = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, v: Any) -> Engine:
        d = _obj(v, "engine")
        return cls(
            name=_str(d, "name"),
            state=_str(d, "state", ""),
            endpoint=_str(d, "endpoint", ""),
            labels=_labels(d, "labels"),
            max_containers=_opt_int(d, "max_containers"),
            counted=_int(d, "counted", 0),
            containers=StateCounts.from_json(d.get("containers")),
            create_p50_ms=_opt_int(d, "create_p50_ms"),
            version=_opt_str(d, "version"),
            api_version=_opt_str(d, "api_version"),
            last_error=_opt_str(d, "last_error"),
            runtimes=_strs(d, "runtimes"),
            default_runtime=_opt_str(d, "default_runtime"),
            raw=d,
        )


@dataclass(frozen=True)
class Plugin:
    """One policy plugin as ``GET /v1/plugins`` shows it."""

    pool: str
    #: ``sizing``, ``exhaustion`` or ``health``.
    kind: str
    path: str
    #: ``active``, ``compiling``, ``benched`` or ``fallback``.
    state: str
    loading: bool
    sha256: str | None
    reloads: int
    calls: int
    failures: int
    fallbacks: int
    last_error: str | None
    raw: JSON = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, v: Any) -> Plugin:
        d = _obj(v, "plugin")
        return cls(
            pool=_str(d, "pool"),
            kind=_str(d, "kind"),
            path=_str(d, "path", ""),
            state=_str(d, "state", ""),
            loading=_bool(d, "loading", False),
            sha256=_opt_str(d, "sha256"),
            reloads=_int(d, "reloads", 0),
            calls=_int(d, "calls", 0),
            failures=_int(d, "failures", 0),
            fallbacks=_int(d, "fallbacks", 0),
            last_error=_opt_str(d, "last_error"),
            raw=d,
        )


def _missed(reason: str | None) -> int | None:
    """The N of a lagged event's reason, ``missed N events``."""
    parts = (reason or "").split()
    if len(parts) >= 2 and parts[0] == "missed" and parts[1].isdigit():
        return int(parts[1])
    return None


@dataclass(frozen=True)
class Event:
    """One lifecycle event of ``GET /v1/events``.

    :attr:`kind` is ``created``, ``ready``, ``leased``, ``released``, ``reused``,
    ``recycled``, ``unhealthy``, ``removed``, ``breaker``, ``reload``, ``engine_up`` or
    ``engine_down``, or ``lagged`` when the stream fell behind and the daemon dropped events:
    :attr:`missed` then says how many.
    """

    kind: str
    pool: str
    at: str = ""
    engine: str | None = None
    container: str | None = None
    lease: str | None = None
    reason: str | None = None
    #: For ``lagged``: how many events this subscriber missed.
    missed: int | None = None
    raw: JSON = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_sse(cls, event: str, data: str) -> Event:
        """Build from one SSE message: its ``event:`` name and its ``data:``."""
        try:
            v = json.loads(data)
        except ValueError:
            return cls(kind=event or "message", pool="*", raw={"data": data})
        if event == "lagged":
            # An event like the others, its reason "missed N events"; older daemons sent N.
            reason = _opt_str(v, "reason") if isinstance(v, dict) else None
            if isinstance(v, int):
                count: int | None = v
            elif isinstance(v, dict) and isinstance(v.get("missed"), int):
                count = v["missed"]
            else:
                count = _missed(reason)
            return cls(
                kind="lagged",
                pool="*",
                at=_str(v, "at", "") if isinstance(v, dict) else "",
                reason=reason,
                missed=count,
                raw=v if isinstance(v, dict) else {"data": v},
            )
        if not isinstance(v, dict):
            return cls(kind=event or "message", pool="*", raw={"data": v})
        return cls(
            kind=_str(v, "kind", event or "message"),
            pool=_str(v, "pool", "*"),
            at=_str(v, "at", ""),
            engine=_opt_str(v, "engine"),
            container=_opt_str(v, "container"),
            lease=_opt_str(v, "lease"),
            reason=_opt_str(v, "reason"),
            raw=v,
        )
