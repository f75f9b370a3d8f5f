# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# fastivc: one Makefile, out-of-tree build in $(O).
#   make              build everything into build/
#   make test         install dependencies, build, run every test (as root)
#   make demo         the two-namespace demonstration (as root)
#   make bench        benchmarks; rows go to build/bench/results.csv
#   make fuzz         the fuzz targets for longer (FUZZ_SECONDS)
#   make soak         10k connections, then 1000 flows for ten minutes
#   make check        clang-format and static checks
#   make xen-lab      Xen + two domUs under QEMU: netfront and xen backend
#   make test-deploy  systemd unit, config, Kubernetes manifests, metrics
#   make install      binary, unit, man page, config example (DESTDIR=)
# Knobs: O=dir, SAN=address,undefined | thread, V=1 shows commands.

O ?= build
SAN ?=
CC ?= gcc
V ?= 0
ifeq ($(V),1)
Q =
msg =
else
Q = @
msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

CFLAGS ?= -O2 -g
override CFLAGS += -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wformat=2 \
	-Wno-missing-field-initializers -fno-strict-aliasing -pthread \
	-D_GNU_SOURCE -Iinclude -MMD -MP
ifneq ($(SAN),)
override CFLAGS += -fsanitize=$(SAN) -fno-omit-frame-pointer \
	-fno-sanitize-recover=all
override LDFLAGS += -fsanitize=$(SAN)
endif
LDLIBS_XEN := -lxengnttab -lxenevtchn -lxenstore
LDLIBS := -pthread $(LDLIBS_XEN) -lcrypto

