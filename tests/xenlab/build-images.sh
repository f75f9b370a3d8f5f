#!/bin/sh
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Build what tests/xenlab/run.sh boots, from Debian 12 packages and this
# project's build output, into $O/xenlab:
#   xen         the hypervisor, gunzipped (QEMU loads it as multiboot)
#   vmlinuz     the Debian 6.1 kernel, for dom0 and the domUs
#   dom0.img    initramfs: busybox, Xen toolstack, iperf3, the domU files
#   domU.img    initramfs: busybox, iperf3, this project's binaries
# The .debs are cached in $O/xenlab/debs. Run as root (apt-get).
set -eu
cd "$(dirname "$0")/../.."
O=${O:-build}
OUT=$O/xenlab
DEBS=$OUT/debs
ROOT=$OUT/root # every .deb unpacked here
LIBDIR=lib/x86_64-linux-gnu
HERE=tests/xenlab

need_host_pkgs() {
	missing=""
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
			grep -q 'install ok installed' || missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	echo "xenlab: installing$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

# The kernel package: 6.1.0-56 while apt has it, since 6.1.0-57 (6.1.192-3)
# stops at "Poking KASLR using RDTSC..." as a PV dom0 under TCG (measured
# 2026-12-07: no further output in 9 minutes; 6.1.0-56 boots the whole lab
# in the same QEMU). Otherwise whatever ABI linux-image-amd64 points at
# today. XENLAB_KERNEL names another.
KERNEL_BOOTS=linux-image-6.1.0-56-amd64
kernel_pkg() {
	if apt-cache show "$KERNEL_BOOTS" >/dev/null 2>&1; then
		echo "$KERNEL_BOOTS"
		return
	fi
	apt-cache depends linux-image-amd64 2>/dev/null |
		awk '/Depends: linux-image-[0-9]/ {print $2; exit}'
}

# As root apt's sandbox user cannot write our cache dir; download as root.
download() {
	(cd "$DEBS" && apt-get download -qq -o APT::Sandbox::User=root "$1")
}

fetch_debs() {
	mkdir -p "$DEBS"
	kpkg=${XENLAB_KERNEL:-$(kernel_pkg)}
	if [ -z "$kpkg" ]; then
		apt-get update -qq
		kpkg=$(kernel_pkg)
	fi
	[ -n "$kpkg" ] || { echo "xenlab: no linux-image-amd64 in apt" >&2; exit 1; }
	for p in xen-hypervisor-4.17-amd64 xen-utils-4.17 xen-utils-common \
		xenstore-utils libxenstore4 libxenmisc4.17 libxencall1 \
		libxendevicemodel1 libxenevtchn1 libxenforeignmemory1 \
		libxengnttab1 libxenhypfs1 libxentoolcore1 libxentoollog1 \
		libyajl2 busybox-static iperf3 libiperf0 libsctp1 "$kpkg"; do
		ls "$DEBS/${p}_"*.deb >/dev/null 2>&1 && continue
		echo "xenlab: downloading $p"
		download "$p" || { apt-get update -qq && download "$p"; }
	done
}

unpack_debs() {
	rm -rf "$ROOT"
	mkdir -p "$ROOT"
	for d in "$DEBS"/*.deb; do
		dpkg -x "$d" "$ROOT"
	done
}

# Copy $2 (a file on this machine) to $1/$3, with the libraries ldd says it
# needs. Libraries from the unpacked packages come first.
add_bin() {
	img=$1 src=$2 dst=$3
	mkdir -p "$img/$(dirname "$dst")"
	cp -L "$src" "$img/$dst"
	LD_LIBRARY_PATH=$ROOT/$LIBDIR:$ROOT/usr/$LIBDIR ldd "$src" |
		awk '/not found/ {print "missing " $1; next}
		     /=>/ {print $3; next} /^\t\// {print $1}' |
		while read -r lib rest; do
			if [ "$lib" = missing ]; then
				echo "xenlab: $src needs $rest, not found" >&2
				exit 1
			fi
			mkdir -p "$img/$LIBDIR" "$img/lib64"
			case $lib in
			*/ld-linux-x86-64.so.2) cp -L "$lib" "$img/lib64/" ;;
			*) cp -L "$lib" "$img/$LIBDIR/" ;;
			esac
		done
}

# The base of both images: busybox, modules in load order, iperf3.
base_image() {
	img=$1
	shift
	rm -rf "$img"
	mkdir -p "$img/bin" "$img/dev" "$img/proc" "$img/sys" "$img/run" \
		"$img/tmp" "$img/lib/modules" "$img/etc"
	cp "$ROOT/bin/busybox" "$img/bin/busybox"
	for a in $("$img/bin/busybox" --list-full); do
		mkdir -p "$img/$(dirname "$a")"
		[ -e "$img/$a" ] || ln -s /bin/busybox "$img/$a"
	done
	add_bin "$img" "$ROOT/usr/bin/iperf3" usr/bin/iperf3
	# pthread_cancel dlopens it; nothing links it, so ldd never lists it.
	cp -L "/$LIBDIR/libgcc_s.so.1" "$img/$LIBDIR/"
	: >"$img/etc/modules"
	ADDED=""
	for m in "$@"; do
		add_module "$img" "$m"
	done
}

