#!/usr/bin/env bash
# Boots the lean guest under tapvm with a tap in a private network namespace
# (iperf3 and netserver listening on the host side) and lets its runner check
# CPUs, memory, the virtio NIC, and traffic both ways; then it powers off.
# Needs /dev/kvm where it runs: scripts/run.sh runs it natively or inside the
# nested-KVM rig.  Prints the guest's TAPVM-RESULT lines and a verdict;
# exit 0 only when the guest powered off with every check passed.
#
# Usage: scripts/guest-check.sh GUEST_DIR [--cpus N] [--memory MIB]
#                               [--roles selftest,net-check] [--secs N] [--quiet]
set -uo pipefail
cd "$(dirname "$0")/.."

guest_dir=${1:?usage: scripts/guest-check.sh GUEST_DIR [--cpus N] [--memory MIB] [--roles R] [--secs N] [--quiet]}
shift
cpus=2 mem_mib=1024 roles=selftest,net-check secs=3 quiet=0
while (($#)); do
	case $1 in
	--cpus) cpus=$2; shift ;;
	--memory) mem_mib=$2; shift ;;
	--roles) roles=$2; shift ;;
	--secs) secs=$2; shift ;;
	--quiet) quiet=1 ;;
	*) echo "guest-check: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done
[[ -e /dev/kvm ]] || { echo "guest-check: no /dev/kvm here" >&2; exit 1; }

ns=tapvm-check-$$
log=$(mktemp /tmp/tapvm-check.XXXXXX)
# shellcheck source=lib/net-peer.sh
source scripts/lib/net-peer.sh
cleanup() {
	net_peer_down "$ns"
	rm -f "$log"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
net_peer_up "$ns"

start=$(date +%s.%N)
ip netns exec "$ns" build/tapvm \
	--kernel "$guest_dir/lean-bzImage" --initramfs "$guest_dir/lean-initramfs.cpio" \
	--cpus "$cpus" --memory "${mem_mib}M" --net tap=tap0 \
	--cmdline "console=ttyS0 panic=-1 tapvm.run=$roles tapvm.expect_cpus=$cpus tapvm.expect_mem_mib=$mem_mib tapvm.expect_nic=1 tapvm.ip=10.0.2.15/24 tapvm.peer=10.0.2.1 tapvm.secs=$secs" \
	</dev/null >"$log" 2>&1
status=$?
took=$(echo "$(date +%s.%N) - $start" | bc)

if ((quiet)); then
	grep -a -E '^(TAPVM-RESULT|tapvm: )|triple fault|emulation failure' "$log"
else
	cat "$log"
fi
fails=$(grep -a -c '^TAPVM-RESULT [^ ]* FAIL' "$log")
passes=$(grep -a -c '^TAPVM-RESULT [^ ]* PASS' "$log")
done_mark=$(grep -a -c '^TAPVM-MARK done' "$log")
if ((status == 0 && fails == 0 && passes > 0 && done_mark > 0)); then
	printf 'guest-check: PASS: %d checks passed, tapvm exit 0, %.1f s\n' "$passes" "$took"
	exit 0
fi
printf 'guest-check: FAIL: tapvm exit %d, %d passed, %d failed, runner finished: %s, %.1f s\n' \
	"$status" "$passes" "$fails" "$( ((done_mark)) && echo yes || echo no)" "$took"
exit 1
