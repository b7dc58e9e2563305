#!/usr/bin/env bash
# The nested-KVM rig: a real, hardware-style KVM on any machine.
#
# QEMU's software emulator with -cpu max emulates AMD SVM with nested paging;
# Debian's cloud kernel booted that way loads kvm-amd and has a working
# /dev/kvm.  This script boots such an outer guest, runs COMMAND inside it
# with the host's root filesystem visible read-only at the same paths over
# virtiofs (the cloud kernel has no 9p), so build trees, the guest image and
# the host's tools are where they are on the host, and the folders given with
# --rw writable; it hands back COMMAND's output (live) and exit status.  See ../shared/PLATFORM.md and the README.
#
# Usage: scripts/nested-kvm.sh [options] [--] COMMAND [ARG...]
#   --rw DIR          make DIR (created if missing) writable inside; repeatable
#   --ro DIR          make DIR visible read-only where the host's root is not
#                     (under /tmp, /run, /var/tmp, which are private inside);
#                     the current folder and $TAPVM_GUEST_DIR get this
#                     automatically; repeatable
#   --cpus N          outer vCPUs (default 2)
#   --memory SIZE     outer RAM, QEMU syntax (default 6G)
#   --timeout SECS    hard limit for the whole outer session (default 1800);
#                     on expiry QEMU is killed and the status is 124
#   --boot-timeout SECS  the outer guest must start COMMAND within this
#                     (default 300); otherwise its boot hung, QEMU is killed
#                     and the status is 125 (a lost outer guest, as below)
#   --pin CPUS|off    run QEMU under taskset -c CPUS (default 0: see below)
#   --tcg-thread multi|single   QEMU's TCG threading (default multi)
#   --env NAME        pass the host's $NAME into COMMAND; repeatable (TAPVM_*
#                     and CI are always passed)
#   --console FILE    keep the outer kernel's console log there
#   --image-only      build (or find) the outer image, print its folder, exit
#   --quiet           do not stream COMMAND's output (still returned at the end)
#
# The default configuration (pinned to one host CPU, thread=multi) is the one
# measured stable: scripts/rig-flake-rate.sh and the README give the numbers.
#
# Exit status: COMMAND's; 124 on timeout; 125 when the outer guest died
# before COMMAND finished (its console tail is printed); 2 on a usage error;
# 1 when QEMU, the kernel package or another prerequisite is missing.
set -euo pipefail
shopt -s nullglob

SCRIPT_PATH=$(readlink -f "${BASH_SOURCE[0]}")
readonly SCRIPT_PATH
SCRIPTS=$(dirname "$SCRIPT_PATH")
readonly RIG_INIT=$SCRIPTS/rig/init
readonly LOG_PREFIX=nested-kvm
CACHE=${TAPVM_CACHE:-$HOME/.cache/tapvm}
# shellcheck source=lib/debian-image.sh
source "$SCRIPTS/lib/debian-image.sh"

readonly KERNEL_META_PKG=linux-image-cloud-amd64
readonly BUSYBOX_PKG=busybox-static
readonly VIRTIOFSD=/usr/lib/qemu/virtiofsd
# Loaded at boot in this order (with their dependencies from modules.dep).
BOOT_MODULES=(virtio virtio_ring virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci
	fuse virtiofs irqbypass kvm kvm_amd tun vhost_iotlb vhost
	tap vhost_net veth bridge llc stp macvlan macvtap)
EXTRA_MODULES=()

CPUS=2
MEMORY=6G
TIMEOUT=1800
BOOT_TIMEOUT=300
PIN=0
TCG_THREAD=multi
CONSOLE_FILE=
IMAGE_ONLY=0
QUIET=0
RW_DIRS=()
RO_DIRS=()
PASS_ENV=()

