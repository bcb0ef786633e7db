/* client.c - answers to JSON, errors to messages and exit codes (see client.h). */
#include "client.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

#include "output.h"
#include "spool/alloc.h"

int ctl_client_exit_for_status(long status)
{
    if ((status >= 200 && status < 300) || status == 304)
        return CTL_EXIT_OK;
    if (status == 404 || status == 410)
        return CTL_EXIT_NOTFOUND;
    if (status >= 400 && status < 500 && status != 429 && status != 408)
        return CTL_EXIT_REFUSED;
    return CTL_EXIT_SERVER;
}

int ctl_client_exit_for_code(int code)
{
    return code == SP_ECANCELLED ? CTL_EXIT_INTERRUPTED : CTL_EXIT_SERVER;
}

static void ctl__vfail(ctl_client *c, const char *code, const char *fmt, va_list ap)
{
    char msg[1024];
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    if (n < 0)
        snprintf(msg, sizeof msg, "%s", code);
    sp_buf b;
    sp_buf_init(&b, 4096);
    if (sp_buf_adds(&b, "spoolctl: ") == 0 && ctl_out_clean(&b, msg) == 0 &&
        sp_buf_addc(&b, '\n') == 0) {
        fputs(sp_buf_cstr(&b), c->err);
        fflush(c->err);
    }
    sp_buf_reset(&b);
    if (c->o && c->o->json && ctl_out_error_json(&b, code, msg) == 0) {
        fputs(sp_buf_cstr(&b), c->out);
        fflush(c->out);
    }
    sp_buf_free(&b);
}

int ctl_client_fail(ctl_client *c, int exit_code, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ctl__vfail(c, code, fmt, ap);
    va_end(ap);
    return exit_code;
}

int ctl_client_fail_answer(ctl_client *c, const ctl_response *resp, const char *what)
{
    int exit_code = ctl_client_exit_for_status(resp->status);
    json_t *body = json_loadb(resp->body.data ? resp->body.data : "", resp->body.len, 0, NULL);
    const json_t *e = json_object_get(body, "error");
    const char *code = json_string_value(json_object_get(e, "code"));
    const char *msg = json_string_value(json_object_get(e, "message"));
    char fallback[64];
    if (code == NULL) {
        snprintf(fallback, sizeof fallback, "http_%ld", resp->status);
        code = fallback;
    }
    char retry[64] = "";
    if (resp->retry_after_s >= 0)
        snprintf(retry, sizeof retry, " (retry after %lld s)", (long long)resp->retry_after_s);
    if (msg)
        ctl_client_fail(c, exit_code, code, "%s: %s (HTTP %ld, %s)%s", what, msg, resp->status,
                        code, retry);
    else
        ctl_client_fail(c, exit_code, code, "%s: the server answered HTTP %ld%s", what,
                        resp->status, retry);
    json_decref(body);
    return exit_code;
}

int ctl_client_fail_exchange(ctl_client *c, int code, const sp_err *err)
{
    const char *name = code == SP_ECANCELLED ? "interrupted"
                       : code == SP_ETIMEDOUT ? "timed_out"
                       : code == SP_EIO       ? "connection_failed"
                                              : sp_code_name(code);
    return ctl_client_fail(c, ctl_client_exit_for_code(code), name, "%s",
                           err && err->msg[0] ? err->msg : sp_strerror(code));
}

int ctl_client_call(ctl_client *c, const ctl_request *rq, ctl_response *resp, json_t **json,
                    const char *what)
{
    *json = NULL;
    sp_err err;
    sp_err_clear(&err);
    int rc = ctl_http_do(c->http, rq, resp, &err);
    if (rc < 0)
        return ctl_client_fail_exchange(c, rc, &err);
    if (resp->status < 200 || resp->status >= 300)
        return ctl_client_fail_answer(c, resp, what);
    json_error_t jerr;
    *json = json_loadb(resp->body.data ? resp->body.data : "", resp->body.len, 0, &jerr);
    if (*json == NULL || !json_is_object(*json)) {
        json_decref(*json);
        *json = NULL;
        return ctl_client_fail(c, CTL_EXIT_SERVER, "bad_answer",
                               "%s: the server's answer is not a JSON object (HTTP %ld): %s",
                               what, resp->status, jerr.text);
    }
    return 0;
}

int ctl_client_print_json(ctl_client *c, const json_t *v)
{
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (text == NULL)
        return ctl_client_fail(c, CTL_EXIT_SERVER, "out_of_memory", "out of memory");
    int ok = fputs(text, c->out) >= 0 && fputc('\n', c->out) != EOF && fflush(c->out) == 0;
    sp_free(text);
    if (!ok)
        return ctl_client_fail(c, CTL_EXIT_SERVER, "write_failed", "cannot write the output: %s",
                               strerror(errno));
    return 0;
}

int ctl_client_print(ctl_client *c, const sp_buf *b)
{
    if ((b->len > 0 && fwrite(b->data, 1, b->len, c->out) != b->len) || fflush(c->out) != 0)
        return ctl_client_fail(c, CTL_EXIT_SERVER, "write_failed", "cannot write the output: %s",
                               strerror(errno));
    return 0;
}

void ctl_client_sleep(int64_t ms)
{
    while (ms > 0 && !ctl_interrupted) {
        int64_t step = ms < 100 ? ms : 100;
        struct timespec ts = {0, (long)step * 1000000L};
        nanosleep(&ts, NULL);
        ms -= step;
    }
}
