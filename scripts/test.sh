#!/bin/sh
# Builds rouse twice (normal, and AddressSanitizer + UndefinedBehaviorSanitizer)
# and runs every test of both builds with ctest: unit tests, the Mustache
# spec, fuzz-corpus replays and the integration tests against the real
# daemon. Exits non-zero when anything fails.
set -eu
cd "$(dirname "$0")/.."
./scripts/deps.sh test
jobs=$(nproc)
for variant in normal asan; do
  dir=build-test-$variant
  flags="-DCMAKE_BUILD_TYPE=RelWithDebInfo"
  [ "$variant" = asan ] && flags="$flags -DROUSE_SANITIZE=ON"
  echo "== $variant build"
  cmake -S . -B "$dir" $flags >/dev/null
  cmake --build "$dir" -j"$jobs" >/dev/null
  echo "== $variant tests"
  ASAN_OPTIONS=detect_leaks=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir "$dir" --output-on-failure -j"$jobs"
done
