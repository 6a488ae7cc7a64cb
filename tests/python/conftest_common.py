"""pytest glue for tests/python/daemon.py, shared by the Python test suites (the client's, the
status page's, the API contract's). Not a conftest itself: import it from one::

    # conftest.py
    import sys; sys.path.insert(0, "<repo>/tests/python")
    from conftest_common import daemon_fixture
    daemon = daemon_fixture()                     # one daemon per test module

A module then configures its daemon with ``DAEMON = dict(pools=..., token=..., warm=True)``
(the keyword arguments of ``Daemon.start``); ``daemon_fixture(**defaults)`` gives defaults.
The daemon is stopped when the scope ends, its log printed when a test in that scope failed,
and the fixture fails if any container of its host id is still on the engine afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Literal

import pytest

from daemon import Daemon, containers_of

__all__ = ["daemon_fixture"]


def daemon_fixture(
    scope: Literal["session", "package", "module", "class", "function"] = "module",
    name: str = "daemon",
    **defaults: Any,
) -> Callable[..., Any]:
    """A pytest fixture starting one :class:`Daemon` per ``scope`` (``module`` reads the
    module's ``DAEMON`` dict over ``defaults``)."""

    @pytest.fixture(scope=scope, name=name)
    def _daemon(request: pytest.FixtureRequest) -> Iterator[Daemon]:
        kwargs = dict(defaults)
        if scope == "module":
            kwargs.update(getattr(request.module, "DAEMON", {}))
        before = request.session.testsfailed
        d = Daemon.start(**kwargs)
        try:
            yield d
        finally:
            d.stop(failed=request.session.testsfailed > before)
            left = containers_of(d.host_id)
            assert not left, f"containers of {d.host_id} left behind: {left}"

    return _daemon
