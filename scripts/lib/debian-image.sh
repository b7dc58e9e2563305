# shellcheck shell=bash
# Shared by the scripts that make images from Debian packages
# (build-guest-image.sh, nested-kvm.sh): package versions and downloads,
# kernel modules with their dependencies, busybox, cpio archives.
# The including script sets LOG_PREFIX and CACHE and defines nothing of these.

log() { echo "$LOG_PREFIX: $*" >&2; }
die() {
	echo "$LOG_PREFIX: error: $*" >&2
	exit 1
}

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }
sha256_of_text() { sha256sum | cut -d' ' -f1; }

# apt-cache with its package cache kept in $CACHE/apt: this system keeps
# none, and rebuilding it costs each apt-cache call seconds.
apt_cache() {
	mkdir -p "$CACHE/apt"
	apt-cache -o Dir::Cache::pkgcache="$CACHE/apt/pkgcache.bin" \
		-o Dir::Cache::srcpkgcache="$CACHE/apt/srcpkgcache.bin" "$@"
}

# candidate_versions META PKG...: one apt-cache call; prints "name version"
# for each package, and "stock-kernel name version" for the linux-image-<abi>
# package that the kernel metapackage META depends on (its exact version).
candidate_versions() {
	local meta=$1
	shift
	apt_cache show --no-all-versions "$@" | awk -v meta="$meta" '
		/^Package:/ { pkg = $2 }
		/^Version:/ { print pkg, $2 }
		/^Depends:/ && pkg == meta {
			if (match($0, /linux-image-[0-9][^ ,]* \(= [^)]+\)/)) {
				split(substr($0, RSTART, RLENGTH), d, /[ ()=]+/)
				print "stock-kernel", d[1], d[2]
			}
		}'
}

# Prints the path of PKG=VERSION's .deb in the download cache, fetching it
# with apt-get download if needed (never installs it).
fetch_deb() {
	local pkg=$1 ver=$2 debs=$CACHE/debs dl
	local deb=$debs/${pkg}_${ver//:/%3a}.deb
	if [[ ! -s $deb ]]; then
		mkdir -p "$debs"
		dl=$(mktemp -d "$debs/.download.XXXXXX")
		log "downloading $pkg=$ver"
		(cd "$dl" && apt-get download -q "$pkg=$ver" >&2) ||
			die "apt-get download $pkg=$ver failed"
		local got=("$dl"/*.deb)
		((${#got[@]} == 1)) || die "apt-get download $pkg=$ver left ${#got[@]} files"
		mv "${got[0]}" "$deb"
		rmdir "$dl"
	fi
	echo "$deb"
}

extract_deb() {
	mkdir -p "$2"
	dpkg-deb -x "$1" "$2"
}

# ------------------------------------------------------- kernel modules ----

# Module file (relative to lib/modules/<release>/) for a module name, from
# modules.dep; empty when not built as a module.
module_path() {
	local moddir=$1 name=$2
	awk -F: -v n="$name" '{
		f = $1; sub(/.*\//, "", f); sub(/\.ko(\.(xz|zst|gz))?$/, "", f)
		gsub(/-/, "_", f)
		if (f == n) { print $1; exit }
	}' "$moddir/modules.dep"
}

module_deps() {
	awk -F: -v p="$2" '$1 == p { print $2; exit }' "$1/modules.dep"
}

# Depth-first over modules.dep: dependencies before dependents.
declare -A VISITED=()
declare -a ORDER=()
visit_module() {
	local moddir=$1 path=$2 dep
	[[ -n ${VISITED[$path]:-} ]] && return
	VISITED[$path]=1
	for dep in $(module_deps "$moddir" "$path"); do
		visit_module "$moddir" "$dep"
	done
	ORDER+=("$path")
}

copy_module() {
	local from=$1 to=$2
	mkdir -p "$(dirname "$to")"
	case $from in
	*.ko.xz) xz -dc "$from" >"$to" ;;
	*.ko.zst) zstd -qdc "$from" >"$to" ;;
	*.ko.gz) gzip -dc "$from" >"$to" ;;
	*) cp "$from" "$to" ;;
	esac
}

# stage_modules MODROOT RELEASE ROOT STRICT: copies BOOT_MODULES and
# EXTRA_MODULES (and their dependencies) from MODROOT/lib/modules/RELEASE
# into ROOT uncompressed, writes tapvm.load (boot modules in load order)
# and a fresh modules.dep.  STRICT=1 fails on a missing module.
stage_modules() {
	local modroot=$1 release=$2 root=$3 strict=$4
	local moddir=$modroot/lib/modules/$release dest=$root/lib/modules/$release
	local name path rel boot_count
	[[ -f $moddir/modules.dep ]] || depmod -b "$modroot" "$release"
	VISITED=()
	ORDER=()
	for name in "${BOOT_MODULES[@]}" EXTRA "${EXTRA_MODULES[@]}"; do
		if [[ $name == EXTRA ]]; then
			boot_count=${#ORDER[@]}
			continue
		fi
		path=$(module_path "$moddir" "$name")
		if [[ -z $path ]]; then
			if grep -qE "/$name\.ko" "$moddir/modules.builtin" 2>/dev/null; then
				log "$release: $name is built in"
			elif ((strict)); then
				die "$release: module $name was not built"
			else
				log "$release: no module $name (skipped)"
			fi
			continue
		fi
		visit_module "$moddir" "$path"
	done
	mkdir -p "$dest"
	: >"$dest/tapvm.load"
	local i=0
	for path in "${ORDER[@]}"; do
		rel=${path%.xz}
		rel=${rel%.zst}
		rel=${rel%.gz}
		copy_module "$moddir/$path" "$dest/$rel"
		((i++ < boot_count)) && echo "$rel" >>"$dest/tapvm.load"
	done
	cp "$moddir"/modules.builtin* "$moddir"/modules.order "$dest/" 2>/dev/null || true
	depmod -b "$root" "$release"
	log "$release: $boot_count boot modules, $((${#ORDER[@]} - boot_count)) more shipped"
}

# ---------------------------------------------------- busybox and cpio ----

# unpack_busybox DEB DIR: sets BUSYBOX_ROOT.
BUSYBOX_ROOT=
unpack_busybox() {
	BUSYBOX_ROOT=$2
	extract_deb "$1" "$BUSYBOX_ROOT"
	[[ -x $BUSYBOX_ROOT/bin/busybox ]] || die "$1 has no bin/busybox"
}

stage_busybox() {
	local root=$1 applet
	install -D -m 0755 "$BUSYBOX_ROOT/bin/busybox" "$root/bin/busybox"
	for applet in $("$root/bin/busybox" --list-full); do
		[[ -e $root/$applet || -L $root/$applet ]] && continue
		mkdir -p "$root/$(dirname "$applet")"
		ln -s /bin/busybox "$root/$applet"
	done
}

make_cpio() {
	local root=$1 out=$2
	(cd "$root" && find . -print0 | LC_ALL=C sort -z |
		cpio --null --create --format=newc --owner=0:0 --reproducible --quiet) >"$out"
}
