"""A real warmpool daemon for Python tests: the binary under test, on its own port, host id and
temporary directory, against the real Docker engine; always cleaned up.

The Python twin of ``tests/support/daemon.rs``. Standard library only (no pytest, no httpx), so
the client's tests, the status-page browser test and the schemathesis runner can all use it::

    import sys; sys.path.insert(0, "tests/python")        # from the repository root
    from daemon import Daemon

    with Daemon.start(pools={"busybox": {"min_ready": 2}}, token="s3cret") as d:
        d.warm_up("busybox")                 # optional: wait until the pool is at its target
        status, headers, body = d.request("POST", "/v1/leases", {"pool": "busybox"})
        print(d.url, d.token, d.host_id)     # http://127.0.0.1:PORT, "s3cret", "e2e-<12 hex>"
    # leaving the block: SIGTERM, wait, then `docker rm -f` of anything labelled with the host id;
    # the daemon's log is printed when the block raised.

What :meth:`Daemon.start` does:

- checks that the Docker engine answers and builds ``warmpool-test/busybox:latest`` with
  ``tests/images/build-busybox.sh`` when it is missing (no registry is needed);
- writes ``<tmp>/warmpool.yaml`` (JSON, which is YAML) with ``server: {listen: 127.0.0.1:<free
  port>, host_id: e2e-<12 hex>, shutdown_grace: 15s}``, ``limits: {max_containers: 20,
  max_concurrent_creates: 4}`` and the pools. Each pool is a dict of pool settings (README
  "Configuration"); ``image`` defaults to the test image. ``pools=None`` means one pool,
  ``busybox``, with ``min_ready: 2``;
- with ``token``: ``server.auth_token_env`` names a variable that carries it to the daemon, so
  every ``/v1`` route needs ``Authorization: Bearer <token>`` (:meth:`request` sends it);
- ``server_extra`` is merged into ``server:`` and ``config_extra`` adds top-level sections
  (``docker:``, ``plugins:``); ``limits`` replaces the default limits. The string
  ``{STATE_DIR}`` in any of their values becomes a directory inside the temporary directory
  (e.g. ``server_extra={"state_dir": "{STATE_DIR}"}``);
- runs ``$WARMPOOL_BIN`` (default ``target/debug/warmpool``) ``serve -c <config>`` with
  ``RUST_LOG=info,warmpool=debug``, ``TMPDIR`` set to the temporary directory, ``env`` added,
  and any inherited ``WARMPOOL_X__Y`` override removed; stdout and stderr go to
  ``<tmp>/daemon.log`` (:meth:`log`);
- waits (``ready_timeout``, 60 s) for ``GET /readyz`` to answer 200, failing at once with the
  log when the process exits first (a port taken between picking and binding is retried).
  ``warm=True`` also waits for every pool to reach its target.

:meth:`stop` (also run by the context manager, and at interpreter exit for a daemon nobody
stopped) sends SIGTERM, waits up to ``shutdown_grace`` + 10 s (then SIGKILL), force-removes
every container labelled ``warmpool.host=<host_id>`` (twice, to catch a create the engine
finished late) and deletes the temporary directory; ``stop(failed=True)`` prints the log first.
Containers of other host ids are never touched.

For pytest, ``conftest_common.daemon_fixture()`` (next to this file) wraps it in a fixture: one
daemon per module, configured by the module's ``DAEMON`` dict.
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Mapping

__all__ = ["Daemon", "DaemonError", "IMAGE", "REPO_ROOT", "binary", "ensure_engine_and_image",
           "containers_of", "remove_containers_of"]

REPO_ROOT = Path(__file__).resolve().parents[2]
IMAGE = "warmpool-test/busybox:latest"
TOKEN_ENV = "WARMPOOL_E2E_TOKEN"  # no `__`: not read as a config override
DEFAULT_POOLS: dict[str, dict[str, Any]] = {"busybox": {"min_ready": 2}}
DEFAULT_LIMITS: dict[str, Any] = {"max_containers": 20, "max_concurrent_creates": 4}
SHUTDOWN_GRACE_S = 15


class DaemonError(RuntimeError):
    """The daemon did not start, did not get ready, or answered something unexpected."""


def binary() -> Path:
    """The binary under test: ``$WARMPOOL_BIN``, else ``target/debug/warmpool`` (never built here)."""
    p = Path(os.environ.get("WARMPOOL_BIN") or REPO_ROOT / "target/debug/warmpool")
    if not p.is_file() or not os.access(p, os.X_OK):
        raise DaemonError(
            f"no warmpool binary at {p}: build it (cargo build -p warmpool) or set WARMPOOL_BIN"
        )
    return p


_engine_checked = False


def ensure_engine_and_image() -> None:
    """Fail loudly unless the Docker engine answers; build the test image if it is missing."""
    global _engine_checked
    if _engine_checked:
        return
    try:
        out = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise DaemonError(f"the docker CLI failed ({e}); these tests need a Docker engine") from e
    if out.returncode != 0:
        raise DaemonError(
            "the Docker engine is not reachable; these tests need it.\n" + out.stderr
            + "\nStart it with: nohup dockerd >/var/log/dockerd.log 2>&1 &")
    have = subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True)
    if have.returncode != 0:
        script = REPO_ROOT / "tests/images/build-busybox.sh"
        r = subprocess.run(["bash", str(script)], capture_output=True, text=True)
        if r.returncode != 0:
            raise DaemonError(f"building the test image failed ({script}):\n{r.stdout}{r.stderr}")
    _engine_checked = True


def containers_of(host_id: str) -> list[str]:
    """IDs of the containers (any state) labelled ``warmpool.host=<host_id>``."""
    out = subprocess.run(
        ["docker", "ps", "-aq", "--no-trunc", "--filter", f"label=warmpool.host={host_id}"],
        capture_output=True, text=True, timeout=60)
    return [line for line in out.stdout.split() if line]


def remove_containers_of(host_id: str) -> None:
    ids = containers_of(host_id)
    if ids:
        subprocess.run(["docker", "rm", "-f", *ids], capture_output=True, timeout=120)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _subst(v: Any, state_dir: str) -> Any:
    if isinstance(v, str):
        return v.replace("{STATE_DIR}", state_dir)
    if isinstance(v, dict):
        return {k: _subst(x, state_dir) for k, x in v.items()}
    if isinstance(v, list):
        return [_subst(x, state_dir) for x in v]
    return v


_live: set[Daemon] = set()


@atexit.register
def _stop_leftovers() -> None:
    for d in list(_live):
        d.stop()


def _exit_on_sigterm(signum: int, frame: object) -> None:
    # A SIGTERM (scripts/test.sh ending early) unwinds like an exception: fixtures' finally
    # blocks and the atexit hook above stop every daemon and remove its containers.
    raise SystemExit(128 + signum)


if threading.current_thread() is threading.main_thread():
    signal.signal(signal.SIGTERM, _exit_on_sigterm)


class Daemon:
    """A running daemon; see the module's docstring. Build it with :meth:`start`."""

    url: str
    token: str | None
    host_id: str
    dir: Path
    config_path: Path

    def __init__(self) -> None:  # use Daemon.start
        self._proc: subprocess.Popen[bytes] | None = None
        self._env: dict[str, str] = {}
        self._exe = Path()
        self.port = 0

    # -- starting ---------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        pools: Mapping[str, Mapping[str, Any]] | None = None,
        token: str | None = None,
        server_extra: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        *,
        limits: Mapping[str, Any] | None = None,
        config_extra: Mapping[str, Any] | None = None,
        warm: bool = False,
        ready_timeout: float = 60.0,
    ) -> Daemon:
        ensure_engine_and_image()
        exe = binary()
        d = cls()
        d.token = token
        d.host_id = f"e2e-{secrets.token_hex(6)}"
        d.dir = Path(tempfile.mkdtemp(prefix=f"warmpool-{d.host_id}-run{os.environ.get('WARMPOOL_E2E_RUN', 'solo')}-"))
        d.config_path = d.dir / "warmpool.yaml"
        state_dir = str(d.dir / "state")

        pools = DEFAULT_POOLS if pools is None else pools
        pool_cfg = {name: {"image": IMAGE, **dict(p)} for name, p in pools.items()}
        d._env = {k: v for k, v in os.environ.items()
                  if not (k.startswith("WARMPOOL_") and "__" in k)}
        d._env.update({"RUST_LOG": "info,warmpool=debug", "TMPDIR": str(d.dir)})
        if token is not None:
            d._env[TOKEN_ENV] = token
        d._env.update(env or {})
        d._exe = exe

        def config(port: int) -> dict[str, Any]:
            server: dict[str, Any] = {
                "listen": f"127.0.0.1:{port}",
                "host_id": d.host_id,
                "shutdown_grace": f"{SHUTDOWN_GRACE_S}s",
            }
            if token is not None:
                server["auth_token_env"] = TOKEN_ENV
            server.update(server_extra or {})
            cfg: dict[str, Any] = {
                "server": server,
                "limits": dict(limits) if limits is not None else dict(DEFAULT_LIMITS),
                "pools": pool_cfg,
            }
            cfg.update(config_extra or {})
            out: dict[str, Any] = _subst(cfg, state_dir)
            return out

        _live.add(d)
        try:
            for attempt in range(3):
                d.port = _free_port()
                d.url = f"http://127.0.0.1:{d.port}"
                d.config_path.write_text(json.dumps(config(d.port), indent=2) + "\n")
                d._spawn()
                if d._wait_ready(ready_timeout, retry_on_port_taken=attempt < 2):
                    break
            if warm:
                for name in pool_cfg:
                    d.warm_up(name)
        except BaseException as e:
            d.stop(failed=not isinstance(e, DaemonError))  # a DaemonError quotes the log
            raise
        return d

    def _spawn(self) -> None:
        log = open(self.dir / "daemon.log", "ab")
        try:
            self._proc = subprocess.Popen(
                [str(self._exe), "serve", "-c", str(self.config_path)],
                env=self._env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True,  # a Ctrl-C of the test run reaches us, not the daemon
            )
        finally:
            log.close()

    def _wait_ready(self, within: float, *, retry_on_port_taken: bool) -> bool:
        deadline = time.monotonic() + within
        while True:
            assert self._proc is not None
            code = self._proc.poll()
            if code is not None:
                self._proc = None
                log = self.log()
                if retry_on_port_taken and "in use" in log.lower():
                    return False
                raise DaemonError(f"daemon exited with {code} before it was ready; log:\n{log}")
            try:
                status, _, _ = self.request("GET", "/readyz", timeout=2.0)
                if status == 200:
                    return True
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise DaemonError(f"daemon not ready in {within:.0f}s; log:\n{self.log()}")
            time.sleep(0.05)

    # -- talking to it ----------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
        raw: bytes | None = None,
        token: str | None | bool = True,
        timeout: float = 90.0,
    ) -> tuple[int, dict[str, str], Any]:
        """One request. ``body`` is sent as JSON, ``raw`` as bytes. ``token=True`` sends the
        daemon's token (if any), a string sends that one, ``False``/``None`` none. Returns the
        status, the headers (lower-case names) and the answer: JSON when it parses, else text
        (``None`` when empty)."""
        h = {"accept": "application/json"}
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            h["content-type"] = "application/json"
        elif method.upper() == "POST" and raw is None:
            # Every POST must say it is JSON, even an empty one (urllib would say form data).
            data = b""
            h["content-type"] = "application/json"
        tok = self.token if token is True else (token or None)
        if tok:
            h["authorization"] = f"Bearer {tok}"
        h.update(headers or {})
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                status, hdrs, payload = r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            status, hdrs, payload = e.code, e.headers, e.read()
        text = payload.decode("utf-8", errors="replace")
        try:
            value: Any = json.loads(text) if text else None
        except ValueError:
            value = text
        return status, {k.lower(): v for k, v in hdrs.items()}, value

    def pool(self, name: str) -> dict[str, Any]:
        status, _, v = self.request("GET", f"/v1/pools/{name}")
        if status != 200:
            raise DaemonError(f"GET /v1/pools/{name}: {status} {v}")
        return v  # type: ignore[no-any-return]

    def warm_up(self, pool: str, timeout: float = 60.0) -> dict[str, Any]:
        """Block until ``pool`` holds its target of ready containers (its stats)."""
        status, _, v = self.request("POST", f"/v1/pools/{pool}/warm-up",
                                    {"timeout_ms": int(timeout * 1000)}, timeout=timeout + 30)
        if status != 200:
            raise DaemonError(f"warm-up of {pool} failed: {status} {v}\nlog:\n{self.log()}")
        return v  # type: ignore[no-any-return]

    def wait_pool(self, pool: str, cond: Any, within: float = 30.0) -> dict[str, Any]:
        """Poll the pool's stats until ``cond(stats)`` holds; fail with the last stats."""
        deadline = time.monotonic() + within
        while True:
            p: dict[str, Any] = self.pool(pool)
            if cond(p):
                return p
            if time.monotonic() > deadline:
                raise DaemonError(f"pool {pool} never met the condition in {within}s: {p}")
            time.sleep(0.1)

    def containers(self) -> list[str]:
        """IDs of this daemon's containers on the engine, any state."""
        return containers_of(self.host_id)

    def log(self) -> str:
        try:
            return (self.dir / "daemon.log").read_text(errors="replace")
        except OSError:
            return ""

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- stopping ---------------------------------------------------------------------------

    def stop(self, failed: bool = False, timeout: float = SHUTDOWN_GRACE_S + 10) -> int | None:
        """SIGTERM, wait (SIGKILL after ``timeout``), remove every container of this host id,
        delete the temporary directory. Prints the log first when ``failed``. Idempotent.
        Returns the exit code (``None`` when it was not running)."""
        code = None
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    failed = True
                    print(f"warmpool {self.host_id}: no exit {timeout}s after SIGTERM; killing",
                          file=sys.stderr)
                    proc.kill()
                    proc.wait()
            code = proc.returncode
        if self in _live:
            try:
                remove_containers_of(self.host_id)
                time.sleep(0.3)
                remove_containers_of(self.host_id)
            finally:
                _live.discard(self)
                if failed:
                    print(f"--- warmpool daemon log ({self.host_id}, {self.dir}) ---\n{self.log()}"
                          f"--- end of daemon log ---", file=sys.stderr)
                shutil.rmtree(self.dir, ignore_errors=True)
        return code

    def __enter__(self) -> Daemon:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.stop(failed=exc_type is not None)

    def __repr__(self) -> str:
        return f"<Daemon {self.host_id} {getattr(self, 'url', '?')} pid={self.pid}>"
