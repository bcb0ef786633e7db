/* err.h - spool's one error convention: functions return 0 or a negative SP_E* code,
 * and put a message a person can act on into the sp_err the caller passes. */
#ifndef SPOOL_ERR_H
#define SPOOL_ERR_H

#include <stdbool.h>

enum sp_code {
    SP_OK = 0,
    SP_ENOMEM = -1,      /* out of memory */
    SP_EINVAL = -2,      /* invalid argument or input */
    SP_EIO = -3,         /* file or socket I/O error (transient) */
    SP_EREDIS = -4,      /* Redis unreachable or connection lost (transient) */
    SP_EPROTO = -5,      /* unexpected reply from Redis or a peer */
    SP_ENOTFOUND = -6,   /* no such job, file or key */
    SP_ESTATE = -7,      /* the job is not in the state the operation needs */
    SP_EFULL = -8,       /* queue length limit reached */
    SP_ELOST = -9,       /* lease lost: another attempt owns the job (fencing) */
    SP_ECANCELLED = -10, /* the work was cancelled */
    SP_ETIMEDOUT = -11,  /* a time limit ran out */
    SP_ETOOBIG = -12,    /* a size limit was exceeded */
    SP_ECONFLICT = -13,  /* idempotency key reused with a different request */
    SP_EUNSUPPORTED = -14, /* valid but unsupported input (format, codec, scheme) */
    SP_EFETCH = -15,     /* a remote fetch failed (transient) */
    SP_ESHUTDOWN = -16,  /* the process is shutting down */
    SP_EUNREACHABLE = -17, /* a user's URL: host refused by the outbound guard or
                            * unreachable, told apart nowhere but in logs (transient) */
    SP_ECRYPTO = -18,    /* libcrypto failed to compute a digest (not for lack of memory) */
    SP_ECODE_MIN = -18
};

/* The error a failing call fills in: its code and a human-readable message. */
typedef struct sp_err {
    int code;
    char msg[256];
} sp_err;

/* Fill err (which may be NULL) with code and a printf-style message.
 * Returns code, so callers can write `return sp_err_set(err, SP_EIO, "...")`. */
int sp_err_set(sp_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Clear err to SP_OK with an empty message. Accepts NULL. */
void sp_err_clear(sp_err *err);

/* Prefix err's message with "<prefix>: " (for context), keeping its code. */
void sp_err_prefix(sp_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A static description of code, e.g. "out of memory". Never NULL. */
const char *sp_strerror(int code);

/* A stable snake_case name for code, e.g. "redis_unavailable". Never NULL. */
const char *sp_code_name(int code);

/* True for codes that describe a passing condition worth retrying. */
bool sp_code_transient(int code);

#endif
