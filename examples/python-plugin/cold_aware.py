"""`cold-aware`, in Python: a sizing policy that grows the pool after acquires had to wait
for a cold create. Each cold acquire in the last `window_ms` adds `per_cold` containers to
`min_ready`, capped at `max_ready`. The same policy as the Rust template
(examples/plugin-template), so either can serve a pool.

Build: ./build.sh (componentize-py, installed into target/ on first use)."""

import wit_world
from componentize_py_types import Err
from wit_world.imports import log
from wit_world.imports.types import AcquireSource, PoolSnapshot, SizingDecision

SETTINGS = {"window_ms": 60_000, "per_cold": 2}


class WitWorld(wit_world.WitWorld):
    def init(self, config):
        """Called once per instance with the pool's `plugins.sizing.config`; raising Err
        rejects the plugin (the built-in keeps serving, and the reason is reported)."""
        for key, value in config:
            if key not in SETTINGS:
                raise Err(f"unknown setting {key!r} (cold-aware takes window_ms, per_cold)")
            try:
                SETTINGS[key] = int(value)
            except ValueError:
                raise Err(f"{key}: {value!r} is not a whole number")
        log.log(
            log.Level.INFO,
            f"cold-aware: window {SETTINGS['window_ms']} ms, {SETTINGS['per_cold']} per cold acquire",
        )

    def decide(self, snapshot: PoolSnapshot) -> SizingDecision:
        since = max(0, snapshot.now_ms - SETTINGS["window_ms"])
        colds = sum(
            1
            for a in snapshot.recent_acquires
            if a.at_ms >= since and a.source == AcquireSource.COLD
        )
        target = min(snapshot.min_ready + colds * SETTINGS["per_cold"], snapshot.max_ready)
        return SizingDecision(
            target=target,
            reason=f"cold-aware: {colds} cold acquires in {SETTINGS['window_ms']} ms",
        )
