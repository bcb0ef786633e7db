/* job.c - job states and the record's fields (see job.h). */
#include "spool/job.h"
#include "queue_internal.h"

#include <stdlib.h>
#include <string.h>

#include "spool/alloc.h"
#include "spool/err.h"

static const char *const sp__state_names[SP_STATE_COUNT] = {
    "queued", "running", "retrying", "succeeded", "failed", "cancelled", "scheduled"};

const char *sp_state_name(sp_state s)
{
    if ((int)s < 0 || s >= SP_STATE_COUNT)
        return "unknown";
    return sp__state_names[s];
}

int sp_state_parse(const char *name, sp_state *out)
{
    for (int i = 0; i < SP_STATE_COUNT; i++) {
        if (strcmp(name, sp__state_names[i]) == 0) {
            *out = (sp_state)i;
            return 0;
        }
    }
    return SP_EINVAL;
}

bool sp_job_type_valid(const char *t)
{
    size_t n = t ? strlen(t) : 0;
    bool ok = n > 0 && n <= SP_TYPE_MAX;
    for (size_t i = 0; ok && i < n; i++)
        ok = (t[i] >= 'a' && t[i] <= 'z') || (t[i] >= '0' && t[i] <= '9') || t[i] == '.' ||
             t[i] == '_' || t[i] == '-';
    return ok;
}

bool sp_state_terminal(sp_state s)
{
    return s == SP_STATE_SUCCEEDED || s == SP_STATE_FAILED || s == SP_STATE_CANCELLED;
}

void sp_job_init(sp_job *j)
{
    memset(j, 0, sizeof *j);
}

void sp_job_clear(sp_job *j)
{
    if (j == NULL)
        return;
    sp_free(j->error_message);
    sp_free(j->params);
    sp_free(j->input);
    sp_free(j->outputs);
    sp_free(j->metadata);
    sp_free(j->callback_url);
    sp_free(j->attempt_log);
    sp_job_init(j);
}

void sp__copy(char *dst, size_t cap, const char *v, size_t len)
{
    if (len >= cap)
        len = cap - 1;
    memcpy(dst, v, len);
    dst[len] = '\0';
}

static int64_t sp__num(const char *v, size_t len)
{
    char tmp[32];
    sp__copy(tmp, sizeof tmp, v, len);
    return strtoll(tmp, NULL, 10);
}

static int sp__dup(char **dst, const char *v, size_t len)
{
    char *p = sp_strndup(v, len);
    if (p == NULL)
        return SP_ENOMEM;
    sp_free(*dst);
    *dst = p;
    return 0;
}

int sp_job_set_field(sp_job *j, const char *name, const char *v, size_t len)
{
    switch (name[0]) {
    case 'a':
        if (!strcmp(name, "attempts"))
            j->attempts = sp__num(v, len);
        else if (!strcmp(name, "attempt_log"))
            return sp__dup(&j->attempt_log, v, len);
        break;
    case 'c':
        if (!strcmp(name, "created_at"))
            j->created_at = sp__num(v, len);
        else if (!strcmp(name, "cancel_requested"))
            j->cancel_requested = sp__num(v, len) != 0;
        else if (!strcmp(name, "callback_url"))
            return sp__dup(&j->callback_url, v, len);
        else if (!strcmp(name, "callback_attempts"))
            j->callback_attempts = sp__num(v, len);
        break;
    case 'e':
        if (!strcmp(name, "error_code")) {
            sp__copy(j->error_code, sizeof j->error_code, v, len);
            j->has_error = true;
        } else if (!strcmp(name, "error_message")) {
            return sp__dup(&j->error_message, v, len);
        } else if (!strcmp(name, "error_retryable")) {
            j->error_retryable = sp__num(v, len) != 0;
        }
        break;
    case 'f':
        if (!strcmp(name, "finished_at"))
            j->finished_at = sp__num(v, len);
        break;
    case 'i':
        if (!strcmp(name, "id"))
            sp__copy(j->id, sizeof j->id, v, len);
        else if (!strcmp(name, "input"))
            return sp__dup(&j->input, v, len);
        break;
    case 'l':
        if (!strcmp(name, "lease_until"))
            j->lease_until = sp__num(v, len);
        break;
    case 'm':
        if (!strcmp(name, "max_attempts"))
            j->max_attempts = sp__num(v, len);
        else if (!strcmp(name, "metadata"))
            return sp__dup(&j->metadata, v, len);
        break;
    case 'n':
        if (!strcmp(name, "next_attempt_at"))
            j->next_attempt_at = sp__num(v, len);
        break;
    case 'o':
        if (!strcmp(name, "outputs"))
            return sp__dup(&j->outputs, v, len);
        break;
    case 'p':
        if (!strcmp(name, "progress"))
            j->progress = (int)sp__num(v, len);
        else if (!strcmp(name, "params"))
            return sp__dup(&j->params, v, len);
        else if (!strcmp(name, "priority"))
            j->high_priority = len == 4 && memcmp(v, "high", 4) == 0;
        break;
    case 'q':
        if (!strcmp(name, "queue"))
            sp__copy(j->queue, sizeof j->queue, v, len);
        break;
    case 'r':
        if (!strcmp(name, "retry_base_ms"))
            j->retry_base_ms = sp__num(v, len);
        else if (!strcmp(name, "retry_cap_ms"))
            j->retry_cap_ms = sp__num(v, len);
        else if (!strcmp(name, "run_at"))
            j->run_at = sp__num(v, len);
        break;
    case 's':
        if (!strcmp(name, "state")) {
            char tmp[16];
            sp__copy(tmp, sizeof tmp, v, len);
            if (sp_state_parse(tmp, &j->state) < 0)
                j->state = SP_STATE_QUEUED;
        } else if (!strcmp(name, "started_at")) {
            j->started_at = sp__num(v, len);
        }
        break;
    case 't':
        if (!strcmp(name, "type"))
            sp__copy(j->type, sizeof j->type, v, len);
        else if (!strcmp(name, "token"))
            sp__copy(j->token, sizeof j->token, v, len);
        break;
    case 'u':
        if (!strcmp(name, "updated_at"))
            j->updated_at = sp__num(v, len);
        break;
    case 'v':
        if (!strcmp(name, "version"))
            j->version = sp__num(v, len);
        break;
    case 'w':
        if (!strcmp(name, "worker"))
            sp__copy(j->worker, sizeof j->worker, v, len);
        break;
    default:
        break;
    }
    return 0;
}
