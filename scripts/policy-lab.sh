#!/usr/bin/env bash
# The policy lab's benchmark (BENCHMARKS.md, "Sizing policies on every shape"): every shipped
# sizing policy, and static pools of 0 to 12, on every trace shape, for several seeds, with
# `warmpool-lab simulate`. Prints one markdown table a shape.
#
#   scripts/policy-lab.sh [SEEDS...]        default seeds: 1 2 3
#
# Needs a built `warmpool-lab` (WARMPOOL_LAB_BIN, default target/release/warmpool-lab, else
# target/debug) and the sizing plugins (plugins/target/wasm32-wasip2/release/sizing_*.wasm; the
# test build makes them).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${WARMPOOL_LAB_BIN:-target/release/warmpool-lab}
[ -x "$bin" ] || bin=target/debug/warmpool-lab
wasm=plugins/target/wasm32-wasip2/release
seeds=("${@:-1 2 3}")
# shellcheck disable=SC2206
seeds=(${seeds[*]})
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
statics=(0 1 2 3 4 6 8 12)
pols=()
for n in "${statics[@]}"; do pols+=(--policy "builtin:fixed:$n"); done
pols+=(--policy builtin:adaptive --policy "$wasm/sizing_adaptive.wasm" --policy "$wasm/sizing_predictive.wasm")
for shape in poisson diurnal fanout ramp idle; do
  for seed in "${seeds[@]}"; do
    "$bin" trace generate --shape "$shape" --seed "$seed" -o "$tmp/$shape-$seed.csv" 2>/dev/null
    start=$SECONDS
    "$bin" simulate -c examples/lab.yaml --trace "$tmp/$shape-$seed.csv" --seed "$seed" \
      "${pols[@]}" --json > "$tmp/$shape-$seed.json"
    echo "$shape seed $seed: $((SECONDS - start)) s" >&2
  done
done
python3 - "$tmp" "${seeds[@]}" <<'PY'
import json, sys, os
tmp, seeds = sys.argv[1], sys.argv[2:]
for shape in ["poisson", "diurnal", "fanout", "ramp", "idle"]:
    runs = {s: json.load(open(os.path.join(tmp, f"{shape}-{s}.json"))) for s in seeds}
    first = runs[seeds[0]]
    acq = "/".join(str(runs[s]["policies"][0]["acquires"]) for s in seeds)
    print(f"\n#### {shape} (acquires per seed: {acq})\n")
    head = "| policy | " + " | ".join(f"seed {s}: hit rate · idle c·s · wait p99" for s in seeds) + " |"
    print(head)
    print("|---" * (1 + len(seeds)) + "|")
    for i, p in enumerate(first["policies"]):
        cells = []
        for s in seeds:
            q = runs[s]["policies"][i]
            cells.append(f"{q['hit_rate']*100:.1f}% · {q['idle_container_seconds']:,.0f} · {q['wait_ms_p99']:,.0f} ms")
        print(f"| {p['policy']} | " + " | ".join(cells) + " |")
    # The predictive policy against the static frontier (straight lines between the static
    # sizes): the idle a static pool needs for the same hit rate, and the hit rate a static
    # pool gets for the same idle.
    notes = []
    for s in seeds:
        ps = runs[s]["policies"]
        stat = sorted((q for q in ps if q["policy"].startswith("builtin:fixed:")),
                      key=lambda q: q["idle_container_seconds"])
        pred = next(q for q in ps if "predictive" in q["policy"])
        pts = [(q["idle_container_seconds"], q["hit_rate"]) for q in stat]
        def idle_at(h):
            for (i0, h0), (i1, h1) in zip(pts, pts[1:]):
                if h0 <= h <= h1 and h1 > h0:
                    return i0 + (h - h0) / (h1 - h0) * (i1 - i0)
            return None
        def hit_at(i):
            for (i0, h0), (i1, h1) in zip(pts, pts[1:]):
                if i0 <= i <= i1 and i1 > i0:
                    return h0 + (i - i0) / (i1 - i0) * (h1 - h0)
            return None
        si, sh = idle_at(pred["hit_rate"]), hit_at(pred["idle_container_seconds"])
        if si:
            saved = (1 - pred["idle_container_seconds"] / si) * 100
            less = f"{abs(saved):.0f} % {'less' if saved >= 0 else 'more'} idle"
        else:
            less = "no static size reaches its hit rate"
        more = f"{(pred['hit_rate'] - sh) * 100:+.1f} points of hit rate" if sh is not None else "n/a"
        notes.append(f"seed {s}: {less} at equal hit rate, {more} at equal idle")
    print("\npredictive against the static frontier: " + "; ".join(notes) + ".")
PY
