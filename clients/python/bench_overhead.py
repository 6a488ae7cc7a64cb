#!/usr/bin/env python3
"""The Python client's own cost per acquire + release, beside raw httpx doing the same two
requests.

Each iteration times, in alternating order (ABBA...), one acquire + release through
``warmpool.Client`` (A) and one through a bare ``httpx.Client`` (B): ``POST /v1/leases``, read
``lease_id`` from the JSON, ``DELETE /v1/leases/{id}``. Both keep one keep-alive connection
open for the whole run. Before each sample, untimed, it waits until the pool is back at its
target with no create or removal under way (a single-use release destroys the container and
starts a refill, which would otherwise compete for the CPU with the next sample), so every
timed acquire is warm on a quiet daemon (a cold one would be counted and left out). It
reports medians (and p90) of each, the difference and the ratio.

Then the same pair with no network at all (an ``httpx.MockTransport`` answering the same
bodies, in process): the Python work per acquire + release, the client's beside httpx's own,
free of the daemon's and the engine's noise.

Usage (from the repository root):

    target/pyenv/bin/python clients/python/bench_overhead.py [-n 200]
        # starts its own daemon (tests/python/daemon.py: target/debug/warmpool or $WARMPOOL_BIN)
    target/pyenv/bin/python clients/python/bench_overhead.py --url http://127.0.0.1:7070 --pool busybox
        # against a daemon you run (any pool with min_ready >= 1)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

import warmpool

ROOT = Path(__file__).resolve().parents[2]


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def wait_quiet(stats: httpx.Client, pool: str, within: float = 60.0) -> None:
    """Until the pool is back at its target with no create or removal under way, so the timed
    requests do not compete with the refill the last sample started."""
    deadline = time.monotonic() + within
    while True:
        p = stats.get(f"/v1/pools/{pool}").json()
        c = p["counts"]
        if c["ready"] >= max(1, p["target"]) and c["creating"] == c["removing"] == 0:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"pool {pool} never got quiet: {c}, target {p['target']}")
        time.sleep(0.02)


def run(url: str, token: str | None, pool: str, n: int, warmup: int) -> dict[str, Any]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    stats = httpx.Client(base_url=url, headers=headers, timeout=30)
    raw = httpx.Client(base_url=url, headers=headers, timeout=30, limits=limits)
    wp = warmpool.Client(url, token=token or "", timeout=30,
                         transport=httpx.HTTPTransport(limits=limits))

    def with_client() -> tuple[float, str]:
        t0 = time.perf_counter()
        sb = wp.acquire(pool)
        sb.release()
        return time.perf_counter() - t0, sb.lease.source

    def with_httpx() -> tuple[float, str]:
        t0 = time.perf_counter()
        r = raw.post("/v1/leases", json={"pool": pool})
        r.raise_for_status()
        lease = r.json()
        d = raw.delete(f"/v1/leases/{lease['lease_id']}")
        d.raise_for_status()
        return time.perf_counter() - t0, str(lease["source"])

    samples: dict[str, list[float]] = {"client": [], "httpx": []}
    cold = {"client": 0, "httpx": 0}
    try:
        for i in range(warmup + n):
            order = [("client", with_client), ("httpx", with_httpx)]
            if i % 2:
                order.reverse()
            for name, fn in order:
                wait_quiet(stats, pool)
                dt, source = fn()
                if i < warmup:
                    continue
                if source != "pool":
                    cold[name] += 1
                    continue
                samples[name].append(dt)
    finally:
        wp.close()
        raw.close()
        stats.close()
    return {"samples": samples, "cold": cold}


def no_network(n: int) -> dict[str, list[float]]:
    """The same two calls answered by an ``httpx.MockTransport``, no socket: what is left is
    Python work, the client's on top of httpx's own. Interleaved as above."""
    lease = {"lease_id": "L", "pool": "p", "container_id": "c", "container_name": "n",
             "engine": "default", "image": "i", "source": "pool", "acquire_ms": 0.01,
             "acquired_at": "a", "expires_at": "e", "ttl_remaining_s": 600, "state": "active"}
    body = json.dumps(lease).encode()

    def handler(req: httpx.Request) -> httpx.Response:
        if req.method == "POST":
            return httpx.Response(201, content=body, headers={"content-type": "application/json"})
        return httpx.Response(204)

    out: dict[str, list[float]] = {"client": [], "httpx": []}
    wp = warmpool.Client("http://wp", transport=httpx.MockTransport(handler))
    raw = httpx.Client(base_url="http://wp", transport=httpx.MockTransport(handler))

    def with_client() -> float:
        t0 = time.perf_counter()
        wp.acquire("p").release()
        return time.perf_counter() - t0

    def with_httpx() -> float:
        t0 = time.perf_counter()
        r = raw.post("/v1/leases", json={"pool": "p"})
        r.raise_for_status()
        raw.delete(f"/v1/leases/{r.json()['lease_id']}").raise_for_status()
        return time.perf_counter() - t0

    with wp, raw:
        for i in range(n + 100):
            order = [("client", with_client), ("httpx", with_httpx)]
            if i % 2:
                order.reverse()
            for name, fn in order:
                dt = fn()
                if i >= 100:
                    out[name].append(dt)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="a running daemon (default: start one)")
    ap.add_argument("--token", default=os.environ.get("WARMPOOL_TOKEN"))
    ap.add_argument("--pool", default="bench")
    ap.add_argument("-n", type=int, default=200, help="timed iterations of each (default 200)")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--json", help="write the raw samples here")
    args = ap.parse_args()

    daemon = None
    url = args.url
    if url is None:
        sys.path.insert(0, str(ROOT / "tests/python"))
        from daemon import Daemon

        daemon = Daemon.start(pools={args.pool: {
            "min_ready": 2, "max_ready": 2, "max_total": 8, "sizing": {"policy": "fixed"},
        }}, warm=True)
        url = daemon.url
    try:
        res = run(url, args.token, args.pool, args.n, args.warmup)
    finally:
        if daemon is not None:
            daemon.stop()
    mock = no_network(max(args.n, 2000))

    c, h = res["samples"]["client"], res["samples"]["httpx"]

    def ms(x: float) -> float:
        return x * 1000

    mc, mh = statistics.median(c), statistics.median(h)
    print(f"warm acquire + release, {len(c)} / {len(h)} samples "
          f"(cold left out: {res['cold']}), one keep-alive connection each")
    print(f"{'':24}{'median ms':>10}{'p90 ms':>10}")
    print(f"{'warmpool.Client':24}{ms(mc):10.3f}{ms(pct(c, 0.9)):10.3f}")
    print(f"{'raw httpx':24}{ms(mh):10.3f}{ms(pct(h, 0.9)):10.3f}")
    print(f"{'client - httpx':24}{ms(mc - mh):10.3f}")
    print(f"{'ratio client / httpx':24}{mc / mh:10.3f}")
    mc2, mh2 = statistics.median(mock["client"]), statistics.median(mock["httpx"])
    print(f"no network (httpx.MockTransport, {len(mock['client'])} samples each):")
    print(f"{'warmpool.Client':24}{ms(mc2):10.3f}{ms(pct(mock['client'], 0.9)):10.3f}")
    print(f"{'raw httpx':24}{ms(mh2):10.3f}{ms(pct(mock['httpx'], 0.9)):10.3f}")
    print(f"{'client - httpx':24}{ms(mc2 - mh2):10.3f}")
    print(f"{'ratio client / httpx':24}{mc2 / mh2:10.3f}")
    print(f"python {platform.python_version()}, httpx {httpx.__version__}, "
          f"{platform.machine()}, {os.cpu_count()} cpus, daemon {'started here' if daemon else url}")
    if args.json:
        Path(args.json).write_text(json.dumps({**res, "no_network": mock}))


if __name__ == "__main__":
    main()
