/* scripts.h - the queue's Lua scripts, embedded from common/lua (internal). */
#ifndef SPOOL_SCRIPTS_H
#define SPOOL_SCRIPTS_H

#include "redis.h"

enum sp_lua {
    SP_LUA_ENQUEUE,
    SP_LUA_STEP,
    SP_LUA_RENEW,
    SP_LUA_ANNOTATE,
    SP_LUA_CANCEL,
    SP_LUA_REQUEUE,
    SP_LUA_SCAN,
    SP_LUA_PROMOTE,
    SP_LUA_EXPIRE,
    SP_LUA_WORKER_BEAT,
    SP_LUA_WORKER_LEAVE,
    SP_LUA_WATCH,
    SP_LUA_PURGE,
    SP_LUA_PAUSE,
    SP_LUA_COUNT
};

extern const sp_script *const sp__scripts[SP_LUA_COUNT];

/* Open a Redis handle that has every queue script. */
sp_redis *sp__redis_open(const char *url, sp_err *err);

#endif
