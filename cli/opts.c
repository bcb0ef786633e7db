/* opts.c - spoolctl's command-line parser (see opts.h): one table of commands, one of
 * options, each option naming the commands it applies to. */
#include "opts.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "spool/blob.h"
#include "spool/config.h"
#include "spool/job.h"
#include "spool/schedule.h"
#include "spool/util.h"

#ifndef SPOOL_VERSION
#define SPOOL_VERSION "0.0.0"
#endif

#define B(c) (1u << (c))
#define CTL__ALL 0xffffffffu
#define CTL__SUBMIT (B(CTL_CMD_SUBMIT_VIDEO) | B(CTL_CMD_EXPORT))
#define CTL__JOB_ID (B(CTL_CMD_STATUS) | B(CTL_CMD_WAIT) | B(CTL_CMD_DOWNLOAD) | \
                     B(CTL_CMD_CANCEL) | B(CTL_CMD_RETRY))

static const struct {
    const char *name;
    int cmd;
    int min_args, max_args;
} ctl__cmds[] = {
    {"submit-video", CTL_CMD_SUBMIT_VIDEO, 1, 1},
    {"export", CTL_CMD_EXPORT, 1, 1},
    {"status", CTL_CMD_STATUS, 1, 1},
    {"wait", CTL_CMD_WAIT, 1, 1},
    {"download", CTL_CMD_DOWNLOAD, 1, 2},
    {"cancel", CTL_CMD_CANCEL, 1, 1},
    {"jobs", CTL_CMD_JOBS, 0, 0},
    {"queues", CTL_CMD_QUEUES, 0, 0},
    {"retry", CTL_CMD_RETRY, 1, 1},
    {"health", CTL_CMD_HEALTH, 0, 0},
    {"watch", CTL_CMD_WATCH, 0, 1},
    {"pause", CTL_CMD_PAUSE, 1, 1},
    {"resume", CTL_CMD_RESUME, 1, 1},
    {"schedules", CTL_CMD_SCHEDULES, 0, 0},
    {"schedule", CTL_CMD_SCHEDULE, 2, 2},
};
#define CTL__NCMDS (sizeof ctl__cmds / sizeof ctl__cmds[0])

enum ctl__kind {
    K_STR,      /* takes a value, stored as a string */
    K_CONST,    /* a flag storing a constant string */
    K_FLAG,     /* a flag setting a bool to true */
    K_NOFLAG,   /* a flag setting a bool to false */
    K_DURATION, /* a value: "30", "90s", "5m" */
    K_INT,      /* a value: a whole number in [min, max] */
    K_HELP,
    K_VERSION
};

typedef struct ctl__optdef {
    const char *name;
    char shortc;
    int kind;
    unsigned cmds;     /* commands the option applies to */
    size_t off;        /* field in ctl_opts */
    const char *konst; /* K_CONST's value */
    int64_t min, max;  /* K_INT */
    size_t set_off;    /* for flags that record they were given; 0: none */
} ctl__optdef;

#define F(field) offsetof(ctl_opts, field)

