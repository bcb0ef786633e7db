# api/: spool-api, the HTTP front end (GNU libmicrohttpd, jansson), its unit tests,
# libFuzzer targets (make fuzz) and benchmark (make bench-api).

API_SRCS := $(filter-out api/main.c,$(wildcard api/*.c))
API_OBJS := $(API_SRCS:%.c=$(O)/%.o) $(O)/gen/api_assets.o
API_PKGS := libmicrohttpd jansson yajl glib-2.0
# The parsers and renderers that need no HTTP library (unit tests and fuzz targets).
API_PURE := route hdr multipart validate dataset jobjson json rows exportbody schedjob
API_PURE_OBJS := $(API_PURE:%=$(O)/api/%.o)

ALL_BINS += $(BIN)/spool-api

$(O)/api/%.o: MODCFLAGS = $(call pc_cflags,$(API_PKGS))

$(BIN)/spool-api: $(O)/api/main.o $(API_OBJS) $(O)/gen/ui_files.o $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(O)/api/main.o $(API_OBJS) $(O)/gen/ui_files.o $(COMMON_LIBS) \
		$(call pc_libs,$(API_PKGS))

# The dashboard (api/ui: HTML, CSS, JavaScript modules) and Chart.js from Debian's
# libjs-chart.js, embedded into spool-api as byte arrays (scripts/embed-files.sh).
UI_FILES := $(sort $(wildcard api/ui/*.html api/ui/*.css api/ui/*.js api/ui/*.svg))
CHARTJS ?= /usr/share/javascript/chart.js/chart.min.js

$(O)/gen/ui_files.c: $(UI_FILES) $(CHARTJS) scripts/embed-files.sh
	@mkdir -p $(dir $@)
	sh scripts/embed-files.sh $@ $(UI_FILES) chart.min.js=$(CHARTJS)

$(O)/gen/ui_files.o: $(O)/gen/ui_files.c api/ui.h
	$(CC) $(CPPFLAGS) -Iapi $(CFLAGS) -c $< -o $@

# Unit tests: the pure modules, and the long-poll thread and blob GC against Redis.
$(O)/tests/unit/test_api%.o: MODCFLAGS = $(call pc_cflags,cmocka hiredis jansson) -Iapi
test_api_parsers_OBJS := $(API_PURE_OBJS)
test_api_parsers_LIBS = $(call pc_libs,jansson yajl glib-2.0)
test_api_longpoll_OBJS := $(O)/api/longpoll.o $(O)/api/gc.o
test_api_longpoll_LIBS = $(call pc_libs,jansson)
test_api_history_OBJS := $(O)/api/history.o
test_api_cron_OBJS := $(O)/api/cron.o
test_api_cron_LIBS = $(call pc_libs,glib-2.0)
test_api_schedjob_OBJS := $(API_PURE_OBJS)
test_api_schedjob_LIBS = $(call pc_libs,jansson yajl glib-2.0)

# ---- fuzzing: one libFuzzer target per parser, built with clang into $(O)/fuzz ---------
# Everything a target links is compiled by clang (a gcc sanitizer runtime would clash),
# with coverage for libFuzzer. Every ASan or UBSan finding stops the target as a crash.
# The other parts (workers/pdf/pdf.mk, tests/tests.mk) add their targets with the same
# compiler and sanitizers; every target has a seed corpus in tests/fuzz/corpus/<name>.
FUZZ_CC ?= clang
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS = $(CPPFLAGS) -Iapi -std=c11 -g -O1 $(FUZZ_SAN) \
	$(call pc_cflags,hiredis jansson libcurl yajl libcrypto libxml-2.0 glib-2.0)
FUZZ_TARGETS := multipart request dataset path range config job outbound s3xml evstream schedjob
FUZZ_BINS := $(FUZZ_TARGETS:%=$(O)/fuzz/fuzz_%)
FUZZ_OBJS := $(API_PURE:%=$(O)/fuzz/api/%.o)
FUZZ_LIB := $(O)/fuzz/libspool.a

$(O)/fuzz/api/%.o: api/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

$(O)/fuzz/common/%.o: common/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

$(O)/fuzz/gen/lua_scripts.o: $(O)/gen/lua_scripts.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@

$(FUZZ_LIB): $(COMMON_SRCS:%.c=$(O)/fuzz/%.o) $(O)/fuzz/gen/lua_scripts.o
	@rm -f $@
	ar rcs $@ $^

$(O)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_OBJS) $(FUZZ_LIB)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -MMD -MP -MF $@.d -MT $@ $< $(FUZZ_OBJS) $(FUZZ_LIB) \
		$(call pc_libs,hiredis jansson libcurl yajl libcrypto libxml-2.0 glib-2.0) -lm -o $@

# Schedules: cron.c and GLib's time zones.
FUZZ_BINS += $(O)/fuzz/fuzz_cron
$(O)/fuzz/fuzz_cron: tests/fuzz/fuzz_cron.c $(O)/fuzz/api/cron.o $(FUZZ_LIB)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -MMD -MP -MF $@.d -MT $@ $< $(O)/fuzz/api/cron.o \
		$(FUZZ_LIB) $(call pc_libs,glib-2.0 jansson libcurl libcrypto libxml-2.0) -lm -o $@

fuzz: $(FUZZ_BINS)
# make test runs every target briefly (tests/integration/test_fuzz.py).
TEST_BINS += $(FUZZ_BINS)

# ---- benchmark -----------------------------------------------------------------------
.PHONY: bench-api bench-blob bench-sse
# make bench-api: spool-api beside Flask + Celery under gunicorn (sync and gthread
# workers), inline and dataset-file POSTs and a GET, about 4 minutes
# (tests/bench/bench_api.py; BENCH_REQUESTS=, BENCH_ROUNDS=, BENCH_API_SEARCH=1).
bench-api: $(BIN)/spool-api
	@SPOOL_BIN_DIR=$(abspath $(BIN)) python3 tests/bench/bench_api.py

# make bench-blob: 1 GiB into and out of an S3 store through spool-api, beside aws s3 cp
# (BENCH_BLOB_MIB=, BENCH_RUNS=).
bench-blob: test-build
	@SPOOL_BIN_DIR=$(abspath $(BIN)) python3 tests/bench/bench_blob.py


# A worker the integration tests drive over stdin (built with the tests, not installed).
API_TEST_WORKER := $(O)/api/api-test-worker
TEST_BINS += $(API_TEST_WORKER)
$(API_TEST_WORKER): $(O)/api/tools/test_worker.o $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(COMMON_LIBS)

# Files spool-api serves from memory (assets.h): the OpenAPI description and its page,
# written into C at build time like the Lua scripts (no file is read at run time).
API_ASSETS := api_asset_openapi=api/openapi.json api_asset_docs=api/openapi.html
$(O)/gen/api_assets.c: api/openapi.json api/openapi.html scripts/embed-text.sh
	@mkdir -p $(dir $@)
	sh scripts/embed-text.sh $@ $(API_ASSETS)
$(O)/gen/api_assets.o: $(O)/gen/api_assets.c
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

# make openapi-docs: api/openapi.html again from api/openapi.json (committed; the
# test_openapi suite fails while it is out of date).
.PHONY: openapi-docs
openapi-docs:
	python3 scripts/openapi-html.py api/openapi.json api/openapi.html

# make bench-sse: 500 live event streams on one spool-api, its RSS, and the delay from
# a state change (XADD to the event stream) to each client, p50/p99 against 50 ms
# (tests/bench/bench_sse.py; BENCH_SSE_STREAMS=, BENCH_SSE_EVENTS=, ...).
bench-sse: $(BIN)/spool-api
	@SPOOL_BIN_DIR=$(abspath $(BIN)) python3 tests/bench/bench_sse.py
