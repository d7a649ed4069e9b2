# One entry point for building, testing and running the project.
#   make            build everything (libtosca, orchctl, orchestratord, driver plugins)
#   make test       install what is missing, build, run every test
#   make test SANITIZE=1   the same under ASan + UBSan
#   make fuzz       libFuzzer on the TOSCA loader, the bearer-token check, the HTTP request
#                   handling and the deployment request JSON (FUZZ_SECONDS each, default 600)
#   make bench      benchmarks (tests/bench), figures on stdout
#   make run        start the daemon on its embedded defaults
#   make install    install under DESTDIR/PREFIX (default /usr/local): programs, drivers,
#                   man pages, templates, example configuration, systemd units

CC        ?= cc
PREFIX    ?= /usr/local
SHARED    ?= $(CURDIR)/../shared
CORPUS    ?= $(SHARED)/corpus
PKGS      := yaml-0.1 jansson libzip libcurl libuv sqlite3 libpq libh2o openssl libssh2 libjwt
TEST_PKGS := cmocka

ifeq ($(SANITIZE),1)
BUILD     ?= build/san
SANFLAGS  := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
OPT       := -O1
else
BUILD     ?= build/release
SANFLAGS  :=
OPT       := -O2
endif

DEPS_OK := $(shell pkg-config --exists $(PKGS) $(TEST_PKGS) 2>/dev/null && echo yes)
ifneq ($(DEPS_OK),yes)
ifeq ($(filter deps clean,$(MAKECMDGOALS)),)
$(info Installing missing build dependencies (deploy/install-deps.sh)...)
$(if $(shell sh deploy/install-deps.sh >&2 && echo ok),,$(error deploy/install-deps.sh failed))
endif
endif

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
TEST_LIBS  := $(shell pkg-config --libs $(TEST_PKGS) 2>/dev/null)

WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wno-unused-parameter
CPPFLAGS += -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L -Iplugins/include -Itosca/include \
            -DTOSCA_TYPES_DIR='"$(CURDIR)/tosca/types"'
CFLAGS   += -std=c11 $(OPT) -g $(WARN) $(SANFLAGS) $(PKG_CFLAGS) -MMD -MP
LDFLAGS  += $(SANFLAGS)

# the daemon's subsystems form liborch; main.c alone makes orchestratord
ORCH_DIRS  := orchestrator orchestrator/api orchestrator/store orchestrator/engine \
              orchestrator/sched
ORCH_SRC   := $(filter-out orchestrator/main.c,$(wildcard $(addsuffix /*.c,$(ORCH_DIRS))))
ORCH_OBJ   := $(ORCH_SRC:%.c=$(BUILD)/%.o)
LIBORCH    := $(BUILD)/liborch.a
DAEMON     := $(if $(wildcard orchestrator/main.c),$(BUILD)/bin/orchestratord)
# each folder of plugins/ but include/ is one driver: plugins/NAME/*.c -> NAME.so in the
# daemon's plugin folder; the test fixtures (TEST_PLUGINS) go to a folder of their own
TEST_PLUGINS := broken
# plugins/remote/ and plugins/cloud/ are not drivers: code that drivers share, linked into
# each user (remote: the ssh and slurm drivers; cloud: the REST ones)
PLUGIN_SHARED := remote cloud
REMOTE_USERS := ssh slurm
REMOTE_OBJ := $(patsubst %.c,$(BUILD)/pic/%.o,$(wildcard plugins/remote/*.c))
CLOUD_USERS := openstack kubernetes
CLOUD_OBJ := $(patsubst %.c,$(BUILD)/pic/%.o,$(wildcard plugins/cloud/*.c))
PLUGIN_DIRS := $(filter-out plugins/include $(addprefix plugins/,$(TEST_PLUGINS) $(PLUGIN_SHARED)),\
                   $(patsubst %/,%,$(dir $(wildcard plugins/*/*.c))))