static const ctl__optdef ctl__optdefs[] = {
    {"server", 0, K_STR, CTL__ALL, F(server), NULL, 0, 0, 0},
    {"token", 0, K_STR, CTL__ALL, F(token), NULL, 0, 0, 0},
    {"json", 0, K_FLAG, CTL__ALL, F(json), NULL, 0, 0, 0},
    {"quiet", 'q', K_FLAG, CTL__ALL, F(quiet), NULL, 0, 0, 0},
    {"help", 'h', K_HELP, CTL__ALL, 0, NULL, 0, 0, 0},
    {"version", 0, K_VERSION, CTL__ALL, 0, NULL, 0, 0, 0},
    {"wait", 0, K_FLAG, CTL__SUBMIT, F(wait), NULL, 0, 0, 0},
    {"timeout", 0, K_DURATION, CTL__SUBMIT | B(CTL_CMD_WAIT), F(timeout_ms), NULL, 0, 0, 0},
    {"progress", 0, K_FLAG, CTL__SUBMIT | B(CTL_CMD_WAIT), F(progress), NULL, 0, 0,
     F(progress_set)},
    {"no-progress", 0, K_NOFLAG, CTL__SUBMIT | B(CTL_CMD_WAIT), F(progress), NULL, 0, 0,
     F(progress_set)},
    {"retries", 0, K_INT, CTL__SUBMIT, F(retries), NULL, 0, 20, 0},
    {"idempotency-key", 0, K_STR, CTL__SUBMIT, F(idem_key), NULL, 0, 0, 0},
    {"priority", 0, K_STR, CTL__SUBMIT, F(priority), NULL, 0, 0, 0},
    {"callback-url", 0, K_STR, CTL__SUBMIT, F(callback_url), NULL, 0, 0, 0},
    {"preset", 0, K_STR, B(CTL_CMD_SUBMIT_VIDEO), F(preset), NULL, 0, 0, 0},
    {"thumbnail", 0, K_CONST, B(CTL_CMD_SUBMIT_VIDEO), F(thumbnail), "true", 0, 0, 0},
    {"no-thumbnail", 0, K_CONST, B(CTL_CMD_SUBMIT_VIDEO), F(thumbnail), "false", 0, 0, 0},
    {"filename", 0, K_STR, B(CTL_CMD_SUBMIT_VIDEO), F(filename), NULL, 0, 0, 0},
    {"content-type", 0, K_STR, B(CTL_CMD_SUBMIT_VIDEO), F(content_type), NULL, 0, 0, 0},
    {"title", 0, K_STR, B(CTL_CMD_EXPORT), F(title), NULL, 0, 0, 0},
    {"author", 0, K_STR, B(CTL_CMD_EXPORT), F(author), NULL, 0, 0, 0},
    {"columns", 0, K_STR, B(CTL_CMD_EXPORT), F(columns), NULL, 0, 0, 0},
    {"page-size", 0, K_STR, B(CTL_CMD_EXPORT), F(page_size), NULL, 0, 0, 0},
    {"orientation", 0, K_STR, B(CTL_CMD_EXPORT), F(orientation), NULL, 0, 0, 0},
    {"font", 0, K_STR, B(CTL_CMD_EXPORT), F(font), NULL, 0, 0, 0},
    {"format", 0, K_STR, B(CTL_CMD_EXPORT), F(format), NULL, 0, 0, 0},
    {"output", 'o', K_STR, B(CTL_CMD_DOWNLOAD), F(output), NULL, 0, 0, 0},
    {"state", 0, K_STR, B(CTL_CMD_JOBS), F(state), NULL, 0, 0, 0},
    {"type", 0, K_STR, B(CTL_CMD_JOBS) | B(CTL_CMD_WATCH), F(type), NULL, 0, 0, 0},
    {"queue", 0, K_STR, B(CTL_CMD_WATCH), F(queue), NULL, 0, 0, 0},
    {"limit", 0, K_INT, B(CTL_CMD_JOBS) | B(CTL_CMD_SCHEDULE), F(limit), NULL, 1, 1000, 0},
    {"cron", 0, K_STR, B(CTL_CMD_SCHEDULE), F(cron), NULL, 0, 0, 0},
    {"timezone", 0, K_STR, B(CTL_CMD_SCHEDULE), F(timezone), NULL, 0, 0, 0},
    {"missed", 0, K_STR, B(CTL_CMD_SCHEDULE), F(missed), NULL, 0, 0, 0},
    {"job", 0, K_STR, B(CTL_CMD_SCHEDULE), F(job), NULL, 0, 0, 0},
    {"paused", 0, K_FLAG, B(CTL_CMD_SCHEDULE), F(paused), NULL, 0, 0, 0},
    {"ready", 0, K_FLAG, B(CTL_CMD_HEALTH), F(ready), NULL, 0, 0, 0},
};
#define CTL__NOPTS (sizeof ctl__optdefs / sizeof ctl__optdefs[0])

const char *ctl_cmd_name(int cmd)
{
    for (size_t i = 0; i < CTL__NCMDS; i++) {
        if (ctl__cmds[i].cmd == cmd)
            return ctl__cmds[i].name;
    }
    return "";
}

