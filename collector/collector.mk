# serverbox-collector: the node agent. Included by the root Makefile when
# collector/src/*.c exist. It reuses the core's util/ objects (buffers,
# logging, hex, time) and links only libsodium, jansson and BearSSL (TLS to
# the core; always static: only the handshake code it uses is loaded), no
# libcurl, so the agent stays well under 2 MiB of RSS.

# libsodium and jansson are linked statically when their archives exist: only
# the few functions used are loaded, which keeps the resident set small.
COLLECTOR_STATIC := -Wl,-Bstatic -lsodium -ljansson -lbearssl -Wl,-Bdynamic
COLLECTOR_LIBS  := $(if $(wildcard /usr/lib/x86_64-linux-gnu/libsodium.a),$(COLLECTOR_STATIC),$(shell pkg-config --libs libsodium jansson 2>/dev/null) -Wl,-Bstatic -lbearssl -Wl,-Bdynamic) -pthread -lm
# The shipped agent is a fully static binary (glibc too): the shared libc
# alone is 1.5 MiB of resident pages, the static agent 1.3 MiB in all. The
# price: a host *name* in --core is resolved through the node's NSS modules,
# which must come from the same glibc version (give an IP address elsewhere);
# the linker says so in a warning on every link.
# The ASan build below stays dynamic.
COLLECTOR_SHIP_LIBS := $(if $(wildcard /usr/lib/x86_64-linux-gnu/libc.a),-static -lsodium -ljansson -lbearssl -pthread -lm,$(COLLECTOR_LIBS))
COLLECTOR_UTIL  := buf error log misc
COLLECTOR_OBJ   := $(COLLECTOR_SRC:%.c=build/obj/%.o) $(COLLECTOR_UTIL:%=build/obj/core/src/util/%.o)
COLLECTOR_LIB_ASAN := $(filter-out build/asan/obj/collector/src/main.o,$(COLLECTOR_SRC:%.c=build/asan/obj/%.o)) \
                      $(COLLECTOR_UTIL:%=build/asan/obj/core/src/util/%.o)
COLLECTOR_UNIT_SRC := $(sort $(wildcard collector/tests/test_*.c))
COLLECTOR_UNIT_BIN := $(COLLECTOR_UNIT_SRC:collector/tests/%.c=build/asan/collector-tests/%)

build/serverbox-collector: $(COLLECTOR_OBJ)
	@echo "  LD      $@"
	@$(CC) -o $@ $^ $(COLLECTOR_SHIP_LIBS)

build/asan/serverbox-collector: $(COLLECTOR_LIB_ASAN) build/asan/obj/collector/src/main.o
	@echo "  LD      $@"
	@$(CC) $(SAN) -o $@ $^ $(COLLECTOR_LIBS)

all: build/asan/serverbox-collector

build/asan/collector-tests/%: collector/tests/%.c $(COLLECTOR_LIB_ASAN)
	@mkdir -p $(@D)
	@echo "  TEST    $@"
	@$(CC) $(CFLAGS_COMMON) -O1 $(SAN) -Icollector/src -o $@ $< $(COLLECTOR_LIB_ASAN) $(COLLECTOR_LIBS) -lcmocka
