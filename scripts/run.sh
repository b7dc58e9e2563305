#!/usr/bin/env bash
# The main job: install what is missing, build tapvm and the guest image, then
# boot the lean guest with 2 vCPUs and 1 GiB and let its runner show that
# everything is there (CPU count, memory, the virtio NIC and its offloads,
# and TCP both ways over a tap in a private network namespace), then power
# off.  It boots natively where this machine's /dev/kvm works, and inside the
# nested-KVM rig (scripts/nested-kvm.sh: KVM inside QEMU's software
# emulator) where it does not; it says which.
#
# Usage: scripts/run.sh [--native|--rig]
set -euo pipefail
cd "$(dirname "$0")/.."

where=auto
case ${1:-} in
--native) where=native ;;
--rig) where=rig ;;
"") ;;
*) echo "usage: scripts/run.sh [--native|--rig]" >&2; exit 2 ;;
esac

bash scripts/setup.sh
bash scripts/build.sh
guest_dir=$(bash scripts/build-guest-image.sh --print-dir | tail -n 1)

kvm_works() { [[ -c /dev/kvm ]] && { exec 3<>/dev/kvm; } 2>/dev/null && exec 3>&-; }
if [[ $where == auto ]]; then
	if kvm_works; then where=native; else where=rig; fi
fi

if [[ $where == native ]]; then
	kvm_works || { echo "run.sh: /dev/kvm does not work on this machine; try scripts/run.sh --rig" >&2; exit 1; }
	kind="hardware KVM"
	[[ -d /sys/module/kvm_pvm ]] && kind="the nested kvm_pvm (guest kernel code is emulated: expect minutes and ~1 Mbit/s)"
	echo "run.sh: booting natively on this machine's /dev/kvm: $kind"
	exec bash scripts/guest-check.sh "$guest_dir"
fi
echo "run.sh: no working /dev/kvm here (or --rig): booting inside the nested-KVM rig (scripts/nested-kvm.sh)"
exec bash scripts/nested-kvm.sh -- bash scripts/guest-check.sh "$guest_dir"
