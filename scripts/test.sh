#!/usr/bin/env bash
# The whole test suite, from a fresh clone on a fresh machine:
#   1. install what is missing (scripts/setup.sh)
#   2. build tapvm and its tests; build the guest image (cached outside git)
#   3. unit tests (CTest/GoogleTest)
#   4. the data-path unit tests again under AddressSanitizer + UBSan
#   5. integration tests: real KVM, real guest, real tap in a namespace
#      (they skip loudly, naming what is missing, where /dev/kvm or
#      /dev/net/tun is absent)
# Prints one closing line "N passed, N failed, N skipped" and exits non-zero
# if anything failed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

log() { printf '\n=== %s\n' "$*"; }

log "setup"
bash scripts/setup.sh

log "build (RelWithDebInfo)"
TAPVM_BUILD_DIR=build bash scripts/build.sh

log "guest image"
guest_dir=$(bash scripts/build-guest-image.sh --print-dir | tail -n 1)
export TAPVM_GUEST_DIR=$guest_dir
export TAPVM_TEST_KERNELS="$guest_dir/lean-bzImage:$guest_dir/stock-vmlinuz"
echo "guest image: $guest_dir"

results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
status=0

run_ctest() {  # name, build dir, ctest args...
  local name=$1 dir=$2; shift 2
  log "$name"
  if ! (cd "$dir" && ctest --output-on-failure --no-tests=error --output-junit "$results/$name.xml" "$@"); then
    status=1
  fi
}

run_ctest unit build -L unit -j2

log "build with AddressSanitizer + UBSan (virtio, net, devices)"
# Only the test programs of the layers that parse guest input.
asan_targets=$(cd tests/unit && ls virtio/*_test.cpp net/*_test.cpp devices/*_test.cpp | xargs -n1 basename | sed 's/\.cpp$//')
TAPVM_TARGETS="$(echo $asan_targets)" TAPVM_BUILD_DIR=build-asan TAPVM_BUILD_TYPE=Debug \
  bash scripts/build.sh -DTAPVM_SANITIZE=ON
run_ctest unit-asan build-asan -L 'unit-(virtio|net|devices)' -j2

if [[ -e /dev/kvm ]]; then
  echo "/dev/kvm present: integration tests boot real guests"
else
  echo "WARNING: /dev/kvm is missing on this machine: every test that boots a guest will SKIP" >&2
fi
[[ -e /dev/net/tun ]] || echo "WARNING: /dev/net/tun is missing: tap tests will SKIP" >&2
run_ctest integration build -L integration

log "summary"
python3 - "$results" <<'PY'
import sys, glob, xml.etree.ElementTree as ET
passed = failed = skipped = 0
for f in sorted(glob.glob(sys.argv[1] + "/*.xml")):
    for case in ET.parse(f).getroot().iter("testcase"):
        status = case.get("status", "run")
        if case.find("failure") is not None or status == "fail":
            failed += 1
        elif case.find("skipped") is not None or status in ("notrun", "disabled"):
            skipped += 1
        else:
            passed += 1
print(f"{passed} passed, {failed} failed, {skipped} skipped")
PY
exit $status
