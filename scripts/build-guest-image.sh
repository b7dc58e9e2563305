#!/usr/bin/env bash
# Builds tapvm's guest image from Debian packages, cached outside the repo:
#
#   lean-bzImage          the project's lean kernel (linux-source-6.1 +
#                         scripts/guest/lean.config + the syscall patch)
#   lean-initramfs.cpio   its initramfs (uncompressed newc cpio)
#   stock-vmlinuz         Debian's linux-image-cloud-amd64 kernel
#   stock-initramfs.cpio  its initramfs (uncompressed newc cpio)
#   manifest.json         versions, hashes and files
#   (plus lean-System.map, lean-config and stock-config)
#
# in $CACHE/guest-<key>/, where <key> hashes every input: this script, the
# files in scripts/guest/, the Debian package versions used, the compiler
# and the selected flavours.  A complete directory is reused as is.
# See scripts/guest/README.md.
#
# Usage: scripts/build-guest-image.sh [--cache DIR] [--stock-only|--lean-only]
#                                     [--print-dir]
set -euo pipefail
shopt -s nullglob

SCRIPT_PATH=$(readlink -f "${BASH_SOURCE[0]}")
readonly SCRIPT_PATH
GUEST_DIR=$(dirname "$SCRIPT_PATH")/guest
readonly GUEST_DIR
readonly LEAN_FRAGMENT=$GUEST_DIR/lean.config
readonly SYSCALL_PATCH=$GUEST_DIR/0001-x86-complete-syscall-from-user-page-fault.patch
readonly INIT_SCRIPT=$GUEST_DIR/init

readonly SOURCE_PKG=linux-source-6.1
readonly STOCK_META_PKG=linux-image-cloud-amd64
readonly BUSYBOX_PKG=busybox-static
# User-space tools copied from the host (with their shared libraries); the
# versions of every package owning a copied file enter the key.
readonly HOST_TOOLS=(/usr/bin/iperf3 /usr/bin/netperf /usr/bin/netserver /usr/sbin/ethtool)
# Modules loaded at boot, by name; load order comes from modules.dep.
readonly BOOT_MODULES=(failover net_failover virtio virtio_ring virtio_pci_legacy_dev
	virtio_pci_modern_dev virtio_pci virtio_net)
# Modules shipped but not loaded (tests load them, e.g. for a userspace driver).
readonly EXTRA_MODULES=(uio uio_pci_generic)
# Bump when the lean-kernel recipe below changes in a way that must rebuild
# cached kernels (the kernel cache is keyed separately so that changing the
# init script does not cost a kernel build).
readonly LEAN_KERNEL_RECIPE=1

JOBS=${TAPVM_JOBS:-2}
CACHE=${TAPVM_CACHE:-$HOME/.cache/tapvm}
WANT_LEAN=1
WANT_STOCK=1
PRINT_DIR=0

readonly LOG_PREFIX=build-guest-image
# shellcheck source=lib/debian-image.sh
source "$(dirname "$SCRIPT_PATH")/lib/debian-image.sh"

usage() {
	cat <<-EOF
		Usage: $0 [--cache DIR] [--stock-only|--lean-only] [--print-dir]
		  --cache DIR   cache directory (default \${TAPVM_CACHE:-\$HOME/.cache/tapvm})
		  --lean-only   only the lean kernel and its initramfs
		  --stock-only  only Debian's cloud kernel and its initramfs
		  --print-dir   print only the image directory on stdout (last line)
		Environment: TAPVM_CACHE, TAPVM_JOBS (kernel build jobs, default 2).
	EOF
}

parse_args() {
	while (($#)); do
		case $1 in
		--cache)
			(($# >= 2)) || die "--cache needs a directory"
			CACHE=$2
			shift
			;;
		--cache=*) CACHE=${1#--cache=} ;;
		--lean-only) WANT_STOCK=0 ;;
		--stock-only) WANT_LEAN=0 ;;
		--print-dir) PRINT_DIR=1 ;;
		-h | --help)
			usage
			exit 0
			;;
		*)
			usage >&2
			die "unknown argument: $1"
			;;
		esac
		shift
	done
	((WANT_LEAN || WANT_STOCK)) || die "--lean-only and --stock-only exclude each other"
	[[ $JOBS =~ ^[1-9][0-9]*$ ]] || die "TAPVM_JOBS must be a positive number, not '$JOBS'"
	mkdir -p "$CACHE"
	CACHE=$(readlink -f "$CACHE")
}

