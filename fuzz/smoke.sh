#!/usr/bin/env bash
# fuzz/smoke.sh: builds every fuzz target with nightly and libFuzzer's
# coverage instrumentation (the flags `cargo fuzz build -s none` passes, so
# no cargo-fuzz install is needed), in the `smoke` profile (-O1, see
# Cargo.toml), and runs each for SECONDS (default 10)
# from its committed seeds. CI's fuzz smoke run. A crash fails it, with the
# crashing input in artifacts/<target>/.
#
#   fuzz/smoke.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-10}"
triple="$(rustc +nightly -vV | sed -n 's/^host: //p')"
# --target: RUSTFLAGS then reach only the target's crates, never the build
# scripts and proc-macros (which would need libFuzzer's symbols).
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module \
 -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
 -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares \
 -Cllvm-args=-sanitizer-coverage-stack-depth \
 -Cdebug-assertions -Coverflow-checks"
targets=$(basename -s .rs fuzz_targets/*.rs)
cargo +nightly build --locked --profile smoke --target "$triple" $(printf -- '--bin %s ' $targets)
for target in $targets; do
  mkdir -p "corpus/$target" "artifacts/$target"
  echo "--- $target (${seconds} s)"
  "target/$triple/smoke/$target" "corpus/$target" "seeds/$target" \
    -artifact_prefix="artifacts/$target/" -max_total_time="$seconds" \
    -print_final_stats=1 2>&1 | tail -3
  [ "${PIPESTATUS[0]}" = 0 ] || { echo "fuzz/smoke.sh: $target failed" >&2; exit 1; }
done
