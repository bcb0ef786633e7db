# spool: a job-processing service for video and document work.
#
#   make            build bin/spool-api, bin/spool-video, bin/spool-pdf, bin/spoolctl
#   make test       install what is missing, build, run every test ("N passed, N failed")
#   make sanitize   the same tests, built with ASan and UBSan
#   make run        a private Redis, the API and both workers, logs in one stream
#   make soak       chaos run: 500 jobs while workers, the API and Redis are killed (-9);
#                   ends "soak: accepted N, succeeded N, failed N, lost N, run twice N...";
#                   SOAK_JOBS=, SOAK_SECONDS=, ... (tests/soak/soak.py lists them)
#   make bench      every benchmark (bench-queue, bench-api, bench-video, bench-pdf,
#                   bench-blob, bench-video-input, bench-sse)
#   make fuzz       build the libFuzzer targets
#   make fuzz-run   run each libFuzzer target for SECS seconds (tests/tests.mk)
#   make test-compose   the images built, docker-compose up with the object store and
#                   scaled workers, mixed jobs, a worker container killed mid-job (root,
#                   a Docker engine; not part of make test)
#
# Objects go to $(O), binaries to $(BIN). `make SAN=1` builds the sanitizer flavour
# into build/san.

VERSION := 0.1.0
SAN ?=
ifeq ($(SAN),1)
O ?= build/san
BIN ?= build/san/bin
SANFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
OPT ?= -O1
else
O ?= build/release
BIN ?= bin
SANFLAGS :=
OPT ?= -O2
endif

CC ?= cc
PKG_CONFIG ?= pkg-config
WARN := -Wall -Wextra -Werror -Wformat=2 -Wvla -Wno-missing-field-initializers
CPPFLAGS += -D_GNU_SOURCE -DSPOOL_VERSION='"$(VERSION)"' -Icommon/include -Icommon
CFLAGS ?= $(OPT) -g
CFLAGS += -std=c11 $(WARN) -pthread $(SANFLAGS)
LDFLAGS += -pthread $(SANFLAGS)

# pkg-config is asked lazily (recursive variables), after `make deps` has run.
pc_cflags = $(shell $(PKG_CONFIG) --cflags $(1))
pc_libs = $(shell $(PKG_CONFIG) --libs $(1))

.DEFAULT_GOAL := all
.PHONY: all deps check-deps test test-build sanitize run demo bench fuzz clean
.DELETE_ON_ERROR:
.SECONDARY:

# Each part adds its binaries to ALL_BINS and its test binaries to TEST_BINS.
ALL_BINS :=
TEST_BINS :=

include common/common.mk
-include api/api.mk
-include workers/video/video.mk
-include workers/pdf/pdf.mk
-include cli/cli.mk
include tests/tests.mk
-include deploy/deploy.mk

all: $(ALL_BINS)

# Every benchmark, one after the other (each prints its own comparison).
bench: bench-queue bench-api bench-video bench-pdf bench-blob bench-video-input bench-sse

deps:
	@sh scripts/deps.sh

# Every header and library the C code uses comes from a package in deps/debian.txt.
check-deps:
	@bash scripts/check-deps.sh

$(O)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(MODCFLAGS) -MMD -MP -c $< -o $@

test-build: $(ALL_BINS) $(TEST_BINS)

# `make test` installs packages first and checks that deps/debian.txt covers what the C
# code includes and links, then builds in a fresh make so pkg-config sees them.
test:
	@sh scripts/deps.sh
	@bash scripts/check-deps.sh
	@$(MAKE) --no-print-directory test-build
	@SPOOL_BIN_DIR=$(abspath $(BIN)) SPOOL_TEST_BIN_DIR=$(abspath $(O)/tests) \
		python3 tests/run.py $(TESTS)

sanitize:
	@sh scripts/deps.sh
	@bash scripts/check-deps.sh
	@$(MAKE) --no-print-directory SAN=1 test-build
	@SPOOL_BIN_DIR=$(abspath build/san/bin) SPOOL_TEST_BIN_DIR=$(abspath build/san/tests) \
		SPOOL_SANITIZED=1 ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		python3 tests/run.py $(TESTS)

# The Sentinel suite (failovers under a stream of jobs: kill -9 and SIGSTOP of the
# master) three times in a row; make test runs it once.
.PHONY: test-failover
test-failover:
	@sh scripts/deps.sh
	@$(MAKE) --no-print-directory test-build
	@for i in 1 2 3; do SPOOL_BIN_DIR=$(abspath $(BIN)) SPOOL_TEST_BIN_DIR=$(abspath $(O)/tests) \
		python3 tests/run.py test_sentinel || exit 1; done

# docker-compose.yml + docker-compose.s3.yml end to end (tests/compose/test_compose.py):
# scripts/base-images.sh (the Docker engine and the Debian base images, made with
# debootstrap when no registry has them), docker-compose build, up with 3 video and 2
# PDF workers and no shared volume, mixed jobs through the published API port, a video
# worker's container killed mid-job, every job succeeded once, outputs downloaded,
# everything torn down; then docker-compose.yml alone, briefly. Needs root; not part of
# make test (6 to 8 minutes the first time here, 1.5 to 2.5 once the images are cached:
# README.md, "With Docker Compose and Kubernetes").
.PHONY: test-compose
test-compose:
	@sh scripts/deps.sh
	@python3 tests/compose/test_compose.py

# The chaos run (tests/soak/soak.py; its settings are SOAK_* variables: make soak SOAK_JOBS=1000).
.PHONY: soak
soak:
	@sh scripts/deps.sh
	@$(MAKE) --no-print-directory all
	@SPOOL_BIN_DIR=$(abspath $(BIN)) python3 tests/soak/soak.py

clean:
	rm -rf build bin

-include $(shell find $(O) -name '*.d' 2>/dev/null)