usage_error() {
	echo "nested-kvm: $*" >&2
	echo "usage: scripts/nested-kvm.sh [--rw DIR]... [--cpus N] [--memory SIZE] [--timeout SECS] [--boot-timeout SECS] [--pin CPUS|off] [--tcg-thread multi|single] [--env NAME]... [--console FILE] [--quiet] [--image-only] [--] COMMAND [ARG...]" >&2
	exit 2
}

parse_args() {
	while (($#)); do
		case $1 in
		--rw) (($# >= 2)) || usage_error "--rw needs a folder"; RW_DIRS+=("$2"); shift ;;
		--ro) (($# >= 2)) && [[ -d $2 ]] || usage_error "--ro needs an existing folder"; RO_DIRS+=("$2"); shift ;;
		--cpus) (($# >= 2)) && [[ $2 =~ ^[1-8]$ ]] || usage_error "--cpus takes 1..8"; CPUS=$2; shift ;;
		--memory) (($# >= 2)) && [[ $2 =~ ^[0-9]+[MG]$ ]] || usage_error "--memory takes e.g. 4G or 3072M"; MEMORY=$2; shift ;;
		--timeout) (($# >= 2)) && [[ $2 =~ ^[0-9]+$ ]] && (($2 > 0)) || usage_error "--timeout takes seconds"; TIMEOUT=$2; shift ;;
		--pin) (($# >= 2)) && [[ $2 == off || $2 =~ ^[0-9]+([,-][0-9]+)*$ ]] || usage_error "--pin takes a CPU list or off"; PIN=$2; shift ;;
		--boot-timeout) (($# >= 2)) && [[ $2 =~ ^[0-9]+$ ]] && (($2 > 0)) || usage_error "--boot-timeout takes seconds"; BOOT_TIMEOUT=$2; shift ;;
		--tcg-thread) (($# >= 2)) && [[ $2 == multi || $2 == single ]] || usage_error "--tcg-thread takes multi or single"; TCG_THREAD=$2; shift ;;
		--env) (($# >= 2)) && [[ $2 =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || usage_error "--env takes a variable name"; PASS_ENV+=("$2"); shift ;;
		--console) (($# >= 2)) || usage_error "--console needs a file"; CONSOLE_FILE=$2; shift ;;
		--image-only) IMAGE_ONLY=1 ;;
		--quiet) QUIET=1 ;;
		-h | --help) sed -n '2,/^set -euo/p' "$SCRIPT_PATH" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
		--) shift; break ;;
		-*) usage_error "unknown option $1" ;;
		*) break ;;
		esac
		shift
	done
	COMMAND=("$@")
	((IMAGE_ONLY || ${#COMMAND[@]})) || usage_error "no COMMAND given"
}

require_tools() {
	command -v qemu-system-x86_64 >/dev/null ||
		die "qemu-system-x86_64 is missing: install Debian's qemu-system-x86 (scripts/setup.sh does)"
	[[ -x $VIRTIOFSD ]] ||
		die "$VIRTIOFSD is missing: install Debian's qemu-system-common (scripts/setup.sh does)"
	local t
	for t in apt-cache apt-get dpkg-deb cpio depmod flock sha256sum xz; do
		command -v "$t" >/dev/null || die "$t is missing (scripts/setup.sh installs it)"
	done
	[[ $PIN == off ]] || command -v taskset >/dev/null || die "taskset is missing (util-linux)"
}

# ------------------------------------------------------------ the image ----

declare -A PKG_VERSIONS=()
KERNEL_PKG=
resolve_inputs() {
	local name ver extra
	while read -r name ver extra; do
		if [[ $name == stock-kernel ]]; then
			KERNEL_PKG=$ver
			PKG_VERSIONS[$ver]=$extra
		elif [[ $name != "$KERNEL_META_PKG" ]]; then
			PKG_VERSIONS[$name]=$ver
		fi
	done < <(candidate_versions "$KERNEL_META_PKG" "$KERNEL_META_PKG" "$BUSYBOX_PKG")
	[[ -n $KERNEL_PKG ]] ||
		die "no candidate for Debian's $KERNEL_META_PKG: apt-get update, or check the machine's Debian sources"
	[[ -n ${PKG_VERSIONS[$BUSYBOX_PKG]:-} ]] || die "no candidate for Debian's $BUSYBOX_PKG"
}

image_key() {
	{
		echo "script $(sha256_of "$SCRIPT_PATH")"
		echo "lib $(sha256_of "$SCRIPTS/lib/debian-image.sh")"
		echo "init $(sha256_of "$RIG_INIT")"
		echo "modules ${BOOT_MODULES[*]}"
		echo "kernel $KERNEL_PKG ${PKG_VERSIONS[$KERNEL_PKG]}"
		echo "busybox ${PKG_VERSIONS[$BUSYBOX_PKG]}"
	} | sha256_of_text | cut -c1-16
}

build_image() {
	local dir=$1 work kroot root release kernels deb
	work=$(mktemp -d "$CACHE/.tmp-rig.XXXXXX")
	TMP_DIRS+=("$work")
	kroot=$work/kernel
	root=$work/root
	deb=$(fetch_deb "$KERNEL_PKG" "${PKG_VERSIONS[$KERNEL_PKG]}")
	extract_deb "$deb" "$kroot"
	kernels=("$kroot"/boot/vmlinuz-*)
	((${#kernels[@]} == 1)) || die "$KERNEL_PKG holds ${#kernels[@]} kernels"
	release=${kernels[0]##*/vmlinuz-}
	unpack_busybox "$(fetch_deb "$BUSYBOX_PKG" "${PKG_VERSIONS[$BUSYBOX_PKG]}")" "$work/busybox"

	mkdir -p "$root"/{proc,sys,dev,tmp,host,etc}
	stage_busybox "$root"
	stage_modules "$kroot" "$release" "$root" 0
	mv "$root/lib/modules/$release/tapvm.load" "$root/lib/modules/$release/rig.load"
	grep -q 'kvm-amd\.ko\|kvm_amd\.ko' "$root/lib/modules/$release/rig.load" ||
		die "$KERNEL_PKG has no kvm-amd module"
	install -m 0755 "$RIG_INIT" "$root/init"
	mkdir -p "$work/out"
	make_cpio "$root" "$work/out/initramfs.cpio"
	cp "${kernels[0]}" "$work/out/vmlinuz"
	echo "$KERNEL_PKG ${PKG_VERSIONS[$KERNEL_PKG]} $release" >"$work/out/kernel"
	rm -rf "$dir"
	mv -T "$work/out" "$dir"
	log "outer image: $dir ($(du -sh "$dir" | cut -f1))"
}

# Sets IMAGE_DIR to the outer image's folder, building it when needed.
IMAGE_DIR=
outer_image() {
	resolve_inputs
	local key dir
	key=$(image_key)
	dir=$CACHE/rig-$key
	mkdir -p "$CACHE"
	exec 8>"$CACHE/.rig-$key.lock"
	flock 8
	[[ -s $dir/vmlinuz && -s $dir/initramfs.cpio ]] || build_image "$dir"
	exec 8>&-
	IMAGE_DIR=$dir
}

# ------------------------------------------------------------- the run ----

TMP_DIRS=()
FSD_PIDS=()
QEMU_PID=
TAIL_PID=
cleanup() {
	local pid
	[[ -n $TAIL_PID ]] && kill "$TAIL_PID" 2>/dev/null
	if [[ -n $QEMU_PID ]] && kill -0 "$QEMU_PID" 2>/dev/null; then
		kill -TERM "$QEMU_PID" 2>/dev/null || true
		sleep 1
		kill -KILL "$QEMU_PID" 2>/dev/null || true
		wait "$QEMU_PID" 2>/dev/null || true
	fi
	for pid in "${FSD_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${FSD_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
	local d
	for d in "${TMP_DIRS[@]}"; do rm -rf "$d"; done
}
on_signal() {
	echo "nested-kvm: interrupted; stopping the outer guest" >&2
	exit 130
}

# Writes the command file: environment, working folder, the command.
write_command() {
	local run=$1 name
	{
		echo "# generated by nested-kvm.sh"
		echo "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
		echo "export HOME=${HOME:-/root} TAPVM_IN_RIG=1 LANG=C.UTF-8"
		for name in $(compgen -e | grep -E '^(TAPVM_|CI$)' || true) "${PASS_ENV[@]}"; do
			[[ $name == TAPVM_IN_RIG ]] && continue
			[[ -v $name ]] && printf 'export %s=%q\n' "$name" "${!name}"
		done
		printf '%q ' "${COMMAND[@]}"
		echo
	} >"$run/command.sh"
	pwd >"$run/cwd"
}

# share TAG DIR: one virtiofsd serving DIR; adds its QEMU device arguments
# to SHARE_ARGS.  virtiofsd chroots into DIR (no namespaces: this may run in
# a container); the guest mounts the host's root read-only.
SHARE_ARGS=()
share() {
	local tag=$1 dir=$2 sock=$SOCKETS/$1.sock
	"$VIRTIOFSD" --socket-path="$sock" -o source="$dir" -o sandbox=chroot \
		-o cache=auto -o log_level=err -o xattr --rlimit-nofile=0 \
		>>"$SOCKETS/virtiofsd.log" 2>&1 &
	FSD_PIDS+=($!)
	SHARE_ARGS+=(-chardev "socket,id=$tag,path=$sock"
		-device "vhost-user-fs-pci,queue-size=1024,chardev=$tag,tag=$tag")
}

# Paths that the outer guest replaces with private tmpfs folders.
is_private() {
	case $1/ in
	/tmp/* | /run/* | /var/tmp/* | /dev/shm/*) return 0 ;;
	*) return 1 ;;
	esac
}

wait_for_sockets() {
	local tag tries=0
	for tag in "$@"; do
		until [[ -S $SOCKETS/$tag.sock ]]; do
			((tries++ < 100)) || die "virtiofsd did not start: $(tail -n 3 "$SOCKETS/virtiofsd.log")"
			sleep 0.05
		done
	done
}

run_in_rig() {
	local image=$1 run qemu=() i=0 path tag status tags=(hostroot run)
	run=$(mktemp -d /tmp/tapvm-rig.XXXXXX)
	TMP_DIRS+=("$run")
	SOCKETS=$(mktemp -d /tmp/tapvm-rig-sockets.XXXXXX)
	TMP_DIRS+=("$SOCKETS")
	write_command "$run"
	: >"$run/mounts"
	share hostroot /
	share run "$run"
	for path in "${RW_DIRS[@]}"; do
		mkdir -p "$path"
		path=$(readlink -f "$path")
		tag=rw$((i++))
		echo "$tag rw $path" >>"$run/mounts"
		share "$tag" "$path"
		tags+=("$tag")
	done
	# Folders the command needs that the private /tmp, /run, /var/tmp would
	# hide: the caller's folder (a clone in /tmp), the guest image.
	local ro=("${RO_DIRS[@]}") dir
	ro+=("$PWD")
	[[ -n ${TAPVM_GUEST_DIR:-} && -d $TAPVM_GUEST_DIR ]] && ro+=("$TAPVM_GUEST_DIR")
	for path in "${ro[@]}"; do
		path=$(readlink -f "$path")
		is_private "$path" || continue
		for dir in "${RW_DIRS[@]}"; do
			[[ $path == "$(readlink -f "$dir")"* ]] && continue 2
		done
		tag=ro$((i++))
		echo "$tag ro $path" >>"$run/mounts"
		share "$tag" "$path"
		tags+=("$tag")
	done
	# Parents before children, so no mount hides another.
	awk '{ print length($3), $0 }' "$run/mounts" | sort -n | cut -d' ' -f2- >"$run/mounts.sorted"
	mv "$run/mounts.sorted" "$run/mounts"
	wait_for_sockets "${tags[@]}"
	# timeout(1) is the hard limit: 124 when it fired.  cryptomgr.notests:
	# the outer kernel's boot-time crypto self-tests test nothing the rig
	# needs, and one was seen spinning for 15 minutes under TCG.
	qemu=(timeout --kill-after=10 "$TIMEOUT")
	[[ $PIN == off ]] || qemu+=(taskset -c "$PIN")
	qemu+=(qemu-system-x86_64 -accel "tcg,thread=$TCG_THREAD" -cpu max -smp "$CPUS" -m "$MEMORY"
		-object "memory-backend-memfd,id=mem,size=$MEMORY,share=on" -machine q35,memory-backend=mem -nodefaults -no-user-config -display none -no-reboot
		-serial "file:$run/console.log" -nic none
		-kernel "$image/vmlinuz" -initrd "$image/initramfs.cpio"
		-append "console=ttyS0 quiet loglevel=4 panic=-1 mitigations=off cryptomgr.notests rig.run=$run"
		"${SHARE_ARGS[@]}")
	: >"$run/output"
	"${qemu[@]}" </dev/null >"$run/qemu.log" 2>&1 &
	QEMU_PID=$!
	# The outer boot normally takes seconds; one that has not started the
	# command by the deadline is stuck (seen once: a crypto self-test of the
	# outer kernel spinning under TCG), and waiting for --timeout would only
	# waste the caller's time.
	(
		for ((t = 0; t < BOOT_TIMEOUT; t++)); do
			[[ -e $run/started ]] && exit 0
			kill -0 "$QEMU_PID" 2>/dev/null || exit 0
			sleep 1
		done
		: >"$run/boot-hung"
		kill -TERM "$QEMU_PID" 2>/dev/null
	) &
	local boot_watch=$!
	if ((!QUIET)); then
		tail -n +1 -F --pid="$QEMU_PID" "$run/output" 2>/dev/null &
		TAIL_PID=$!
	fi
	local qemu_status=0
	wait "$QEMU_PID" || qemu_status=$?
	QEMU_PID=
	kill "$boot_watch" 2>/dev/null || true
	wait "$boot_watch" 2>/dev/null || true
	if [[ -n $TAIL_PID ]]; then
		wait "$TAIL_PID" 2>/dev/null || true
		TAIL_PID=
	fi
	((QUIET)) && cat "$run/output"
	[[ -n $CONSOLE_FILE ]] && cp "$run/console.log" "$CONSOLE_FILE"
	if [[ -s $run/status ]]; then
		status=$(<"$run/status")
	elif [[ -e $run/boot-hung ]]; then
		echo "nested-kvm: the outer guest did not start the command within $BOOT_TIMEOUT s (its boot hung); its console ends:" >&2
		tail -n 10 "$run/console.log" >&2 || true
		status=125
	elif ((qemu_status == 124 || qemu_status == 137)); then
		echo "nested-kvm: timeout: the outer guest was stopped after $TIMEOUT s" >&2
		status=124
	else
		echo "nested-kvm: the outer guest stopped before the command finished (QEMU status $qemu_status); its console ends:" >&2
		tail -n 30 "$run/console.log" >&2 || true
		tail -n 5 "$run/qemu.log" >&2 || true
		status=125
	fi
	return "$status"
}

main() {
	parse_args "$@"
	require_tools
	trap cleanup EXIT
	trap on_signal INT TERM HUP
	outer_image
	if ((IMAGE_ONLY)); then
		echo "$IMAGE_DIR"
		return 0
	fi
	local status=0
	run_in_rig "$IMAGE_DIR" || status=$?
	return "$status"
}

main "$@"
