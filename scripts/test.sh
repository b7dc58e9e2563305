#!/usr/bin/env bash
# The whole test suite, from a fresh clone on a fresh machine:
#   1. install what is missing (scripts/setup.sh)
#   2. build tapvm and its tests; build the guest image (cached outside git)
#   3. unit tests (CTest/GoogleTest)
#   4. the data-path unit tests again under AddressSanitizer + UBSan
#   5. integration tests on the machine itself (command line; the vhost-user
#      device driven by a real guest under QEMU's TCG)
#   6. integration tests that boot guests under tapvm, with real taps in
#      namespaces: inside the nested-KVM rig on every machine
#      (scripts/nested-kvm.sh), and the boot group natively as well where
#      this machine has /dev/kvm
# No test skips for want of /dev/kvm: the rig gives every machine one.
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

[[ -e /dev/net/tun ]] || echo "WARNING: /dev/net/tun is missing: tap tests will SKIP" >&2
run_ctest integration-host build -L integration-host

# Each test program runs in an outer session of its own, pinned to one host
# CPU (the configuration measured stable: scripts/rig/README.md), the two
# side by side.  A session whose outer guest dies (an emulation artefact:
# PLATFORM.md) costs that program's results: it is run once more and
# reported, and a second loss is a failure.  Test failures are never retried.
rig_run() {  # cpu program [filter]; writes $dir/<program>.{xml,log,rc}
	local cpu=$1 program=$2 filter=${3:-*} dir=$results/rig rc attempt
	for attempt in 1 2; do
		rm -f "$dir/$program".*.xml
		rc=0
		bash scripts/nested-kvm.sh --pin "$cpu" --rw "$dir" --timeout 2400 -- \
			bash scripts/kvm-tests.sh "$dir" "$program" "$filter" >>"$dir/$program.log" 2>&1 || rc=$?
		((rc == 124 || rc == 125)) || break
		echo "test.sh: the rig's outer guest was lost running $program (status $rc); running it once more" |
			tee -a "$dir/$program.log" >&2
	done
	echo "$rc" >"$dir/$program.rc"
}
missing_xml=()
log "integration tests under KVM in the nested-KVM rig (boot_test on CPU 0, net_test on CPU 1)"
mkdir -p "$results/rig"
t0=$SECONDS
rig_run 0 boot_test 'Boot.*:-Boot.StockDebianKernelReachesInit' &
rig_run 1 net_test &
while [[ -n $(jobs -r) ]]; do
	sleep 60
	echo "test.sh: rig tests running for $((SECONDS - t0)) s:" \
		"$(cat "$results"/rig/*.log 2>/dev/null | grep -c '^\[       OK \]') passed," \
		"$(cat "$results"/rig/*.log 2>/dev/null | grep -c '^\[  FAILED  \] [A-Za-z]*\.[A-Za-z_/0-9]* (') failed so far"
done
wait
for program in boot_test net_test; do
	log "rig: $program (exit status $(cat "$results/rig/$program.rc"))"
	cat "$results/rig/$program.log"
	[[ $(cat "$results/rig/$program.rc") == 0 ]] || status=1
	compgen -G "$results/rig/$program.*.xml" >/dev/null || missing_xml+=("rig/$program")
done

if [[ -e /dev/kvm ]]; then
	# Natively, on this platform's nested kvm_pvm guest kernel code is
	# emulated (about 2 minutes per lean boot): the lean boots that cover
	# the PVM paths (int3/fwait/ldmxcsr completion, the quirk parameters,
	# the syscall patch) and Debian's stock kernel to its /init (about
	# 12.5 minutes there, hence the longer per-case limit).
	# TAPVM_NATIVE_STOCK=0 leaves the stock kernel out.  On hardware KVM
	# every boot test runs natively too.
	native_filter='Boot.*'
	native_limit=${TAPVM_CASE_LIMIT:-900}
	if [[ -d /sys/module/kvm_pvm ]]; then
		native_filter='Boot.OneCpuPowersOffCleanly:Boot.GuestPanicIsANonZeroExit'
		if [[ ${TAPVM_NATIVE_STOCK:-1} == 1 ]]; then
			native_filter+=':Boot.StockDebianKernelReachesInit'
			native_limit=${TAPVM_CASE_LIMIT:-1500}
		fi
	fi
	log "integration tests under this machine's own /dev/kvm"
	mkdir -p "$results/native"
	TAPVM_CASE_LIMIT=$native_limit bash scripts/kvm-tests.sh "$results/native" boot_test "$native_filter" || status=1
	compgen -G "$results/native/boot_test.*.xml" >/dev/null || missing_xml+=("native/boot_test")
fi

log "summary"
python3 - "$results" "${missing_xml[@]}" <<'PY'
import sys, glob, xml.etree.ElementTree as ET
passed = failed = skipped = 0
for missing in sys.argv[2:]:
    print(f"FAILED: {missing} left no results (its run died)")
    failed += 1
for f in sorted(glob.glob(sys.argv[1] + "/**/*.xml", recursive=True)):
    for case in ET.parse(f).getroot().iter("testcase"):
        if case.get("result") == "suppressed":
            continue  # filtered out with --gtest_filter: not run, not a test here
        status = case.get("status", "run")
        if case.find("failure") is not None or status == "fail":
            failed += 1
        elif case.find("skipped") is not None or status in ("notrun", "disabled"):
            skipped += 1
        else:
            passed += 1
print(f"{passed} passed, {failed} failed, {skipped} skipped")
PY
((${#missing_xml[@]} == 0)) || status=1
exit $status
