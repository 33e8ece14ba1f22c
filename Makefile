# archestra-spoa. `make run` and `make test` are the two commands a new user needs;
# both install what is missing from Debian first (when run as root).

CC      ?= cc
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wformat=2 \
           -fno-strict-aliasing -pthread
LDLIBS  += -lhiredis -lev -lcjson -lssl -lcrypto -lm -pthread
BUILD   := build
PYTHON  ?= python3
UPSTREAM ?= mock

# Debian packages each command needs.
RUN_PKGS   := gcc make libc6-dev libev-dev libcjson-dev libssl-dev libhiredis-dev redis-server haproxy python3 curl openssl \
              prometheus
TEST_PKGS  := $(RUN_PKGS) libcmocka-dev clang libclang-rt-14-dev systemd wrk libpcre2-dev liblua5.4-dev prometheus nodejs
BENCH_PKGS := $(TEST_PKGS)

# The agent's pure modules (no I/O) and its I/O shell.
CORE_SRC := spoa/spop.c spoa/session.c spoa/handler.c spoa/buf.c spoa/config.c spoa/log.c \
            spoa/hdrs.c spoa/provider.c spoa/request.c spoa/errjson.c spoa/jsonscan.c \
            spoa/identity.c spoa/usage.c spoa/pricing.c spoa/glob.c spoa/tagbound.c spoa/statsd.c spoa/prom.c spoa/ctx.c spoa/keys.c spoa/jwt.c spoa/policy.c spoa/dlp.c spoa/endpoint.c \
            spoa/cfgjson.c spoa/archvars.c spoa/sigv4.c spoa/meter.c spoa/sse.c spoa/window.c \
            spoa/budget.c spoa/bstore.c
SHELL_SRC := spoa/server.c spoa/promserve.c spoa/main.c spoa/authload.c spoa/keyscli.c spoa/jwksfetch.c spoa/tzload.c spoa/spendcli.c
AGENT    := spoa/archestra-spoa

# The embedded default policy, generated from policy/default.json.
GEN_SRC   := $(BUILD)/gen/policy_default.c
CORE_OBJ  := $(CORE_SRC:%.c=$(BUILD)/%.o) $(BUILD)/gen/policy_default.o
SHELL_OBJ := $(SHELL_SRC:%.c=$(BUILD)/%.o)

# One tests/unit/test_<module>.c per module of spoa/ it tests.
UNIT_TESTS := test_jsonscan test_spop test_session test_config test_cfgjson test_request test_identity \
              test_usage test_ctx test_pricing test_glob test_statsd test_keys test_jwt test_policy test_dlp \
              test_sigv4 test_prom test_meter test_sse test_window test_budget
UNIT_BIN   := $(UNIT_TESTS:%=$(BUILD)/tests/%)
ASAN_BIN   := $(UNIT_TESTS:%=$(BUILD)/asan/%)
# The agent's sources under ASan+UBSan, compiled once for all the sanitized binaries.
ASAN_OBJ   := $(CORE_SRC:%.c=$(BUILD)/asan-obj/%.o) $(GEN_SRC:%.c=$(BUILD)/asan-obj/%.o)
ASAN_SHELL := $(SHELL_SRC:%.c=$(BUILD)/asan-obj/%.o)
SAN_FLAGS  := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

.PHONY: all deps deps-test deps-bench run test unit faults fuzz bench capacity clean install
all: $(AGENT)

