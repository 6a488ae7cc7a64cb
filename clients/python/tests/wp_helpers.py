"""Helpers of the client's tests (a module of its own: a test importing from `conftest`
could get another suite's conftest when several suites run in one pytest session)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: Reset and verify commands that make a busybox container reusable (as tests/tests/reuse.rs).
REUSE = {
    "enabled": True,
    "max_uses": 5,
    "reset": ["rm -rf /work/* /work/.[!.]* /work/..?* /tmp/* /tmp/.[!.]* /tmp/..?*"],
    "verify": ['test -z "$(ls -A /work)" && test -z "$(ls -A /tmp)"'],
}


def eventually(check: Callable[[], T | None], what: str, within: float = 30.0) -> T:
    """Poll ``check`` every 100 ms until it returns something other than None/False."""
    deadline = time.monotonic() + within
    while True:
        v = check()
        if v is not None and v is not False:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within}s: {what}")
        time.sleep(0.1)


def container_exists(cid: str) -> bool:
    r = subprocess.run(["docker", "inspect", "--format", "{{.Id}}", cid], capture_output=True)
    return r.returncode == 0
