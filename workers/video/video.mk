# workers/video: spool-video, the transcoding worker (FFmpeg's libraries), its unit
# tests, a tool that drives the transcoder directly, and `make bench-video`.

VIDEO_PKGS := libavformat libavcodec libavfilter libswresample libswscale libavutil
VIDEO_CFLAGS = $(call pc_cflags,$(VIDEO_PKGS) jansson)
VIDEO_LIBS = $(call pc_libs,$(VIDEO_PKGS))
# The transcoder alone (no worker runtime): what the unit tests and the tool link.
VIDEO_CORE_OBJS := $(addprefix $(O)/workers/video/,\
	avlog.o probe.o picture.o filter.o encode.o mux.o transcode.o ladder.o hls.o sprite.o \
	poster.o)

VIDEO_OBJS := $(VIDEO_CORE_OBJS) $(O)/workers/video/job.o $(O)/workers/video/publish.o \
	$(O)/workers/video/main.o

$(O)/workers/video/%.o: MODCFLAGS = $(VIDEO_CFLAGS)

ALL_BINS += $(BIN)/spool-video
$(BIN)/spool-video: $(VIDEO_OBJS) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(VIDEO_OBJS) $(VIDEO_LIBS) $(COMMON_LIBS)

# tests/unit/test_video.c links the transcoder.
$(O)/tests/unit/test_video.o: MODCFLAGS = $(call pc_cflags,cmocka hiredis jansson $(VIDEO_PKGS)) -Iworkers/video
test_video_OBJS := $(VIDEO_CORE_OBJS)
test_video_LIBS = $(VIDEO_LIBS)
# tests/unit/test_video_sprite.c: the ladder's sprite sheet (sprite.c) on its own.
$(O)/tests/unit/test_video_sprite.o: MODCFLAGS = $(call pc_cflags,cmocka jansson $(VIDEO_PKGS)) -Iworkers/video
test_video_sprite_OBJS := $(VIDEO_CORE_OBJS)
test_video_sprite_LIBS = $(VIDEO_LIBS)

# bench_video_tool: probe / transcode / poster from the command line, for the benchmark
# and for profiling (perf, callgrind) without Redis.
VIDEO_TOOL := $(O)/tests/bench_video_tool
TEST_BINS += $(VIDEO_TOOL)
$(O)/tests/bench/bench_video_tool.o: MODCFLAGS = $(VIDEO_CFLAGS) -Iworkers/video
$(VIDEO_TOOL): $(O)/tests/bench/bench_video_tool.o $(VIDEO_CORE_OBJS) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(VIDEO_CORE_OBJS) $(VIDEO_LIBS) $(COMMON_LIBS)

.PHONY: bench-video
bench-video: $(ALL_BINS) $(VIDEO_TOOL)
	@SPOOL_BIN_DIR=$(abspath $(BIN)) SPOOL_TEST_BIN_DIR=$(abspath $(O)/tests) \
		python3 tests/bench/bench_video.py
	@SPOOL_BIN_DIR=$(abspath $(BIN)) SPOOL_TEST_BIN_DIR=$(abspath $(O)/tests) \
		python3 tests/bench/bench_video_ladder.py
