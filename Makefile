# sluice -- one plain GNU Makefile. Every dependency comes from pkg-config.
#
#   make            build/sluice and build/libsluice.a
#   make test       install missing packages, build, run unit + integration
#   make unit       unit tests only (no Redis needed)
#   make run        local redis-server (if none answers on 6379) + the pool
#   make asan       the whole test suite under ASan+UBSan (build/asan/)
#   make valgrind   the whole test suite under valgrind memcheck (build/valgrind/)
#   make bench      the benchmark table
#   make bench-cluster  the no-op drain on 1, 2 and 3 cluster masters
#   make bench-peers  sluice beside BullMQ, Sidekiq and a redis-py loop
#   make bench-web    the dashboard with 1,000 streams and 1,000,000 dead letters
#   make browser-test the dashboard in headless chromium (part of make test)
#   make soak       the payment flow for SOAK_MINUTES (10) at SOAK_RATE (500/s)
#   make container-test  the Dockerfile and docker-compose.yml under podman

PKGS      = hiredis libevent libevent_openssl openssl jansson
TEST_PKGS = check

CC       ?= cc
BUILD    ?= build
OPT      ?= -O2
WERROR   ?= 1
SAN      ?=

# The one place the version is written is framework/sluice.h (SL_VERSION,
# part of the installed API); the pkg-config file gets it from there.
VERSION := $(shell sed -n 's/^\#define SL_VERSION "\(.*\)".*/\1/p' framework/sluice.h)

CFLAGS_BASE = -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -g $(OPT) \
	-Wall -Wextra -Wstrict-prototypes -Wwrite-strings -Wpointer-arith \
	-fno-strict-aliasing
ifeq ($(WERROR),1)
CFLAGS_BASE += -Werror
endif

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CHK_CFLAGS := $(shell pkg-config --cflags $(TEST_PKGS) 2>/dev/null)
CHK_LIBS   := $(shell pkg-config --libs $(TEST_PKGS) 2>/dev/null)

# -MMD -MP: each object gets a .d file listing the headers it includes,
# so touching one header rebuilds only the objects that use it.
DEPFLAGS = -MMD -MP
# What the library, the workers and the production binary are built with:
# no Check, no tests/ include path.
PROD_CFLAGS = $(CFLAGS_BASE) $(SAN) $(DEPFLAGS) -Iframework -I$(GEN) $(PKG_CFLAGS) $(CFLAGS)
# What test code is built with, on top of that.
TEST_CFLAGS = $(PROD_CFLAGS) $(CHK_CFLAGS) -Itests/support -Itests/handlers -Iworkers
ALL_LDFLAGS = $(SAN) $(LDFLAGS)

