# api/: spool-api, the HTTP front end (GNU libmicrohttpd, jansson), its unit tests,
# libFuzzer targets (make fuzz) and benchmark (make bench-api).

API_SRCS := $(filter-out api/main.c,$(wildcard api/*.c))
API_OBJS := $(API_SRCS:%.c=$(O)/%.o)
API_PKGS := libmicrohttpd jansson
# The parsers and renderers that need no HTTP library (unit tests and fuzz targets).
API_PURE := route hdr multipart validate dataset jobjson
API_PURE_OBJS := $(API_PURE:%=$(O)/api/%.o)

ALL_BINS += $(BIN)/spool-api

$(O)/api/%.o: MODCFLAGS = $(call pc_cflags,$(API_PKGS))

$(BIN)/spool-api: $(O)/api/main.o $(API_OBJS) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(O)/api/main.o $(API_OBJS) $(COMMON_LIBS) $(call pc_libs,$(API_PKGS))

# Unit tests: the pure modules, and the long-poll thread and blob GC against Redis.
$(O)/tests/unit/test_api%.o: MODCFLAGS = $(call pc_cflags,cmocka hiredis jansson) -Iapi
test_api_parsers_OBJS := $(API_PURE_OBJS)
test_api_parsers_LIBS = $(call pc_libs,jansson)
test_api_longpoll_OBJS := $(O)/api/longpoll.o $(O)/api/gc.o
test_api_longpoll_LIBS = $(call pc_libs,jansson)

# ---- fuzzing: one libFuzzer target per parser, built with clang into $(O)/fuzz ---------
FUZZ_CC ?= clang
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_TARGETS := multipart request dataset path range
FUZZ_BINS := $(FUZZ_TARGETS:%=$(O)/fuzz/fuzz_%)
FUZZ_OBJS := $(API_PURE:%=$(O)/fuzz/api/%.o)

$(O)/fuzz/api/%.o: api/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS) -std=c11 -g -O1 -fsanitize=fuzzer-no-link $(FUZZ_SAN) \
		$(call pc_cflags,jansson) -c $< -o $@

$(O)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_OBJS) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS) -Iapi -std=c11 -g -O1 -fsanitize=fuzzer $(FUZZ_SAN) \
		$(call pc_cflags,jansson) $< $(FUZZ_OBJS) $(COMMON_LIBS) -o $@

fuzz: $(FUZZ_BINS)

# ---- benchmark -----------------------------------------------------------------------
.PHONY: bench-api
bench-api: $(BIN)/spool-api
	@SPOOL_BIN_DIR=$(abspath $(BIN)) sh tests/bench/bench_api.sh

bench: bench-api

# A worker the integration tests drive over stdin (built with the tests, not installed).
API_TEST_WORKER := $(O)/api/api-test-worker
TEST_BINS += $(API_TEST_WORKER)
$(API_TEST_WORKER): $(O)/api/tools/test_worker.o $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(COMMON_LIBS)
