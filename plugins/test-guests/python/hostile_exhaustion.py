"""Test guest: an exhaustion strategy in Python that answers out of every bound — a
`retry_after_ms` of 2^64 - 1 and a reason of `n` characters (1 MiB by default) — or, with
`mode: sleep`, parks in `time.sleep` for an hour. The host must cut the answer to its bounds
and abandon the sleep at the deadline."""

import time

import wit_world
from wit_world.imports.types import ExhaustionAction_Fail, FailInfo


class WitWorld(wit_world.WitWorld):
    mode = "huge"
    n = 1 << 20

    def init(self, config):
        settings = dict(config)
        WitWorld.mode = settings.get("mode", "huge")
        WitWorld.n = int(settings.get("n", 1 << 20))

    def on_exhausted(self, request, snapshot):
        if WitWorld.mode == "sleep":
            time.sleep(3600)
        return ExhaustionAction_Fail(FailInfo(retry_after_ms=(1 << 64) - 1, reason="r" * WitWorld.n))
