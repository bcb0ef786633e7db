/* commands.c - status, wait, download, cancel, jobs, queues, retry and health. */
#include "commands.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "output.h"
#include "spool/alloc.h"
#include "spool/blob.h"
#include "spool/util.h"

#define CTL_LONG_POLL_S 30
#define CTL_WAIT_GIVE_UP_MS 120000 /* the server unreachable this long in a row: exit 4 */

/* "/v1/jobs/<id><suffix>" into out. */
static void ctl__job_path(char *out, size_t n, const char *id, const char *suffix)
{
    snprintf(out, n, "/v1/jobs/%s%s", id, suffix);
}

static int ctl__columns(void)
{
    struct winsize ws;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    const char *env = getenv("COLUMNS");
    int64_t v;
    if (env && sp_parse_i64(env, 20, 1000, &v) == 0)
        return (int)v;
    return 80;
}

/* GET a job; 0 with *job set, or the reported exit code. */
static int ctl__get_job(ctl_client *c, const char *id, json_t **job)
{
    char path[96], what[64];
    ctl__job_path(path, sizeof path, id, "");
    snprintf(what, sizeof what, "job %s", id);
    ctl_request rq;
    ctl_request_init(&rq, "GET", path);
    rq.timeout_ms = 60000;
    ctl_response resp;
    ctl_response_init(&resp);
    int rc = ctl_client_call(c, &rq, &resp, job, what);
    ctl_response_free(&resp);
    return rc;
}

int ctl_cmd_status(ctl_client *c)
{
    json_t *job;
    int rc = ctl__get_job(c, c->o->target, &job);
    if (rc != 0)
        return rc;
    if (c->o->json) {
        rc = ctl_client_print_json(c, job);
    } else {
        sp_buf b;
        sp_buf_init(&b, 16 * 1024 * 1024);
        rc = c->o->quiet ? sp_buf_addf(&b, "%s\n", ctl_job_state(job))
                         : ctl_out_job(&b, job, ctl_http_server(c->http));
        rc = rc < 0 ? ctl_client_fail(c, CTL_EXIT_SERVER, "out_of_memory", "out of memory")
                    : ctl_client_print(c, &b);
        sp_buf_free(&b);
    }
    json_decref(job);
    return rc;
}

/* ---- wait ------------------------------------------------------------------------- */

typedef struct ctl__waiter {
    ctl_client *c;
    const char *id;
    bool bar;            /* redraw a bar on out */
    bool lines;          /* a line per change on out */
    int columns;
    int64_t start_ms;
    int64_t drawn_ms;    /* when the bar was last drawn */
    json_t *job;         /* the latest version seen */
    int last_progress;
    char last_state[16];
} ctl__waiter;

static void ctl__draw(ctl__waiter *w)
{
    if (!w->bar || w->job == NULL)
        return;
    sp_buf b;
    sp_buf_init(&b, 4096);
    if (sp_buf_adds(&b, "\r") == 0 &&
        ctl_out_progress(&b, w->job, w->columns, sp_mono_ms() - w->start_ms) == 0 &&
        sp_buf_adds(&b, "\033[K") == 0) {
        fputs(sp_buf_cstr(&b), w->c->out);
        fflush(w->c->out);
    }
    sp_buf_free(&b);
    w->drawn_ms = sp_mono_ms();
}

/* Called by libcurl while a long-poll waits: keeps the bar's clock moving. */
static void ctl__wait_tick(void *ud, int64_t un, int64_t ut, int64_t dn, int64_t dt)
{
    (void)un, (void)ut, (void)dn, (void)dt;
    ctl__waiter *w = ud;
    if (w->bar && sp_mono_ms() - w->drawn_ms >= 1000)
        ctl__draw(w);
}

