#!/bin/sh
# Runs every libFuzzer target (tests/fuzz/fuzz_*.c) for SECONDS (default 60)
# on a scratch copy of its corpus, with ASan + UBSan; exits non-zero on the
# first crash, leak or sanitizer report. The committed corpora are replayed
# by ./scripts/test.sh; this is the longer search.
set -eu
cd "$(dirname "$0")/.."
seconds=${1:-60}
./scripts/deps.sh test
CC=clang cmake -S . -B build-fuzz -DROUSE_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
targets=$(for src in tests/fuzz/fuzz_*.c; do basename "$src" .c; done)
# shellcheck disable=SC2086
cmake --build build-fuzz -j"$(nproc)" --target $targets >/dev/null
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for src in tests/fuzz/fuzz_*.c; do
  name=$(basename "$src" .c)
  corpus=tests/fuzz/corpus/${name#fuzz_}
  mkdir -p "$scratch/$name"
  cp "$corpus"/* "$scratch/$name/"
  echo "== $name ($seconds s)"
  if ! ./build-fuzz/"$name" -max_total_time="$seconds" -timeout=10 \
      -print_final_stats=1 "$scratch/$name" >"$scratch/$name.log" 2>&1; then
    tail -40 "$scratch/$name.log"
    exit 1
  fi
  grep -E "^stat::number_of_executed_units" "$scratch/$name.log" || true
done
