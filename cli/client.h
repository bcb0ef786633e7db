/* client.h - what every spoolctl command shares: the options, the HTTP client, where
 * output goes, one call that turns an answer into JSON or into a reported error and an
 * exit code, and the mapping from HTTP statuses to exit codes. */
#ifndef SPOOLCTL_CLIENT_H
#define SPOOLCTL_CLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "http.h"
#include "opts.h"

typedef struct ctl_client {
    const ctl_opts *o;
    ctl_http *http;
    FILE *out;       /* results (stdout) */
    FILE *err;       /* messages and upload/download progress (stderr) */
    bool out_tty;    /* out is a terminal */
    bool err_tty;    /* err is a terminal */
} ctl_client;

/* The exit code for an HTTP status: 0 for 2xx and 304, CTL_EXIT_NOTFOUND for 404/410,
 * CTL_EXIT_REFUSED for the other 4xx but 429, CTL_EXIT_SERVER otherwise. */
int ctl_client_exit_for_status(long status);

/* The exit code for a failed exchange (no answer): CTL_EXIT_INTERRUPTED for
 * SP_ECANCELLED, CTL_EXIT_SERVER otherwise. */
int ctl_client_exit_for_code(int code);

/* Report a failure: "spoolctl: message" on err, and with --json
 * {"error":{"code","message"}} on out. Returns exit_code. */
int ctl_client_fail(ctl_client *c, int exit_code, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Report an error answer (status >= 400) using the server's error code and message
 * when the body has them. Returns the exit code for the status. */
int ctl_client_fail_answer(ctl_client *c, const ctl_response *resp, const char *what);

/* Report a failed exchange (ctl_http_do's code and err). Returns the exit code. */
int ctl_client_fail_exchange(ctl_client *c, int code, const sp_err *err);

/* Make rq and expect a 2xx JSON answer. Returns 0 with *json set (the caller
 * json_decref's it; resp keeps the headers), or reports the failure and returns its
 * exit code (> 0) with *json NULL. what names the request in messages ("job X"). */
int ctl_client_call(ctl_client *c, const ctl_request *rq, ctl_response *resp, json_t **json,
                    const char *what);

/* Write a JSON value and a newline to out. Returns 0 or CTL_EXIT_SERVER after
 * reporting (out of memory, closed stdout). */
int ctl_client_print_json(ctl_client *c, const json_t *v);

/* Write a buffer to out and flush. 0 or CTL_EXIT_SERVER after reporting. */
int ctl_client_print(ctl_client *c, const sp_buf *b);

/* Sleep ms, waking early when ctl_interrupted is set. */
void ctl_client_sleep(int64_t ms);

#endif
