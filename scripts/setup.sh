#!/usr/bin/env bash
# Installs everything tapvm needs to build, test and make its guest image,
# from Debian bookworm.  Idempotent: installs only what is missing.
set -euo pipefail

if [[ $(id -u) -ne 0 ]]; then
  echo "setup.sh: must run as root (it installs Debian packages)" >&2
  exit 1
fi

# netperf lives in Debian's non-free component.  Add that component for the
# machine's own configured Debian sources (same URIs, so mirrors and proxies
# keep working and no host name lives in this project), as a sources file of
# its own so the system's files stay untouched.
nonfree=/etc/apt/sources.list.d/tapvm-non-free.sources
if [[ ! -f $nonfree ]]; then
  python3 scripts/apt-nonfree-source.py > "$nonfree.tmp"
  if [[ ! -s $nonfree.tmp ]]; then
    rm -f "$nonfree.tmp"
    echo "setup.sh: no Debian bookworm source is configured in /etc/apt; cannot add non-free for netperf" >&2
    exit 1
  fi
  mv "$nonfree.tmp" "$nonfree"
  need_update=1
fi
# An earlier version wrote a fixed host name; drop that file.
rm -f /etc/apt/sources.list.d/tapvm-bookworm-non-free.sources

build_pkgs=(
  build-essential cmake ninja-build pkg-config
  linux-libc-dev
  libboost-dev libboost-system-dev
  nlohmann-json3-dev libgtest-dev libgmock-dev
  libcli11-dev libspdlog-dev libfmt-dev
  libpcap-dev libseccomp-dev
  zlib1g-dev liblzma-dev liblz4-dev libzstd-dev libbz2-dev
  acpica-tools iproute2 iputils-ping
)
guest_pkgs=(
  # kernel build
  bc bison flex libelf-dev libssl-dev dwarves rsync kmod cpio xz-utils
  # the guest's own contents (unpacked, never installed on the host)
  busybox-static
)
# QEMU's software emulator runs the guest for the vhost-user tests
# (tests/integration/vhost_user_test.cpp), which need no /dev/kvm.
test_pkgs=(iperf3 ethtool netperf qemu-system-x86)
pkgs=("${build_pkgs[@]}" "${guest_pkgs[@]}" "${test_pkgs[@]}")

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  if [[ ${need_update:-0} == 1 || ! -d /var/lib/apt/lists || -z $(ls /var/lib/apt/lists 2>/dev/null | grep -i non-free) ]]; then
    apt-get update -q
  fi
  echo "setup.sh: installing ${missing[*]}"
  apt-get install -y -q --no-install-recommends "${missing[@]}"
  # iperf3 installs a service; a host daemon is not wanted.
  systemctl disable --now iperf3 >/dev/null 2>&1 || true
fi
echo "setup.sh: all packages present"
