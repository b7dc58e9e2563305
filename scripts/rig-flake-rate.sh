#!/usr/bin/env bash
# Measures how often the nested-KVM rig fails a guest that should pass, per
# rig configuration, so that the configuration CI uses is chosen on evidence
# (PLATFORM.md: unpinned, nested guests sometimes triple-faulted).
#
# For each configuration, SESSIONS outer sessions each boot the lean guest
# BOOTS times in a row under tapvm (2 vCPUs, selftest + net-check: ping,
# iperf3 and netperf both ways), and every boot and outer session is counted.
#
# Usage: scripts/rig-flake-rate.sh [--sessions N] [--boots N]
#                                  [--configs pinned,unpinned,single]
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

declare -A pass fail died secs
for config in ${configs//,/ }; do
	case $config in
	pinned) rig=(--pin 0 --tcg-thread multi) ;;
	unpinned) rig=(--pin off --tcg-thread multi) ;;
	single) rig=(--pin off --tcg-thread single) ;;
	*) echo "rig-flake-rate: unknown configuration $config" >&2; exit 2 ;;
	esac
	pass[$config]=0 fail[$config]=0 died[$config]=0
	t0=$SECONDS
	for ((s = 1; s <= sessions; s++)); do
		out=$(bash scripts/nested-kvm.sh --quiet --timeout 900 "${rig[@]}" -- bash -c \
			"for i in \$(seq $boots); do bash scripts/guest-check.sh '$guest_dir' --quiet | tail -n 3; done" 2>&1)
		rc=$?
		p=$(grep -c '^guest-check: PASS' <<<"$out")
		f=$(grep -c '^guest-check: FAIL' <<<"$out")
		pass[$config]=$((pass[$config] + p))
		fail[$config]=$((fail[$config] + f))
		((rc == 124 || rc == 125 || p + f < boots)) && died[$config]=$((died[$config] + 1))
		echo "rig-flake-rate: $config session $s: $p passed, $f failed, rig status $rc"
		grep -E 'FAIL|triple|emulation|nested-kvm:' <<<"$out" | head -n 6 | sed 's/^/    /'
	done
	secs[$config]=$((SECONDS - t0))
done

echo
echo "| configuration | boots passed | boots failed | outer sessions lost | wall s |"
echo "|---|---|---|---|---|"
for config in ${configs//,/ }; do
	echo "| $config | ${pass[$config]} | ${fail[$config]} | ${died[$config]} / $sessions | ${secs[$config]} |"
done
