/* err.c - error codes, their texts, and the sp_err helpers. */
#include "spool/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    const char *text;
} sp__codes[] = {
    [0] = {"ok", "success"},
    [1] = {"out_of_memory", "out of memory"},
    [2] = {"invalid", "invalid argument"},
    [3] = {"io_error", "input/output error"},
    [4] = {"redis_unavailable", "Redis unavailable"},
    [5] = {"protocol_error", "unexpected reply"},
    [6] = {"not_found", "not found"},
    [7] = {"wrong_state", "not in the required state"},
    [8] = {"queue_full", "queue is full"},
    [9] = {"lease_lost", "lease lost to another attempt"},
    [10] = {"cancelled", "cancelled"},
    [11] = {"timed_out", "timed out"},
    [12] = {"too_large", "size limit exceeded"},
    [13] = {"conflict", "conflicting request"},
    [14] = {"unsupported", "unsupported input"},
    [15] = {"fetch_failed", "fetch failed"},
    [16] = {"shutting_down", "shutting down"},
    [17] = {"unreachable", "destination unreachable or not allowed"},
    [18] = {"crypto_error", "cryptographic library failure"},
};

static int sp__index(int code)
{
    if (code > 0 || code < SP_ECODE_MIN)
        return -1;
    return -code;
}

const char *sp_strerror(int code)
{
    int i = sp__index(code);
    return i < 0 ? "unknown error" : sp__codes[i].text;
}

const char *sp_code_name(int code)
{
    int i = sp__index(code);
    return i < 0 ? "internal_error" : sp__codes[i].name;
}

bool sp_code_transient(int code)
{
    switch (code) {
    case SP_ENOMEM:
    case SP_EIO:
    case SP_EREDIS:
    case SP_ETIMEDOUT:
    case SP_EFETCH:
    case SP_ESHUTDOWN:
    case SP_EUNREACHABLE:
        return true;
    default:
        return false;
    }
}

int sp_err_set(sp_err *err, int code, const char *fmt, ...)
{
    if (err == NULL)
        return code;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return code;
}

void sp_err_clear(sp_err *err)
{
    if (err == NULL)
        return;
    err->code = SP_OK;
    err->msg[0] = '\0';
}

void sp_err_prefix(sp_err *err, const char *fmt, ...)
{
    if (err == NULL)
        return;
    char prefix[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char old[sizeof err->msg];
    memcpy(old, err->msg, sizeof old);
    size_t n = strlen(prefix);
    if (n > sizeof err->msg - 3)
        n = sizeof err->msg - 3;
    memcpy(err->msg, prefix, n);
    memcpy(err->msg + n, ": ", 2);
    size_t room = sizeof err->msg - n - 2;
    size_t olen = strnlen(old, room - 1);
    memcpy(err->msg + n + 2, old, olen);
    err->msg[n + 2 + olen] = '\0';
}
