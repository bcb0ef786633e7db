# workers/pdf: spool-pdf, the PDF export worker (libharu, libcsv, jansson, zlib).
#
#   make bench-pdf   10k, 100k and 1M rows x 8 columns: spool-pdf against ReportLab
#   make fuzz        also builds fuzz_pdf_dataset and fuzz_pdf_render (libFuzzer)

PDF_RENDER_MODULES := render pdfheap fonts layout draw pdfout bidi
PDF_DATASET_MODULES := dataset dataset_csv dataset_json
PDF_MODULES := text $(PDF_DATASET_MODULES) $(PDF_RENDER_MODULES) export
PDF_MOD_OBJS := $(PDF_MODULES:%=$(O)/workers/pdf/%.o)
# libharu and libcsv ship no pkg-config files on Debian 12.
PDF_LIBS = -lhpdf -lcsv -lz -lm $(call pc_libs,fribidi)

$(O)/workers/pdf/%.o: MODCFLAGS = $(call pc_cflags,jansson zlib fribidi)

ALL_BINS += $(BIN)/spool-pdf
$(BIN)/spool-pdf: $(PDF_MOD_OBJS) $(O)/workers/pdf/job.o $(O)/workers/pdf/main.o $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(PDF_LIBS) $(COMMON_LIBS)

# Unit tests: tests/unit/test_pdf_*.c
$(O)/tests/unit/test_pdf%.o: MODCFLAGS = $(call pc_cflags,cmocka hiredis jansson) -Iworkers/pdf
test_pdf_text_OBJS := $(O)/workers/pdf/text.o
test_pdf_dataset_OBJS := $(O)/workers/pdf/text.o $(PDF_DATASET_MODULES:%=$(O)/workers/pdf/%.o)
test_pdf_dataset_LIBS = $(PDF_LIBS)
test_pdf_render_OBJS := $(PDF_MOD_OBJS)
test_pdf_render_LIBS = $(PDF_LIBS)

# The benchmark driver: the export pipeline on a file, without Redis.
PDF_BENCH_DRIVER := $(O)/tests/bench/bench_pdf_driver
$(O)/tests/bench/bench_pdf%.o: MODCFLAGS = $(call pc_cflags,jansson) -Iworkers/pdf
$(PDF_BENCH_DRIVER): $(O)/tests/bench/bench_pdf_driver.o $(PDF_MOD_OBJS) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(PDF_LIBS) $(COMMON_LIBS)

# pdfq: the integration tests' helper (blob store and queue through libspool).
PDF_PDFQ := $(O)/tests/pdfq
TEST_BINS += $(PDF_PDFQ)
$(O)/workers/pdf/tools/%.o: MODCFLAGS = $(call pc_cflags,hiredis jansson)
$(PDF_PDFQ): $(O)/workers/pdf/tools/pdfq.o $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(COMMON_LIBS)

# make bench-pdf: spool-pdf against ReportLab (hand-drawn canvas at 10k, 100k and 1M rows,
# LongTable at 10k and 20k); prints wall, CPU, own peak RSS, file size and the ratios.
.PHONY: bench-pdf
bench-pdf:
	@sh scripts/deps.sh
	@$(MAKE) --no-print-directory $(PDF_BENCH_DRIVER) $(BIN)/spool-pdf $(PDF_PDFQ)
	SPOOL_BIN_DIR=$(abspath $(BIN)) SPOOL_TEST_BIN_DIR=$(abspath $(O)/tests) \
		/usr/bin/python3 tests/bench/bench_pdf.py $(abspath $(PDF_BENCH_DRIVER))

# make fuzz: libFuzzer targets (FUZZ_CC and FUZZ_SAN from api/api.mk) for the dataset
# reader with the cell formats, for cell layout and drawing through libharu, and for the
# whole export (params, dataset, PDF). Seed corpora: tests/fuzz/corpus/pdf_*.
PDF_FUZZ_COMMON := common/alloc.c common/buf.c common/err.c common/utf8.c common/util.c
PDF_FUZZ_FLAGS = -g -O1 -std=c11 -fsanitize=fuzzer $(FUZZ_SAN) -D_GNU_SOURCE \
	-Icommon/include -Iworkers/pdf $(call pc_cflags,jansson fribidi)
PDF_FUZZ_BINS := $(O)/fuzz/fuzz_pdf_dataset $(O)/fuzz/fuzz_pdf_render $(O)/fuzz/fuzz_pdf_export
fuzz: $(PDF_FUZZ_BINS)
TEST_BINS += $(PDF_FUZZ_BINS)
$(O)/fuzz/fuzz_pdf_%: workers/pdf/fuzz/fuzz_%.c $(PDF_FUZZ_COMMON) \
		$(wildcard workers/pdf/*.h common/include/spool/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(PDF_FUZZ_FLAGS) $(filter %.c,$^) -o $@ $(PDF_LIBS) $(call pc_libs,jansson)
$(O)/fuzz/fuzz_pdf_dataset: $(PDF_DATASET_MODULES:%=workers/pdf/%.c) workers/pdf/text.c
$(O)/fuzz/fuzz_pdf_render: $(PDF_RENDER_MODULES:%=workers/pdf/%.c) workers/pdf/text.c
$(O)/fuzz/fuzz_pdf_export: $(PDF_MODULES:%=workers/pdf/%.c)
