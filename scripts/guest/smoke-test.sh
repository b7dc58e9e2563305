#!/usr/bin/env bash
# Host-side smoke test of a guest initramfs's user space, without booting a
# kernel: unpacks the cpio and runs its /init as PID 1 of fresh PID, mount,
# UTS and network namespaces, twice, joined by a veth pair:
#
#   peer  ns: /init with tapvm.run=net-server tapvm.ip=10.0.2.1/24
#   guest ns: /init with tapvm.run=selftest,net-check tapvm.peer=10.0.2.1
#
# Each side's eth0 is its veth end.  The parameters reach /init through
# TAPVM_CMDLINE (in place of /proc/cmdline).  Module loading is off
# (insmod would target the host kernel) and /init refuses tapvm.run=panic
# under TAPVM_CMDLINE.  `poweroff -f` in a non-initial PID namespace only
# ends that namespace (reboot(2)), so the host is never affected.
#
# This checks the image's busybox applets, the copied iperf3/netperf/ethtool
# with their libraries and loader, and the output format of every check.
#
# Usage: scripts/guest/smoke-test.sh IMAGE_DIR [lean|stock]   (needs root)
# TAPVM_SMOKE_INIT=FILE replaces the image's /init (to try an edited init
# script without rebuilding the image).
set -euo pipefail

die() {
	echo "smoke-test: error: $*" >&2
	exit 1
}

(($# >= 1)) || die "usage: $0 IMAGE_DIR [lean|stock]"
image_dir=$1
flavour=${2:-lean}
cpio_file=$image_dir/$flavour-initramfs.cpio
[[ -f $cpio_file ]] || die "no $cpio_file"
((EUID == 0)) || die "needs root (namespaces, chroot)"
[[ $(unshare -p -f --mount-proc sh -c 'echo $$') == 1 ]] ||
	die "PID namespaces do not work here; refusing to run /init (it powers off)"

tag=tapvm-smoke-$$
work=$(mktemp -d "/tmp/$tag.XXXXXX")
peer_pid=
# shellcheck disable=SC2317 # called by the trap
cleanup() {
	# unshare --fork ignores SIGTERM while it waits; SIGKILL it, and
	# --kill-child takes the namespace's init (and so the namespace) along.
	if [[ -n $peer_pid ]]; then
		kill -KILL "$peer_pid" 2>/dev/null || true
		wait "$peer_pid" 2>/dev/null || true
	fi
	ip netns del "$tag-guest" 2>/dev/null || true
	ip netns del "$tag-peer" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

for side in guest peer; do
	mkdir -p "$work/$side"
	(cd "$work/$side" && cpio -id --quiet --no-absolute-filenames <"$cpio_file" 2>/dev/null)
	if [[ -n ${TAPVM_SMOKE_INIT:-} ]]; then
		install -m 0755 "$TAPVM_SMOKE_INIT" "$work/$side/init"
	fi
	ip netns add "$tag-$side"
done
ip link add "tvg$$" type veth peer name "tvp$$"
ip link set "tvg$$" netns "$tag-guest"
ip link set "tvp$$" netns "$tag-peer"
ip -n "$tag-guest" link set "tvg$$" name eth0
ip -n "$tag-peer" link set "tvp$$" name eth0

# init_command SIDE CMDLINE: sets CMD to run /init as PID 1 of new PID,
# mount and UTS namespaces inside the side's network namespace.  (A plain
# command, not a function, so that `CMD &` leaves $! = the unshare process.)
# The UTS namespace keeps /init's `hostname tapvm-guest` from renaming the
# host.
init_command() {
	CMD=(ip netns exec "$tag-$1" unshare --pid --fork --kill-child --mount --uts
		--propagation private env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin
		TAPVM_CMDLINE="$2" chroot "$work/$1" /init)
}

init_command peer "tapvm.run=net-server tapvm.ip=10.0.2.1/24 tapvm.modules=0 tapvm.serve_secs=300"
"${CMD[@]}" >"$work/peer.log" 2>&1 &
peer_pid=$!
for _ in $(seq 60); do
	grep -q "TAPVM-MARK net-server-ready" "$work/peer.log" && break
	kill -0 "$peer_pid" 2>/dev/null || break
	sleep 1
done
grep -q "TAPVM-MARK net-server-ready" "$work/peer.log" || {
	cat "$work/peer.log" >&2
	die "the peer did not get ready"
}

cmdline="tapvm.run=selftest,net-check tapvm.peer=10.0.2.1 tapvm.modules=0 tapvm.secs=2"
cmdline+=" tapvm.expect_cpus=$(nproc) tapvm.expect_nic=1"
cmdline+=" tapvm.expect_mem_mib=$(($(awk '/^MemTotal:/ { print $2 }' /proc/meminfo) / 1024 + 1))"
init_command guest "$cmdline"
# /init ends with poweroff -f: in a PID namespace that kills its init with
# SIGINT, so unshare's status is 130 by design.
"${CMD[@]}" 2>&1 | tee "$work/guest.log" || true

echo "--- peer log:"
cat "$work/peer.log"

# Every check that does not depend on real guest hardware must pass.
# (nic-driver reports veth, virtio-net-driver looks at the host's PCI.)
status=0
for check in mounts cpus memory nic offloads net-config ping iperf3-tx iperf3-rx \
	netperf-stream netperf-maerts net-counters; do
	n=$(grep -c "^TAPVM-RESULT $check PASS " "$work/guest.log" || true)
	if [[ $n != 1 ]]; then
		echo "smoke-test: FAIL: expected one '$check PASS' line, got $n" >&2
		status=1
	fi
done
grep -q "^TAPVM-MARK done " "$work/guest.log" || {
	echo "smoke-test: FAIL: no 'TAPVM-MARK done'" >&2
	status=1
}
((status == 0)) && echo "smoke-test: PASS ($flavour initramfs user space)"
exit $status