$(BUILD)/%.o: %.c $(wildcard spoa/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/gen/policy_default.c: policy/default.json
	@mkdir -p $(dir $@)
	{ printf '/* generated from policy/default.json */\nconst char policy_default_json[] =\n'; \
	  sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/"/' -e 's/$$/\\n"/' $<; printf ';\n'; } > $@

$(BUILD)/gen/policy_default.o: $(BUILD)/gen/policy_default.c
	$(CC) $(CFLAGS) -c -o $@ $<

$(AGENT): $(CORE_OBJ) $(SHELL_OBJ)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# ---- dependencies ----
define install_missing
	@missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null || exit 1; \
	  else \
	    echo "missing Debian packages:$$missing"; echo "install them with: sudo apt-get install$$missing"; exit 1; \
	  fi; \
	fi
endef

deps:
	$(call install_missing,$(RUN_PKGS))
deps-test:
	$(call install_missing,$(TEST_PKGS))
	@# npm ships inside some builds of nodejs (NodeSource) and apart in Debian's
	@command -v npm >/dev/null 2>&1 || { if [ "$$(id -u)" = 0 ]; then echo "installing Debian packages: npm"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >/dev/null; \
	  else echo "missing: npm (sudo apt-get install npm)"; exit 1; fi; }
deps-bench:
	$(call install_missing,$(BENCH_PKGS))

# ---- run ----
# HAProxy + two agents + the mock provider in the foreground; UPSTREAM=real uses
# the real providers instead of the mock.
run: deps
	@$(MAKE) --no-print-directory all
	@UPSTREAM=$(UPSTREAM) haproxy-cfg/run-local.sh

# ---- tests ----
$(BUILD)/tests/%: tests/unit/%.c $(CORE_OBJ) tests/unit/*.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Ispoa -o $@ $< $(CORE_OBJ) $(LDLIBS) -lcmocka

$(BUILD)/asan-obj/%.o: %.c $(wildcard spoa/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -O1 $(SAN_FLAGS) -c -o $@ $<

$(BUILD)/asan/%: tests/unit/%.c $(ASAN_OBJ) $(wildcard spoa/*.h) tests/unit/*.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -O1 $(SAN_FLAGS) -Ispoa -o $@ $< $(ASAN_OBJ) $(LDLIBS) -lcmocka

$(BUILD)/spop-bench: tests/bench/spop-bench.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< -lev -lm

$(BUILD)/dlp-bench: tests/bench/dlp-bench.c $(CORE_OBJ)
	$(CC) $(CFLAGS) -Ispoa -o $@ $< $(CORE_OBJ) $(LDLIBS)

$(BUILD)/decide-bench: tests/bench/decide-bench.c $(CORE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Ispoa -o $@ $< $(CORE_OBJ) $(LDLIBS)

$(BUILD)/metrics-bench: tests/bench/metrics-bench.c $(CORE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Ispoa -o $@ $< $(CORE_OBJ) $(LDLIBS)

$(BUILD)/jwt-bench: tests/bench/jwt-bench.c $(CORE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Ispoa -o $@ $< $(CORE_OBJ) $(LDLIBS)

# The whole agent under ASan+UBSan, for the conformance suite: the I/O shell gets
# the same scrutiny as the pure modules.
$(BUILD)/asan/archestra-spoa: $(ASAN_OBJ) $(ASAN_SHELL)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -O1 $(SAN_FLAGS) -o $@ $^ $(LDLIBS)

unit: $(UNIT_BIN) $(ASAN_BIN) $(BUILD)/asan/archestra-spoa

# HAProxy 3.4 LTS, built once from the source tarball beside the project (../shared/
# haproxy/, see its README) and cached under build/: the e2e suites run on it too,
# since 3.1 rebuilt SPOE. Without the tarball that leg says so and is skipped.
HAPROXY34_TGZ := $(wildcard ../shared/haproxy/haproxy-3.4.0.tar.gz)
HAPROXY34     := $(BUILD)/haproxy-3.4.0/haproxy
$(HAPROXY34): $(HAPROXY34_TGZ)
	@mkdir -p $(BUILD)
	@echo "building HAProxy 3.4.0 from $< (once; cached in $(BUILD)/haproxy-3.4.0)"
	@rm -rf $(BUILD)/haproxy-3.4.0 && tar xzf $< -C $(BUILD)
	@$(MAKE) --no-print-directory -C $(BUILD)/haproxy-3.4.0 -j$$(nproc) TARGET=linux-glibc USE_OPENSSL=1 USE_PCRE2=1 \
	  USE_PROMEX=1 USE_LUA=1 LUA_INC=/usr/include/lua5.4 LUA_LIB_NAME=lua5.4 >$(BUILD)/haproxy-3.4.0.log 2>&1 || \
	  { tail -20 $(BUILD)/haproxy-3.4.0.log; exit 1; }

# `make test HAPROXY=/path/to/haproxy` runs the e2e suites against that binary only.
test: deps-test
	@$(MAKE) --no-print-directory all unit $(BUILD)/fuzz/fuzz_session $(BUILD)/fuzz/fuzz_auth $(BUILD)/fuzz/fuzz_json \
	  $(BUILD)/fuzz/fuzz_meter \
	  $(if $(HAPROXY),,$(if $(HAPROXY34_TGZ),$(HAPROXY34)))
	@HAPROXY=$(HAPROXY) HAPROXY34=$(if $(HAPROXY34_TGZ),$(HAPROXY34)) tests/run-tests.sh

# ---- faults ----
# The fault suite in its long form (make test runs the short one): longer
# outages, more reloads, on every HAProxy of the matrix; the tables go to
# build/faults-<version>-long.md.
faults: deps-test
	@$(MAKE) --no-print-directory all $(if $(HAPROXY),,$(if $(HAPROXY34_TGZ),$(HAPROXY34)))
	@for h in $(or $(HAPROXY),haproxy $(if $(HAPROXY34_TGZ),$(HAPROXY34))); do \
	  echo "faults on $$($$h -v | head -1)"; \
	  HAPROXY=$$h $(PYTHON) tests/faults/faults.py $(AGENT) --long || exit 1; done

# ---- fuzzing (libFuzzer from Debian's clang) ----
FUZZ_SECONDS ?= 60
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -Ispoa
$(BUILD)/fuzz/fuzz_session: tests/fuzz/fuzz_session.c $(CORE_SRC) $(GEN_SRC) $(wildcard spoa/*.h)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -o $@ tests/fuzz/fuzz_session.c $(CORE_SRC) $(GEN_SRC) -lhiredis -lev -lcjson -lcrypto -lm -pthread

$(BUILD)/fuzz/fuzz_json: tests/fuzz/fuzz_json.c $(CORE_SRC) $(GEN_SRC) $(wildcard spoa/*.h)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -o $@ tests/fuzz/fuzz_json.c $(CORE_SRC) $(GEN_SRC) -lhiredis -lev -lcjson -lcrypto -lm -pthread

$(BUILD)/fuzz/fuzz_auth: tests/fuzz/fuzz_auth.c $(CORE_SRC) $(GEN_SRC) $(wildcard spoa/*.h)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -o $@ tests/fuzz/fuzz_auth.c $(CORE_SRC) $(GEN_SRC) -lhiredis -lev -lcjson -lcrypto -lm -pthread

$(BUILD)/fuzz/fuzz_meter: tests/fuzz/fuzz_meter.c $(CORE_SRC) $(GEN_SRC) $(wildcard spoa/*.h)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -o $@ tests/fuzz/fuzz_meter.c $(CORE_SRC) $(GEN_SRC) -lhiredis -lev -lcjson -lcrypto -lm -pthread

fuzz: deps-test $(BUILD)/fuzz/fuzz_session $(BUILD)/fuzz/fuzz_auth $(BUILD)/fuzz/fuzz_json $(BUILD)/fuzz/fuzz_meter
	@mkdir -p $(BUILD)/fuzz/corpus
	$(PYTHON) tests/fuzz/make_seeds.py $(BUILD)/fuzz/corpus
	$(BUILD)/fuzz/fuzz_session -max_total_time=$(FUZZ_SECONDS) -max_len=8192 -timeout=5 \
	  -print_final_stats=1 $(BUILD)/fuzz/corpus
	@mkdir -p $(BUILD)/fuzz/corpus-auth
	$(PYTHON) tests/fuzz/make_seeds.py --auth $(BUILD)/fuzz/corpus-auth
	$(BUILD)/fuzz/fuzz_auth -max_total_time=$(FUZZ_SECONDS) -max_len=8192 -timeout=5 \
	  -print_final_stats=1 $(BUILD)/fuzz/corpus-auth
	@mkdir -p $(BUILD)/fuzz/corpus-json
	$(PYTHON) tests/fuzz/make_seeds.py --json $(BUILD)/fuzz/corpus-json
	$(BUILD)/fuzz/fuzz_json -max_total_time=$(FUZZ_SECONDS) -max_len=8192 -timeout=5 \
	  -print_final_stats=1 $(BUILD)/fuzz/corpus-json
	@mkdir -p $(BUILD)/fuzz/corpus-meter
	$(PYTHON) tests/fuzz/make_seeds.py --meter $(BUILD)/fuzz/corpus-meter
	$(BUILD)/fuzz/fuzz_meter -max_total_time=$(FUZZ_SECONDS) -max_len=8192 -timeout=5 \
	  -print_final_stats=1 $(BUILD)/fuzz/corpus-meter

# ---- benchmarks ----
bench: deps-bench
	@$(MAKE) --no-print-directory all $(BUILD)/spop-bench $(BUILD)/jwt-bench $(BUILD)/dlp-bench $(BUILD)/decide-bench \
	  $(BUILD)/metrics-bench
	@$(BUILD)/dlp-bench
	@$(BUILD)/decide-bench
	@$(BUILD)/metrics-bench
	@$(PYTHON) tests/bench/run-bench.py
	@tests/bench/edge-bench.sh
	@# what users run: the realistic 11 KB agent call, on each HAProxy of the matrix
	@EDGE_CALL=realistic tests/bench/edge-bench.sh
	@if [ -x "$(HAPROXY34)" ]; then EDGE_CALL=realistic EDGE_HAPROXY=$(HAPROXY34) tests/bench/edge-bench.sh; \
	  else echo "edge bench on HAProxy 3.4: skipped ($(HAPROXY34) not built: make test builds it)"; fi
	@$(PYTHON) tests/bench/stream-bench.py $(AGENT)

# Memory and FDs of HAProxy and the agents under 10,000 clients and 1,000 agent
# connections, on Debian's HAProxy and 3.4 (the README's "Memory and file
# descriptors" table); about a minute each. `make capacity HAPROXY=/path` measures
# that binary only.
capacity: deps-bench
	@$(MAKE) --no-print-directory all $(if $(HAPROXY),,$(if $(HAPROXY34_TGZ),$(HAPROXY34)))
	@$(PYTHON) tests/bench/capacity.py $(or $(HAPROXY),haproxy $(if $(HAPROXY34_TGZ),$(HAPROXY34)))

# ---- install ----
PREFIX     ?= /usr/local
SYSCONFDIR ?= /etc
UNITDIR    ?= $(PREFIX)/lib/systemd/system
SHAREDIR   := $(PREFIX)/share/archestra-spoa
SUBST      := sed -e 's|/usr/local|$(PREFIX)|g' -e 's|/etc/archestra-spoa|$(SYSCONFDIR)/archestra-spoa|g'

install: all
	install -D -m 0755 $(AGENT) $(DESTDIR)$(PREFIX)/bin/archestra-spoa
	install -d $(DESTDIR)$(SYSCONFDIR)/archestra-spoa $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SHAREDIR)/haproxy-cfg \
	  $(DESTDIR)$(PREFIX)/share/doc/archestra-spoa
	@# an existing config is the operator's: never overwritten
	[ -e $(DESTDIR)$(SYSCONFDIR)/archestra-spoa/config.json ] || \
	  install -m 0644 systemd/config.json $(DESTDIR)$(SYSCONFDIR)/archestra-spoa/config.json
	if ls policy/*.json >/dev/null 2>&1; then install -d $(DESTDIR)$(SYSCONFDIR)/archestra-spoa/policy && \
	  install -m 0644 policy/*.json $(DESTDIR)$(SYSCONFDIR)/archestra-spoa/policy/; fi
	install -m 0644 haproxy-cfg/haproxy.cfg haproxy-cfg/spoe-archestra.conf haproxy-cfg/snippet.cfg haproxy-cfg/archestra.lua \
	  haproxy-cfg/peers.cfg $(DESTDIR)$(SHAREDIR)/haproxy-cfg/
	@# HAProxy's provider backends, from the agent's built-in table; regenerate with
	@# `archestra-spoa haproxy-backends --config ...` when the config adds providers
	$(AGENT) haproxy-backends > $(DESTDIR)$(SHAREDIR)/haproxy-cfg/providers.cfg
	install -m 0644 README.md $(DESTDIR)$(PREFIX)/share/doc/archestra-spoa/
	for u in archestra-spoa.service archestra-spoa@.service; do \
	  $(SUBST) systemd/$$u > $(DESTDIR)$(UNITDIR)/$$u && chmod 0644 $(DESTDIR)$(UNITDIR)/$$u; done

clean:
	rm -rf $(BUILD) $(AGENT)