void ctl_usage(FILE *f)
{
    fputs(
        "Usage: spoolctl [options] COMMAND [arguments]\n"
        "A command-line client for spool's HTTP API.\n"
        "\n"
        "Commands:\n"
        "  submit-video FILE|URL|-  upload a video (streamed) or give its URL; prints the job id\n"
        "      --preset NAME          mp4-1080p, mp4-720p (server default), mp4-480p, webm-720p\n"
        "      --thumbnail, --no-thumbnail   write a poster frame (server default: yes)\n"
        "      --filename NAME        the upload's name (default: FILE's base name)\n"
        "      --content-type TYPE    default: from FILE's extension, else "
        "application/octet-stream\n"
        "  export FILE|URL|-        a PDF from a CSV, NDJSON or JSON dataset; prints the job id\n"
        "      --format csv|ndjson|json   default: from the extension (.csv, .ndjson, .jsonl, "
        ".json)\n"
        "      --title TEXT           default: FILE's base name without its extension\n"
        "      --author TEXT  --columns JSON  --page-size A4|Letter\n"
        "      --orientation portrait|landscape  --font sans|serif|mono\n"
        "    both submit commands:\n"
        "      --priority high|normal --idempotency-key KEY (default: a random key, so retries\n"
        "      never create a second job) --retries N (after 429/503, default 3)\n"
        "      --callback-url URL     POST the job there when it ends (docs/webhooks.md)\n"
        "      --wait                 then wait for the job, as `wait` does\n"
        "  status ID                the job's state, progress, error and outputs\n"
        "  wait ID                  follow the job until it ends (long-poll): a progress bar on a\n"
        "                           terminal, one line per change otherwise (--json: one job object\n"
        "                           per change); exits 0 when it succeeded, 1 when it did not\n"
        "      --timeout DURATION     give up after this long (e.g. 90, 90s, 5m; exit 5)\n"
        "      --progress, --no-progress  force the bar on or off\n"
        "  download ID [NAME]       save the job's outputs (or just NAME) in the current directory\n"
        "      -o, --output PATH      a directory, a file name (one output) or - for stdout\n"
        "  cancel ID                cancel a queued, retrying or running job\n"
        "  jobs                     recent jobs, newest first\n"
        "      --state STATE  --type TYPE  --limit N (1-1000)\n"
        "  queues                   queue depths and live workers\n"
        "  pause QUEUE              stop the queue's workers from starting jobs (it still takes\n"
        "                           new ones; running jobs finish)\n"
        "  resume QUEUE             let them start jobs again\n"
        "  retry ID                 run a failed job again with fresh attempts\n"
        "  watch [ID]               print live job events as they happen (one line each; --json:\n"
        "                           the event's JSON), reconnecting where it left off; with ID,\n"
        "                           that job's, ending when it ends (exit as for wait)\n"
        "      --queue NAME  --type TYPE   only events of that queue or job type (without ID)\n"
        "  schedules                the schedules (name, cron, zone, state, next run)\n"
        "  schedule ACTION NAME     ACTION: create, show, pause, resume, delete, runs (the jobs\n"
        "                           it made, newest first; --limit N)\n"
        "      --cron EXPR            create: five cron fields, @daily..., or @every 30s\n"
        "      --job JSON|@FILE       create: {\"type\": \"pdf.export\"|\"video.transcode\",\n"
        "                             \"params\": the JSON body of POST /v1/exports|videos}\n"
        "      --timezone ZONE  --missed skip|run_once  --paused\n"
        "  health                   check that the API answers (/healthz; --ready: /readyz, which\n"
        "                           also checks Redis and the blob store)\n"
        "\n"
        "Options for every command:\n"
        "  --server URL     the API's address [SPOOL_SERVER] (default: " CTL_DEFAULT_SERVER ")\n"
        "  --token TOKEN    bearer token when the API requires one [SPOOL_TOKEN]\n"
        "  --json           machine-readable output: the API's JSON on stdout, errors as\n"
        "                   {\"error\":{\"code\",\"message\"}}\n"
        "  -q, --quiet      print only what a script needs (ids, paths)\n"
        "  -h, --help       this help;  --version  the version\n"
        "\n"
        "Exit codes:\n"
        "  0  done (wait: the job succeeded)\n"
        "  1  the job failed or was cancelled\n"
        "  2  bad command line, or an input file that cannot be read\n"
        "  3  no such job, or no such output\n"
        "  4  the server cannot be reached or failed (5xx, 429 after retries, bad answer)\n"
        "  5  wait --timeout ran out before the job ended\n"
        "  6  the server refused the request (400, 401, 409, 413, 415, 422): e.g. cancel of a\n"
        "     job that had ended, retry of a job that did not fail, invalid parameters\n"
        "  130  interrupted (SIGINT or SIGTERM)\n",
        f);
}

