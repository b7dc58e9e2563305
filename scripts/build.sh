#!/usr/bin/env bash
# Configures and builds tapvm into build/ (or $TAPVM_BUILD_DIR).
# Usage: scripts/build.sh [extra cmake -D options]
# TAPVM_TARGETS="a b" builds only those targets (default: everything).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${TAPVM_BUILD_DIR:-build}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=${TAPVM_BUILD_TYPE:-RelWithDebInfo} "$@" >/dev/null
# shellcheck disable=SC2086
ninja -C "$build" -j"$(nproc)" ${TAPVM_TARGETS:-}
