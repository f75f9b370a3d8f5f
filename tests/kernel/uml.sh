#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Checks the proposed kernel patches (docs/kernel/*.patch) where they apply:
# builds User-Mode Linux from Debian's linux-source-6.12, without and then
# with the patches, and runs tests/kernel/tcp_bpf_semantics.c in each, then
# on the running kernel. The UML kernels boot on the host's root through
# hostfs, read-only, and run nothing but the check. About 10 minutes on 2
# cores; not part of make test (`make kernel-check`).
set -euo pipefail
cd "$(dirname "$0")/../.."
O=${O:-build}
K=$O/kernel
SRC=$K/linux-source-6.12
log() { echo "kernel-check: $*" >&2; }

need=()
[ -f /usr/src/linux-source-6.12.tar.xz ] || need+=(linux-source-6.12)
for t in bc flex bison busybox; do command -v $t >/dev/null || need+=("$t"); done
if [ ${#need[@]} -gt 0 ]; then
	log "installing ${need[*]}"
	apt-get install -y -q "${need[@]}" >/dev/null
fi

mkdir -p "$K"
if [ ! -d "$SRC" ]; then
	log "unpacking linux-source-6.12"
	tar xJf /usr/src/linux-source-6.12.tar.xz -C "$K"
fi
gcc -static -O2 -Wall -Wextra -Werror -o "$K/tcp_bpf_semantics" \
	tests/kernel/tcp_bpf_semantics.c -lpthread

# build NAME: a UML kernel of the tree as it is now, saved as $K/linux-NAME.
build() {
	local out=$PWD/$K/uml
	if [ ! -f "$out/.config" ]; then
		make -s -C "$SRC" ARCH=um O="$out" defconfig
		"$SRC/scripts/config" --file "$out/.config" -e BPF_SYSCALL \
			-e INET -e HOSTFS -d BPF_JIT -d DEBUG_INFO_BTF
		make -s -C "$SRC" ARCH=um O="$out" olddefconfig
	fi
	log "building UML ($1)"
	make -s -C "$SRC" ARCH=um O="$out" -j"$(nproc)" linux
	cp "$out/linux" "$PWD/$K/linux-$1"
}

# run NAME: boots it, runs the check over TCP and through the sockmap.
run() {
	local init=$PWD/$K/init.sh
	cat >"$init" <<-EOF
		#!/bin/sh
		mount -t proc proc /proc
		ip link set lo up
		echo "== $1: without a sockmap"
		$PWD/$K/tcp_bpf_semantics --tcp
		echo "== $1: through a sockmap redirect"
		$PWD/$K/tcp_bpf_semantics
		echo "== $1: exit \$?"
		busybox poweroff -f
	EOF
	chmod +x "$init"
	timeout 300 "$K/linux-$1" mem=256M rootfstype=hostfs rootflags=/ ro \
		init="$init" con=null con0=null,fd:1 2>&1 |
		sed -n '/^== /,/^== .*exit/p' | grep -v '^Terminated\|^$' |
		tee "$K/$1.out"
}

PATCHES=(docs/kernel/*.patch)
# unpatch: takes the series back out, last patch first.
unpatch() {
	local i
	for ((i = ${#PATCHES[@]} - 1; i >= 0; i--)); do
		patch -s -R -d "$SRC" -p1 <"${PATCHES[i]}"
	done
	rmdir "$SRC/.pc-fastivc"
}

if [ -d "$SRC/.pc-fastivc" ]; then
	log "reverting the patches left applied by an interrupted run"
	unpatch
fi
build unpatched
mkdir "$SRC/.pc-fastivc"
for p in "${PATCHES[@]}"; do patch -s -d "$SRC" -p1 <"$p"; done
build patched
unpatch

run unpatched
run patched
echo "== $(uname -r) (this machine): through a sockmap redirect"
"$K/tcp_bpf_semantics" || true
# redirected NAME: true when every answer through the sockmap was TCP's.
redirected() { grep ' answers differ' "$K/$1.out" | tail -1 | grep -q '^0 of'; }
redirected patched ||
	{ log "the patched kernel still differs from TCP"; exit 1; }
grep -q '^0 of .* differ' <(grep ' answers differ' "$K/unpatched.out" | head -1) ||
	{ log "plain TCP pairs did not answer as TCP: the expectations are wrong"; exit 1; }
redirected unpatched &&
	{ log "the unpatched kernel already answers as TCP: the check shows nothing"; exit 1; }
log "the patches make every answer TCP's"