static int ctl__fail(sp_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Set err to SP_EINVAL with the message and a pointer to --help; returns SP_EINVAL. */
static int ctl__fail(sp_err *err, const char *fmt, ...)
{
    char msg[220];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        msg[0] = '\0';
    return sp_err_set(err, SP_EINVAL, "%s (see spoolctl --help)", msg);
}

static bool ctl__one_of(const char *v, const char *const *set)
{
    for (size_t i = 0; set[i]; i++) {
        if (strcmp(v, set[i]) == 0)
            return true;
    }
    return false;
}

static bool ctl__is_url(const char *s)
{
    return strncasecmp(s, "http://", 7) == 0 || strncasecmp(s, "https://", 8) == 0;
}

/* The dataset format from a file name's extension, or NULL. */
static const char *ctl__format_from_name(const char *path)
{
    static const struct {
        const char *ext, *format;
    } map[] = {{".csv", "csv"}, {".ndjson", "ndjson"}, {".jsonl", "ndjson"}, {".json", "json"}};
    size_t n = strlen(path);
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        size_t k = strlen(map[i].ext);
        if (n > k && strcasecmp(path + n - k, map[i].ext) == 0)
            return map[i].format;
    }
    return NULL;
}

static int ctl__set(ctl_opts *o, const ctl__optdef *d, const char *val, FILE *out, sp_err *err)
{
    char *base = (char *)o;
    int64_t v;
    switch (d->kind) {
    case K_STR:
        *(const char **)(base + d->off) = val;
        return 0;
    case K_CONST:
        *(const char **)(base + d->off) = d->konst;
        return 0;
    case K_FLAG:
    case K_NOFLAG:
        *(bool *)(base + d->off) = d->kind == K_FLAG;
        if (d->set_off)
            *(bool *)(base + d->set_off) = true;
        return 0;
    case K_DURATION:
        if (sp_parse_duration_ms(val, &v) < 0 || v < 0)
            return ctl__fail(err, "--%s wants a duration such as 90, 90s or 5m, not '%s'",
                             d->name, val);
        *(int64_t *)(base + d->off) = v;
        return 0;
    case K_INT:
        if (sp_parse_i64(val, d->min, d->max, &v) < 0) {
            return ctl__fail(err, "--%s wants a whole number from %lld to %lld, not '%s'",
                             d->name, (long long)d->min, (long long)d->max, val);
        }
        *(int64_t *)(base + d->off) = v;
        return 0;
    case K_HELP:
        ctl_usage(out);
        return 1;
    case K_VERSION:
        fprintf(out, "spoolctl %s\n", SPOOL_VERSION);
        return 1;
    }
    return ctl__fail(err, "internal: bad option kind for --%s", d->name);
}

static bool ctl__takes_value(const ctl__optdef *d)
{
    return d->kind == K_STR || d->kind == K_DURATION || d->kind == K_INT;
}

static const ctl__optdef *ctl__find_long(const char *name, size_t n)
{
    for (size_t i = 0; i < CTL__NOPTS; i++) {
        if (strlen(ctl__optdefs[i].name) == n && strncmp(ctl__optdefs[i].name, name, n) == 0)
            return &ctl__optdefs[i];
    }
    return NULL;
}

static const ctl__optdef *ctl__find_short(char c)
{
    for (size_t i = 0; i < CTL__NOPTS; i++) {
        if (ctl__optdefs[i].shortc == c)
            return &ctl__optdefs[i];
    }
    return NULL;
}

