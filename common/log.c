/* log.c - structured logging to stderr (see log.h). */
#include "spool/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "spool/buf.h"
#include "spool/err.h"
#include "spool/util.h"

static struct {
    char process[32];
    int level;
    int format;
} sp__log = {"spool", SP_LOG_INFO, SP_LOG_TEXT};

static const char *const sp__level_names[] = {"debug", "info", "warn", "error"};

void sp_log_init(const char *process, int level, int format)
{
    snprintf(sp__log.process, sizeof sp__log.process, "%s", process ? process : "spool");
    sp__log.level = level;
    sp__log.format = format;
}

int sp_log_parse_level(const char *s, int *level)
{
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, sp__level_names[i]) == 0) {
            *level = i;
            return 0;
        }
    }
    if (strcasecmp(s, "warning") == 0) {
        *level = SP_LOG_WARN;
        return 0;
    }
    return SP_EINVAL;
}

int sp_log_parse_format(const char *s, int *format)
{
    if (strcasecmp(s, "json") == 0)
        *format = SP_LOG_JSON;
    else if (strcasecmp(s, "text") == 0)
        *format = SP_LOG_TEXT;
    else
        return SP_EINVAL;
    return 0;
}

int sp_log_enabled(int level)
{
    return level >= sp__log.level;
}

static void sp__json_field(sp_buf *b, const char *key, const char *val)
{
    sp_buf_addf(b, ",\"%s\":\"", key);
    sp_buf_add_json_escaped(b, val, strlen(val));
    sp_buf_addc(b, '"');
}

void sp_log(int level, const sp_logctx *ctx, const char *fmt, ...)
{
    if (level < sp__log.level)
        return;
    if (level < SP_LOG_DEBUG || level > SP_LOG_ERROR)
        level = SP_LOG_ERROR;

    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    char when[SP_TIME_LEN];
    sp_format_time(sp_now_ms(), when);

    sp_buf b;
    sp_buf_init(&b, 8192);
    if (sp__log.format == SP_LOG_JSON) {
        sp_buf_addf(&b, "{\"time\":\"%s\",\"level\":\"%s\"", when, sp__level_names[level]);
        sp__json_field(&b, "process", sp__log.process);
        sp__json_field(&b, "msg", msg);
        if (ctx && ctx->job)
            sp__json_field(&b, "job", ctx->job);
        if (ctx && ctx->queue)
            sp__json_field(&b, "queue", ctx->queue);
        if (ctx && ctx->worker)
            sp__json_field(&b, "worker", ctx->worker);
        sp_buf_adds(&b, "}\n");
    } else {
        sp_buf_addf(&b, "%s %-5s %s: %s", when, sp__level_names[level], sp__log.process, msg);
        if (ctx && ctx->job)
            sp_buf_addf(&b, " job=%s", ctx->job);
        if (ctx && ctx->queue)
            sp_buf_addf(&b, " queue=%s", ctx->queue);
        if (ctx && ctx->worker)
            sp_buf_addf(&b, " worker=%s", ctx->worker);
        sp_buf_addc(&b, '\n');
    }
    if (b.len > 0) {
        /* One write per line keeps lines from different threads whole. */
        ssize_t off = 0;
        while ((size_t)off < b.len) {
            ssize_t n = write(STDERR_FILENO, b.data + off, b.len - (size_t)off);
            if (n <= 0)
                break;
            off += n;
        }
    }
    sp_buf_free(&b);
}
