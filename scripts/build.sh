#!/usr/bin/env bash
# Configures and builds tapvm into build/ (or $TAPVM_BUILD_DIR).
# Usage: scripts/build.sh [extra cmake -D options]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${TAPVM_BUILD_DIR:-build}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=${TAPVM_BUILD_TYPE:-RelWithDebInfo} "$@" >/dev/null
ninja -C "$build" -j"$(nproc)"
