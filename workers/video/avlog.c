/* avlog.c - libav's messages and errors for the transcoder (transcode_int.h): libav's
 * log goes to sp_log, named after the job the calling thread works for, and libav's
 * error codes become spool's (SP_EINVAL for a damaged input, SP_EIO for a failed read
 * or write, SP_ECANCELLED, SP_ENOMEM) with the most specific message libav gave. */
#include "transcode_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <libavutil/log.h>

#define SP__LOG_LINES_PER_CALL 20

/* libav logs through one process-wide callback. Each public call marks its thread
 * with the job's log context, so a message printed on that thread names the job, and
 * keeps the last error message to make our own errors specific ("moov atom not
 * found", "partial file"). Codec worker threads log without a job. */

static _Thread_local struct {
    bool active;
    const sp_logctx *log;
    int lines;
    char last[160];
} sp__tl;

static void sp__av_log(void *avcl, int level, const char *fmt, va_list vl)
{
    if (level > AV_LOG_WARNING && !(level <= AV_LOG_INFO && sp_log_enabled(SP_LOG_DEBUG)))
        return;
    char line[512];
    int prefix = 1;
    av_log_format_line2(avcl, level, fmt, vl, line, sizeof line, &prefix);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    if (n == 0)
        return;
    if (n > 240) /* e.g. "Format not on whitelist" followed by 300 names */
        memcpy(line + 237, "...", 4);
    if (level <= AV_LOG_ERROR && sp__tl.active) {
        /* Keep the message without its "[demuxer @ 0x...] " prefix. */
        const char *msg = line;
        if (msg[0] == '[') {
            const char *end = strstr(msg, "] ");
            if (end)
                msg = end + 2;
        }
        snprintf(sp__tl.last, sizeof sp__tl.last, "%.*s", (int)sizeof sp__tl.last - 1, msg);
    }
    if (sp__tl.lines >= SP__LOG_LINES_PER_CALL)
        return;
    sp__tl.lines++;
    int our = level <= AV_LOG_ERROR ? SP_LOG_WARN : SP_LOG_DEBUG;
    sp_log(our, sp__tl.active ? sp__tl.log : NULL, "libav: %s%s", line,
           sp__tl.lines == SP__LOG_LINES_PER_CALL ? " (further libav messages suppressed)" : "");
}

void sp_video_global_init(void)
{
    av_log_set_callback(sp__av_log);
}

void sp__video_scope_begin(const sp_video_opts *o)
{
    sp__tl.active = true;
    sp__tl.log = o ? o->log : NULL;
    sp__tl.lines = 0;
    sp__tl.last[0] = '\0';
}

void sp__video_scope_end(void)
{
    sp__tl.active = false;
    sp__tl.log = NULL;
}

/* The last libav error message on this thread, or libav's text for averr. */
const char *sp__video_why(int averr, char *buf, size_t n)
{
    if (sp__tl.last[0])
        return sp__tl.last;
    av_strerror(averr, buf, n);
    return buf;
}

void sp__video_why_reset(void)
{
    sp__tl.last[0] = '\0';
}

static bool sp__is_errno(int averr, int e)
{
    return averr == AVERROR(e);
}

/* Map a libav error met while reading the input to our codes. */
int sp__video_read_error(int averr, double at, sp_err *err)
{
    char b[AV_ERROR_MAX_STRING_SIZE];
    if (averr == AVERROR_EXIT)
        return sp_err_set(err, SP_ECANCELLED, "stopped");
    if (sp__is_errno(averr, ENOMEM))
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    if (averr == AVERROR_INVALIDDATA || averr == AVERROR_EOF || averr == AVERROR_BUG ||
        averr == AVERROR_PATCHWELCOME)
        return sp_err_set(err, SP_EINVAL, "input file is truncated or corrupt at %.1f s (%s)",
                          at, sp__video_why(averr, b, sizeof b));
    return sp_err_set(err, SP_EIO, "reading the input failed at %.1f s: %s", at,
                      sp__video_why(averr, b, sizeof b));
}

/* Map a libav error met while writing the output. */
int sp__video_write_error(int averr, const char *what, sp_err *err)
{
    char b[AV_ERROR_MAX_STRING_SIZE];
    if (averr == AVERROR_EXIT)
        return sp_err_set(err, SP_ECANCELLED, "stopped");
    if (sp__is_errno(averr, ENOMEM))
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    av_strerror(averr, b, sizeof b);
    return sp_err_set(err, SP_EIO, "%s failed: %s", what, b);
}

/* Map a libav error met while decoding. */
int sp__video_decode_failed(int averr, double at, sp_err *err)
{
    char b[AV_ERROR_MAX_STRING_SIZE];
    if (averr == AVERROR(ENOMEM))
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    return sp_err_set(err, SP_EINVAL, "input file is corrupt at %.1f s: it cannot be decoded (%s)",
                      at, sp__video_why(averr, b, sizeof b));
}

