# tests/: cmocka unit tests (one binary per tests/unit/test_*.c) linked with the
# harness; integration tests in tests/integration run the real binaries (python3).

TEST_SUPPORT_OBJS := $(O)/tests/support/harness.o
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(O)/tests/%)
TEST_BINS += $(UNIT_BINS)

$(O)/tests/support/%.o $(O)/tests/unit/%.o: MODCFLAGS = -Itests/support $(call pc_cflags,cmocka hiredis jansson)

# The queue suites share one fixture (their Redis, key prefixes, helpers): qfixture.h.
QFIXTURE_OBJS := $(O)/tests/support/qfixture.o
test_queue_OBJS := $(QFIXTURE_OBJS)
test_lease_OBJS := $(QFIXTURE_OBJS)
test_redis_OBJS := $(QFIXTURE_OBJS)
test_evstream_OBJS := $(QFIXTURE_OBJS)
test_queue_events_OBJS := $(QFIXTURE_OBJS)
test_schedule_OBJS := $(QFIXTURE_OBJS)

# Unit tests may also link a module's objects: set <test>_OBJS and <test>_LIBS in its .mk.
.SECONDEXPANSION:
$(O)/tests/test_%: $(O)/tests/unit/test_%.o $(TEST_SUPPORT_OBJS) $$(test_$$*_OBJS) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(TEST_SUPPORT_OBJS) $(test_$*_OBJS) $(test_$*_LIBS) \
		$(COMMON_LIBS) $(call pc_libs,cmocka)

# Benchmarks (make bench-queue; the other parts add their own bench-* targets).
BENCH_QUEUE := $(O)/tests/bench_queue
$(O)/tests/bench/bench_queue.o: MODCFLAGS = -Itests/support $(call pc_cflags,hiredis)
$(BENCH_QUEUE): $(O)/tests/bench/bench_queue.o $(TEST_SUPPORT_OBJS) $(COMMON_LIB)
	$(CC) $(LDFLAGS) -o $@ $< $(TEST_SUPPORT_OBJS) $(COMMON_LIBS)

# make bench-queue: spool, Celery (defaults; acks_late) and BullMQ side by side, three
# rounds (tests/bench/bench_queue.sh: JOBS=, RUNS=, CONSUMERS=, SAMPLES=). BullMQ comes
# from deps/npm (NPM_STAMP, below).
.PHONY: bench-queue
bench-queue:
	@sh scripts/deps.sh
	@$(MAKE) --no-print-directory $(BENCH_QUEUE)
	@sh tests/bench/bench_queue.sh $(abspath $(BENCH_QUEUE)) $(abspath $(NPM_DIR))

# Test tools: qtool (the queue from the command line), spool-test-worker (the worker
# runtime with a scriptable handler), s3presign (presigned S3 URLs, common/s3sign.c) and
# blobtool (the blob store from the command line). Integration tests find them in
# $(O)/tests.
TEST_TOOLS := $(O)/tests/qtool $(O)/tests/spool-test-worker $(O)/tests/s3presign \
	$(O)/tests/blobtool
TEST_BINS += $(TEST_TOOLS)
$(O)/tests/blobtool: $(O)/tests/support/blobtool.o $(COMMON_LIB)
	$(CC) $(LDFLAGS) -o $@ $< $(COMMON_LIBS)
$(O)/tests/qtool: $(O)/tests/support/qtool.o $(COMMON_LIB)
	$(CC) $(LDFLAGS) -o $@ $< $(COMMON_LIBS)
$(O)/tests/spool-test-worker: $(O)/tests/support/test_worker.o $(COMMON_LIB)
	$(CC) $(LDFLAGS) -o $@ $< $(COMMON_LIBS)
$(O)/tests/s3presign: $(O)/tests/support/s3presign.o $(COMMON_LIB)
	$(CC) $(LDFLAGS) -o $@ $< $(COMMON_LIBS)

