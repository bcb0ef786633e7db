/* scripts.c - the table of queue scripts (sources generated from common/lua). */
#include "scripts.h"

extern const char sp_lua_enqueue[], sp_lua_step[], sp_lua_renew[], sp_lua_annotate[],
    sp_lua_cancel[], sp_lua_requeue[], sp_lua_scan[], sp_lua_promote[], sp_lua_expire[],
    sp_lua_worker_beat[], sp_lua_worker_leave[], sp_lua_watch[], sp_lua_pause[],
    sp_lua_purge[];

static const sp_script sp__table[SP_LUA_COUNT] = {
    [SP_LUA_ENQUEUE] = {"enqueue", sp_lua_enqueue},
    [SP_LUA_STEP] = {"step", sp_lua_step},
    [SP_LUA_RENEW] = {"renew", sp_lua_renew},
    [SP_LUA_ANNOTATE] = {"annotate", sp_lua_annotate},
    [SP_LUA_CANCEL] = {"cancel", sp_lua_cancel},
    [SP_LUA_REQUEUE] = {"requeue", sp_lua_requeue},
    [SP_LUA_SCAN] = {"scan", sp_lua_scan},
    [SP_LUA_PROMOTE] = {"promote", sp_lua_promote},
    [SP_LUA_EXPIRE] = {"expire", sp_lua_expire},
    [SP_LUA_WORKER_BEAT] = {"worker_beat", sp_lua_worker_beat},
    [SP_LUA_WORKER_LEAVE] = {"worker_leave", sp_lua_worker_leave},
    [SP_LUA_WATCH] = {"watch", sp_lua_watch},
    [SP_LUA_PAUSE] = {"pause", sp_lua_pause},
    [SP_LUA_PURGE] = {"purge", sp_lua_purge},
};

const sp_script *const sp__scripts[SP_LUA_COUNT] = {
    &sp__table[0], &sp__table[1], &sp__table[2], &sp__table[3], &sp__table[4],
    &sp__table[5], &sp__table[6], &sp__table[7], &sp__table[8], &sp__table[9],
    &sp__table[10], &sp__table[11], &sp__table[12], &sp__table[13],
};

sp_redis *sp__redis_open(const char *url, sp_err *err)
{
    return sp_redis_new(url, sp__scripts, SP_LUA_COUNT, 5000, err);
}
