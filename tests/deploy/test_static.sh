#!/bin/bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Deploy files without a running agent: systemd-analyze verify on the
# unit, config parse errors, Kubernetes schema validation, the image
# recipe, --help of every subcommand and the man page.
. "$(dirname "$0")/lib.sh"
T=$PWD/$O/deploy-test
rm -rf "$T" && mkdir -p "$T" "$LOGS"
[ -x "$FASTIVC" ] || { fail "deploy: $FASTIVC not built"; exit 1; }
UNIT=deploy/systemd/fastivc-agent.service

# --- systemd ------------------------------------------------------------------
if need systemd-analyze systemd; then
	# The unit as installed, with ExecStart at the binary built here.
	sed "s#/usr/sbin/fastivc#$FASTIVC#" $UNIT >"$T/fastivc-agent.service"
	out=$(MANPATH=$PWD/docs/man: systemd-analyze verify "$T/fastivc-agent.service" 2>&1)
	rc=$?
	[ -n "$out" ] && echo "$out" | sed 's/^/# /'
	check "systemd-analyze verify $UNIT" [ $rc = 0 -a -z "$out" ]
else
	skip "systemd-analyze verify: systemd-analyze missing and not installable"
fi
check "unit: Type=notify, ExecReload, Restart=on-failure, State/RuntimeDirectory" \
	sh -c "grep -qx 'Type=notify' $UNIT && grep -q '^ExecReload=.*-HUP' $UNIT &&
		grep -qx 'Restart=on-failure' $UNIT && grep -q '^StateDirectory=' $UNIT &&
		grep -q '^RuntimeDirectory=' $UNIT"
caps=$(sed -n 's/^CapabilityBoundingSet=//p' $UNIT)
amb=$(sed -n 's/^AmbientCapabilities=//p' $UNIT)
check "unit: ambient = bounding capabilities, no CAP_SYS_ADMIN" \
	[ -n "$caps" -a "$caps" = "$amb" -a -z "$(echo "$caps" | grep SYS_ADMIN)" ]
nocomment=
for c in $caps; do
	grep -q "^#   $c " $UNIT || nocomment="$nocomment $c"
done
check "unit: a comment on every capability${nocomment:+ (missing:$nocomment)}" [ -z "$nocomment" ]

# --- the config file --------------------------------------------------------
AG=("$FASTIVC" agent --instance "$TAG-cfg" --set run_dir="$T/run" --set link_dir="$T/run/link")
conf() { printf "$1" >"$T/agent.conf"; }
conf 'domid = 3\n# fine\n\nchannels = 99\n'
expect "config: bad value names file, line and key" "agent.conf:4: bad value '99' for key 'channels'" \
	"${AG[@]}" --config "$T/agent.conf"
conf 'domid = 3\nwindwo = 1048576\n'
expect "config: unknown key names file, line and key" "agent.conf:2: unknown key 'windwo'" \
	"${AG[@]}" --config "$T/agent.conf"
conf 'domid = 3\nlog_level debug\n'
expect "config: a line without '=' names file and line" "agent.conf:2: expected 'key = value'" \
	"${AG[@]}" --config "$T/agent.conf"
conf 'metrics_listen = 127.0.0.1:99999\n'
expect "config: bad metrics_listen" "agent.conf:1: bad value '127.0.0.1:99999' for key 'metrics_listen'" \
	"${AG[@]}" --config "$T/agent.conf"
conf 'window = 1024\n'
expect "config: window below 256 KiB" "agent.conf:1: bad value '1024' for key 'window'" \
	"${AG[@]}" --config "$T/agent.conf"
conf 'domid = 3\nmax_tunnels = -1\n'
expect "config: negative number" "agent.conf:2: bad value '-1' for key 'max_tunnels'" \
	"${AG[@]}" --config "$T/agent.conf"
expect "config: missing file" "Failed to open config" "${AG[@]}" --config "$T/nosuch.conf"
expect "--set: bad metrics_listen" "bad value 'localhost:9464' for 'metrics_listen'" \
	"${AG[@]}" --domid 3 --set metrics_listen=localhost:9464
