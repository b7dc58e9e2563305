#!/usr/bin/env bash
# Runs the integration tests that boot guests under tapvm (CTest label
# integration-kvm) where this shell has /dev/kvm: inside the nested-KVM rig
# (scripts/test.sh runs it there through scripts/nested-kvm.sh) or natively.
# One JUnit XML file per test program goes to RESULTS.
#
# Usage: scripts/kvm-tests.sh RESULTS PROGRAM [GTEST_FILTER]
#   PROGRAM       a test program in build/tests (boot_test, net_test, ...)
#   GTEST_FILTER  which of its tests (default: all)
set -uo pipefail
cd "$(dirname "$0")/.."
results=${1:?usage: scripts/kvm-tests.sh RESULTS PROGRAM [FILTER]}
program=${2:?usage: scripts/kvm-tests.sh RESULTS PROGRAM [FILTER]}
filter=${3:-*}
mkdir -p "$results"
kind=hardware
[[ -d /sys/module/kvm_pvm ]] && kind=pvm
echo "kvm-tests: $program ($filter) on $(uname -r), KVM: $kind, $(nproc) CPUs"
[[ -e /dev/kvm ]] || { echo "kvm-tests: no /dev/kvm here" >&2; exit 1; }
# The test programs create network namespaces and taps; make sure the
# modules are there (built in or loaded by the rig's init).
exec "build/tests/$program" --gtest_filter="$filter" --gtest_output="xml:$results/$program.xml"