/* A new version of the job arrived: show it. */
static int ctl__wait_show(ctl__waiter *w)
{
    ctl_client *c = w->c;
    if (c->o->json)
        return ctl_client_print_json(c, w->job);
    if (w->bar) {
        ctl__draw(w);
        return 0;
    }
    if (!w->lines)
        return 0;
    const char *state = ctl_job_state(w->job);
    int progress = (int)json_integer_value(json_object_get(w->job, "progress"));
    if (progress == w->last_progress && strcmp(state, w->last_state) == 0)
        return 0;
    w->last_progress = progress;
    snprintf(w->last_state, sizeof w->last_state, "%s", state);
    sp_buf b;
    sp_buf_init(&b, 64 * 1024);
    int rc = ctl_out_job_line(&b, w->job) == 0 && sp_buf_addc(&b, '\n') == 0
                 ? ctl_client_print(c, &b)
                 : ctl_client_fail(c, CTL_EXIT_SERVER, "out_of_memory", "out of memory");
    sp_buf_free(&b);
    return rc;
}

static void ctl__end_bar(ctl__waiter *w)
{
    if (w->bar && w->job) {
        fputs("\n", w->c->out);
        fflush(w->c->out);
    }
}

int ctl_wait_job(ctl_client *c, const char *id)
{
    const ctl_opts *o = c->o;
    ctl__waiter w;
    memset(&w, 0, sizeof w);
    w.c = c;
    w.id = id;
    w.bar = !o->json && !o->quiet && (o->progress_set ? o->progress : c->out_tty);
    w.lines = !o->json && !o->quiet && !w.bar;
    w.columns = ctl__columns();
    w.start_ms = sp_mono_ms();
    w.last_progress = -1;
    int64_t deadline = o->timeout_ms > 0 ? w.start_ms + o->timeout_ms : 0;
    int64_t max_wait = CTL_LONG_POLL_S;
    int64_t failing_since = 0, backoff_ms = 250;
    bool answered = false, noted = false;
    char etag[128] = "";
    int rc = -1;
    ctl_response resp;
    ctl_response_init(&resp);
    while (rc < 0) {
        if (ctl_interrupted) {
            ctl__end_bar(&w);
            rc = CTL_EXIT_INTERRUPTED;
            break;
        }
        int64_t now = sp_mono_ms();
        int64_t secs = max_wait;
        if (deadline) {
            int64_t left = deadline - now;
            if (left <= 0) {
                ctl__end_bar(&w);
                rc = ctl_client_fail(
                    c, CTL_EXIT_TIMEOUT, "timed_out", "job %s did not end within %lld s (%s, %lld%%)",
                    id, (long long)(o->timeout_ms / 1000), w.job ? ctl_job_state(w.job) : "unknown",
                    (long long)json_integer_value(json_object_get(w.job, "progress")));
                break;
            }
            if (left / 1000 < secs)
                secs = left / 1000;
        }
        /* The first request answers at once; later ones wait for a change. */
        char path[128];
        if (w.job && secs > 0)
            snprintf(path, sizeof path, "/v1/jobs/%s?wait=%lld", id, (long long)secs);
        else
            ctl__job_path(path, sizeof path, id, "");
        ctl_request rq;
        ctl_request_init(&rq, "GET", path);
        rq.if_none_match = w.job ? etag : NULL;
        rq.timeout_ms = (secs + 15) * 1000;
        rq.progress = ctl__wait_tick;
        rq.progress_ud = &w;
        sp_err err;
        sp_err_clear(&err);
        int hr = ctl_http_do(c->http, &rq, &resp, &err);
        bool transient = hr == SP_EIO || hr == SP_ETIMEDOUT ||
                         (hr == 0 && (resp.status == 429 || resp.status == 502 ||
                                      resp.status == 503 || resp.status == 504));
        if (hr == SP_ECANCELLED) {
            ctl__end_bar(&w);
            rc = CTL_EXIT_INTERRUPTED;
            break;
        }
        if (transient && answered) {
            /* The API restarting or Redis away for a moment: keep waiting. */
            if (failing_since == 0)
                failing_since = now;
            if (now - failing_since > CTL_WAIT_GIVE_UP_MS) {
                ctl__end_bar(&w);
                rc = hr < 0 ? ctl_client_fail_exchange(c, hr, &err)
                            : ctl_client_fail_answer(c, &resp, id);
                break;
            }
            if (!noted && !o->quiet) {
                fprintf(c->err, "%sspoolctl: %s; retrying\n", w.bar ? "\n" : "",
                        hr < 0 ? err.msg : "the server is busy or unavailable");
                fflush(c->err);
                noted = true;
            }
            int64_t delay = backoff_ms;
            if (hr == 0 && resp.retry_after_s >= 0)
                delay = resp.retry_after_s * 1000 > 5000 ? 5000 : resp.retry_after_s * 1000;
            ctl_client_sleep(delay);
            backoff_ms = backoff_ms * 2 > 5000 ? 5000 : backoff_ms * 2;
            continue;
        }
        if (hr < 0) {
            ctl__end_bar(&w);
            rc = ctl_client_fail_exchange(c, hr, &err);
            break;
        }
        if (resp.status == 304) {
            failing_since = 0;
            continue;
        }
        if ((resp.status == 400 || resp.status == 422) && w.job && max_wait > 1) {
            /* The server allows shorter long-polls (SPOOL_MAX_WAIT): ask for less. */
            max_wait /= 2;
            continue;
        }
        if (resp.status != 200) {
            ctl__end_bar(&w);
            char what[64];
            snprintf(what, sizeof what, "job %s", id);
            rc = ctl_client_fail_answer(c, &resp, what);
            break;
        }
        json_t *job = json_loadb(resp.body.data ? resp.body.data : "", resp.body.len, 0, NULL);
        if (!json_is_object(job)) {
            json_decref(job);
            ctl__end_bar(&w);
            rc = ctl_client_fail(c, CTL_EXIT_SERVER, "bad_answer",
                                 "job %s: the server's answer is not a JSON object", id);
            break;
        }
        answered = true;
        failing_since = 0;
        backoff_ms = 250;
        if (noted && !o->quiet) {
            fprintf(c->err, "spoolctl: the server answers again\n");
            noted = false;
        }
        json_decref(w.job);
        w.job = job;
        snprintf(etag, sizeof etag, "%s", resp.etag);
        int sr = ctl__wait_show(&w);
        if (sr != 0) {
            rc = sr;
            break;
        }
        const char *state = ctl_job_state(job);
        if (ctl_state_terminal(state)) {
            ctl__end_bar(&w);
            rc = strcmp(state, "succeeded") == 0 ? CTL_EXIT_OK : CTL_EXIT_JOB;
            if (!o->json && !o->quiet) {
                sp_buf b;
                sp_buf_init(&b, 1024 * 1024);
                int pr = ctl_out_summary(&b, job, ctl_http_server(c->http)) == 0
                             ? ctl_client_print(c, &b)
                             : ctl_client_fail(c, CTL_EXIT_SERVER, "out_of_memory", "out of memory");
                sp_buf_free(&b);
                if (pr != 0)
                    rc = pr;
            }
        }
    }
    ctl_response_free(&resp);
    json_decref(w.job);
    return rc;
}