require_tools() {
	local t missing=()
	for t in apt-cache apt-get dpkg-deb dpkg-query cpio depmod flock sha256sum \
		make gcc flex bison bc perl xz patch ldd; do
		command -v "$t" >/dev/null || missing+=("$t")
	done
	((${#missing[@]} == 0)) || die "missing tools: ${missing[*]} (run scripts/setup.sh)"
}


# ------------------------------------------------------------ versions ----

# Shared libraries (resolved paths) and the dynamic loader a binary needs.
shared_libs_of() {
	ldd "$1" | awk '
		$2 == "=>" && $3 ~ /^\// { print $3 }
		$1 ~ /^\// { print $1 }'
}

# Merged-/usr aliases under which dpkg may have registered a host file.
path_aliases() {
	local p=$1
	printf '%s\n' "$p" "${p#/usr}" "/usr$p" "$(readlink -f "$p")"
}

# Fills HOST_FILES (tools + libraries) and PKG_VERSIONS (name -> version).
declare -a HOST_FILES=()
declare -A PKG_VERSIONS=()
resolve_host_files() {
	local f lib path owner
	declare -A seen=() owner_of=()
	for f in "${HOST_TOOLS[@]}"; do
		[[ -x $f ]] || die "$f is missing on the host (run scripts/setup.sh)"
		for lib in "$f" $(shared_libs_of "$f"); do
			[[ -n ${seen[$lib]:-} ]] && continue
			seen[$lib]=1
			HOST_FILES+=("$lib")
		done
	done
	# One dpkg-query call for all files and their aliases: "pkg[:arch]: path".
	while IFS= read -r line; do
		owner=${line%%: *}
		path=${line#*: }
		owner_of[$path]=${owner%%:*}
	done < <(for f in "${HOST_FILES[@]}"; do path_aliases "$f"; done |
		sort -u | xargs dpkg-query -S 2>/dev/null || true)
	for f in "${HOST_FILES[@]}"; do
		owner=
		for path in $(path_aliases "$f"); do
			owner=${owner_of[$path]:-}
			[[ -n $owner ]] && break
		done
		[[ -n $owner ]] || die "no Debian package owns $f"
		PKG_VERSIONS[$owner]=
	done
}

resolve_inputs() {
	local name ver extra
	local host_pkgs=() archive_pkgs=("$BUSYBOX_PKG")
	resolve_host_files
	host_pkgs=("${!PKG_VERSIONS[@]}")
	if ((WANT_LEAN)); then
		archive_pkgs+=("$SOURCE_PKG")
		host_pkgs+=(gcc-12 binutils)
	fi
	((WANT_STOCK)) && archive_pkgs+=("$STOCK_META_PKG")
	while read -r name ver; do
		PKG_VERSIONS[${name%%:*}]=$ver
	done < <(dpkg-query -W -f '${Package} ${Version}\n' "${host_pkgs[@]}")
	while read -r name ver extra; do
		if [[ $name == stock-kernel ]]; then
			STOCK_PKG=$ver
			PKG_VERSIONS[$ver]=$extra
		elif [[ $name != "$STOCK_META_PKG" ]]; then
			PKG_VERSIONS[$name]=$ver
		fi
	done < <(candidate_versions "$STOCK_META_PKG" "${archive_pkgs[@]}")
	if ((WANT_STOCK)); then
		[[ -n ${STOCK_PKG:-} ]] ||
			die "cannot resolve the kernel package $STOCK_META_PKG depends on"
		host_pkgs+=("$STOCK_PKG")
	fi
	for name in "${host_pkgs[@]}" "${archive_pkgs[@]}"; do
		[[ $name == "$STOCK_META_PKG" || -n ${PKG_VERSIONS[$name]:-} ]] ||
			die "no version for Debian package $name (apt-get update? scripts/setup.sh?)"
	done
}

image_key() {
	local p
	{
		echo "script $(sha256_of "$SCRIPT_PATH")"
		echo "lib $(sha256_of "$(dirname "$SCRIPT_PATH")/lib/debian-image.sh")"
		echo "fragment $(sha256_of "$LEAN_FRAGMENT")"
		echo "patch $(sha256_of "$SYSCALL_PATCH")"
		echo "init $(sha256_of "$INIT_SCRIPT")"
		echo "flavours lean=$WANT_LEAN stock=$WANT_STOCK"
		for p in $(printf '%s\n' "${!PKG_VERSIONS[@]}" | LC_ALL=C sort); do
			echo "package $p ${PKG_VERSIONS[$p]}"
		done
		printf 'host-file %s\n' "${HOST_FILES[@]}"
	} | sha256_of_text | cut -c1-16
}

lean_kernel_key() {
	{
		echo "recipe $LEAN_KERNEL_RECIPE"
		echo "source ${PKG_VERSIONS[$SOURCE_PKG]}"
		echo "fragment $(sha256_of "$LEAN_FRAGMENT")"
		echo "patch $(sha256_of "$SYSCALL_PATCH")"
		echo "gcc ${PKG_VERSIONS[gcc-12]} binutils ${PKG_VERSIONS[binutils]}"
	} | sha256_of_text | cut -c1-16
}

# ------------------------------------------------------ Debian packages ----

# ---------------------------------------------------------- lean kernel ----

# Every `CONFIG_X=v` line of the fragment must be in the final .config, and
# every `# CONFIG_X is not set` symbol must be unset: merge_config.sh only
# warns when Kconfig dependencies override a request.
verify_config() {
	local fragment=$1 config=$2
	awk '
		FNR == NR {
			if (match($0, /^CONFIG_[A-Za-z0-9_]+=/)) want[$0] = 1
			else if (match($0, /^# CONFIG_[A-Za-z0-9_]+ is not set$/)) unset[$2] = 1
			next
		}
		/^CONFIG_/ {
			have[$0] = 1
			sym = $0; sub(/=.*/, "", sym); set[sym] = $0
		}
		END {
			bad = 0
			for (l in want) if (!(l in have)) {
				sym = l; sub(/=.*/, "", sym)
				printf "  wanted %s, got %s\n", l, (sym in set) ? set[sym] : "unset"
				bad = 1
			}
			for (s in unset) if (s in set) {
				printf "  wanted %s unset, got %s\n", s, set[s]
				bad = 1
			}
			exit bad
		}' "$fragment" "$config"
}

# Builds the lean kernel into $CACHE/lean-kernel-<key>/ (bzImage,
# System.map, config, kernel.release, modules/lib/modules/<release>/,
# build.log) unless it is there already; sets LEAN_KERNEL_DIR to it.
# (Not run in a $(...) subshell, so that its temporary tree is cleaned up.)
LEAN_KERNEL_DIR=
build_lean_kernel() {
	local key dir work src deb log_file release t0
	key=$(lean_kernel_key)
	dir=$CACHE/lean-kernel-$key
	LEAN_KERNEL_DIR=$dir
	exec 8>"$CACHE/.lean-kernel-$key.lock"
	flock 8
	if [[ -f $dir/kernel.release ]]; then
		log "lean kernel: cached in $dir"
		return
	fi
	deb=$(fetch_deb "$SOURCE_PKG" "${PKG_VERSIONS[$SOURCE_PKG]}")
	work=$(mktemp -d "$CACHE/.tmp-lean-kernel-$key.XXXXXX")
	TMP_DIRS+=("$work")
	log_file=$work/out/build.log
	mkdir -p "$work/out"
	t0=$SECONDS

	log "lean kernel: unpacking $SOURCE_PKG ${PKG_VERSIONS[$SOURCE_PKG]}"
	extract_deb "$deb" "$work/pkg"
	tar -xaf "$work/pkg/usr/src/$SOURCE_PKG.tar.xz" -C "$work"
	rm -rf "$work/pkg"
	src=$work/$SOURCE_PKG
	[[ -f $src/Makefile ]] || die "$SOURCE_PKG did not unpack to $src"

	log "lean kernel: applying $(basename "$SYSCALL_PATCH")"
	patch -p1 -d "$src" --forward --batch < "$SYSCALL_PATCH" >>"$log_file" ||
		die "the syscall patch does not apply to $SOURCE_PKG ${PKG_VERSIONS[$SOURCE_PKG]}"

	log "lean kernel: tinyconfig + lean.config + olddefconfig"
	{
		make -C "$src" tinyconfig
		(cd "$src" && scripts/kconfig/merge_config.sh -m .config "$LEAN_FRAGMENT")
		make -C "$src" olddefconfig
	} >>"$log_file" 2>&1 || die "configuring the lean kernel failed; see $log_file"
	if ! verify_config "$LEAN_FRAGMENT" "$src/.config" >&2; then
		die "the lean kernel's .config lacks options lean.config asks for (above)"
	fi

	log "lean kernel: make -j$JOBS bzImage modules (several minutes; log: $log_file)"
	if ! make -C "$src" -j"$JOBS" bzImage modules >>"$log_file" 2>&1; then
		tail -n 30 "$log_file" >&2
		die "the lean kernel build failed; see $log_file"
	fi
	make -C "$src" INSTALL_MOD_PATH="$work/out/modules" INSTALL_MOD_STRIP=1 \
		modules_install >>"$log_file" 2>&1 || die "modules_install failed; see $log_file"

	release=$(make -s -C "$src" kernelrelease)
	cp "$src/arch/x86/boot/bzImage" "$work/out/bzImage"
	cp "$src/System.map" "$work/out/System.map"
	cp "$src/.config" "$work/out/config"
	echo "$release" >"$work/out/kernel.release"
	log "lean kernel: $release built in $((SECONDS - t0)) s"

	rm -rf "$dir"
	mv -T "$work/out" "$dir"
	rm -rf "$work"
}

# --------------------------------------------------------------- modules ----

# ------------------------------------------------------------- initramfs ----


# The host's tools and the exact library files ldd resolved, at the same
# paths (the loader at its PT_INTERP path).
stage_host_tools() {
	local root=$1 f
	for f in "${HOST_FILES[@]}"; do
		mkdir -p "$root/$(dirname "$f")"
		cp -L "$f" "$root/$f"
	done
}

stage_etc() {
	local root=$1 flavour=$2 release=$3
	mkdir -p "$root"/{etc,proc,sys,dev,tmp,run,root,var}
	ln -sfn /run "$root/var/run"
	echo "root:x:0:0:root:/root:/bin/sh" >"$root/etc/passwd"
	echo "root:x:0:" >"$root/etc/group"
	printf '127.0.0.1 localhost\n' >"$root/etc/hosts"
	echo "tapvm-$flavour-$release" >"$root/etc/tapvm-image"
	# The kernel opens /dev/console for init's stdio before anything is
	# mounted; without the node (non-root builds) /init reopens it later.
	if ((EUID == 0)); then
		mknod -m 0600 "$root/dev/console" c 5 1
		mknod -m 0666 "$root/dev/null" c 1 3
	else
		log "not root: no /dev/console node in the archive (init copes)"
	fi
	install -m 0755 "$INIT_SCRIPT" "$root/init"
}


# build_initramfs FLAVOUR MODROOT RELEASE STRICT OUT
build_initramfs() {
	local flavour=$1 modroot=$2 release=$3 strict=$4 out=$5
	local root=$WORK/root-$flavour
	mkdir -p "$root"
	stage_etc "$root" "$flavour" "$release"
	stage_busybox "$root"
	stage_host_tools "$root"
	stage_modules "$modroot" "$release" "$root" "$strict"
	make_cpio "$root" "$out"
	log "$flavour initramfs: $(du -h "$out" | cut -f1), $(find "$root" | wc -l) entries"
}

# ------------------------------------------------------------ the image ----

json_str() {
	local s=${1//\\/\\\\}
	printf '"%s"' "${s//\"/\\\"}"
}

write_manifest() {
	local out=$1 key=$2 p f first=1
	{
		echo "{"
		echo "  \"key\": $(json_str "$key"),"
		echo "  \"created_utc\": $(json_str "$(date -u +%Y-%m-%dT%H:%M:%SZ)"),"
		echo "  \"inputs\": {"
		echo "    \"script_sha256\": $(json_str "$(sha256_of "$SCRIPT_PATH")"),"
		echo "    \"lean_config_sha256\": $(json_str "$(sha256_of "$LEAN_FRAGMENT")"),"
		echo "    \"patch_sha256\": $(json_str "$(sha256_of "$SYSCALL_PATCH")"),"
		echo "    \"init_sha256\": $(json_str "$(sha256_of "$INIT_SCRIPT")")"
		echo "  },"
		echo "  \"packages\": {"
		for p in $(printf '%s\n' "${!PKG_VERSIONS[@]}" | LC_ALL=C sort); do
			((first)) || echo ","
			first=0
			printf '    %s: %s' "$(json_str "$p")" "$(json_str "${PKG_VERSIONS[$p]}")"
		done
		echo
		echo "  },"
		if ((WANT_LEAN)); then
			echo "  \"lean\": {"
			echo "    \"kernel_release\": $(json_str "$LEAN_RELEASE"),"
			echo "    \"kernel\": \"lean-bzImage\","
			echo "    \"initramfs\": \"lean-initramfs.cpio\","
			echo "    \"system_map\": \"lean-System.map\","
			echo "    \"config\": \"lean-config\","
			echo "    \"boot_modules\": [$(modules_json "$WORK/root-lean" "$LEAN_RELEASE")]"
			echo "  },"
		fi
		if ((WANT_STOCK)); then
			echo "  \"stock\": {"
			echo "    \"package\": $(json_str "$STOCK_PKG"),"
			echo "    \"kernel_release\": $(json_str "$STOCK_RELEASE"),"
			echo "    \"kernel\": \"stock-vmlinuz\","
			echo "    \"initramfs\": \"stock-initramfs.cpio\","
			echo "    \"config\": \"stock-config\","
			echo "    \"boot_modules\": [$(modules_json "$WORK/root-stock" "$STOCK_RELEASE")]"
			echo "  },"
		fi
		echo "  \"files\": {"
		first=1
		for f in "$out"/*; do
			((first)) || echo ","
			first=0
			printf '    %s: {"bytes": %d, "sha256": %s}' "$(json_str "$(basename "$f")")" \
				"$(stat -c %s "$f")" "$(json_str "$(sha256_of "$f")")"
		done
		echo
		echo "  }"
		echo "}"
	} >"$WORK/manifest.json"
	mv "$WORK/manifest.json" "$out/manifest.json"
}

modules_json() {
	local list=$1/lib/modules/$2/tapvm.load m sep=
	while read -r m; do
		printf '%s%s' "$sep" "$(json_str "$(basename "$m" .ko)")"
		sep=", "
	done <"$list"
}

image_complete() {
	local dir=$1
	[[ -f $dir/manifest.json ]] || return 1
	if ((WANT_LEAN)); then
		[[ -s $dir/lean-bzImage && -s $dir/lean-initramfs.cpio ]] || return 1
	fi
	if ((WANT_STOCK)); then
		[[ -s $dir/stock-vmlinuz && -s $dir/stock-initramfs.cpio ]] || return 1
	fi
}

declare -a TMP_DIRS=()
cleanup() {
	local d
	for d in "${TMP_DIRS[@]}"; do rm -rf "$d"; done
}

build_image() {
	local dir=$1 key=$2 out kdir
	WORK=$(mktemp -d "$CACHE/.tmp-guest-$key.XXXXXX")
	TMP_DIRS+=("$WORK")
	out=$WORK/image
	mkdir -p "$out"
	unpack_busybox "$(fetch_deb "$BUSYBOX_PKG" "${PKG_VERSIONS[$BUSYBOX_PKG]}")" "$WORK/busybox"

	if ((WANT_LEAN)); then
		build_lean_kernel
		kdir=$LEAN_KERNEL_DIR
		LEAN_RELEASE=$(<"$kdir/kernel.release")
		cp "$kdir/bzImage" "$out/lean-bzImage"
		cp "$kdir/System.map" "$out/lean-System.map"
		cp "$kdir/config" "$out/lean-config"
		build_initramfs lean "$kdir/modules" "$LEAN_RELEASE" 1 "$out/lean-initramfs.cpio"
	fi
	if ((WANT_STOCK)); then
		local sroot=$WORK/stock-pkg deb
		deb=$(fetch_deb "$STOCK_PKG" "${PKG_VERSIONS[$STOCK_PKG]}")
		extract_deb "$deb" "$sroot"
		local kernels=("$sroot"/boot/vmlinuz-*)
		((${#kernels[@]} == 1)) || die "$STOCK_PKG holds ${#kernels[@]} kernels"
		STOCK_RELEASE=${kernels[0]##*/vmlinuz-}
		cp "${kernels[0]}" "$out/stock-vmlinuz"
		# (Debian's System.map is a placeholder: symbols are in the -dbg package.)
		cp "$sroot/boot/config-$STOCK_RELEASE" "$out/stock-config"
		build_initramfs stock "$sroot" "$STOCK_RELEASE" 0 "$out/stock-initramfs.cpio"
	fi

	write_manifest "$out" "$key"
	# Atomic publication: the directory appears complete or not at all.
	rm -rf "$dir"
	mv -T "$out" "$dir"
}

print_summary() {
	local dir=$1 f
	if ((!PRINT_DIR)); then
		for f in "$dir"/*; do
			printf '%10s  %s\n' "$(du -h "$f" | cut -f1)" "$(basename "$f")"
		done
	fi
	echo "$dir"
}

main() {
	parse_args "$@"
	require_tools
	trap cleanup EXIT
	resolve_inputs
	local key dir
	key=$(image_key)
	dir=$CACHE/guest-$key
	exec 9>"$CACHE/.guest-$key.lock"
	flock 9
	if image_complete "$dir"; then
		log "up to date: $dir"
	else
		local t0=$SECONDS
		build_image "$dir" "$key"
		log "built $dir in $((SECONDS - t0)) s"
	fi
	print_summary "$dir"
}

main "$@"; exit $?
