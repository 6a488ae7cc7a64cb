#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz, libFuzzer) of what the daemon reads from outside: the
# config file and the API's paths, queries and bodies (tests/fuzz). Each target runs for
# FUZZ_SECONDS (default 60) from the committed seed corpus; a crash fails the script and
# cargo-fuzz prints the input that caused it.
#
# cargo-fuzz builds with sanitizer flags that rustc accepts on the nightly channel only; the
# machine has the stable toolchain alone, so RUSTC_BOOTSTRAP=1 enables them for this build.
set -euo pipefail
cd "$(dirname "$0")/../tests/fuzz"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz"
  cargo install cargo-fuzz --locked --quiet
fi
secs=${FUZZ_SECONDS:-60}
export RUSTC_BOOTSTRAP=1
cargo fuzz build --fuzz-dir . -O
for target in config api; do
  work=$(mktemp -d)
  cp -r "corpus/$target/." "$work/"
  echo "fuzz.sh: $target for ${secs}s"
  log="$work.log"
  status=0
  cargo fuzz run --fuzz-dir . -O "$target" "$work" -- -max_total_time="$secs" -print_final_stats=1 \
    >"$log" 2>&1 || status=$?
  grep -E "^(Done|stat::number_of_executed_units|stat::peak_rss_mb)" "$log" || true
  if [ "$status" -ne 0 ]; then
    tail -60 "$log" >&2
    echo "fuzz.sh: FAIL: $target found a crash (the input is in tests/fuzz/artifacts/$target)" >&2
    exit 1
  fi
  rm -rf "$work" "$log"
done
echo "fuzz.sh: no crash"