/* Checks that need the whole command line. */
static int ctl__check(ctl_opts *o, const char **pos, int npos, sp_err *err)
{
    static const char *const prio[] = {"high", "normal", NULL};
    static const char *const formats[] = {"csv", "ndjson", "json", NULL};
    static const char *const states[] = {"scheduled", "queued", "running", "retrying",
                                         "succeeded", "failed", "cancelled", NULL};
    if (!ctl__is_url(o->server) || strlen(o->server) > 1024)
        return ctl__fail(err, "the server must be an http:// or https:// URL, not '%s'",
                         o->server);
    if (o->token && (o->token[0] == '\0' || strpbrk(o->token, "\r\n") != NULL))
        return ctl__fail(err, "the token must be one line of text");
    o->target = npos > 0 ? pos[0] : NULL;
    o->name = npos > 1 ? pos[1] : NULL;
    if (o->priority && !ctl__one_of(o->priority, prio))
        return ctl__fail(err, "--priority must be high or normal, not '%s'", o->priority);
    if (o->idem_key && (o->idem_key[0] == '\0' || strlen(o->idem_key) > 255))
        return ctl__fail(err, "--idempotency-key must be 1 to 255 characters");
    if (o->timeout_ms > 0 && o->cmd != CTL_CMD_WAIT && !o->wait)
        return ctl__fail(err, "--timeout applies to wait and to --wait");
    switch (o->cmd) {
    case CTL_CMD_SUBMIT_VIDEO:
        if (ctl__is_url(o->target) && (o->filename || o->content_type))
            return ctl__fail(err, "--filename and --content-type apply to an upload, not to a "
                                  "URL");
        if (o->filename && (o->filename[0] == '\0' || strpbrk(o->filename, "/\\") != NULL))
            return ctl__fail(err, "--filename must be a base name without / or \\, not '%s'",
                             o->filename);
        if (o->content_type && (strpbrk(o->content_type, "\r\n") != NULL ||
                                (strncasecmp(o->content_type, "video/", 6) != 0 &&
                                 strcasecmp(o->content_type, "application/octet-stream") != 0)))
            return ctl__fail(err, "--content-type must be video/... or application/octet-stream, "
                                  "not '%s'", o->content_type);
        break;
    case CTL_CMD_EXPORT:
        if (o->format && !ctl__one_of(o->format, formats))
            return ctl__fail(err, "--format must be csv, ndjson or json, not '%s'", o->format);
        if (!ctl__is_url(o->target) && o->format == NULL) {
            o->format = ctl__format_from_name(o->target);
            if (o->format == NULL)
                return ctl__fail(err, "cannot tell the format of '%s' from its name: give "
                                      "--format csv, ndjson or json", o->target);
        }
        break;
    case CTL_CMD_WATCH:
        if (o->target && !sp_id_valid(o->target))
            return ctl__fail(err, "'%s' is not a job id (36 characters, as submit printed)",
                             o->target);
        if (o->target && (o->queue || o->type))
            return ctl__fail(err, "--queue and --type apply to watching every job, not one");
        if (o->queue && !sp_queue_name_valid(o->queue))
            return ctl__fail(err, "--queue must be 1-64 of A-Z a-z 0-9 _ . -, not '%s'",
                             o->queue);
        __attribute__((fallthrough)); /* --type as for jobs */
    case CTL_CMD_JOBS:
        if (o->state && !ctl__one_of(o->state, states))
            return ctl__fail(err, "--state must be scheduled, queued, running, retrying, "
                                  "succeeded, failed or cancelled, not '%s'", o->state);
        if (o->type && !sp_job_type_valid(o->type))
            return ctl__fail(err, "--type must be a job type such as video.transcode, not '%s'",
                             o->type);
        break;
    default:
        break;
    }
    if (B(o->cmd) & CTL__JOB_ID) {
        if (!sp_id_valid(o->target))
            return ctl__fail(err, "'%s' is not a job id (36 characters, as submit printed)",
                             o->target);
    }
    if ((o->cmd == CTL_CMD_PAUSE || o->cmd == CTL_CMD_RESUME) && !sp_queue_name_valid(o->target))
        return ctl__fail(err, "'%s' is not a queue name (such as video or pdf)", o->target);
    if (o->cmd == CTL_CMD_SCHEDULE) {
        static const char *const actions[] = {"create", "show", "pause", "resume",
                                              "delete", "runs", NULL};
        if (!ctl__one_of(o->target, actions))
            return ctl__fail(err, "schedule %s: the action is create, show, pause, resume, "
                                  "delete or runs", o->target);
        if (!sp_sched_name_valid(o->name))
            return ctl__fail(err, "'%s' is not a schedule name (1-64 of A-Z a-z 0-9 _ . -)",
                             o->name);
        bool create = strcmp(o->target, "create") == 0;
        if (create && (o->cron == NULL || o->job == NULL))
            return ctl__fail(err, "schedule create needs --cron and --job");
        if (!create && (o->cron || o->job || o->timezone || o->missed || o->paused))
            return ctl__fail(err, "--cron, --job, --timezone, --missed and --paused are for "
                                  "schedule create");
        if (o->limit && strcmp(o->target, "runs") != 0)
            return ctl__fail(err, "--limit is for schedule runs");
    }
    if (o->cmd == CTL_CMD_DOWNLOAD && o->name && !sp_blob_name_valid(o->name))
        return ctl__fail(err, "'%s' is not an output name (such as video.mp4)", o->name);
    if (o->cmd == CTL_CMD_DOWNLOAD && o->output && o->output[0] == '\0')
        return ctl__fail(err, "--output must not be empty");
    return 0;
}