# Copy module $2 into image $1 after what it depends on, once each, and
# list it in /etc/modules, the order init loads them in. The .deb has no
# modules.dep (depmod makes it at install): read each module's own
# "depends=" from its .modinfo section instead.
add_module() {
	local f d
	case " $ADDED " in *" $2 "*) return ;; esac
	ADDED="$ADDED $2"
	f=$(find "$KMOD/kernel" -name "$2.ko" -o -name "$(echo "$2" | tr _ -).ko" | head -1)
	[ -n "$f" ] || { echo "xenlab: no module $2" >&2; exit 1; }
	for d in $(tr '\0' '\n' <"$f" | sed -n 's/^depends=//p' | tr , ' '); do
		add_module "$1" "$d"
	done
	cp "$f" "$1/lib/modules/"
	basename "$f" >>"$1/etc/modules"
}

# newc cpio, gzip: what the kernel unpacks as its initramfs.
pack() {
	(cd "$1" && find . | cpio -o -H newc --quiet) | gzip -1 >"$2"
}

# The lab's mode, the benchmark's rounds, and agent options of an
# experiment (make bench-xen LAB_AGENT_ARGS='--set poll_us=5000'), for
# dom0 and domUs.
bench_conf() {
	mkdir -p "$1/etc/xenlab"
	echo "BENCH_ROUNDS=${BENCH_ROUNDS:-3} BENCH_SECS=${BENCH_SECS:-3}" \
		"LAB_AGENT_ARGS='${LAB_AGENT_ARGS:-}'" \
		"LAB_MODE=${XENLAB_MODE:-full}" >"$1/etc/xenlab/bench.conf"
}

build_domU() {
	img=$OUT/domU
	# tc (the agent's FIN hold) and sock_diag for `fastivc agent`.
	base_image "$img" xen-evtchn xen-gntdev xen-gntalloc xen-netfront \
		sch_ingress cls_bpf inet_diag tcp_diag
	install -m 755 "$HERE/init-domU.sh" "$img/init"
	install -m 644 "$HERE/scenario-domU.sh" "$img/etc/scenario.sh"
	# The side-by-side benchmark; make bench asks for more rounds and
	# for the benchmark alone (XENLAB_MODE=bench: no integrity and fault
	# scenario around it).
	bench_conf "$img"
	install -m 644 "$HERE/bench-domU.sh" "$img/etc/xenlab/bench-domU.sh"
	for f in "$O/fastivc" "$O"/tests/* "$O"/tools/*; do
		[ -f "$f" ] && [ -x "$f" ] || continue
		add_bin "$img" "$f" "opt/fastivc/${f#"$O"/}"
	done
	add_bin "$img" "$ROOT/usr/bin/xenstore" usr/bin/xenstore
	for t in read write chmod ls exists rm; do
		ln -s xenstore "$img/usr/bin/xenstore-$t"
	done
	pack "$img" "$OUT/domU.img"
}

build_dom0() {
	img=$OUT/dom0
	base_image "$img" xen-evtchn xen-gntdev xen-gntalloc xen-privcmd \
		xenfs xen-netback bridge
	install -m 755 "$HERE/init-dom0.sh" "$img/init"
	install -m 755 "$HERE/vif-hotplug.sh" "$img/etc/vif-hotplug"
	bench_conf "$img"
	mkdir -p "$img/etc/xen"
	: >"$img/etc/xen/xl.conf" # the defaults; xl complains when it is absent
	for b in xl xenstored xenconsoled xen-init-dom0; do
		add_bin "$img" "$ROOT/usr/lib/xen-4.17/bin/$b" usr/sbin/$b
	done
	add_bin "$img" "$O/fastivc" usr/sbin/fastivc
	add_bin "$img" "$ROOT/usr/bin/xenstore" usr/bin/xenstore
	for t in read write chmod ls exists rm list; do
		ln -s xenstore "$img/usr/bin/xenstore-$t"
	done
	mkdir -p "$img/boot"
	cp "$OUT/vmlinuz" "$OUT/domU.img" "$img/boot/"
	pack "$img" "$OUT/dom0.img"
}

need_host_pkgs qemu-system-x86 cpio
fetch_debs
unpack_debs
KVER=${kpkg#linux-image-}
KMOD=$ROOT/lib/modules/$KVER
gunzip -c "$ROOT"/boot/xen-4.17-amd64.gz >"$OUT/xen"
cp "$ROOT/boot/vmlinuz-$KVER" "$OUT/vmlinuz"
build_domU
build_dom0
ls -l "$OUT/xen" "$OUT/vmlinuz" "$OUT/dom0.img" "$OUT/domU.img" |
	awk '{print "xenlab: " $NF " " int($5 / 1024) " KiB"}'
