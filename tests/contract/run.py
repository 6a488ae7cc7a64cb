"""The API contract, fuzzed: schemathesis against a real daemon on the real engine.

Starts a daemon (tests/python/daemon.py) with a token, then runs schemathesis on its
/openapi.json: every operation, every check (no 5xx, status codes, content types, headers and
bodies as documented, auth enforced, unsupported methods refused), the stateful phase
following the links from a new lease, a bounded number of examples and a fixed seed. The
reports go to target/artifacts/schemathesis. Exit status: schemathesis's.

    target/pyenv/bin/python tests/contract/run.py [--max-examples N] [--seed S]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "python"))

from daemon import Daemon  # noqa: E402

TOKEN = "contract-token"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-examples", type=int, default=30)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    report = ROOT / "target" / "artifacts" / "schemathesis"
    report.mkdir(parents=True, exist_ok=True)
    pools = {
        # Short leases, so leases the fuzzer never releases free their place within seconds
        # and a warm-up always reaches its target.
        "busybox": {
            "min_ready": 2,
            "max_ready": 4,
            "max_total": 8,
            "lease": {"default_ttl": "5s", "max_ttl": "5s"},
            "exhaustion": {"strategy": "fail"},
            "reuse": {
                "enabled": True,
                "reset": ["rm -rf /tmp/* /work/*"],
                "verify": ['test -z "$(ls -A /tmp)"'],
            },
        },
    }
    schemathesis = Path(sys.executable).parent / "schemathesis"
    with Daemon.start(pools=pools, token=TOKEN) as d:
        d.warm_up("busybox")
        cmd = [
            str(schemathesis),
            "--config-file",
            str(ROOT / "tests" / "contract" / "schemathesis.toml"),
            "run",
            f"{d.url}/openapi.json",
            "--header",
            f"Authorization: Bearer {TOKEN}",
            "--checks",
            "all",
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--max-examples",
            str(args.max_examples),
            "--seed",
            str(args.seed),
            "--workers",
            "2",
            "--request-timeout",
            "30",
            "--report",
            "junit,ndjson",
            "--report-dir",
            str(report),
        ]
        print("contract:", " ".join(cmd), flush=True)
        # No --max-time: with one, schemathesis fuzzes until the time is spent; without, it
        # stops after the examples asked for. The timeout only guards against a hang.
        try:
            # hooks.py gives schemathesis real tar streams for the archive upload.
            env = {
                **os.environ,
                "NO_COLOR": "1",
                "SCHEMATHESIS_HOOKS": "hooks",
                "PYTHONPATH": os.pathsep.join(
                    p for p in (str(ROOT / "tests" / "contract"), os.environ.get("PYTHONPATH")) if p
                ),
            }
            status = subprocess.call(cmd, env=env, timeout=900)
        except subprocess.TimeoutExpired:
            print("contract: schemathesis did not finish within 900 s", file=sys.stderr)
            status = 1
        if status != 0:
            print(d.log()[-20000:], file=sys.stderr)
        return status


if __name__ == "__main__":
    sys.exit(main())
