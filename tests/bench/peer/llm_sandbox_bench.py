"""The peer side of warmpool's benchmark: llm-sandbox's Docker container pool, measured on the
same engine and the same Python image in the same run. Prints one JSON object on stdout.

Measured, as its users would use it:
  warmup4_s   create_pool_manager(min_pool_size=4) until 4 containers are idle (--reps pools)
  enter_ms    PooledSandboxSession(pool_manager=pool).__enter__()   (acquire from the pool)
  run_ms      session.run("print(1)")
  exit_ms     session.__exit__()                                     (release to the pool)
  close4_s    pool.close() with 4 containers in the pool (--reps pools)

Its environment setup would `pip install --upgrade pip` inside each container, which cannot
reach PyPI here (the containers have no network); the image carries a pre-built venv at
/sandbox/.sandbox-venv and the pool runs with skip_environment_setup=True.
Every container gets warmpool.* labels so the run leaves nothing behind.
"""

import argparse
import json
import sys
import time

from llm_sandbox.pool import PoolConfig, PooledSandboxSession, create_pool_manager


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--image", required=True)
    ap.add_argument("--host-label", required=True, help="value of the warmpool.host label")
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--reps", type=int, default=1, help="pools started and closed, for warm-up and close")
    args = ap.parse_args()
    warmups, closes, enter, run, exit_ = [], [], None, None, None
    for rep in range(args.reps):
        got = one_pool(args, measure=(rep == 0))
        if got is None:
            return 1
        w, c, sessions = got
        warmups.append(w)
        closes.append(c)
        if sessions is not None:
            enter, run, exit_ = sessions

    from importlib.metadata import version as dist_version  # noqa: PLC0415

    print(json.dumps({
        "version": dist_version("llm-sandbox"),
        "warmup4_s": warmups,
        "enter_ms": enter,
        "run_ms": run,
        "exit_ms": exit_,
        "close4_s": closes,
    }))
    return 0


def one_pool(args, measure):
    """Start a pool of 4, optionally measure sessions, close it: (warm-up s, close s, sessions)."""
    labels = {"warmpool.managed": "true", "warmpool.host": args.host_label}
    t0 = time.perf_counter()
    pool = create_pool_manager(
        backend="docker",
        config=PoolConfig(min_pool_size=4, max_pool_size=4, health_check_interval=3600),
        lang="python",
        image=args.image,
        runtime_configs={"labels": labels, "network_mode": "none"},
        skip_environment_setup=True,
    )
    while pool.get_stats()["state_counts"].get("idle", 0) < 4:
        if time.perf_counter() - t0 > 300:
            print("llm-sandbox pool never reached 4 idle containers", file=sys.stderr)
            pool.close()
            return None
        time.sleep(0.005)
    warmup4 = time.perf_counter() - t0

    sessions = None
    if measure:
        try:
            sessions = measure_sessions(pool, args.n)
        except Exception:
            pool.close()
            raise
        if sessions[0] is None:
            pool.close()
            return None

    # Close with 4 containers in the pool (all idle again after the loop).
    t = time.perf_counter()
    pool.close()
    close4 = time.perf_counter() - t
    return warmup4, close4, sessions


def measure_sessions(pool, n):
    enter, run, exit_ = [], [], []
    for _ in range(n):
        # The pooled session itself connects with skip_environment_setup=True.
        s = PooledSandboxSession(pool_manager=pool)
        t = time.perf_counter()
        s.__enter__()
        enter.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        out = s.run("print(1)")
        run.append((time.perf_counter() - t) * 1000)
        if out.stdout.strip() != "1":
            print(f"llm-sandbox run printed {out.stdout!r}, stderr {out.stderr!r}", file=sys.stderr)
            s.__exit__(None, None, None)
            return None, None, None
        t = time.perf_counter()
        s.__exit__(None, None, None)
        exit_.append((time.perf_counter() - t) * 1000)
    return enter, run, exit_


if __name__ == "__main__":
    sys.exit(main())
