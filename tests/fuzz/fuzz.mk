# libFuzzer builds of four targets: the TOSCA loader (tests/fuzz/fuzz_tosca.c, on libtosca),
# the bearer-token check (tests/fuzz/fuzz_jwt.c, on orchestrator/api/jwt_auth.c), and the
# daemon's HTTP request handling and deployment request JSON (tests/fuzz/fuzz_http.c).
# Run from the repository root, normally through the top Makefile:
#   make fuzz FUZZ_SECONDS=60        fuzz each target for a minute, print libFuzzer's stats
#   make -f tests/fuzz/fuzz.mk smoke replay the seed corpus once (quick regression check)
#   make -f tests/fuzz/fuzz.mk repro INPUT=file   run one input (a crash reproducer)
# smoke and repro are the TOSCA target's; `make -f tests/fuzz/fuzz.mk run-jwt` runs the
# token target alone. The library is compiled here with clang and sanitizer coverage into build/fuzz/
# (never mixed with build/release objects). New inputs that libFuzzer finds stay in
# build/fuzz/corpus, so successive runs continue where the last one stopped; crash
# reproducers are written to build/fuzz/artifacts/.

FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 600
SHARED       ?= $(CURDIR)/../shared
CORPUS       ?= $(SHARED)/corpus
FUZZ_BUILD   := build/fuzz
PKGS         := yaml-0.1 jansson libzip libcurl openssl

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

# Same -D and -I as the top Makefile, so the fuzzed library is the shipped one.
FUZZ_CPPFLAGS := -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L -Iplugins/include -Itosca/include \
                 -DTOSCA_TYPES_DIR='"$(CURDIR)/tosca/types"'
FUZZ_SAN      := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS   := -std=c11 -O1 -g -Wall -Wextra -Wno-unused-parameter $(FUZZ_SAN) $(PKG_CFLAGS) \
                 -MMD -MP

