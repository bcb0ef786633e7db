# tests/: cmocka unit tests (one binary per tests/unit/test_*.c) linked with the
# harness; integration tests in tests/integration run the real binaries (python3).

TEST_SUPPORT_OBJS := $(O)/tests/support/harness.o
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(O)/tests/%)
TEST_BINS += $(UNIT_BINS)

$(O)/tests/support/%.o $(O)/tests/unit/%.o: MODCFLAGS = -Itests/support $(call pc_cflags,cmocka hiredis jansson)

# Unit tests may also link a module's objects: set <test>_OBJS and <test>_LIBS in its .mk.
.SECONDEXPANSION:
$(O)/tests/test_%: $(O)/tests/unit/test_%.o $(TEST_SUPPORT_OBJS) $$(test_$$*_OBJS) $(COMMON_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(TEST_SUPPORT_OBJS) $(test_$*_OBJS) $(test_$*_LIBS) \
		$(COMMON_LIBS) $(call pc_libs,cmocka)
