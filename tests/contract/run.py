"""The API contract, fuzzed: schemathesis against a real daemon on the real engine.

Starts a daemon (tests/python/daemon.py) with an admin token and a tenant, then runs
schemathesis on its /openapi.json twice: as the admin, and as the tenant (whose admin routes
must answer the documented 403 and whose quotas may answer 429). Each pass: every operation,
every check (no 5xx, status codes, content types, headers and bodies as documented, auth
enforced, unsupported methods refused), the stateful phase following the links from a new
lease, a bounded number of examples and a fixed seed. The reports go to
target/artifacts/schemathesis/{admin,tenant}. Exit status: the first failing pass's.

    target/pyenv/bin/python tests/contract/run.py [--max-examples N] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "python"))

from daemon import Daemon  # noqa: E402

TOKEN = "contract-token"
TENANT_TOKEN = "contract-tenant-token"
TENANT_ENV = "WARMPOOL_CONTRACT_TENANT"
# The routes only an admin may use: as the tenant, every request to them answers 403.
ADMIN_ONLY = ["warm_up", "list_engines", "list_plugins", "admin_reload", "scale_pool", "unscale_pool"]


def tenant_config(base: Path, out: Path, url: str) -> Path:
    """The base settings, and for the tenant pass: the admin routes answer 403 `forbidden`
    whatever the input."""
    with urllib.request.urlopen(f"{url}/openapi.json", timeout=30) as r:
        doc = json.load(r)
    ops = {op.get("operationId") for item in doc["paths"].values() for op in item.values()
           if isinstance(op, dict)}
    # The base's own entries for those routes go: a tenant's answer there is 403 alone.
    head, *blocks = base.read_text().split("\n[[operations]]\n")
    text = head + "".join(
        "\n[[operations]]\n" + b for b in blocks
        if not any(f'include-operation-id = "{o}"' in b for o in ADMIN_ONLY)
    )
    for op in [o for o in ADMIN_ONLY if o in ops]:
        text += (
            f'\n[[operations]]\ninclude-operation-id = "{op}"\n'
            "checks.positive_data_acceptance.expected-statuses = [403]\n"
        )
    path = out / "tenant.toml"
    path.write_text(text)
    return path


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
    tenants = [{
        "name": "team-a",
        "token_env": TENANT_ENV,
        "pools": ["busybox"],
        "quotas": {"max_leases": 3, "acquires_per_s": 50},
    }]
    base = ROOT / "tests" / "contract" / "schemathesis.toml"
    with Daemon.start(pools=pools, token=TOKEN, server_extra={"tenants": tenants},
                      env={TENANT_ENV: TENANT_TOKEN}) as d:
        d.warm_up("busybox")
        status = 0
        for name, token, config in [
            ("admin", TOKEN, base),
            ("tenant", TENANT_TOKEN, tenant_config(base, report, d.url)),
        ]:
            status = status or passes(d, schemathesis, name, token, config, args, report / name)
        return status


def passes(d: Daemon, schemathesis: Path, name: str, token: str, config: Path,
           args: argparse.Namespace, report: Path) -> int:
    """One schemathesis run as `token`."""
    report.mkdir(parents=True, exist_ok=True)
    cmd = [
        str(schemathesis),
        "--config-file",
        str(config),
        "run",
        f"{d.url}/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
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
    print(f"contract ({name}):", " ".join(cmd).replace(token, "<token>"), flush=True)
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
