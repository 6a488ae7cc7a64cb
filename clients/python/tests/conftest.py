"""Fixtures: one real daemon per test module (tests/python/daemon.py), against the real engine.

A module sets ``DAEMON = dict(pools=..., token=..., ...)`` (the arguments of ``Daemon.start``)
to configure its daemon; the ``daemon`` fixture starts it once for the module and stops it at
the end, printing its log when a test of the module failed, and failing if any of its
containers is left on the engine. ``wp`` is a client of it that checks, after each test, that
the test left no lease behind. Helpers are in ``wp_helpers``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests/python"))

from conftest_common import daemon_fixture  # noqa: E402
from daemon import Daemon  # noqa: E402

import warmpool  # noqa: E402

daemon = daemon_fixture()


@pytest.fixture
def wp(daemon: Daemon) -> Iterator[warmpool.Client]:
    with warmpool.Client(daemon.url, token=daemon.token or "") as c:
        yield c
        # No test may leave a lease behind (each releases what it takes).
        left = [lease.lease_id for lease in c.leases()]
        assert not left, f"leases left behind: {left}"
