#!/usr/bin/env bash
# The main job: install what is missing, build tapvm and the guest image, then
# boot the lean guest with 2 vCPUs and 1 GiB and let its runner show that
# everything is there (CPU count, memory, virtio NIC and its offloads over a
# tap in a private network namespace), then power off.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
bash scripts/build.sh
guest_dir=$(bash scripts/build-guest-image.sh --print-dir | tail -n 1)

if [[ ! -e /dev/kvm ]]; then
  echo "run.sh: /dev/kvm is missing on this machine, so no guest can boot here." >&2
  echo "run.sh: tapvm and the guest image are built: build/tapvm, $guest_dir" >&2
  exit 1
fi

ns=tapvm-run-$$
cleanup() { ip netns del "$ns" 2>/dev/null || true; }
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" tuntap add dev tap0 mode tap vnet_hdr
ip -n "$ns" addr add 10.0.2.1/24 dev tap0
ip -n "$ns" link set tap0 up

ip netns exec "$ns" build/tapvm \
  --kernel "$guest_dir/lean-bzImage" --initramfs "$guest_dir/lean-initramfs.cpio" \
  --cpus 2 --memory 1G --net tap=tap0 \
  --cmdline "console=ttyS0 panic=-1 tapvm.run=selftest tapvm.expect_cpus=2 tapvm.expect_mem_mib=1024 tapvm.expect_nic=1 tapvm.ip=10.0.2.15/24 tapvm.peer=10.0.2.1"
