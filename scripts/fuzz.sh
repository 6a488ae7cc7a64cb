#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz, libFuzzer) of what the daemon reads from outside: the
# config file and the API's paths, queries and bodies (tests/fuzz). Each target runs for
# FUZZ_SECONDS (default 60) from the committed seed corpus, the targets side by side (libFuzzer
# runs one process each); a crash fails the script and cargo-fuzz prints the input that caused
# it.
#
#   scripts/fuzz.sh          build, then fuzz
#   scripts/fuzz.sh build    install cargo-fuzz if missing and build the targets (CI does this
#                            beside the tests, at low priority)
#   scripts/fuzz.sh run      fuzz (builds first only if the build is missing or stale)
#
# cargo-fuzz builds with sanitizer flags that rustc accepts on the nightly channel only; the
# machine has the stable toolchain alone, so RUSTC_BOOTSTRAP=1 enables them for this build.
set -euo pipefail
cd "$(dirname "$0")/../tests/fuzz"
mode=${1:-all}
case "$mode" in all | build | run) ;; *)
  sed -n '7,10p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
  ;;
esac
export RUSTC_BOOTSTRAP=1
targets=(config api)

if [ "$mode" != run ]; then
  if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz"
    cargo install cargo-fuzz --locked --quiet
  fi
  cargo fuzz build --fuzz-dir . -O
fi
[ "$mode" = build ] && exit 0

secs=${FUZZ_SECONDS:-60}
declare -A pid work
for target in "${targets[@]}"; do
  work[$target]=$(mktemp -d)
  cp -r "corpus/$target/." "${work[$target]}/"
  echo "fuzz.sh: $target for ${secs}s"
  cargo fuzz run --fuzz-dir . -O "$target" "${work[$target]}" -- -max_total_time="$secs" \
    -print_final_stats=1 >"${work[$target]}.log" 2>&1 &
  pid[$target]=$!
done
failed=0
for target in "${targets[@]}"; do
  status=0
  wait "${pid[$target]}" || status=$?
  log="${work[$target]}.log"
  echo "fuzz.sh: $target:"
  grep -E "^(Done|stat::number_of_executed_units|stat::peak_rss_mb)" "$log" || true
  if [ "$status" -ne 0 ]; then
    tail -60 "$log" >&2
    echo "fuzz.sh: FAIL: $target found a crash (the input is in tests/fuzz/artifacts/$target)" >&2
    failed=1
  fi
  rm -rf "${work[$target]}" "$log"
done
[ "$failed" -eq 0 ] || exit 1
echo "fuzz.sh: no crash"
