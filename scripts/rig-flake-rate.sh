#!/usr/bin/env bash
# Measures how often the nested-KVM rig fails a guest that should pass, per
# rig configuration, so that the configuration CI uses is chosen on evidence
# (PLATFORM.md: unpinned, nested guests sometimes triple-faulted).
#
# For each configuration, SESSIONS outer sessions each boot the lean guest
# BOOTS times in a row under tapvm (2 vCPUs, selftest + net-check: ping,
# iperf3 and netperf both ways), and every boot and outer session is counted.
#
# Configurations: pinned (taskset -c 0, TCG multi-threaded), unpinned,
# single (unpinned, TCG single-threaded), pinned-pair (two sessions at once,
# on CPU 0 and CPU 1: what scripts/test.sh does).
#
# Usage: scripts/rig-flake-rate.sh [--sessions N] [--boots N]
#                                  [--configs pinned,unpinned,single,pinned-pair]
# Prints one line per boot and a table; exits 0 (it measures, it does not judge).
set -uo pipefail
cd "$(dirname "$0")/.."

sessions=3 boots=3 configs=pinned,unpinned,single
while (($#)); do
	case $1 in
	--sessions) sessions=$2; shift ;;
	--boots) boots=$2; shift ;;
	--configs) configs=$2; shift ;;
	*) echo "rig-flake-rate: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done
guest_dir=$(bash scripts/build-guest-image.sh --print-dir | tail -n 1)
[[ -x build/tapvm ]] || { echo "rig-flake-rate: build tapvm first (scripts/build.sh)" >&2; exit 1; }

# session CONFIG-NAME RIG-OPTIONS...: one outer session; prints its boots' verdicts.
session() {
	bash scripts/nested-kvm.sh --quiet --timeout 900 "$@" -- bash -c \
		"for i in \$(seq $boots); do bash scripts/guest-check.sh '$guest_dir' --quiet | tail -n 3; done" 2>&1
	echo "rig-status $?"
}

declare -A pass fail died secs runs
count() {  # config output
	local config=$1 out=$2 p f rc
	p=$(grep -c '^guest-check: PASS' <<<"$out")
	f=$(grep -c '^guest-check: FAIL' <<<"$out")
	rc=$(awk '/^rig-status/ {print $2}' <<<"$out")
	pass[$config]=$((pass[$config] + p))
	fail[$config]=$((fail[$config] + f))
	runs[$config]=$((runs[$config] + 1))
	((rc == 124 || rc == 125 || p + f < boots)) && died[$config]=$((died[$config] + 1))
	echo "rig-flake-rate: $config session ${runs[$config]}: $p passed, $f failed, rig status $rc"
	grep -E 'FAIL|triple|emulation|nested-kvm:' <<<"$out" | head -n 6 | sed 's/^/    /'
}

for config in ${configs//,/ }; do
	pass[$config]=0 fail[$config]=0 died[$config]=0 runs[$config]=0
	t0=$SECONDS
	for ((s = 1; s <= sessions; s++)); do
		case $config in
		pinned) count "$config" "$(session --pin 0 --tcg-thread multi)" ;;
		unpinned) count "$config" "$(session --pin off --tcg-thread multi)" ;;
		single) count "$config" "$(session --pin off --tcg-thread single)" ;;
		pinned-pair)
			a=$(mktemp) b=$(mktemp)
			session --pin 0 --tcg-thread multi >"$a" &
			session --pin 1 --tcg-thread multi >"$b" &
			wait
			count "$config" "$(<"$a")"
			count "$config" "$(<"$b")"
			rm -f "$a" "$b"
			;;
		*) echo "rig-flake-rate: unknown configuration $config" >&2; exit 2 ;;
		esac
	done
	secs[$config]=$((SECONDS - t0))
done
echo
echo "| configuration | boots passed | boots failed | outer sessions lost | wall s |"
echo "|---|---|---|---|---|"
for config in ${configs//,/ }; do
	echo "| $config | ${pass[$config]} | ${fail[$config]} | ${died[$config]} / ${runs[$config]} | ${secs[$config]} |"
done
