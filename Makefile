# sluice -- one plain GNU Makefile. Every dependency comes from pkg-config.
#
#   make            build/sluice and build/libsluice.a
#   make test       install missing packages, build, run unit + integration
#   make unit       unit tests only (no Redis needed)
#   make run        local redis-server (if none answers on 6379) + the pool
#   make asan       the whole test suite under ASan+UBSan (build/asan/)
#   make valgrind   the whole test suite under valgrind memcheck (build/valgrind/)
#   make bench      the benchmark table
#   make bench-peers  sluice beside BullMQ, Sidekiq and a redis-py loop
#   make container-test  the Dockerfile and docker-compose.yml under podman

PKGS      = hiredis libevent jansson
TEST_PKGS = check

CC       ?= cc
BUILD    ?= build
OPT      ?= -O2
WERROR   ?= 1
SAN      ?=

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

ALL_CFLAGS = $(CFLAGS_BASE) $(SAN) -Iframework $(PKG_CFLAGS) $(CFLAGS)
ALL_LDFLAGS = $(SAN) $(LDFLAGS)

FW_SRC   := $(wildcard framework/*.c)
WK_SRC   := $(filter-out workers/main.c,$(wildcard workers/*.c))
UNIT_SRC := $(wildcard tests/unit/*.c)
INT_SRC  := $(wildcard tests/integration/*.c)
SUP_SRC  := $(wildcard tests/support/*.c)
BENCH_SRC:= $(wildcard tests/bench/*.c)
CHAOS_SRC:= $(wildcard tests/chaos/*.c)

FW_OBJ   := $(FW_SRC:%.c=$(BUILD)/%.o)
WK_OBJ   := $(WK_SRC:%.c=$(BUILD)/%.o)
UNIT_OBJ := $(UNIT_SRC:%.c=$(BUILD)/%.o)
INT_OBJ  := $(INT_SRC:%.c=$(BUILD)/%.o)
SUP_OBJ  := $(SUP_SRC:%.c=$(BUILD)/%.o)

LIB      := $(BUILD)/libsluice.a
BIN      := $(BUILD)/sluice
UNIT_BIN := $(BUILD)/check_unit
INT_BIN  := $(BUILD)/check_integration
BENCH_BIN:= $(BUILD)/sluice-bench
CHAOS_BIN:= $(BUILD)/sluice-chaos
CHECK_BIN:= $(BUILD)/sluice-check

.PHONY: all deps test-deps test test-run unit unit-run integration-run run asan valgrind \
	valgrind-run producers bench bench-run bench-peers bench-peers-run chaos chaos-run clean install \
	container-test

all: $(BIN) $(LIB)

deps:
	@sh scripts/install-deps.sh

test-deps:
	@sh scripts/install-deps.sh --test

# The library and the binary get no test flags: what a user (or the
# container image) builds must not depend on Check or tests/support.
$(BUILD)/framework/%.o: framework/%.c $(wildcard framework/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/workers/%.o: workers/%.c $(wildcard framework/*.h) $(wildcard workers/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

# Everything else is test code.
$(BUILD)/%.o: %.c $(wildcard framework/*.h) $(wildcard workers/*.h) $(wildcard tests/support/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CHK_CFLAGS) -Itests/support -c -o $@ $<

$(LIB): $(FW_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(BIN): $(BUILD)/workers/main.o $(WK_OBJ) $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(UNIT_BIN): $(UNIT_OBJ) $(WK_OBJ) $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CHK_LIBS) $(PKG_LIBS)

$(INT_BIN): $(INT_OBJ) $(SUP_OBJ) $(WK_OBJ) $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CHK_LIBS) $(PKG_LIBS)

$(BENCH_BIN): $(BENCH_SRC:%.c=$(BUILD)/%.o) $(WK_OBJ) $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(CHAOS_BIN): $(CHAOS_SRC:%.c=$(BUILD)/%.o) $(SUP_OBJ) $(WK_OBJ) $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CHK_LIBS) $(PKG_LIBS)

# The invariant checker of docs/payment-flow.md, runnable against any Redis.
$(CHECK_BIN): $(BUILD)/tests/tools/sluice-check.o $(SUP_OBJ) $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CHK_LIBS) $(PKG_LIBS)

# The producers of docs/producers.md: the C one built against libsluice
# like any user program, the Node one's ioredis installed with npm ci
# (the exact versions of its package-lock.json) into a private folder.
# Without npm the Node producer's test says SKIP.
PRODUCER_C    = $(BUILD)/producers/produce
PRODUCER_NODE = $(BUILD)/producers/node
$(PRODUCER_C): examples/producers/c/produce.c framework/sluice.h $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(LIB) $(PKG_LIBS)

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

# Sanitizer and valgrind reports of every process under test land in
# REPORTS; the integration runner fails when any is there.
REPORTS = $(abspath $(BUILD))/reports
CHAOS_SECONDS ?= 60
CHAOS_SEEDS ?= 1 2
test-run: $(BIN) $(UNIT_BIN) $(INT_BIN) $(CHECK_BIN) $(CHAOS_BIN) producers
	@rm -rf $(REPORTS)
	$(UNIT_BIN)
	SLUICE_REPORT_DIR=$(REPORTS) SLUICE_BIN=$(abspath $(BIN)) $(INT_BIN)
	bash tests/deploy/check.sh $(abspath $(BIN))
	bash tests/man/check.sh $(abspath $(BIN)) $(BUILD)
	@for s in $(CHAOS_SEEDS); do \
		echo "chaos: seed $$s, $(CHAOS_SECONDS) s"; \
		CHAOS_SECONDS=$(CHAOS_SECONDS) CHAOS_SEED=$$s SLUICE_BIN=$(abspath $(BIN)) $(CHAOS_BIN) || exit 1; \
	done

unit: deps
	@$(MAKE) --no-print-directory unit-run

unit-run: $(UNIT_BIN)
	$(UNIT_BIN)

run: deps
	@$(MAKE) --no-print-directory $(BIN)
	@sh scripts/run-local.sh $(BIN)

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

valgrind-run: $(BIN) $(UNIT_BIN) $(INT_BIN) $(CHECK_BIN) producers
	@rm -rf $(REPORTS) && mkdir -p $(REPORTS)
	CK_FORK=no $(VG) $(UNIT_BIN)
	CK_FORK=no SLUICE_TEST_SLOW=4 SLUICE_BIN=$(abspath $(BIN)) SLUICE_REPORT_DIR=$(REPORTS) \
		SLUICE_WRAP="$(VG) --log-file=$(REPORTS)/vg.%p" \
		$(VG) --child-silent-after-fork=yes $(INT_BIN)

bench: deps
	@$(MAKE) --no-print-directory bench-run

bench-run: $(BIN) $(BENCH_BIN)
	SLUICE_BIN=$(abspath $(BIN)) $(BENCH_BIN) $(BENCH_ARGS)

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

chaos-run: $(BIN) $(CHAOS_BIN) $(CHECK_BIN)
	SLUICE_BIN=$(abspath $(BIN)) $(CHAOS_BIN)

# Builds the image and runs docker-compose.yml with podman; see the script.
container-test:
	@bash scripts/container-test.sh

PREFIX ?= /usr/local
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include
	install -m 755 $(BIN) $(DESTDIR)$(PREFIX)/bin/sluice
	install -m 644 $(LIB) $(DESTDIR)$(PREFIX)/lib/libsluice.a
	install -m 644 framework/sluice.h $(DESTDIR)$(PREFIX)/include/sluice.h
	sed -e 's|@PREFIX@|$(PREFIX)|' framework/sluice.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/sluice.pc
	install -d $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/bash-completion/completions
	install -m 644 man/sluice.1 $(DESTDIR)$(PREFIX)/share/man/man1/sluice.1
	install -m 644 completions/sluice.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/sluice

clean:
	rm -rf build
