#!/usr/bin/env bash
# Runs the integration tests that boot guests under tapvm (CTest label
# integration-kvm) where this shell has /dev/kvm: inside the nested-KVM rig
# (scripts/test.sh runs it there through scripts/nested-kvm.sh) or natively.
#
# Each test case runs in a process of its own, so one that hangs (the rig
# emulates everything: PLATFORM.md) is stopped after TAPVM_CASE_LIMIT
# seconds (default 900; liveness, not speed: a case takes 10-70 s in the
# rig), reported with what every process was waiting on, and run once more;
# a second stall fails it.  Failed checks are never retried.  One JUnit XML
# file per case goes to RESULTS.
#
# Usage: scripts/kvm-tests.sh RESULTS PROGRAM [GTEST_FILTER]
#   PROGRAM       a test program in build/tests (boot_test, net_test, ...)
#   GTEST_FILTER  which of its tests (default: all)
set -uo pipefail
cd "$(dirname "$0")/.."
results=${1:?usage: scripts/kvm-tests.sh RESULTS PROGRAM [FILTER]}
program=${2:?usage: scripts/kvm-tests.sh RESULTS PROGRAM [FILTER]}
filter=${3:-*}
limit=${TAPVM_CASE_LIMIT:-900}
mkdir -p "$results"
kind=hardware
[[ -d /sys/module/kvm_pvm ]] && kind=pvm
echo "kvm-tests: $program ($filter) on $(uname -r), KVM: $kind, $(nproc) CPUs"
[[ -e /dev/kvm ]] || { echo "kvm-tests: no /dev/kvm here" >&2; exit 1; }

binary=build/tests/$program
# "Suite." lines then "  Case" lines (parameterised ones carry a comment).
mapfile -t cases < <("$binary" --gtest_filter="$filter" --gtest_list_tests |
	awk '/^[^ ]/ { suite = $1; next } { print suite $1 }')
((${#cases[@]})) || { echo "kvm-tests: no test matches $filter" >&2; exit 1; }

# run_case CASE XML: 0 passed, 1 failed, 124 did not finish (diagnosed).
run_case() {
	local case=$1 xml=$2 rc pid start=$SECONDS
	# Its own process group, so a stall ends tapvm and helpers with it.
	setsid "$binary" --gtest_filter="$case" --gtest_output="xml:$xml" &
	pid=$!
	while kill -0 "$pid" 2>/dev/null; do
		if ((SECONDS - start > limit)); then
			echo "kvm-tests: $case did not finish in $limit s; what its processes wait on:"
			ps -eo pid,ppid,pgid,stat,etime,wchan:28,args | awk -v g="$pid" 'NR == 1 || $3 == g' | cut -c1-200
			kill -TERM -- "-$pid" 2>/dev/null
			sleep 10
			kill -KILL -- "-$pid" 2>/dev/null
			wait "$pid" 2>/dev/null
			return 124
		fi
		sleep 1
	done
	wait "$pid"
	rc=$?
	((rc == 0)) || return 1
}

status=0 n=0
for case in "${cases[@]}"; do
	xml=$results/$program.$((n++)).xml
	run_case "$case" "$xml"
	rc=$?
	if ((rc == 124)); then
		# Not a failed check but a stall; the rig is known to stall nested
		# guests now and then (scripts/rig/README.md).  Once more, loudly.
		echo "kvm-tests: RETRY $case once after a stall (a second stall fails it)"
		run_case "$case" "$xml"
		rc=$?
	fi
	if ((rc == 124)); then
		cat >"$xml" <<-XML
			<?xml version="1.0" encoding="UTF-8"?>
			<testsuites><testsuite name="${case%%.*}" tests="1" failures="1">
			<testcase name="${case#*.}" status="run" classname="${case%%.*}"><failure message="did not finish in $limit s, twice (kvm-tests.sh)"/></testcase>
			</testsuite></testsuites>
		XML
	fi
	((rc == 0)) || status=1
done
exit "$status"