# Every key the example documents is one the parser knows, and the example
# parses: unknown keys would stop at the parser, before any privilege check.
keys=$(sed -n 's/^#\{0,1\}\([a-z_]*\) = .*/\1/p' deploy/systemd/agent.conf.example | sort -u)
unknown=
for k in $keys; do
	grep -q "\"$k\"" agent/config.c || unknown="$unknown $k"
done
check "agent.conf.example: every key is one the parser knows${unknown:+ (not:$unknown)}" [ -z "$unknown" ]
missing=
for k in $(grep -o '!strcmp(key, "[a-z_]*")' agent/config.c | sed 's/.*"\(.*\)".*/\1/'); do
	echo "$keys" | grep -qx "$k" || missing="$missing $k"
	grep -q "^| \`$k\`" docs/operations.md || missing="$missing $k(docs)"
done
check "every parser key is in agent.conf.example and docs/operations.md${missing:+ (missing:$missing)}" [ -z "$missing" ]
out=$("${AG[@]}" --config deploy/systemd/agent.conf.example 2>&1)
check "agent.conf.example parses (stops only at the missing domid)" \
	sh -c "echo '$out' | grep -q 'domain id is not set'"

# --- Kubernetes manifests ---------------------------------------------------
NODE_DIR=$PWD/$O/deploy-node
k8s_validator() {
	[ -f "$NODE_DIR/node_modules/kubernetes-models/package.json" ] &&
		[ -f "$NODE_DIR/node_modules/yaml/package.json" ] && return 0
	need node nodejs && need npm npm || return 1
	mkdir -p "$NODE_DIR"
	(cd "$NODE_DIR" && timeout 300 npm install --silent --no-audit --no-fund \
		--no-save kubernetes-models@5.1.0 yaml@2 >/dev/null 2>&1)
	[ -f "$NODE_DIR/node_modules/kubernetes-models/package.json" ]
}
if k8s_validator; then
	cp tests/deploy/validate_k8s.mjs "$NODE_DIR/"
	out=$(node "$NODE_DIR/validate_k8s.mjs" deploy/k8s/*.yaml 2>&1)
	rc=$?
	echo "$out" | sed 's/^/# /'
	check "Kubernetes manifests validate against the API schemas" \
		[ $rc = 0 -a "$(echo "$out" | grep -c '^valid ')" = "$(ls deploy/k8s/*.yaml | wc -l)" ]
	# The validator is not a YAML parse: a wrong type and a bad enum fail.
	sed -e 's/mountPropagation: HostToContainer/mountPropagation: Sideways/' \
		-e 's/containerPort: 9464/containerPort: "metrics"/' \
		deploy/k8s/daemonset.yaml >"$T/broken.yaml"
	out=$(node "$NODE_DIR/validate_k8s.mjs" "$T/broken.yaml" 2>&1)
	rc=$?
	say "$(echo "$out" | cut -c1-300)"
	check "the validator rejects a broken DaemonSet (bad enum, bad type)" \
		sh -c "[ $rc != 0 ] && echo '$out' | grep -q mountPropagation &&
			echo '$out' | grep -q containerPort"
else
	skip "Kubernetes schema validation: node/npm or kubernetes-models not installable"
fi
if need_py yaml python3-yaml; then
	$PY - deploy/k8s/daemonset.yaml >"$T/ds.out" 2>&1 <<'PY'
import sys, yaml
ds = yaml.safe_load(open(sys.argv[1]))
spec = ds["spec"]["template"]["spec"]
ok = True
def need(cond, what):
    global ok
    print(("# ok: " if cond else "# FAILED: ") + what)
    ok &= bool(cond)
need(spec.get("hostNetwork") is True, "hostNetwork")
need(spec.get("hostPID") is not True, "no hostPID")
a = spec["containers"][0]
sc = a["securityContext"]
need(not sc.get("privileged"), "agent container not privileged")
need(sc["capabilities"]["drop"] == ["ALL"], "drops ALL capabilities")
need(set(sc["capabilities"]["add"]) == {"BPF", "PERFMON", "NET_ADMIN", "NET_RAW"},
     "adds exactly BPF PERFMON NET_ADMIN NET_RAW")
for p in ("readinessProbe", "livenessProbe"):
    need(a[p]["exec"]["command"][:2] == ["/usr/sbin/fastivc", "status"], p + " runs fastivc status")
need(a["resources"]["requests"] and a["resources"]["limits"], "requests and limits")
paths = {v["hostPath"]["path"] for v in spec["volumes"] if "hostPath" in v}
need({"/sys/fs/bpf", "/sys/fs/cgroup", "/dev/xen", "/proc/xen"} <= paths, "bpffs, cgroup2, /dev/xen, /proc/xen mounted")
need(spec["affinity"]["nodeAffinity"], "node affinity for Xen nodes")
sys.exit(0 if ok else 1)
PY
	rc=$?
	cat "$T/ds.out"
	check "DaemonSet: host network, no hostPID, listed capabilities, probes, mounts" [ $rc = 0 ]
else
	skip "DaemonSet policy checks: python3-yaml missing"
fi

# --- the image recipe ---------------------------------------------------------
CF=deploy/Containerfile
rt=$(sed -n '/^FROM .* AS runtime/,$p' $CF | grep -v '^#')
check "Containerfile: a build stage and a runtime stage on Debian 12" \
	sh -c "[ \$(grep -c '^FROM ' $CF) = 2 ] && grep -q '^ARG DEBIAN=debian:12' $CF"
check "Containerfile: no toolchain in the runtime stage" \
	sh -c "! echo '$rt' | grep -Eqw 'gcc|clang|llvm|make|cc|[a-z0-9.-]*-dev|build-essential'"
pk=$(echo "$rt" | sed -n '/apt-get install/,/rm -rf/p' | tr ' \\' '\n\n' |
	grep -E '^[a-z0-9][a-z0-9.+-]+$' | grep -vE '^(apt-get|install|rm|qq|y|rf)$')
if command -v apt-cache >/dev/null; then
	nopkg=
	for p in $pk; do
		apt-cache show --no-all-versions "$p" >/dev/null 2>&1 || nopkg="$nopkg $p"
	done
	check "Containerfile: runtime packages exist in Debian${nopkg:+ (not:$nopkg)}" [ -z "$nopkg" ]
fi
# The libraries the binary names itself (NEEDED), found where ldd finds them.
needed=$(readelf -d "$FASTIVC" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
libs=$(ldd "$FASTIVC" | awk -v n=" $(echo $needed) " 'index(n, " " $1 " ") && $3 ~ /^\// {print $3}')
nolib=
for l in $libs; do
	p=$(dpkg -S "$(readlink -f "$l")" 2>/dev/null || dpkg -S "$l" 2>/dev/null)
	p=${p%%:*}
	[ -z "$p" ] || [ "$p" = libc6 ] || [ "$p" = libgcc-s1 ] ||
		echo "$pk" | grep -qx "$p" || nolib="$nolib $p"
done
check "Containerfile: runtime packages cover the binary's libraries${nolib:+ (not:$nolib)}" [ -z "$nolib" ]

# --- --help and the man page --------------------------------------------------
for c in agent status peer; do
	check "fastivc $c --help" sh -c "'$FASTIVC' $c --help | grep -q '^Usage: fastivc $c'"
	check "fastivc help $c" sh -c "'$FASTIVC' help $c | grep -q '^Usage: fastivc $c'"
done
check "fastivc --help lists every subcommand" \
	sh -c "'$FASTIVC' --help | grep -q agent && '$FASTIVC' --help | grep -q status &&
		'$FASTIVC' --help | grep -q peer"
if command -v man >/dev/null && command -v groff >/dev/null; then
	out=$(MANWIDTH=80 man --warnings -l docs/man/man8/fastivc.8 2>&1 >/dev/null)
	[ -n "$out" ] && echo "$out" | sed 's/^/# /'
	check "man page renders without warnings" sh -c \
		"[ -z '$out' ] && MANWIDTH=80 man -l docs/man/man8/fastivc.8 2>/dev/null | grep -q 'fastivc peer'"
else
	skip "man page: man or groff missing"
fi
exit $FAILED