int ctl_opts_parse(ctl_opts *o, int argc, char **argv, FILE *out, sp_err *err)
{
    memset(o, 0, sizeof *o);
    sp_err_clear(err);
    o->retries = 3;
    o->server = CTL_DEFAULT_SERVER;
    const char *env = getenv("SPOOL_SERVER");
    if (env && env[0])
        o->server = env;
    env = getenv("SPOOL_TOKEN");
    if (env && env[0])
        o->token = env;

    /* First pass: find the command, so each option can be checked against it. */
    const char *pos[3];
    int npos = 0;
    bool opts_done = false;
    const ctl__optdef *pending[64];
    const char *pending_val[64];
    const char *pending_arg[64];
    size_t npending = 0;
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (!opts_done && strcmp(arg, "--") == 0) {
            opts_done = true;
            continue;
        }
        if (opts_done || arg[0] != '-' || strcmp(arg, "-") == 0) {
            if (o->cmd == CTL_CMD_NONE) {
                if (strcmp(arg, "help") == 0) {
                    ctl_usage(out);
                    return 1;
                }
                for (size_t i = 0; i < CTL__NCMDS; i++) {
                    if (strcmp(ctl__cmds[i].name, arg) == 0)
                        o->cmd = ctl__cmds[i].cmd;
                }
                if (o->cmd == CTL_CMD_NONE)
                    return ctl__fail(err, "unknown command '%s'", arg);
                continue;
            }
            if (npos == 3)
                return ctl__fail(err, "too many arguments at '%s'", arg);
            pos[npos++] = arg;
            continue;
        }
        const ctl__optdef *d;
        const char *val = NULL;
        if (arg[1] == '-') {
            const char *name = arg + 2;
            const char *eq = strchr(name, '=');
            size_t n = eq ? (size_t)(eq - name) : strlen(name);
            d = ctl__find_long(name, n);
            if (d == NULL)
                return ctl__fail(err, "unknown option '%s'", arg);
            if (eq && !ctl__takes_value(d))
                return ctl__fail(err, "option --%s takes no value", d->name);
            val = eq ? eq + 1 : NULL;
        } else {
            d = arg[2] == '\0' ? ctl__find_short(arg[1]) : NULL;
            if (d == NULL)
                return ctl__fail(err, "unknown option '%s'", arg);
        }
        if (ctl__takes_value(d) && val == NULL) {
            if (a + 1 >= argc)
                return ctl__fail(err, "option %s needs a value", arg);
            val = argv[++a];
        }
        if (d->kind == K_HELP || d->kind == K_VERSION)
            return ctl__set(o, d, val, out, err);
        if (npending == sizeof pending / sizeof pending[0])
            return ctl__fail(err, "too many options");
        pending[npending] = d;
        pending_val[npending] = val;
        pending_arg[npending] = arg;
        npending++;
    }
    if (o->cmd == CTL_CMD_NONE)
        return ctl__fail(err, "no command given");
    for (size_t i = 0; i < npending; i++) {
        if (!(pending[i]->cmds & B(o->cmd)))
            return ctl__fail(err, "option %s does not apply to %s", pending_arg[i],
                             ctl_cmd_name(o->cmd));
        int rc = ctl__set(o, pending[i], pending_val[i], out, err);
        if (rc != 0)
            return rc;
    }
    for (size_t i = 0; i < CTL__NCMDS; i++) {
        if (ctl__cmds[i].cmd != o->cmd)
            continue;
        if (npos < ctl__cmds[i].min_args)
            return ctl__fail(err, "%s needs %s", ctl__cmds[i].name,
                             o->cmd == CTL_CMD_SUBMIT_VIDEO || o->cmd == CTL_CMD_EXPORT
                                 ? "a FILE, a URL or - (standard input)"
                                 : "a job id");
        if (npos > ctl__cmds[i].max_args)
            return ctl__fail(err, "too many arguments for %s: '%s'", ctl__cmds[i].name,
                             pos[ctl__cmds[i].max_args]);
    }
    return ctl__check(o, pos, npos, err);
}