TOSCA_SRC  := $(wildcard tosca/*.c)
TOSCA_OBJ  := $(TOSCA_SRC:%.c=$(FUZZ_BUILD)/%.o)
TYPES_YAML := $(wildcard tosca/types/*.yaml)
FUZZER     := $(FUZZ_BUILD)/fuzz_tosca
FUZZ_CORPUS := $(FUZZ_BUILD)/corpus
FUZZ_SEEDS := $(FUZZ_BUILD)/seeds
FUZZ_ARTIFACTS := $(FUZZ_BUILD)/artifacts
FUZZ_DICT  := tests/fuzz/tosca.dict
SEEDS      := $(wildcard tests/fuzz/seeds/*)

# libFuzzer options shared by run and smoke.
FUZZ_OPTS  := -max_len=65536 -timeout=10 -rss_limit_mb=2048 -dict=$(FUZZ_DICT) \
              -artifact_prefix=$(FUZZ_ARTIFACTS)/ -print_final_stats=1
# Point the target at the corpus import map (it falls back to ../shared/corpus).
FUZZ_ENV   := CORPUS=$(CORPUS) ASAN_OPTIONS=$${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1} \
              UBSAN_OPTIONS=$${UBSAN_OPTIONS:-print_stacktrace=1}

# The bearer-token target: jwt_auth.c and the daemon's base services, on libjwt/OpenSSL.
JWT_PKGS       := jansson libjwt openssl
JWT_CFLAGS     := $(shell pkg-config --cflags $(JWT_PKGS) 2>/dev/null)
JWT_LIBS       := $(shell pkg-config --libs $(JWT_PKGS) 2>/dev/null)
JWT_SRC        := orchestrator/api/jwt_auth.c orchestrator/base.c
JWT_OBJ        := $(JWT_SRC:%.c=$(FUZZ_BUILD)/%.o)
JWT_FUZZER     := $(FUZZ_BUILD)/fuzz_jwt
JWT_CORPUS     := $(FUZZ_BUILD)/corpus_jwt
JWT_SEEDS      := $(wildcard tests/fuzz/seeds_jwt/*)
JWT_OPTS       := -max_len=20000 -timeout=10 -rss_limit_mb=2048 \
                  -artifact_prefix=$(FUZZ_ARTIFACTS)/jwt- -print_final_stats=1

# The HTTP targets: the whole daemon (every subsystem but main.c, and
# libtosca) serving on loopback inside the fuzzer; fuzz_http sends each input as a raw
# request, fuzz_deployment as the body of a POST /deployments.
ALL_PKGS       := yaml-0.1 jansson libzip libcurl libuv sqlite3 libpq libh2o openssl libssh2 libjwt
ALL_CFLAGS     := $(shell pkg-config --cflags $(ALL_PKGS) 2>/dev/null)
ALL_LIBS       := $(shell pkg-config --libs $(ALL_PKGS) 2>/dev/null)
HTTP_SRC       := $(filter-out orchestrator/main.c,$(wildcard \
                    $(addsuffix /*.c,orchestrator orchestrator/api orchestrator/store \
                    orchestrator/engine orchestrator/sched)))
HTTP_OBJ       := $(HTTP_SRC:%.c=$(FUZZ_BUILD)/%.o)
HTTP_FUZZER    := $(FUZZ_BUILD)/fuzz_http
DEP_FUZZER     := $(FUZZ_BUILD)/fuzz_deployment
HTTP_SEEDS     := $(wildcard tests/fuzz/seeds_http/*)
DEP_SEEDS      := $(wildcard tests/fuzz/seeds_deployment/*)
# HTTP_MAX_LEN: the longest input (campaigns of 10 million used 8192: docs/security.md);
# FUZZ_JOBS > 1 runs that many jobs at once (libFuzzer's -fork), one per core.
HTTP_MAX_LEN   ?= 65536
FUZZ_JOBS      ?= 1
HTTP_OPTS      := -max_len=$(HTTP_MAX_LEN) -timeout=20 -rss_limit_mb=4096 -print_final_stats=1 \
                  $(if $(filter-out 0 1,$(FUZZ_JOBS)),-fork=$(FUZZ_JOBS) -detect_leaks=0)

.PHONY: all run run-tosca run-jwt run-http run-deployment smoke seeds repro clean
all: $(FUZZER) $(JWT_FUZZER) $(HTTP_FUZZER) $(DEP_FUZZER)

$(FUZZ_BUILD)/orchestrator/%.o: orchestrator/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CPPFLAGS) -iquote orchestrator $(FUZZ_CFLAGS) $(ALL_CFLAGS) \
	    -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_BUILD)/orchestrator/daemon.o: FUZZ_CPPFLAGS += -DORC_GIT_COMMIT='"fuzz"' \
    -DORC_GIT_BRANCH='"fuzz"'
$(FUZZ_BUILD)/orchestrator/api/ui.o: FUZZ_CPPFLAGS += -DORC_UI_DIR='"$(CURDIR)/ui"'
$(FUZZ_BUILD)/orchestrator/api/ui.o: $(wildcard ui/*)

$(FUZZ_BUILD)/fuzz_http.o: tests/fuzz/fuzz_http.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CPPFLAGS) -iquote orchestrator $(FUZZ_CFLAGS) $(ALL_CFLAGS) \
	    -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_BUILD)/fuzz_deployment.o: tests/fuzz/fuzz_http.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CPPFLAGS) -DFUZZ_DEPLOYMENT_BODY -iquote orchestrator $(FUZZ_CFLAGS) \
	    $(ALL_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(HTTP_FUZZER) $(DEP_FUZZER): $(FUZZ_BUILD)/%: $(FUZZ_BUILD)/%.o $(HTTP_OBJ) $(TOSCA_OBJ)
	$(FUZZ_CC) -fsanitize=fuzzer,address,undefined -o $@ $^ $(ALL_LIBS) -ldl -lpthread -lm

$(FUZZ_BUILD)/fuzz_jwt.o: tests/fuzz/fuzz_jwt.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CPPFLAGS) -iquote orchestrator $(FUZZ_CFLAGS) $(JWT_CFLAGS) \
	    -fsanitize=fuzzer-no-link -c $< -o $@

$(JWT_FUZZER): $(FUZZ_BUILD)/fuzz_jwt.o $(JWT_OBJ)
	$(FUZZ_CC) -fsanitize=fuzzer,address,undefined -o $@ $^ $(JWT_LIBS)

$(FUZZ_BUILD)/tosca/%.o: tosca/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_BUILD)/tosca/types_embed.o: $(TYPES_YAML)

$(FUZZ_BUILD)/fuzz_tosca.o: tests/fuzz/fuzz_tosca.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZER): $(FUZZ_BUILD)/fuzz_tosca.o $(TOSCA_OBJ)
	$(FUZZ_CC) -fsanitize=fuzzer,address,undefined -o $@ $^ $(PKG_LIBS) -lm

# Seed corpus, rebuilt on every run in $(FUZZ_SEEDS): every YAML file of the shared
# corpus (named after its path, since examples/ and templates/ share file names) plus
# the hand-written seeds. `run` adds them to the working corpus; `smoke` replays only them.
seeds:
	@rm -rf $(FUZZ_SEEDS) && mkdir -p $(FUZZ_SEEDS) $(FUZZ_ARTIFACTS)
	@if [ -d "$(CORPUS)/indigo" ]; then \
	    find "$(CORPUS)/indigo" -type f \( -name '*.yaml' -o -name '*.yml' \) | while read -r f; do \
	        rel=$${f#$(CORPUS)/}; cp -f "$$f" "$(FUZZ_SEEDS)/$$(echo "$$rel" | tr '/' '_')"; \
	    done; \
	else echo "fuzz.mk: no corpus at $(CORPUS)/indigo; hand-written seeds only"; fi
	@for f in $(SEEDS); do cp -f "$$f" "$(FUZZ_SEEDS)/seed_$$(basename "$$f")"; done
	@echo "fuzz.mk: $$(ls $(FUZZ_SEEDS) | wc -l) seed files in $(FUZZ_SEEDS)"

run: run-tosca run-jwt run-http run-deployment

run-tosca: $(FUZZER) seeds
	@mkdir -p $(FUZZ_CORPUS) && cp -f $(FUZZ_SEEDS)/* $(FUZZ_CORPUS)/
	$(FUZZ_ENV) $(FUZZER) $(FUZZ_OPTS) -max_total_time=$(FUZZ_SECONDS) $(FUZZ_CORPUS)

run-jwt: $(JWT_FUZZER)
	@mkdir -p $(JWT_CORPUS) $(FUZZ_ARTIFACTS) && cp -f $(JWT_SEEDS) $(JWT_CORPUS)/
	$(FUZZ_ENV) $(JWT_FUZZER) $(JWT_OPTS) -max_total_time=$(FUZZ_SECONDS) $(JWT_CORPUS)

run-http: $(HTTP_FUZZER)
	@mkdir -p $(FUZZ_BUILD)/corpus_http $(FUZZ_ARTIFACTS) && cp -f $(HTTP_SEEDS) $(FUZZ_BUILD)/corpus_http/
	$(FUZZ_ENV) $(HTTP_FUZZER) $(HTTP_OPTS) -artifact_prefix=$(FUZZ_ARTIFACTS)/http- \
	    -max_total_time=$(FUZZ_SECONDS) $(FUZZ_BUILD)/corpus_http

run-deployment: $(DEP_FUZZER)
	@mkdir -p $(FUZZ_BUILD)/corpus_deployment $(FUZZ_ARTIFACTS) && \
	    cp -f $(DEP_SEEDS) $(FUZZ_BUILD)/corpus_deployment/
	$(FUZZ_ENV) $(DEP_FUZZER) $(HTTP_OPTS) -artifact_prefix=$(FUZZ_ARTIFACTS)/deployment- \
	    -max_total_time=$(FUZZ_SECONDS) $(FUZZ_BUILD)/corpus_deployment

smoke: $(FUZZER) seeds
	$(FUZZ_ENV) $(FUZZER) $(FUZZ_OPTS) -runs=0 $(FUZZ_SEEDS)

# Reproduce one input: make -f tests/fuzz/fuzz.mk repro INPUT=build/fuzz/artifacts/crash-...
repro: $(FUZZER)
	@test -n "$(INPUT)" || { echo "fuzz.mk: set INPUT=file"; exit 2; }
	$(FUZZ_ENV) $(FUZZER) $(INPUT)

clean:
	rm -rf $(FUZZ_BUILD)

-include $(TOSCA_OBJ:.o=.d) $(FUZZ_BUILD)/fuzz_tosca.d $(JWT_OBJ:.o=.d) $(FUZZ_BUILD)/fuzz_jwt.d \
         $(HTTP_OBJ:.o=.d) $(FUZZ_BUILD)/fuzz_http.d $(FUZZ_BUILD)/fuzz_deployment.d