int ctl_cmd_wait(ctl_client *c)
{
    return ctl_wait_job(c, c->o->target);
}

/* ---- download --------------------------------------------------------------------- */

typedef struct ctl__dl {
    ctl_client *c;
    int fd;
    int64_t written;
    const char *name;
    bool show;          /* progress on err */
    int64_t drawn_ms;
} ctl__dl;

static int ctl__dl_sink(void *ud, const void *data, size_t n, sp_err *err)
{
    ctl__dl *d = ud;
    const char *p = data;
    while (n > 0) {
        ssize_t k = write(d->fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return sp_err_set(err, SP_EIO, "cannot write %s: %s", d->name, strerror(errno));
        p += k;
        n -= (size_t)k;
        d->written += k;
    }
    return 0;
}

static void ctl__dl_progress(void *ud, int64_t un, int64_t ut, int64_t dn, int64_t dt)
{
    (void)un, (void)ut;
    ctl__dl *d = ud;
    int64_t now = sp_mono_ms();
    if (!d->show || dt <= 0 || now - d->drawn_ms < 100)
        return;
    d->drawn_ms = now;
    sp_buf b;
    sp_buf_init(&b, 1024);
    char done[32], total[32];
    ctl_fmt_bytes(dn, done);
    ctl_fmt_bytes(dt, total);
    if (sp_buf_adds(&b, "\r") == 0 && ctl_out_clean(&b, d->name) == 0 &&
        sp_buf_adds(&b, " ") == 0 && ctl_out_bar(&b, (int)(dn * 100 / dt), 30) == 0 &&
        sp_buf_addf(&b, "  %s of %s\033[K", done, total) == 0)
        fputs(sp_buf_cstr(&b), d->c->err);
    fflush(d->c->err);
    sp_buf_free(&b);
}

/* Fetch output name of job id into path ("-": standard output). Writes go to a
 * temporary file renamed into place only when the whole file arrived with the size
 * the job lists (expect >= 0). Returns 0 or the reported exit code. */
static int ctl__download_one(ctl_client *c, const char *id, const char *name, int64_t expect,
                             const char *path, int64_t *bytes)
{
    char url[160], tmp[4200];
    ctl__job_path(url, sizeof url, id, "/outputs/");
    size_t ul = strlen(url);
    snprintf(url + ul, sizeof url - ul, "%s", name);
    bool to_stdout = strcmp(path, "-") == 0;
    ctl__dl d = {c, STDOUT_FILENO, 0, name, c->err_tty && !c->o->quiet, 0};
    if (!to_stdout) {
        const char *slash = strrchr(path, '/');
        int n = slash ? snprintf(tmp, sizeof tmp, "%.*s/.%s.XXXXXX", (int)(slash - path), path,
                                 slash + 1)
                      : snprintf(tmp, sizeof tmp, ".%s.XXXXXX", path);
        if (n < 0 || (size_t)n >= sizeof tmp)
            return ctl_client_fail(c, CTL_EXIT_USAGE, "bad_path", "the path %s is too long", path);
        d.fd = mkstemp(tmp);
        if (d.fd < 0)
            return ctl_client_fail(c, CTL_EXIT_USAGE, "cannot_write", "cannot create %s: %s", path,
                                   strerror(errno));
        /* mkstemp makes the file 0600; give it the mode any new file would get. */
        mode_t mask = umask(0);
        umask(mask);
        fchmod(d.fd, 0666 & ~mask);
    }
    ctl_request rq;
    ctl_request_init(&rq, "GET", url);
    rq.sink = ctl__dl_sink;
    rq.sink_ud = &d;
    rq.progress = ctl__dl_progress;
    rq.progress_ud = &d;
    ctl_response resp;
    ctl_response_init(&resp);
    sp_err err;
    sp_err_clear(&err);
    int rc = ctl_http_do(c->http, &rq, &resp, &err);
    if (d.show && d.drawn_ms) {
        fputs("\r\033[K", c->err);
        fflush(c->err);
    }
    char what[160];
    snprintf(what, sizeof what, "output %s of job %s", name, id);
    if (rc == SP_EIO && strstr(err.msg, "cannot write") == err.msg)
        rc = ctl_client_fail(c, CTL_EXIT_USAGE, "cannot_write", "%s", err.msg);
    else if (rc < 0)
        rc = ctl_client_fail_exchange(c, rc, &err);
    else if (resp.status != 200)
        rc = ctl_client_fail_answer(c, &resp, what);
    else if (expect >= 0 && d.written != expect)
        rc = ctl_client_fail(c, CTL_EXIT_SERVER, "short_download",
                             "%s: received %lld bytes, the job lists %lld", what,
                             (long long)d.written, (long long)expect);
    if (!to_stdout) {
        if (rc == 0 && fsync(d.fd) != 0 && errno != EINVAL)
            rc = ctl_client_fail(c, CTL_EXIT_USAGE, "cannot_write", "cannot write %s: %s", path,
                                 strerror(errno));
        if (close(d.fd) != 0 && rc == 0)
            rc = ctl_client_fail(c, CTL_EXIT_USAGE, "cannot_write", "cannot write %s: %s", path,
                                 strerror(errno));
        if (rc == 0 && rename(tmp, path) != 0)
            rc = ctl_client_fail(c, CTL_EXIT_USAGE, "cannot_write", "cannot rename %s to %s: %s",
                                 tmp, path, strerror(errno));
        if (rc != 0)
            unlink(tmp);
    }
    ctl_response_free(&resp);
    *bytes = d.written;
    return rc;
}

static bool ctl__is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int ctl_cmd_download(ctl_client *c)
{
    const ctl_opts *o = c->o;
    const char *id = o->target;
    json_t *job;
    int rc = ctl__get_job(c, id, &job);
    if (rc != 0)
        return rc;
    const char *state = ctl_job_state(job);
    const json_t *outs = json_object_get(job, "outputs");
    size_t n = json_array_size(outs);
    json_t *files = json_array();
    sp_buf text;
    sp_buf_init(&text, 1024 * 1024);
    if (files == NULL) {
        rc = ctl_client_fail(c, CTL_EXIT_SERVER, "out_of_memory", "out of memory");
        goto out;
    }
    if (n == 0) {
        if (strcmp(state, "failed") == 0 || strcmp(state, "cancelled") == 0)
            rc = ctl_client_fail(c, CTL_EXIT_JOB, "no_outputs", "job %s %s: it has no outputs",
                                 id, state);
        else
            rc = ctl_client_fail(c, CTL_EXIT_NOTFOUND, "no_outputs",
                                 "job %s has no outputs%s (%s)", id,
                                 strcmp(state, "succeeded") == 0 ? "" : " yet", state);
        goto out;
    }
    size_t first = 0, last = n;
    if (o->name) {
        first = n;
        for (size_t i = 0; i < n; i++) {
            const char *nm = json_string_value(json_object_get(json_array_get(outs, i), "name"));
            if (nm && strcmp(nm, o->name) == 0)
                first = i;
        }
        if (first == n) {
            char names[512] = "";
            size_t used = 0;
            for (size_t i = 0; i < n; i++) {
                const char *nm = json_string_value(json_object_get(json_array_get(outs, i), "name"));
                int k = snprintf(names + used, sizeof names - used, "%s%s", i ? ", " : "",
                                 nm ? nm : "?");
                if (k < 0 || (size_t)k >= sizeof names - used)
                    break;
                used += (size_t)k;
            }
            rc = ctl_client_fail(c, CTL_EXIT_NOTFOUND, "no_such_output",
                                 "job %s has no output named %s (it has: %s)", id, o->name, names);
            goto out;
        }
        last = first + 1;
    }
    bool several = last - first > 1;
    const char *dest = o->output;
    bool into_dir = dest == NULL || ctl__is_dir(dest);
    if (dest && strcmp(dest, "-") == 0 && several) {
        rc = ctl_client_fail(c, CTL_EXIT_USAGE, "usage",
                             "the job has %zu outputs: name one to write it to standard output",
                             last - first);
        goto out;
    }
    if (dest && strcmp(dest, "-") != 0 && !into_dir &&
        (several || dest[strlen(dest) - 1] == '/')) {
        rc = ctl_client_fail(c, CTL_EXIT_USAGE, "usage", "%s is not a directory", dest);
        goto out;
    }
    for (size_t i = first; i < last && rc == 0; i++) {
        const json_t *e = json_array_get(outs, i);
        const char *name = json_string_value(json_object_get(e, "name"));
        if (name == NULL || !sp_blob_name_valid(name)) {
            rc = ctl_client_fail(c, CTL_EXIT_SERVER, "bad_answer", "the job lists a bad output "
                                                                   "name");
            break;
        }
        const json_t *jb = json_object_get(e, "bytes");
        int64_t expect = json_is_integer(jb) ? (int64_t)json_integer_value(jb) : -1;
        char path[4096];
        int pn;
        if (dest == NULL)
            pn = snprintf(path, sizeof path, "%s", name);
        else if (strcmp(dest, "-") == 0 || !into_dir)
            pn = snprintf(path, sizeof path, "%s", dest);
        else
            pn = snprintf(path, sizeof path, "%s%s%s", dest,
                          dest[strlen(dest) - 1] == '/' ? "" : "/", name);
        if (pn < 0 || (size_t)pn >= sizeof path) {
            rc = ctl_client_fail(c, CTL_EXIT_USAGE, "usage", "the path in %s is too long", dest);
            break;
        }
        int64_t bytes = 0;
        rc = ctl__download_one(c, id, name, expect, path, &bytes);
        if (rc != 0 || strcmp(path, "-") == 0)
            continue;
        char size[32];
        ctl_fmt_bytes(bytes, size);
        json_array_append_new(files, json_pack("{s:s, s:s, s:I}", "name", name, "path", path,
                                               "bytes", (json_int_t)bytes));
        if (o->quiet ? sp_buf_addf(&text, "%s\n", path) < 0
                     : (sp_buf_adds(&text, "saved ") < 0 || ctl_out_clean(&text, path) < 0 ||
                        sp_buf_addf(&text, " (%s)\n", size) < 0))
            rc = ctl_client_fail(c, CTL_EXIT_SERVER, "out_of_memory", "out of memory");
    }
    if (rc == 0 && !(dest && strcmp(dest, "-") == 0)) {
        if (o->json) {
            json_t *doc = json_pack("{s:O}", "files", files);
            rc = doc ? ctl_client_print_json(c, doc)
                     : ctl_client_fail(c, CTL_EXIT_SERVER, "out_of_memory", "out of memory");
            json_decref(doc);
        } else {
            rc = ctl_client_print(c, &text);
        }
    }
out:
    sp_buf_free(&text);
    json_decref(files);
    json_decref(job);
    return rc;
}

/* ---- cancel, retry ------------------------------------------------------------------ */

/* Send METHOD to the job's path + suffix (cancel, retry). On 0, *job is the job the
 * server answered with (caller decrefs) and *status its HTTP status. */
static int ctl__job_action(ctl_client *c, const char *method, const char *suffix,
                           const char *verb, json_t **job, long *status)
{
    const char *id = c->o->target;
    char path[96], what[64];
    ctl__job_path(path, sizeof path, id, suffix);
    snprintf(what, sizeof what, "%s job %s", verb, id);
    ctl_request rq;
    ctl_request_init(&rq, method, path);
    rq.timeout_ms = 60000;
    ctl_response resp;
    ctl_response_init(&resp);
    int rc = ctl_client_call(c, &rq, &resp, job, what);
    *status = resp.status;
    ctl_response_free(&resp);
    return rc;
}

int ctl_cmd_cancel(ctl_client *c)
{
    json_t *job;
    long status;
    int rc = ctl__job_action(c, "DELETE", "", "cancel", &job, &status);
    if (rc == 0) {
        if (c->o->json)
            rc = ctl_client_print_json(c, job);
        else if (!c->o->quiet)
            fprintf(c->out, status == 202 ? "%s: cancel requested (its worker stops it within a "
                                            "second)\n"
                                          : "%s: cancelled\n",
                    c->o->target);
        json_decref(job);
    }
    return rc;
}

int ctl_cmd_retry(ctl_client *c)
{
    json_t *job;
    long status;
    int rc = ctl__job_action(c, "POST", "/retry", "retry", &job, &status);
    if (rc == 0) {
        if (c->o->json)
            rc = ctl_client_print_json(c, job);
        else if (!c->o->quiet)
            fprintf(c->out, "%s: %s again, attempts start over\n", c->o->target,
                    ctl_job_state(job));
        json_decref(job);
    }
    return rc;
}

/* ---- jobs, queues, health ----------------------------------------------------------- */

int ctl_cmd_jobs(ctl_client *c)
{
    const ctl_opts *o = c->o;
    sp_buf path;
    sp_buf_init(&path, 4096);
    char sep = '?';
    int rc = sp_buf_adds(&path, "/v1/jobs");
    if (rc == 0 && o->state) {
        rc = sp_buf_addf(&path, "%cstate=", sep);
        rc = rc == 0 ? ctl_url_escape(&path, o->state) : rc;
        sep = '&';
    }
    if (rc == 0 && o->type) {
        rc = sp_buf_addf(&path, "%ctype=", sep);
        rc = rc == 0 ? ctl_url_escape(&path, o->type) : rc;
        sep = '&';
    }
    if (rc == 0 && o->limit > 0)
        rc = sp_buf_addf(&path, "%climit=%lld", sep, (long long)o->limit);
    if (rc < 0) {
        sp_buf_free(&path);
        return ctl_client_fail(c, CTL_EXIT_SERVER, "out_of_memory", "out of memory");
    }
    ctl_request rq;
    ctl_request_init(&rq, "GET", sp_buf_cstr(&path));
    rq.timeout_ms = 60000;
    ctl_response resp;
    ctl_response_init(&resp);
    json_t *list;
    rc = ctl_client_call(c, &rq, &resp, &list, "list jobs");
    if (rc == 0) {
        if (o->json) {
            rc = ctl_client_print_json(c, list);
        } else {
            sp_buf b;
            sp_buf_init(&b, 256 * 1024 * 1024);
            int r;
            if (o->quiet) {
                size_t i;
                const json_t *j;
                r = 0;
                json_array_foreach(json_object_get(list, "jobs"), i, j) {
                    const char *id = json_string_value(json_object_get(j, "id"));
                    if (r == 0 && id)
                        r = sp_buf_addf(&b, "%s\n", id);
                }
            } else {
                r = ctl_out_jobs(&b, list);
            }
            rc = r < 0 ? ctl_client_fail(c, CTL_EXIT_SERVER, "out_of_memory", "out of memory")
                       : ctl_client_print(c, &b);
            sp_buf_free(&b);
        }
        json_decref(list);
    }
    ctl_response_free(&resp);
    sp_buf_free(&path);
    return rc;
}

int ctl_cmd_queues(ctl_client *c)
{
    ctl_request rq;
    ctl_request_init(&rq, "GET", "/v1/queues");
    rq.timeout_ms = 60000;
    ctl_response resp;
    ctl_response_init(&resp);
    json_t *q;
    int rc = ctl_client_call(c, &rq, &resp, &q, "queues");
    if (rc == 0) {
        if (c->o->json) {
            rc = ctl_client_print_json(c, q);
        } else {
            sp_buf b;
            sp_buf_init(&b, 64 * 1024 * 1024);
            rc = ctl_out_queues(&b, q) < 0
                     ? ctl_client_fail(c, CTL_EXIT_SERVER, "out_of_memory", "out of memory")
                     : ctl_client_print(c, &b);
            sp_buf_free(&b);
        }
        json_decref(q);
    }
    ctl_response_free(&resp);
    return rc;
}

/* pause QUEUE, resume QUEUE. */
int ctl_cmd_pause(ctl_client *c)
{
    bool pause = c->o->cmd == CTL_CMD_PAUSE;
    const char *name = c->o->target;
    char path[128], what[96];
    snprintf(path, sizeof path, "/v1/queues/%s/%s", name, pause ? "pause" : "resume");
    snprintf(what, sizeof what, "%s queue %s", pause ? "pause" : "resume", name);
    ctl_request rq;
    ctl_request_init(&rq, "POST", path);
    rq.timeout_ms = 60000;
    ctl_response resp;
    ctl_response_init(&resp);
    json_t *q;
    int rc = ctl_client_call(c, &rq, &resp, &q, what);
    if (rc == 0) {
        if (c->o->json)
            rc = ctl_client_print_json(c, q);
        else if (!c->o->quiet)
            fprintf(c->out, pause ? "%s: paused (%lld waiting; running jobs finish, no new one "
                                    "starts until `spoolctl resume %s`)\n"
                                  : "%s: resumed (%lld waiting)\n",
                    name, (long long)json_integer_value(json_object_get(q, "depth")), name);
        json_decref(q);
    }
    ctl_response_free(&resp);
    return rc;
}

int ctl_cmd_health(ctl_client *c)
{
    const char *path = c->o->ready ? "/readyz" : "/healthz";
    ctl_request rq;
    ctl_request_init(&rq, "GET", path);
    rq.timeout_ms = 5000;
    ctl_response resp;
    ctl_response_init(&resp);
    json_t *body;
    int rc = ctl_client_call(c, &rq, &resp, &body, path);
    if (rc == 0) {
        if (c->o->json)
            rc = ctl_client_print_json(c, body);
        else if (!c->o->quiet)
            fprintf(c->out, "%s %s\n", ctl_http_server(c->http), c->o->ready ? "ready" : "ok");
        json_decref(body);
    } else if (rc != CTL_EXIT_INTERRUPTED) {
        rc = CTL_EXIT_SERVER; /* any other answer means "not healthy" */
    }
    ctl_response_free(&resp);
    return rc;
}
