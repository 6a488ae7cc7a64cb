"""Test guest: a sizing plugin in Python that misbehaves as its `mode` setting says, the way a
platform team's plugin could. Built with componentize-py for warmpool's tests only; the host
must contain every mode, exactly as for the Rust guest of the same name.

- `sleep-decide` / `sleep-init`: `time.sleep(n)` (a WASI poll the guest parks in) in `decide`
  or in `init`;
- `udp`: bind a UDP socket in `decide`;
- `spin`: loop forever in `decide`;
- `sleep-later` / `spin-later`: answer an instance's first call (so the host's trial passes),
  then sleep `n` seconds, or loop forever, in every later `decide` of that instance: a plugin
  that goes bad in service (each fresh instance answers once more, so it flaps);
- `flood-log`: write `n` log lines in `decide`;
- `huge-reason`: answer a reason of `n` characters;
- `raise`: raise an exception in `decide`;
- `fine`: answer `min_ready`, logging one line.
"""

import socket
import time

import wit_world
from componentize_py_types import Err
from wit_world.imports import log
from wit_world.imports.types import PoolSnapshot, SizingDecision

DEFAULT_N = {
    "sleep-decide": 90,
    "sleep-init": 90,
    "sleep-later": 90,
    "flood-log": 100_000,
    "huge-reason": 50 << 20,
}


class WitWorld(wit_world.WitWorld):
    mode = "fine"
    n = 0
    calls = 0

    def init(self, config):
        settings = dict(config)
        mode = settings.get("mode", "fine")
        if mode not in ("sleep-decide", "sleep-init", "sleep-later", "udp", "spin",
                        "spin-later", "flood-log", "huge-reason", "raise", "fine"):
            raise Err(f"unknown mode {mode!r}")
        WitWorld.mode = mode
        WitWorld.n = int(settings.get("n", DEFAULT_N.get(mode, 0)))
        log.log(log.Level.INFO, f"hostile python sizing guest configured: mode {mode}")
        if mode == "sleep-init":
            time.sleep(WitWorld.n)

    def decide(self, snapshot: PoolSnapshot) -> SizingDecision:
        mode, n = WitWorld.mode, WitWorld.n
        WitWorld.calls += 1
        later = WitWorld.calls > 1
        if mode == "sleep-later" and later:
            time.sleep(n)
        if mode == "spin-later" and later:
            while True:
                pass
        if mode == "sleep-decide":
            time.sleep(n)
            reason = "slept"
        elif mode == "udp":
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("0.0.0.0", 0))
            reason = "bound a UDP socket"
        elif mode == "spin":
            while True:
                pass
        elif mode == "flood-log":
            for i in range(n):
                log.log(log.Level.WARN, f"flood line {i}")
            reason = "flooded"
        elif mode == "huge-reason":
            reason = "x" * n
        elif mode == "raise":
            raise RuntimeError("the python guest raised")
        else:
            log.log(log.Level.INFO, "deciding fine")
            reason = "fine"
        return SizingDecision(target=min(snapshot.min_ready, snapshot.max_ready), reason=reason)