PLUGIN_SO  := $(sort $(foreach d,$(PLUGIN_DIRS),$(BUILD)/plugins/$(notdir $(d)).so))
TEST_PLUGIN_SO := $(foreach p,$(TEST_PLUGINS),$(BUILD)/test-plugins/$(p).so)
TOSCA_SRC  := $(wildcard tosca/*.c)
TOSCA_OBJ  := $(TOSCA_SRC:%.c=$(BUILD)/%.o)
LIBTOSCA   := $(BUILD)/libtosca.a
CLI_SRC    := $(wildcard orchestrator/cli/*.c)
CLI_OBJ    := $(CLI_SRC:%.c=$(BUILD)/%.o)
ORCHCTL    := $(BUILD)/bin/orchctl
UNIT_SRC   := $(wildcard tests/unit/test_*.c)
SEC_SRC    := $(wildcard tests/security/test_*.c)
UNIT_BIN   := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%) $(SEC_SRC:tests/security/%.c=$(BUILD)/tests/%)
# the programs that start daemons (they include daemon_fixture.h): run again on PostgreSQL
PG_SRC     := $(shell grep -l 'daemon_fixture.h' $(UNIT_SRC) $(SEC_SRC))
PG_BIN     := $(patsubst tests/security/%.c,$(BUILD)/tests/%,$(PG_SRC:tests/unit/%.c=$(BUILD)/tests/%))
# those about several daemons on one database (test_ha, test_soak) run in that pass only
PG_ONLY    := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(shell grep -l 'tb_pg_start' $(PG_SRC)))
BENCH_SRC  := $(wildcard tests/bench/*.c)
BENCH_BIN  := $(BENCH_SRC:tests/bench/%.c=$(BUILD)/bench/%)
TYPES_YAML := $(wildcard tosca/types/*.yaml)

# (its rules come before `all`: the default goal is said here)
.DEFAULT_GOAL := all
include gpu-runtime/gpu-runtime.mk

.PHONY: all test run fuzz bench install clean deps check-clang
all: $(LIBTOSCA) $(LIBORCH) $(ORCHCTL) $(DAEMON) $(PLUGIN_SO) $(TEST_PLUGIN_SO) $(GR_BINS)

deps:
	sh deploy/install-deps.sh

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/tosca/types_embed.o: $(TYPES_YAML)

$(LIBTOSCA): $(TOSCA_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(ORCHCTL): $(CLI_OBJ) $(LIBTOSCA)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(CLI_OBJ) $(LIBTOSCA) $(PKG_LIBS) -lm

$(LIBORCH): $(ORCH_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $(ORCH_OBJ)

# the daemon reports the commit it was built from (/info, --version)
GIT_COMMIT := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
GIT_BRANCH := $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null || echo unknown)
$(BUILD)/orchestrator/daemon.o: CPPFLAGS += -DORC_GIT_COMMIT='"$(GIT_COMMIT)"' \
    -DORC_GIT_BRANCH='"$(GIT_BRANCH)"'
# the web dashboard's files are built into the daemon (orchestrator/api/ui.c)
UI_FILES := $(wildcard ui/*)
$(BUILD)/orchestrator/api/ui.o: CPPFLAGS += -DORC_UI_DIR='"$(CURDIR)/ui"'
$(BUILD)/orchestrator/api/ui.o: $(UI_FILES)

$(BUILD)/bin/orchestratord: $(BUILD)/orchestrator/main.o $(LIBORCH) $(LIBTOSCA)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -rdynamic -o $@ $< $(LIBORCH) $(LIBTOSCA) $(PKG_LIBS) -ldl -lpthread -lm

# driver plugins: position-independent objects, one shared object per folder
$(BUILD)/pic/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -fPIC -fvisibility=hidden -c $< -o $@

.SECONDEXPANSION:
# keep the position-independent objects (make would delete them as intermediates)
.SECONDARY:
$(BUILD)/plugins/%.so: $$(subst .c,.o,$$(addprefix $(BUILD)/pic/,$$(wildcard plugins/$$*/*.c))) \
                      $$(if $$(filter $$*,$(REMOTE_USERS)),$(REMOTE_OBJ)) \
                      $$(if $$(filter $$*,$(CLOUD_USERS)),$(CLOUD_OBJ))
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -shared -o $@ $^ $(PKG_LIBS) -lm
# test fixture drivers; one left in the daemon's folder by an older build is removed
$(BUILD)/test-plugins/%.so: $$(subst .c,.o,$$(addprefix $(BUILD)/pic/,$$(wildcard plugins/$$*/*.c)))
	@mkdir -p $(dir $@)
	rm -f $(BUILD)/plugins/$*.so
	$(CC) $(LDFLAGS) -shared -o $@ $^ $(PKG_LIBS) -lm

# tests link the gpu-runtime's libraries too (test_agent_*, test_train, test_serve)
$(BUILD)/tests/%: tests/unit/%.c tests/unit/testutil.h $(LIBTOSCA) $(LIBORCH) $(GR_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -iquote tosca -iquote tests/unit $(GR_CPPFLAGS) $(CFLAGS) -o $@ $< \
	    $(GR_LIBS) $(LIBORCH) $(LIBTOSCA) $(PKG_LIBS) $(TEST_LIBS) -ldl -lpthread -lm $(LDFLAGS)

# tests/security: hostile clients against the real daemon (docs/security.md)
$(BUILD)/tests/%: tests/security/%.c tests/unit/testutil.h $(LIBTOSCA) $(LIBORCH)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -iquote tosca -iquote tests/unit -iquote orchestrator $(CFLAGS) -o $@ $< \
	    $(LIBORCH) $(LIBTOSCA) $(PKG_LIBS) $(TEST_LIBS) -ldl -lpthread -lm $(LDFLAGS)

# bench programs link the daemon's subsystems too (bench_engine drives the engine)
$(BUILD)/bench/%: tests/bench/%.c $(LIBTOSCA) $(LIBORCH)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -iquote tosca -iquote orchestrator $(CFLAGS) -o $@ $< \
	    $(LIBORCH) $(LIBTOSCA) $(PKG_LIBS) -ldl -lpthread -lm $(LDFLAGS)

test: all $(UNIT_BIN) $(if $(SANITIZE),,check-clang)
	@sh deploy/install-deps.sh
	@export BUILD=$(BUILD) CORPUS=$(CORPUS) SANITIZE=$(SANITIZE) ORCHESTRATORD=$(DAEMON) \
	    PLUGIN_DIR=$(BUILD)/plugins TEST_PLUGIN_DIR=$(BUILD)/test-plugins ORCHCTL=$(ORCHCTL) \
	    GPU_AGENT=$(GPU_AGENT) GPU_TRAIN=$(GPU_TRAIN) GPU_SERVE=$(GPU_SERVE); \
	    sh tests/run.sh $(filter-out $(PG_ONLY),$(UNIT_BIN)) tests/sim/contract_tests.sh \
	        tests/install/test_install.sh tests/ui/run.sh tests/docs/check_docs.sh; \
	    sqlite_rc=$$?; \
	    sh tests/run-pg.sh $(PG_BIN); pg_rc=$$?; [ $$sqlite_rc = 0 ] && [ $$pg_rc = 0 ]

# The code builds warning-free with clang as well as gcc.
check-clang:
	@command -v clang >/dev/null || { echo "clang is missing (deploy/install-deps.sh)"; exit 1; }
	@$(MAKE) -s CC=clang BUILD=build/clang SANITIZE= all

# Benchmarks (docs/performance.md): BENCH=tosca|http|creates|engine|scale|rss|agent|ssh|slurm (a list;
# default all). Installs the benchmark-only tools (wrk, nginx-light, jq) first.
bench: all $(BENCH_BIN)
	@sh deploy/install-deps.sh --bench
	@BUILD=$(BUILD) CORPUS=$(CORPUS) BENCH="$(BENCH)" ORCHESTRATORD=$(DAEMON) \
	    PLUGIN_DIR=$(BUILD)/plugins HTTPLOAD=$(BUILD)/bench/httpload GPU_AGENT=$(GPU_AGENT) \
	    bash tests/bench/run.sh

FUZZ_SECONDS ?= 600
fuzz:
	$(MAKE) -f tests/fuzz/fuzz.mk FUZZ_SECONDS=$(FUZZ_SECONDS) CORPUS=$(CORPUS) run

# the daemon on its embedded defaults: http://127.0.0.1:8080, data in ./var,
# one site `local` (this machine); stop it with Ctrl-C
run: all
	exec $(BUILD)/bin/orchestratord

# An operator's install (docs/install.md; tests/install/test_install.sh checks it):
# programs in PREFIX/bin, drivers in PREFIX/lib/orchestrator/plugins (the daemon looks
# there from its own bin/), man pages, the template catalog (examples/) and the example
# configuration under PREFIX/share; the systemd units in PREFIX/lib/systemd/system with
# their /usr/local paths made PREFIX's; the nginx and logrotate files under
# PREFIX/share/orchestrator for the operator to copy into /etc.
SHAREDIR := $(DESTDIR)$(PREFIX)/share/orchestrator
UNITDIR  := $(DESTDIR)$(PREFIX)/lib/systemd/system
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/orchestrator/plugins
	install -m 0755 $(ORCHCTL) $(DESTDIR)$(PREFIX)/bin/orchctl
	install -m 0755 $(BUILD)/bin/orchestratord $(DESTDIR)$(PREFIX)/bin/orchestratord
	install -m 0755 $(GR_BINS) $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 $(PLUGIN_SO) $(DESTDIR)$(PREFIX)/lib/orchestrator/plugins/
	install -d $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man8
	install -m 0644 man/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 0644 man/*.8 $(DESTDIR)$(PREFIX)/share/man/man8/
	install -d $(SHAREDIR)/examples $(SHAREDIR)/nginx $(SHAREDIR)/logrotate $(UNITDIR)
	install -m 0644 examples/*.yaml $(SHAREDIR)/examples/
	install -m 0644 deploy/orchestratord.example.yaml deploy/sites.example.yaml $(SHAREDIR)/
	install -m 0644 deploy/nginx/orchestrator.conf $(SHAREDIR)/nginx/
	install -m 0644 deploy/logrotate/orchestrator $(SHAREDIR)/logrotate/
	for u in deploy/systemd/*.service; do \
	    sed 's|/usr/local/|$(PREFIX)/|g' $$u >$(UNITDIR)/$${u##*/}.tmp && \
	    chmod 0644 $(UNITDIR)/$${u##*/}.tmp && \
	    mv -f $(UNITDIR)/$${u##*/}.tmp $(UNITDIR)/$${u##*/} || exit 1; \
	done

clean:
	rm -rf build

-include $(ORCH_OBJ:.o=.d) $(BUILD)/orchestrator/main.d $(wildcard $(BUILD)/pic/plugins/*/*.d)
-include $(TOSCA_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(UNIT_BIN:=.d) $(BENCH_BIN:=.d)
