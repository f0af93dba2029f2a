#!/bin/sh
# Builds roused and runs it in the foreground on the shipped configuration
# (config/rouse.json: SQLite store and file outboxes under var/).
# Extra arguments go to roused (e.g. --config other.json).
set -eu
cd "$(dirname "$0")/.."
./scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
mkdir -p var
exec ./build/roused --config config/rouse.json "$@"
