# cli/: spoolctl, the command-line client over the HTTP API (libcurl, jansson), and its
# unit tests (tests/unit/test_spoolctl.c: options, output, exit codes, URL escaping).

CLI_SRCS := $(filter-out cli/main.c,$(wildcard cli/*.c))
CLI_OBJS := $(CLI_SRCS:%.c=$(O)/%.o)
CLI_PKGS := libcurl jansson

ALL_BINS += $(BIN)/spoolctl

$(O)/cli/%.o: MODCFLAGS = $(call pc_cflags,$(CLI_PKGS))

$(BIN)/spoolctl: $(O)/cli/main.o $(CLI_OBJS) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(O)/cli/main.o $(CLI_OBJS) $(COMMON_LIBS) $(call pc_libs,$(CLI_PKGS))

$(O)/tests/unit/test_spoolctl.o: MODCFLAGS = -Itests/support $(call pc_cflags,cmocka hiredis $(CLI_PKGS)) -Icli
test_spoolctl_OBJS := $(CLI_OBJS)
test_spoolctl_LIBS = $(call pc_libs,$(CLI_PKGS))