LIB_SRCS := $(wildcard common/*.c) $(wildcard shm/*.c)
LIB_OBJS := $(LIB_SRCS:%.c=$(O)/obj/%.o)
LIB := $(O)/libfastivc.a

RING_TESTS := $(patsubst tests/ring/%.c,$(O)/tests/%,$(wildcard tests/ring/test_*.c))
TEST_UTIL_OBJS := $(patsubst %.c,$(O)/obj/%.o,$(wildcard tests/util/*.c))
# Pure agent/ code without BPF or Xen, run with the ring tests.
UNIT_TESTS := $(patsubst tests/unit/%.c,$(O)/tests/%,$(wildcard tests/unit/test_*.c))
UNIT_AGENT_OBJS := $(O)/obj/unit/agent/cores_list.o $(O)/obj/unit/agent/addr.o \
	$(O)/obj/unit/agent/park.o $(O)/obj/unit/agent/hold_age.o \
	$(O)/obj/unit/agent/config.o
BENCH_BINS := $(patsubst tests/bench/%.c,$(O)/bench/%,$(wildcard tests/bench/*.c))

# BPF: vmlinux.h from the running kernel's BTF (VMLINUX_BTF=path overrides),
# each bpf/*.bpf.c compiled CO-RE, linked into one object, one skeleton.
CLANG ?= clang
BPFTOOL ?= bpftool
VMLINUX_BTF ?= /sys/kernel/btf/vmlinux
BPF_ARCH := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')
BPF_CFLAGS := -g -O2 -target bpf -mcpu=v3 -D__TARGET_ARCH_$(BPF_ARCH) -Wall -Wextra \
	-Werror -I$(O) -Iinclude -Ibpf
# The object defining the maps first: libbpf 1.1's linker leaves a map
# relocation unresolved when an extern use comes before the definition.
# listen_adopt has its own skeleton: the agent runs where it does not load.
BPF_OBJS := $(O)/bpf/sockops.bpf.o $(patsubst bpf/%.c,$(O)/bpf/%.o,\
	$(filter-out bpf/sockops.bpf.c bpf/listen_adopt.bpf.c,\
	$(wildcard bpf/*.bpf.c)))
SKEL := $(O)/fastivc.skel.h
ADOPT_SKEL := $(O)/listen_adopt.skel.h
BPF_TESTS := $(patsubst tests/bpf/%.c,$(O)/tests/bpf/%,$(wildcard tests/bpf/test_*.c))
LDLIBS_BPF := -lbpf -lelf -lz

AGENT_OBJS := $(patsubst %.c,$(O)/obj/%.o,$(wildcard agent/*.c))
FASTIVC := $(O)/fastivc
TOOLS := $(patsubst tests/tools/%.c,$(O)/tools/%,$(wildcard tests/tools/*.c))

.DELETE_ON_ERROR:
.PHONY: all deps test test-ring test-ring-san test-ring-tsan test-fuzz \
	test-bpf test-netns test-attacker bench bench-deps bench-ring bench-netns bench-xen fuzz soak \
	check format clean demo xen-lab test-deploy install kernel-check

all: $(LIB) $(RING_TESTS) $(UNIT_TESTS) $(BENCH_BINS) $(SKEL) $(ADOPT_SKEL) \
	$(BPF_TESTS) $(FASTIVC) $(TOOLS)

deps:
	$(Q)./scripts/install-deps.sh

$(O)/obj/%.o: %.c
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

$(O)/tests/%: $(O)/obj/tests/ring/%.o $(TEST_UTIL_OBJS) $(LIB)
	$(call msg,LINK,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) $(CFLAGS) $^ -o $@ $(LDLIBS)

# Built apart from the agent's objects, which wait for the BPF skeleton.
$(O)/obj/unit/%.o: %.c
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(UNIT_TESTS): $(O)/tests/%: $(O)/obj/tests/unit/%.o $(UNIT_AGENT_OBJS) \
	$(TEST_UTIL_OBJS) $(LIB)
	$(call msg,LINK,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) $(CFLAGS) $^ -o $@ $(LDLIBS)

$(O)/bench/%: $(O)/obj/tests/bench/%.o $(TEST_UTIL_OBJS) $(LIB)
	$(call msg,LINK,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) $(CFLAGS) $^ -o $@ $(LDLIBS)

# --- BPF -------------------------------------------------------------------
$(O)/vmlinux.h: $(VMLINUX_BTF)
	$(call msg,BTF,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(BPFTOOL) btf dump file $< format c > $@

$(O)/bpf/%.bpf.o: bpf/%.bpf.c $(wildcard bpf/*.h) include/fastivc/bpf_abi.h \
	$(O)/vmlinux.h
	$(call msg,CLANG-BPF,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(O)/fastivc.bpf.o: $(BPF_OBJS)
	$(call msg,GEN-OBJ,$@)
	$(Q)$(BPFTOOL) gen object $@ $^

$(SKEL): $(O)/fastivc.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< > $@

$(ADOPT_SKEL): $(O)/bpf/listen_adopt.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name listen_adopt > $@

BPF_TEST_OBJS := $(BPF_TESTS:$(O)/tests/bpf/%=$(O)/obj/tests/bpf/%.o)
$(BPF_TEST_OBJS): override CFLAGS += -I$(O)
$(BPF_TEST_OBJS): $(SKEL)

$(O)/tests/bpf/%: $(O)/obj/tests/bpf/%.o
	$(call msg,LINK,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) $(CFLAGS) $^ -o $@ $(LDLIBS_BPF)

# --- the fastivc binary (agent and CLI) --------------------------------------
$(O)/obj/agent/%.o: override CFLAGS += -I$(O)
$(AGENT_OBJS): $(SKEL) $(ADOPT_SKEL)

# libsystemd for sd_notify (agent/notify.c): the agent only.
$(FASTIVC): $(AGENT_OBJS) $(LIB)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(LDFLAGS) $(CFLAGS) $^ -o $@ $(LDLIBS) $(LDLIBS_BPF) -lsystemd

# Test tools: ordinary TCP programs with no fastivc code in them.
$(O)/tools/%: $(O)/obj/tests/tools/%.o $(TEST_UTIL_OBJS) $(LIB)
	$(call msg,LINK,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) $(CFLAGS) $^ -o $@ $(LDLIBS)

# --- tests -----------------------------------------------------------------
# Plain build first, then the same ring tests under ASan+UBSan and the
# concurrent ones under TSan, each in its own build folder.
test: deps
	$(Q)./tests/run.sh

test-ring: $(RING_TESTS) $(UNIT_TESTS)
	$(Q)./tests/ring/run.sh $(O)/tests

# Two namespaces, two cgroups, two program instances (as root).
test-bpf: $(BPF_TESTS)
	$(Q)./tests/bpf/run.sh $(O)/tests/bpf

# Two "domUs" (netns + cgroup + agent each) and real clients (as root).
test-netns: $(FASTIVC) $(TOOLS)
	$(Q)O=$(O) ./tests/netns/run.sh

# Agents set up as root, attacked by an unprivileged local user (as root).
test-attacker: $(FASTIVC) $(TOOLS)
	$(Q)O=$(O) ./tests/attacker/run.sh

# The deploy files and one agent in a private namespace (as root).
test-deploy: $(FASTIVC)
	$(Q)O=$(O) ./tests/deploy/run.sh

test-ring-san:
	$(Q)$(MAKE) --no-print-directory O=build/asan SAN=address,undefined test-ring

test-ring-tsan:
	$(Q)TSAN_OPTIONS=halt_on_error=1 TSAN_ONLY=1 $(MAKE) --no-print-directory \
		O=build/tsan SAN=thread CC=clang test-ring

# Longer runs than make test affords (ROUNDS=N).
# 10k half-closing connections one after another, then 1000 concurrent
# flows in rounds for ten minutes, with leak checks (tests/netns/test_soak.sh).
soak: deps $(FASTIVC) $(TOOLS)
	$(Q)O=$(O) ROUNDS=$${ROUNDS:-2500} bash tests/netns/test_churn.sh
	$(Q)O=$(O) SOAK_SECONDS=$${SOAK_SECONDS:-600} bash tests/netns/test_soak.sh

# --- Xen lab (tests/xenlab) --------------------------------------------------
# Xen 4.17 + dom0 + two PV domUs under QEMU (TCG), from Debian packages:
# netfront baselines and the xen backend between the domUs (as root).
XENLAB_XFER := $(O)/tests/xen_ring_xfer
all: $(XENLAB_XFER)

$(XENLAB_XFER): $(O)/obj/tests/xenlab/xen_ring_xfer.o $(TEST_UTIL_OBJS) $(LIB)
	$(call msg,LINK,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) $(CFLAGS) $^ -o $@ $(LDLIBS)

# A hostile peer on a xen control link: forged CREATEs (scenario-domU.sh).
XENLAB_FORGE := $(O)/tests/xen_forge
all: $(XENLAB_FORGE)

$(XENLAB_FORGE): $(O)/obj/tests/xenlab/xen_forge.o $(TEST_UTIL_OBJS) $(LIB)
	$(call msg,LINK,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) $(CFLAGS) $^ -o $@ $(LDLIBS)

# libxenvchan direct, the benchmark's shared-memory reference.
XENLAB_VCHAN := $(O)/tests/vchan_bench
all: $(XENLAB_VCHAN)

$(XENLAB_VCHAN): $(O)/obj/tests/xenlab/vchan_bench.o \
	$(O)/obj/tests/util/testutil.o
	$(call msg,LINK,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) $(CFLAGS) $^ -o $@ -lxenvchan -lcrypto

xen-lab: all
	$(Q)O=$(O) ./tests/xenlab/build-images.sh
	$(Q)O=$(O) ./tests/xenlab/run.sh

# --- fuzzing (clang libFuzzer) ----------------------------------------------
FUZZ_SECONDS ?= 600
# Per target in make test: five targets stay under three minutes.
FUZZ_TEST_SECONDS ?= 30
FUZZ_FLAGS := -fsanitize=fuzzer,address,undefined -fno-omit-frame-pointer
# Each target links only the sources it exercises.
$(O)/fuzz/%: tests/fuzz/%.c
	$(call msg,FUZZ,$@)
	$(Q)mkdir -p $(@D)
	$(Q)clang -O1 -g -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -Iinclude \
		$(FUZZ_FLAGS) $^ -o $@ -pthread
$(O)/fuzz/fuzz_ring_rx: shm/ring_geom.c shm/ring_tx.c shm/ring_rx.c \
	common/log.c tests/util/hostile.c
$(O)/fuzz/fuzz_tunnel_msg: shm/tunnel_msg.c shm/ring_geom.c shm/backend.c \
	common/log.c
$(O)/fuzz/fuzz_link_stream: shm/tunnel_msg.c shm/tunnel_msg_unix.c \
	shm/ring_geom.c shm/backend.c common/log.c
$(O)/fuzz/fuzz_config: agent/config.c agent/addr.c shm/ring_geom.c \
	common/log.c
$(O)/fuzz/fuzz_cli: agent/addr.c common/log.c

FUZZ_TARGETS := $(patsubst tests/fuzz/%.c,$(O)/fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))
test-fuzz: $(FUZZ_TARGETS)
	$(Q)./tests/fuzz/run.sh $(O)/fuzz $(FUZZ_TEST_SECONDS)

fuzz: deps $(FUZZ_TARGETS)
	$(Q)./tests/fuzz/run.sh $(O)/fuzz $(FUZZ_SECONDS)

# The proposed kernel patches (docs/kernel/): User-Mode Linux without and
# with them, tests/kernel/tcp_bpf_semantics.c in each (about 10 minutes).
kernel-check: deps
	$(Q)O=$(O) ./tests/kernel/uml.sh

# --- benchmarks --------------------------------------------------------------
bench: deps bench-deps bench-ring bench-netns bench-xen
	$(Q)python3 scripts/bench_goals.py --csv $(O)/bench/results.csv \
		--skipped $(O)/bench/skipped --out $(O)/bench/goals.md

# The real servers' benchmark tools (nginx, wrk, MariaDB, sysbench): only
# the benchmarks pay for them, not make test.
bench-deps:
	$(Q)./scripts/install-deps.sh bench

bench-ring: $(BENCH_BINS)
	$(Q)./tests/bench/run_ring.sh $(O)

bench-netns: bench-deps $(FASTIVC) $(TOOLS)
	$(Q)O=$(O) ./tests/bench/run_netns.sh

# The Xen lab's benchmark alone (no integrity and fault scenario: make test
# runs those), with more rounds than make test runs (3); run.sh says
# "skip - xen lab: why" where QEMU cannot run.
BENCH_ROUNDS ?= $(if $(filter 1,$(QUICK)),2,5)
bench-xen: all
	$(Q)O=$(O) BENCH_ROUNDS=$(BENCH_ROUNDS) XENLAB_MODE=bench \
		./tests/xenlab/build-images.sh
	$(Q)O=$(O) ./tests/xenlab/run.sh

# --- demo ------------------------------------------------------------------
# Two namespaces and agents: iperf3 over plain TCP, then through fastivc.
demo: deps all
	$(Q)O=$(O) ./scripts/demo.sh

# --- install (the unit's ExecStart is /usr/sbin/fastivc) ----------------------
install: $(FASTIVC)
	install -D -m 0755 $(FASTIVC) $(DESTDIR)/usr/sbin/fastivc
	install -D -m 0644 deploy/systemd/fastivc-agent.service \
		$(DESTDIR)/etc/systemd/system/fastivc-agent.service
	install -D -m 0644 docs/man/man8/fastivc.8 \
		$(DESTDIR)/usr/share/man/man8/fastivc.8
	test -e $(DESTDIR)/etc/fastivc/agent.conf || install -D -m 0644 \
		deploy/systemd/agent.conf.example $(DESTDIR)/etc/fastivc/agent.conf

# --- housekeeping ------------------------------------------------------------
SOURCES := $(shell find include common shm agent bpf tests -name '*.[ch]' 2>/dev/null)
check:
	$(Q)clang-format --dry-run --Werror $(SOURCES)
	$(Q)echo "clang-format: clean"

format:
	$(Q)clang-format -i $(SOURCES)

clean:
	$(Q)rm -rf build

-include $(shell find $(O)/obj -name '*.d' 2>/dev/null)
