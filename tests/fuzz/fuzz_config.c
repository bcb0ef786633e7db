/* fuzz_config.c - what operators write: option values (integers, sizes, durations,
 * booleans, log settings) from the environment or the command line, whole command lines
 * through the option table, the routing and retry tables (SPOOL_ROUTES, SPOOL_RETRY),
 * queue names and Redis URLs. The first byte picks the parser; the rest is its text
 * (command lines and table pairs split at newlines). Whatever a parser accepts must be
 * within the bounds it promises. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_input.h"
#include "redis.h"
#include "spool/config.h"
#include "spool/util.h"

#define MAX_ARGS 16

static void check_scaled(int rc, int64_t v)
{
    if (rc == 0 && v < 0)
        abort();
}

static void numbers(const char *s)
{
    int64_t v = -1;
    if (sp_parse_i64(s, -1000, 1000, &v) == 0 && (v < -1000 || v > 1000))
        abort();
    if (sp_parse_i64(s, INT64_MIN, INT64_MAX, &v) == 0) {
        char again[32];
        int64_t w;
        snprintf(again, sizeof again, "%lld", (long long)v);
        if (sp_parse_i64(again, INT64_MIN, INT64_MAX, &w) != 0 || w != v)
            abort();
    }
    v = -1;
    check_scaled(sp_parse_size(s, &v), v);
    v = -1;
    check_scaled(sp_parse_duration_ms(s, &v), v);
}

static void routes(char *s)
{
    char *nl = strchr(s, '\n');
    const char *retry = "";
    if (nl) {
        *nl = '\0';
        retry = nl + 1;
    }
    sp_routes r;
    sp_err err;
    memset(&r, 0xAB, sizeof r);
    if (sp_routes_parse(&r, s, retry, &err) < 0) {
        if (err.msg[0] == '\0')
            abort();
        return;
    }
    if (r.nroute > SP_MAX_ROUTES || r.nretry > SP_MAX_ROUTES)
        abort();
    for (size_t i = 0; i < r.nroute; i++)
        if (!sp_queue_name_valid(r.route[i].queue) || !r.route[i].pattern[0])
            abort();
    for (size_t i = 0; i < r.nretry; i++) {
        const sp_retry_policy *p = &r.retry[i];
        if (p->max_attempts < 1 || p->max_attempts > 100 || p->base_ms < 1 ||
            p->cap_ms < p->base_ms)
            abort();
    }
    const char *types[] = {"video.transcode", "pdf.export", "", s, retry};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        const char *q = sp_routes_queue(&r, types[i]);
        if (q && !sp_queue_name_valid(q))
            abort();
        sp_retry_policy p = sp_routes_retry(&r, types[i]);
        if (p.max_attempts < 1 || p.base_ms < 1 || p.cap_ms < p.base_ms)
            abort();
    }
}

static void redis_url(const char *s)
{
    sp_redis_url u;
    sp_err err;
    if (sp_redis_url_parse(s, &u, &err) < 0) {
        if (err.msg[0] == '\0')
            abort();
        return;
    }
    bool unix_socket = u.unix_path[0] != '\0';
    if (unix_socket ? u.unix_path[0] != '/' : u.host[0] == '\0')
        abort();
    if (u.port < 1 || u.port > 65535 || u.db < 0 || u.db > 1000)
        abort();
    if (!memchr(u.host, 0, sizeof u.host) || !memchr(u.unix_path, 0, sizeof u.unix_path) ||
        !memchr(u.user, 0, sizeof u.user) || !memchr(u.password, 0, sizeof u.password))
        abort();
}

/* A command line through a table with one option of every type. */
static void command_line(char *s)
{
    char *argv[MAX_ARGS + 1] = {"spool-fuzz"};
    int argc = 1;
    for (char *p = s; p && argc < MAX_ARGS; argc++) {
        argv[argc] = p;
        p = strchr(p, '\n');
        if (p)
            *p++ = '\0';
        /* --help and --version print to stdout and end parsing: nothing to check */
        if (!strcmp(argv[argc], "--help") || !strcmp(argv[argc], "-h") ||
            !strcmp(argv[argc], "--version"))
            return;
    }
    char *str = NULL;
    int64_t num = -5, size = -5, dur = -5;
    int flag = -5, level = -5, format = -5;
    sp_option opts[] = {
        {"name", "SPOOL_FUZZ_NAME", SP_OPT_STR, &str, "x", "a string", 0, 0},
        {"count", "SPOOL_FUZZ_COUNT", SP_OPT_INT, &num, "1", "an integer", 1, 64},
        {"max-bytes", NULL, SP_OPT_SIZE, &size, "1M", "a size", 0, INT64_C(1) << 40},
        {"timeout", NULL, SP_OPT_DURATION, &dur, "30s", "a duration", 1, 86400000},
        {"flag", NULL, SP_OPT_BOOL, &flag, "false", "a boolean", 0, 0},
        {"log-level", NULL, SP_OPT_LOGLEVEL, &level, "info", "a level", 0, 0},
        {"log-format", NULL, SP_OPT_LOGFORMAT, &format, "text", "a format", 0, 0},
    };
    size_t n = sizeof opts / sizeof opts[0];
    sp_err err;
    int rc = sp_options_parse("spool-fuzz", "fuzzing", opts, n, argc, argv, &err);
    if (rc < 0 && err.msg[0] == '\0')
        abort();
    if (rc == 0 && (str == NULL || num < 1 || num > 64 || size < 0 || size > INT64_C(1) << 40 ||
                    dur < 1 || dur > 86400000 || (flag != 0 && flag != 1) || level < 0 ||
                    format < 0))
        abort();
    sp_options_free(opts, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4096)
        return 0;
    char *s = fuzz_text_after_selector(data, size);
    switch (data[0] % 5) {
    case 0:
        numbers(s);
        break;
    case 1:
        routes(s);
        break;
    case 2:
        redis_url(s);
        break;
    case 3:
        command_line(s);
        break;
    default:
        (void)sp_queue_name_valid(s);
        break;
    }
    free(s);
    return 0;
}
