# common/: libspool.a, the library the API and the workers link.

COMMON_SRCS := $(wildcard common/*.c)
COMMON_LUA_LIB := common/lua/lib.lua
COMMON_LUA := $(filter-out $(COMMON_LUA_LIB),$(sort $(wildcard common/lua/*.lua)))
COMMON_OBJS := $(COMMON_SRCS:%.c=$(O)/%.o) $(O)/gen/lua_scripts.o
COMMON_LIB := $(O)/libspool.a
COMMON_PKGS := hiredis jansson libcurl libcrypto libxml-2.0
COMMON_LIBS = $(COMMON_LIB) $(call pc_libs,$(COMMON_PKGS)) -lm

$(O)/common/%.o: MODCFLAGS = $(call pc_cflags,$(COMMON_PKGS))

$(O)/gen/lua_scripts.c: $(COMMON_LUA_LIB) $(COMMON_LUA) scripts/embed-lua.sh
	@mkdir -p $(dir $@)
	sh scripts/embed-lua.sh $@ $(COMMON_LUA_LIB) $(COMMON_LUA)

$(O)/gen/lua_scripts.o: $(O)/gen/lua_scripts.c
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(COMMON_LIB): $(COMMON_OBJS)
	@rm -f $@
	ar rcs $@ $^