# ---- fuzzing -------------------------------------------------------------------------
# The targets: api/api.mk (API parsers, config, job records), workers/pdf/pdf.mk (PDF
# worker) and here spoolctl's (its objects built by clang like the others'). Every target
# has a seed corpus in tests/fuzz/corpus/<name>; make test runs each briefly
# (test_fuzz). make fuzz-run SECS=N runs every target (or FUZZ="name ...") for N
# seconds, one after the other; make fuzz-merge minimises what the runs found into the
# seed corpora (tests/fuzz/fuzz.py says more).
FUZZ_CLI_OBJS := $(O)/fuzz/cli/opts.o $(O)/fuzz/cli/output.o
$(O)/fuzz/cli/%.o: cli/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Icli -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@
$(O)/fuzz/fuzz_cli: tests/fuzz/fuzz_cli.c $(FUZZ_CLI_OBJS) $(FUZZ_LIB)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Icli -fsanitize=fuzzer -MMD -MP -MF $@.d -MT $@ $< \
		$(FUZZ_CLI_OBJS) $(FUZZ_LIB) $(call pc_libs,hiredis jansson libcurl libcrypto libxml-2.0) -lm -o $@
fuzz: $(O)/fuzz/fuzz_cli
TEST_BINS += $(O)/fuzz/fuzz_cli

SECS ?= 60
.PHONY: fuzz-run fuzz-merge
fuzz-run:
	@$(MAKE) --no-print-directory fuzz
	@python3 tests/fuzz/fuzz.py run --secs $(SECS) --bin-dir $(O)/fuzz $(FUZZ)
fuzz-merge:
	@$(MAKE) --no-print-directory fuzz
	@python3 tests/fuzz/fuzz.py merge --bin-dir $(O)/fuzz $(FUZZ)

# fuzz_dataset_agree: the API's dataset checks against spool-pdf's reader (both halves
# of "a dataset the API accepts is not failed by the worker").
FUZZ_PDF_READER := $(O)/fuzz/workers/pdf/dataset.o $(O)/fuzz/workers/pdf/dataset_csv.o \
	$(O)/fuzz/workers/pdf/dataset_json.o
$(O)/fuzz/workers/pdf/%.o: workers/pdf/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Iworkers/pdf -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@
$(O)/fuzz/fuzz_dataset_agree: tests/fuzz/fuzz_dataset_agree.c $(FUZZ_OBJS) $(FUZZ_PDF_READER) \
		$(FUZZ_LIB)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -I. -fsanitize=fuzzer -MMD -MP -MF $@.d -MT $@ $< $(FUZZ_OBJS) \
		$(FUZZ_PDF_READER) $(FUZZ_LIB) $(call pc_libs,hiredis jansson libcurl yajl libcrypto libxml-2.0 glib-2.0) \
		-lcsv -lm -o $@
fuzz: $(O)/fuzz/fuzz_dataset_agree
TEST_BINS += $(O)/fuzz/fuzz_dataset_agree

# npm packages the tests run (deps/npm: s3rver, the S3 server behind
# tests/support/s3proxy.py; @redocly/cli, which lints api/openapi.json), installed with `npm ci` into build/npm whenever the lock
# file is newer than the stamp; the S3 test suites find them there (harness.S3).
NPM_DIR := build/npm
NPM_STAMP := $(NPM_DIR)/node_modules/.spool-installed
$(NPM_STAMP): deps/npm/package.json deps/npm/package-lock.json scripts/npm-deps.sh
	@sh scripts/npm-deps.sh $(abspath $(NPM_DIR))
test-build: $(NPM_STAMP)
bench-queue: $(NPM_STAMP)

# make bench-video-input: a video input read from the S3 store by a local copy or by
# ranged GETs, side by side (tests/bench/bench_video_input.py; BENCH_RUNS=,
# BENCH_VIDEO_INPUT_LATENCY_MS=, BENCH_VIDEO_INPUT_MBPS=). Needs s3rver, not the C build.
.PHONY: bench-video-input
bench-video-input: $(NPM_STAMP)
	@python3 tests/bench/bench_video_input.py
