# Serverbox. `make` builds everything into build/; see README.md.
#   make          build/serverbox-core (and the collector)
#   make run      install what is missing, start local services, migrate, serve
#   make test     unit tests and black-box tests under ASan+UBSan, real services
#   make bench    benchmarks, printed as a table
#   make fuzz     run the libFuzzer targets for a while

CC       ?= cc
VERSION  := $(shell git describe --always --dirty 2>/dev/null || echo dev)
PKGS     := libmicrohttpd libpq libcurl libssh2 hiredis jansson libsodium
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
WARN     := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter
CFLAGS_COMMON := -std=gnu11 $(WARN) -g -pthread -D_GNU_SOURCE -Icore/src -Ibuild/gen $(PKG_CFLAGS) \
                 -DSERVERBOX_VERSION='"$(VERSION)"' -MMD -MP
CFLAGS   ?= -O2
SAN      := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDLIBS   := $(PKG_LIBS) -pthread

CORE_SRC  := $(sort $(wildcard core/src/*/*.c))
CORE_OBJ  := $(CORE_SRC:%.c=build/obj/%.o)
ASAN_OBJ  := $(CORE_SRC:%.c=build/asan/obj/%.o)
GEN_SRC   := build/gen/migrations.c build/gen/openapi.c
GEN_OBJ   := $(GEN_SRC:build/gen/%.c=build/obj/gen/%.o)
GEN_ASAN  := $(GEN_SRC:build/gen/%.c=build/asan/obj/gen/%.o)
MIGRATIONS := $(sort $(wildcard migrations/*.sql))
UNIT_SRC  := $(sort $(wildcard core/tests/test_*.c))
UNIT_BIN  := $(UNIT_SRC:core/tests/%.c=build/asan/tests/%)
COLLECTOR_SRC := $(sort $(wildcard collector/src/*.c))

.PHONY: all run test unit blackbox bench fuzz clean format deps
all: build/serverbox-core build/asan/serverbox-core build/tools/append-load build/tools/ssh-bench build/tools/sse-load $(if $(COLLECTOR_SRC),build/serverbox-collector)

deps:
	@scripts/bootstrap.sh

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

build/tools/embed: tools/embed.c
	@mkdir -p $(@D)
	$(CC) -O1 -o $@ $<

build/gen/migrations.c: build/tools/embed $(MIGRATIONS)
	@mkdir -p $(@D)
	build/tools/embed migrations $@ $(MIGRATIONS)

build/gen/openapi.json: docs/openapi.yaml tools/yaml2json.mjs node_modules/.installed
	@mkdir -p $(@D)
	node tools/yaml2json.mjs $< $@

build/gen/openapi.c: build/tools/embed build/gen/openapi.json
	build/tools/embed blob api_openapi_json $@ build/gen/openapi.json

build/obj/%.o: %.c
	@mkdir -p $(@D)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS_COMMON) $(CFLAGS) -c -o $@ $<

build/obj/gen/%.o: build/gen/%.c
	@mkdir -p $(@D)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS_COMMON) $(CFLAGS) -c -o $@ $<

build/asan/obj/%.o: %.c
	@mkdir -p $(@D)
	@echo "  CC asan $<"
	@$(CC) $(CFLAGS_COMMON) -O1 $(SAN) -c -o $@ $<

build/asan/obj/gen/%.o: build/gen/%.c
	@mkdir -p $(@D)
	@echo "  CC asan $<"
	@$(CC) $(CFLAGS_COMMON) -O1 $(SAN) -c -o $@ $<

build/serverbox-core: $(CORE_OBJ) $(GEN_OBJ) build/obj/core/src/main.o
	@echo "  LD      $@"
	@$(CC) -o $@ $^ $(LDLIBS)

build/asan/serverbox-core: $(ASAN_OBJ) $(GEN_ASAN) build/asan/obj/core/src/main.o
	@echo "  LD      $@"
	@$(CC) $(SAN) -o $@ $^ $(LDLIBS)

build/tools/append-load: build/obj/core/tools/append_load.o $(CORE_OBJ) $(GEN_OBJ)
	@echo "  LD      $@"
	@$(CC) -o $@ $^ $(LDLIBS)

build/tools/ssh-bench: build/obj/core/tools/ssh_bench.o $(CORE_OBJ) $(GEN_OBJ)
	@echo "  LD      $@"
	@$(CC) -o $@ $^ $(LDLIBS)
# A client only: it links none of the daemon's code.
build/tools/sse-load: core/tools/sse_load.c
	@mkdir -p $(@D)
	@echo "  CC      $<"
	@$(CC) -std=gnu11 $(WARN) -O2 -g -pthread -o $@ $< -pthread

build/asan/tests/%: core/tests/%.c $(ASAN_OBJ) $(GEN_ASAN)
	@mkdir -p $(@D)
	@echo "  TEST    $@"
	@$(CC) $(CFLAGS_COMMON) -O1 $(SAN) -Icore/tests -o $@ $< $(ASAN_OBJ) $(GEN_ASAN) $(LDLIBS) -lcmocka

ifneq ($(COLLECTOR_SRC),)
include collector/collector.mk
endif

run: deps all
	@scripts/run.sh

unit: $(UNIT_BIN) $(COLLECTOR_UNIT_BIN)
	@set -e; for t in $^; do echo "== $$t"; ASAN_OPTIONS=detect_leaks=1 $$t; done

blackbox: all node_modules/.installed
	@scripts/test.sh

test: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory blackbox

bench: deps all node_modules/.installed
	@bench/run.sh

fuzz: deps
	@scripts/fuzz.sh

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
