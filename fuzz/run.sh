#!/usr/bin/env bash
# Build every fuzz target and run each for SECONDS (default 60), one after the
# other; print per target: executions, time, findings. Not part of CI.
#
#   fuzz/run.sh [SECONDS] [TARGET…]
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). Only a stable toolchain is
# used: RUSTC_BOOTSTRAP=1 lets stable rustc take the -Z flags cargo-fuzz
# passes (the sanitizer). FUZZ_SANITIZER=none builds without AddressSanitizer
# (faster; Rust panics and overflows are still found, C memory errors not).
# New inputs go to $WORK/<target> (not the committed seeds in corpus/);
# crashing inputs to fuzz/artifacts/<target>/ (cargo-fuzz's place).
# FUZZ_ARGS adds libFuzzer flags (e.g. "-fork=1 -ignore_crashes=1" to go on
# after a crash).
set -euo pipefail

SECONDS_PER_TARGET="${1:-60}"
shift || true
cd "$(dirname "$0")"
ALL=(envelope policy xsozial_hzl xfall wbs_nrw answer config)
if [ "$#" -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL[@]}"); fi
SANITIZER="${FUZZ_SANITIZER:-address}"
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$(pwd)/target}"
WORK="${FUZZ_WORK:-$CARGO_TARGET_DIR/fuzz-corpus}"

for t in "${TARGETS[@]}"; do cargo fuzz build --sanitizer "$SANITIZER" "$t"; done

mkdir -p "$WORK"
printf '%-12s %12s %8s %9s\n' target executions seconds findings | tee "$WORK.summary"
status=0
for t in "${TARGETS[@]}"; do
  mkdir -p "$WORK/$t" "artifacts/$t"
  before=$(find "artifacts/$t" -type f | wc -l)
  log="$WORK/$t.log"
  start=$(date +%s)
  set +e
  cargo fuzz run --sanitizer "$SANITIZER" "$t" "$WORK/$t" "corpus/$t" -- \
    -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 ${FUZZ_ARGS:-} >"$log" 2>&1
  rc=$?
  set -e
  elapsed=$(( $(date +%s) - start ))
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  [ -z "$runs" ] && runs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
  findings=$(( $(find "artifacts/$t" -type f | wc -l) - before ))
  [ "$rc" -ne 0 ] && [ "$findings" -eq 0 ] && findings="rc=$rc"
  [ "$rc" -ne 0 ] && status=1
  printf '%-12s %12s %8s %9s\n' "$t" "${runs:-?}" "$elapsed" "$findings" | tee -a "$WORK.summary"
  [ "$rc" -ne 0 ] && grep -E 'panicked|ERROR: libFuzzer|SUMMARY|artifact_prefix|Test unit written' "$log" | head -8 | sed 's/^/    /'
done
echo "summary: $WORK.summary; logs: $WORK/<target>.log"
exit $status
