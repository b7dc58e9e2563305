#!/usr/bin/env bash
# Throughput of tapvm's virtio-net device driven by the guest's own Linux
# virtio_net driver, where there is no /dev/kvm: QEMU's software emulator
# (TCG) runs the guest, tapvm-vhost-user-net runs the device.  In the same
# run, for the ratio, the peer: the same guest with QEMU's own built-in
# virtio-net device on the same kind of tap (-netdev tap,vhost=off).  (The
# guest's own loopback is no ceiling here: under TCG both of its ends are
# emulated, and it measured slower than a NIC whose far end is native.)
# Each configuration boots once and runs iperf3 and netperf both ways
# (tapvm.secs each).  Also reported: the CPU seconds the device process used
# (user+system), per GB moved.
#
# TCG emulates every guest instruction, so these numbers say how the device
# compares with QEMU's under the same guest, not what either does under KVM.
#
#   scripts/bench-vhost-user.sh [--secs N] [--rounds N]
# Needs root, /dev/net/tun, qemu-system-x86_64, a built tree (build/) and the
# guest image (scripts/build-guest-image.sh).
set -euo pipefail

secs=5
rounds=1
while (($#)); do
  case "$1" in
    --secs) secs=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    *) echo "bench-vhost-user.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
backend_bin=${TAPVM_BUILD_DIR:-$root/build}/tapvm-vhost-user-net
[[ -x $backend_bin ]] || { echo "bench-vhost-user.sh: $backend_bin missing: run scripts/build.sh" >&2; exit 2; }
command -v qemu-system-x86_64 >/dev/null || { echo "bench-vhost-user.sh: qemu-system-x86_64 missing: run scripts/setup.sh" >&2; exit 2; }
[[ -w /dev/net/tun ]] || { echo "bench-vhost-user.sh: /dev/net/tun missing" >&2; exit 2; }
image=$(bash "$root/scripts/build-guest-image.sh" --print-dir | tail -1)

ns=tapvm-bench-$$
work=$(mktemp -d)
# shellcheck source=lib/net-peer.sh
source "$root/scripts/lib/net-peer.sh"
cleanup() {
  net_peer_down "$ns"
  rm -rf "$work"
}
trap cleanup EXIT
peer_up() { net_peer_up "$ns"; }
peer_down() { net_peer_down "$ns"; }

# boot NAME tap|vhost-user BACKEND_NET_OPTIONS [ROLE]: one guest run; writes
# $work/NAME.console and, for tapvm, $work/NAME.cpu (device CPU seconds).
boot() {
  local name=$1 netdev=$2 backend_opts=${3-} sock=$work/vu.sock bpid=
  peer_up
  if [[ $netdev == vhost-user ]]; then
    ip netns exec "$ns" "$backend_bin" --socket "$sock" --net "tap=tap0${backend_opts:+,$backend_opts}" --once \
      2> "$work/$name.backend" &
    bpid=$!
    for _ in $(seq 100); do [[ -S $sock ]] && break; sleep 0.05; done
    netdev_args=(-object memory-backend-memfd,id=mem,size=1G,share=on -chardev "socket,id=vu,path=$sock"
                 -netdev vhost-user,id=n0,chardev=vu)
    machine=pc,accel=tcg,memory-backend=mem
  else
    netdev_args=(-netdev tap,id=n0,ifname=tap0,script=no,downscript=no,vhost=off)
    machine=pc,accel=tcg
  fi
  # -smp 2 and vectors=0: see tests/integration/vhost_user_test.cpp.
  ip netns exec "$ns" qemu-system-x86_64 -machine "$machine" -cpu max -m 1G -smp 2 -nodefaults \
    -no-user-config -nographic -no-reboot -serial stdio "${netdev_args[@]}" \
    -device virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56,vectors=0 \
    -kernel "$image/lean-bzImage" -initrd "$image/lean-initramfs.cpio" \
    -append "console=ttyS0 panic=-1 tapvm.run=${4:-net-check} tapvm.ip=10.0.2.15/24 tapvm.peer=10.0.2.1 tapvm.secs=$secs" \
    > "$work/$name.console" 2>&1 || true
  if [[ -n $bpid ]]; then
    # The device process logs its own CPU time (all threads) when it ends.
    wait "$bpid" || true
    sed -n 's/.*cpu: \([0-9.]*\) s user, \([0-9.]*\) s system.*/\1 + \2/p' "$work/$name.backend" | bc \
      > "$work/$name.cpu"
  fi
  peer_down
}

# value NAME CHECK KEY: a number from a TAPVM-RESULT line.
value() {
  grep -a "TAPVM-RESULT $2 PASS" "$work/$1.console" | tail -1 | tr ' ' '\n' | sed -n "s/^$3=//p" | head -1
}

configs=("tapvm default|vhost-user|"
         "tapvm mrg_rxbuf=off|vhost-user|mrg_rxbuf=off"
         "tapvm offloads off|vhost-user|csum=off,guest_csum=off,gso=off"
         "QEMU built-in|tap|")
printf '%-22s %10s %10s %10s %10s %14s\n' config iperf3-tx iperf3-rx netperf-tx netperf-rx "device CPU s/GB"
for ((r = 1; r <= rounds; r++)); do
  for c in "${configs[@]}"; do
    IFS='|' read -r label netdev opts <<< "$c"
    name=$(echo "$label" | tr -c 'a-zA-Z0-9\n' _)
    boot "$name" "$netdev" "$opts" ""
    tx=$(value "$name" iperf3-tx sent_mbps); rx=$(value "$name" iperf3-rx sent_mbps)
    ntx=$(value "$name" netperf-stream mbps); nrx=$(value "$name" netperf-maerts mbps)
    cpu=-
    if [[ -f $work/$name.cpu ]]; then
      bytes=$(grep -a "TAPVM-RESULT net-counters" "$work/$name.console" | tr ' ' '\n' |
              awk -F= '/^(rx|tx)_bytes=/ { s += $2 } END { printf "%.0f", s }')
      ((bytes > 0)) && cpu=$(echo "scale=2; $(cat "$work/$name.cpu") / ($bytes / 1000000000)" | bc)
    fi
    printf '%-22s %10s %10s %10s %10s %14s\n' "$label" "${tx:-FAIL}" "${rx:-FAIL}" "${ntx:-FAIL}" "${nrx:-FAIL}" "$cpu"
    eval "res_${name}=\"${tx:-0} ${rx:-0} ${ntx:-0} ${nrx:-0}\""
  done
done

read -r t1 t2 t3 t4 <<< "${res_tapvm_default:-0 0 0 0}"
read -r q1 q2 q3 q4 <<< "${res_QEMU_built_in:-0 0 0 0}"
ratio() { [[ $2 != 0 ]] && echo "scale=2; $1 / $2" | bc || echo -; }
printf '%-22s %10s %10s %10s %10s\n' "tapvm / QEMU" "$(ratio "$t1" "$q1")" "$(ratio "$t2" "$q2")" \
  "$(ratio "$t3" "$q3")" "$(ratio "$t4" "$q4")"
echo "(Mbit/s; $secs s per test, guest under QEMU TCG with 2 vCPUs; last round's values in the ratio)"