# The Lua scripts: framework/lua/*.lua and workers/lua/*.lua, embedded
# by scripts/embed-lua.sh into C files under $(GEN). lib.lua and
# schema.lua are only included by the others.
GEN      := $(BUILD)/gen
LUAC     ?= luac5.1
FW_LUA   := $(filter-out framework/lua/lib.lua,$(wildcard framework/lua/*.lua))
WK_LUA   := $(filter-out workers/lua/schema.lua,$(wildcard workers/lua/*.lua))
TH_LUA   := $(wildcard tests/handlers/lua/*.lua)
ALL_LUA  := $(wildcard framework/lua/*.lua workers/lua/*.lua) $(TH_LUA)

FW_SRC   := $(wildcard framework/*.c)
WK_SRC   := $(filter-out workers/main.c,$(wildcard workers/*.c))
TH_SRC   := $(filter-out tests/handlers/main.c,$(wildcard tests/handlers/*.c))
UNIT_SRC := $(wildcard tests/unit/*.c)
INT_SRC  := $(wildcard tests/integration/*.c)
SUP_SRC  := $(wildcard tests/support/*.c)
BENCH_SRC:= $(wildcard tests/bench/*.c)
CHAOS_SRC:= $(wildcard tests/chaos/*.c)
CLUSTER_SRC := $(wildcard tests/cluster/*.c)
SOAK_SRC := $(wildcard tests/soak/*.c)

FW_OBJ   := $(FW_SRC:%.c=$(BUILD)/%.o) $(GEN)/fw_lua.o $(GEN)/web_assets.o
WK_OBJ   := $(WK_SRC:%.c=$(BUILD)/%.o) $(GEN)/wk_lua.o
TH_OBJ   := $(TH_SRC:%.c=$(BUILD)/%.o) $(GEN)/th_lua.o
UNIT_OBJ := $(UNIT_SRC:%.c=$(BUILD)/%.o)
INT_OBJ  := $(INT_SRC:%.c=$(BUILD)/%.o)
SUP_OBJ  := $(SUP_SRC:%.c=$(BUILD)/%.o)
BENCH_OBJ:= $(BENCH_SRC:%.c=$(BUILD)/%.o)
CHAOS_OBJ:= $(CHAOS_SRC:%.c=$(BUILD)/%.o)
CLUSTER_OBJ := $(CLUSTER_SRC:%.c=$(BUILD)/%.o)
SOAK_OBJ := $(SOAK_SRC:%.c=$(BUILD)/%.o)

LIB      := $(BUILD)/libsluice.a
BIN      := $(BUILD)/sluice
TEST_BIN := $(BUILD)/sluice-test
UNIT_BIN := $(BUILD)/check_unit
INT_BIN  := $(BUILD)/check_integration
BENCH_BIN:= $(BUILD)/sluice-bench
CHAOS_BIN:= $(BUILD)/sluice-chaos
SOAK_BIN := $(BUILD)/sluice-soak
CHECK_BIN:= $(BUILD)/sluice-check
RECV_BIN := $(BUILD)/webhook-receiver
CLUSTER_BIN := $(BUILD)/check_cluster

.PHONY: all deps test-deps test test-run unit unit-run integration-run run asan valgrind \
	valgrind-run producers bench bench-run bench-peers bench-peers-run chaos chaos-run soak soak-run clean install \
	container-test check-prod-bin lua-check check-cycles browser-test bench-web bench-web-run test-cluster test-cluster-run

all: $(BIN) $(LIB)

deps:
	@sh scripts/install-deps.sh

test-deps:
	@sh scripts/install-deps.sh --test

# The library, the workers and the production binary get no test flags:
# what a user (or the container image) builds must not depend on Check or
# tests/. Everything under tests/ is test code.
#
# The .d files name each object's headers, but an object built before they
# existed (a build dir from an older checkout) has none: sluice.h, which
# holds SL_ABI_VERSION and the structs every object shares, is named here
# too, so such an object is rebuilt rather than linked with the wrong ABI.
$(BUILD)/framework/%.o: framework/%.c framework/sluice.h framework/internal.h
	@mkdir -p $(dir $@)
	$(CC) $(PROD_CFLAGS) -c -o $@ $<

$(BUILD)/workers/%.o: workers/%.c framework/sluice.h
	@mkdir -p $(dir $@)
	$(CC) $(PROD_CFLAGS) -c -o $@ $<

$(BUILD)/tests/%.o: tests/%.c framework/sluice.h | $(GEN)/fw_lua.h $(GEN)/wk_lua.h $(GEN)/th_lua.h
	@mkdir -p $(dir $@)
	$(CC) $(TEST_CFLAGS) -c -o $@ $<

$(GEN)/%.o: $(GEN)/%.c
	$(CC) $(PROD_CFLAGS) -c -o $@ $<

$(GEN)/fw_lua.c: $(wildcard framework/lua/*.lua) scripts/embed-lua.sh
	@mkdir -p $(GEN)
	sh scripts/embed-lua.sh sl__lua_ $@ $(GEN)/fw_lua.h $(FW_LUA)
$(GEN)/wk_lua.c: $(wildcard workers/lua/*.lua) scripts/embed-lua.sh
	@mkdir -p $(GEN)
	sh scripts/embed-lua.sh workers_lua_ $@ $(GEN)/wk_lua.h $(WK_LUA)
$(GEN)/th_lua.c: $(TH_LUA) scripts/embed-lua.sh
	@mkdir -p $(GEN)
	sh scripts/embed-lua.sh test_lua_ $@ $(GEN)/th_lua.h $(TH_LUA)
$(GEN)/fw_lua.h: $(GEN)/fw_lua.c
	@:
# The dashboard's page, script and style (framework/web/), served from memory.
WEB_ASSETS := framework/web/index.html framework/web/app.js framework/web/app.css
$(GEN)/web_assets.c: $(WEB_ASSETS) scripts/embed-assets.sh
	@mkdir -p $(GEN)
	sh scripts/embed-assets.sh sl__web_ $@ $(GEN)/web_assets.h $(WEB_ASSETS)
$(GEN)/web_assets.h: $(GEN)/web_assets.c
	@:
$(GEN)/th_lua.h: $(GEN)/th_lua.c
	@:
$(GEN)/wk_lua.h: $(GEN)/wk_lua.c
	@:

# Generated headers exist before anything that may include them compiles;
# after the first build the .d files name the real dependencies.
$(filter $(BUILD)/framework/%,$(FW_OBJ)): | $(GEN)/fw_lua.h $(GEN)/web_assets.h
$(filter $(BUILD)/workers/%,$(WK_OBJ)) $(BUILD)/workers/main.o: | $(GEN)/wk_lua.h

# No call cycle between framework files (from nm of each object); the
# checker first proves it catches a cyclic pair.
check-cycles: $(FW_OBJ)
	sh scripts/check-cycles.sh --self-test
	sh scripts/check-cycles.sh $(FW_OBJ) >/dev/null

# Every script compiles (Redis 7 runs Lua 5.1).
lua-check:
	$(LUAC) -p $(ALL_LUA)

-include $(wildcard $(BUILD)/framework/*.d $(BUILD)/workers/*.d $(BUILD)/tests/*/*.d $(GEN)/*.d)

$(LIB): $(FW_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(BIN): $(BUILD)/workers/main.o $(WK_OBJ) $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

# The same command line over the test registry (tests/handlers/): the
# binary every integration test, the chaos runner and the container
# test's pool run.
$(TEST_BIN): $(BUILD)/tests/handlers/main.o $(TH_OBJ) $(WK_OBJ) $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(UNIT_BIN): $(UNIT_OBJ) $(TH_OBJ) $(WK_OBJ) $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CHK_LIBS) $(PKG_LIBS)

$(INT_BIN): $(INT_OBJ) $(SUP_OBJ) $(WK_OBJ) $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CHK_LIBS) $(PKG_LIBS)

# The benchmark starts Redis with the support library's launcher
# (server.c, which needs no Check) and checks the flow rows with the
# invariant checker (invariants.c, neither).
$(BENCH_BIN): $(BENCH_OBJ) $(BUILD)/tests/support/server.o $(BUILD)/tests/support/config.o \
		$(BUILD)/tests/support/invariants.o $(WK_OBJ) $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(CHAOS_BIN): $(CHAOS_OBJ) $(SUP_OBJ) $(WK_OBJ) $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CHK_LIBS) $(PKG_LIBS)

# The cluster tests: a local Redis Cluster of six servers (3 masters + 3
# replicas), so a runner of their own, not part of `make test`'s
# integration run nor of the valgrind run. `make test-cluster`; .ci/run runs it.
$(CLUSTER_BIN): $(CLUSTER_OBJ) $(SUP_OBJ) $(WK_OBJ) $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CHK_LIBS) $(PKG_LIBS)

test-cluster: test-deps
	@$(MAKE) --no-print-directory test-cluster-run

test-cluster-run: $(CLUSTER_BIN) $(TEST_BIN)
	SLUICE_BIN=$(abspath $(TEST_BIN)) $(CLUSTER_BIN)

$(SOAK_BIN): $(SOAK_OBJ) $(SUP_OBJ) $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CHK_LIBS) $(PKG_LIBS)

# The local merchant server of the webhook worker (`make run`, check_webhook.c).
$(RECV_BIN): $(BUILD)/tests/tools/webhook-receiver.o
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

# The invariant checker of docs/payment-flow.md, runnable against any Redis.
$(CHECK_BIN): $(BUILD)/tests/tools/sluice-check.o $(SUP_OBJ) $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CHK_LIBS) $(PKG_LIBS)

# The production binary holds no test handler (`probe` aborts on request).
check-prod-bin: $(BIN) $(TEST_BIN)
	@if nm $(BIN) | grep -E ' (probe|aprobe|echo)_handler$$'; then \
		echo "$(BIN) contains a test handler" >&2; exit 1; fi
	@nm $(TEST_BIN) | grep -q ' probe_handler$$' || { echo "$(TEST_BIN) lacks probe" >&2; exit 1; }

# The producers of docs/producers.md: the C one built against libsluice
# like any user program, the Node one's ioredis installed with npm ci
# (the exact versions of its package-lock.json) into a private folder.
# Without npm the Node producer's test says SKIP.
PRODUCER_C    = $(BUILD)/producers/produce
PRODUCER_NODE = $(BUILD)/producers/node
$(PRODUCER_C): examples/producers/c/produce.c framework/sluice.h $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(SAN) -Iframework $(PKG_CFLAGS) $(CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(LIB) $(PKG_LIBS)

$(PRODUCER_NODE)/node_modules/.package-lock.json: examples/producers/node/package.json \
		examples/producers/node/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		mkdir -p $(PRODUCER_NODE) && cp $^ $(PRODUCER_NODE)/ && \
		cd $(PRODUCER_NODE) && npm ci --no-audit --no-fund --loglevel=error; \
	else echo "producers: npm not found, the Node producer test will SKIP"; fi

producers: $(PRODUCER_C) $(PRODUCER_NODE)/node_modules/.package-lock.json

# The test targets install what is missing first, then re-enter make so
# that the pkg-config flags above are read with the packages present.
test: test-deps
	@$(MAKE) --no-print-directory test-run

# The dashboard in a real browser: Debian's chromium driven by
# puppeteer-core (exact version of tests/browser/package-lock.json, npm ci
# into $(BUILD)/browser/node). Screenshots land in $(BUILD)/browser.
browser-test: $(TEST_BIN)
	sh tests/browser/run.sh $(abspath $(TEST_BIN)) $(abspath $(BUILD))/browser/node $(abspath $(BUILD))/browser

# Sanitizer and valgrind reports of every process under test land in
# REPORTS; the integration runner fails when any is there.
REPORTS = $(abspath $(BUILD))/reports
CHAOS_SECONDS ?= 60
CHAOS_SEEDS ?= 1 2
test-run: lua-check check-cycles $(BIN) $(TEST_BIN) $(UNIT_BIN) $(INT_BIN) $(CHECK_BIN) $(RECV_BIN) $(CHAOS_BIN) check-prod-bin producers
	@rm -rf $(REPORTS)
	$(UNIT_BIN)
	SLUICE_REPORT_DIR=$(REPORTS) SLUICE_BIN=$(abspath $(TEST_BIN)) $(INT_BIN)
	bash tests/deploy/check.sh $(abspath $(BIN))
	bash tests/man/check.sh $(abspath $(BIN)) $(BUILD)
	bash scripts/check-deps.sh
	$(MAKE) --no-print-directory browser-test
	@for s in $(CHAOS_SEEDS); do \
		echo "chaos: seed $$s, $(CHAOS_SECONDS) s"; \
		CHAOS_SECONDS=$(CHAOS_SECONDS) CHAOS_SEED=$$s SLUICE_BIN=$(abspath $(TEST_BIN)) $(CHAOS_BIN) || exit 1; \
	done

unit: deps
	@$(MAKE) --no-print-directory unit-run

unit-run: $(UNIT_BIN)
	$(UNIT_BIN)

run: deps
	@$(MAKE) --no-print-directory $(BIN) $(RECV_BIN)
	@sh scripts/run-local.sh $(BIN) $(RECV_BIN)

asan: test-deps
	@$(MAKE) --no-print-directory BUILD=build/asan OPT=-O1 \
		SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
		test-run

# Every `sluice` the tests start runs under valgrind too (SLUICE_WRAP), and
# valgrind follows its forked workers, so a leak or an invalid read in a
# worker process fails the run like one in the test binary. The test
# binary's own forks only exec other programs: their reports are noise.
VG = valgrind -q --leak-check=full --error-exitcode=99 --errors-for-leak-kinds=definite --show-leak-kinds=definite
valgrind: test-deps
	@sh scripts/install-deps.sh --test --valgrind
	@$(MAKE) --no-print-directory BUILD=build/valgrind OPT=-O0 valgrind-run

valgrind-run: $(BIN) $(TEST_BIN) $(UNIT_BIN) $(INT_BIN) $(CHECK_BIN) $(RECV_BIN) producers
	@rm -rf $(REPORTS) && mkdir -p $(REPORTS)
	CK_FORK=no $(VG) $(UNIT_BIN)
	CK_FORK=no SLUICE_TEST_SLOW=4 SLUICE_BIN=$(abspath $(TEST_BIN)) SLUICE_REPORT_DIR=$(REPORTS) \
		SLUICE_WRAP="$(VG) --log-file=$(REPORTS)/vg.%p" \
		$(VG) --child-silent-after-fork=yes $(INT_BIN)

bench: deps
	@$(MAKE) --no-print-directory bench-run

bench-run: $(BIN) $(BENCH_BIN) $(RECV_BIN)
	SLUICE_BIN=$(abspath $(BIN)) $(BENCH_BIN) $(BENCH_ARGS)

# The no-op drain on one redis-server and on clusters of 1, 2 and 3
# masters (docs/cluster.md, "Benchmark"). Not part of `make test` nor of
# .ci/run: it reports, and fails only on a wrong count.
BENCH_CLUSTER_BIN := $(BUILD)/sluice-bench-cluster
.PHONY: bench-cluster bench-cluster-run
$(BENCH_CLUSTER_BIN): $(BUILD)/tests/bench/cluster/bench_cluster.o $(BUILD)/tests/bench/bench_redis.o \
		$(BUILD)/tests/support/server.o $(BUILD)/tests/support/config.o $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

bench-cluster: deps
	@$(MAKE) --no-print-directory bench-cluster-run

bench-cluster-run: $(BIN) $(BENCH_CLUSTER_BIN)
	SLUICE_BIN=$(abspath $(BIN)) $(BENCH_CLUSTER_BIN) $(BENCH_CLUSTER_ARGS)

# The dashboard at scale: 1,000 streams and a 1,000,000-entry dead-letter
# stream; the overview's answer time and the memory of `sluice web`,
# reported, not asserted.
BENCH_WEB_STREAMS ?= 1000
BENCH_WEB_DEAD ?= 1000000
bench-web: deps
	@$(MAKE) --no-print-directory bench-web-run

bench-web-run: $(BIN)
	bash tests/bench/web/bench_web.sh $(abspath $(BIN)) $(BENCH_WEB_STREAMS) $(BENCH_WEB_DEAD)

# The peers: installs Debian's python3-redis/hiredis and ruby-sidekiq when
# missing and BullMQ (exact versions of tests/bench/peers/package-lock.json)
# with npm ci into $(BUILD)/peers/node, prints the versions, then one row
# per system and configuration, each on a fresh redis-server. Fails only
# on a wrong count, never on speed.
BENCH_PEERS_N ?= 200000
BENCH_PEERS_LAT_SECS ?= 5
PEERS_NODE = $(BUILD)/peers/node
bench-peers: deps
	@$(MAKE) --no-print-directory bench-peers-run

bench-peers-run: $(BIN)
	sh tests/bench/peers/install.sh $(PEERS_NODE)
	/usr/bin/python3 tests/bench/peers/bench_peers.py --sluice $(BIN) --node-dir $(PEERS_NODE) \
		--n $(BENCH_PEERS_N) --lat-secs $(BENCH_PEERS_LAT_SECS) $(BENCH_PEERS_ARGS)

chaos: deps
	@$(MAKE) --no-print-directory chaos-run

chaos-run: $(TEST_BIN) $(CHAOS_BIN) $(CHECK_BIN)
	SLUICE_BIN=$(abspath $(TEST_BIN)) $(CHAOS_BIN)

# The long run of tests/soak/soak.c against the production binary; not
# part of `make test`.
SOAK_MINUTES ?= 10
SOAK_RATE ?= 500
soak: deps
	@$(MAKE) --no-print-directory soak-run

soak-run: $(BIN) $(SOAK_BIN) $(CHECK_BIN)
	SOAK_MINUTES=$(SOAK_MINUTES) SOAK_RATE=$(SOAK_RATE) SLUICE_BIN=$(abspath $(BIN)) $(SOAK_BIN)

# Builds the image and runs docker-compose.yml with podman; see the script.
container-test:
	@bash scripts/container-test.sh

PREFIX ?= /usr/local
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include
	install -m 755 $(BIN) $(DESTDIR)$(PREFIX)/bin/sluice
	install -m 644 $(LIB) $(DESTDIR)$(PREFIX)/lib/libsluice.a
	install -m 644 framework/sluice.h $(DESTDIR)$(PREFIX)/include/sluice.h
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' framework/sluice.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/sluice.pc
	install -d $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/bash-completion/completions
	install -m 644 man/sluice.1 $(DESTDIR)$(PREFIX)/share/man/man1/sluice.1
	install -m 644 completions/sluice.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/sluice

clean:
	rm -rf $(BUILD)
