/* opts.h - spoolctl's command line: the command, its arguments and options, checked
 * before any request is made, and the help text with the exit codes. */
#ifndef SPOOLCTL_OPTS_H
#define SPOOLCTL_OPTS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "spool/err.h"

/* Exit codes a script can rely on (printed by --help). */
enum ctl_exit {
    CTL_EXIT_OK = 0,        /* done; for wait: the job succeeded */
    CTL_EXIT_JOB = 1,       /* the job failed or was cancelled */
    CTL_EXIT_USAGE = 2,     /* bad command line or unreadable input file */
    CTL_EXIT_NOTFOUND = 3,  /* no such job or output */
    CTL_EXIT_SERVER = 4,    /* cannot reach the server, or it failed (5xx, 429, bad answer) */
    CTL_EXIT_TIMEOUT = 5,   /* wait --timeout ran out before the job ended */
    CTL_EXIT_REFUSED = 6,   /* the server refused the request (400, 401, 409, 413, 415, 422) */
    CTL_EXIT_INTERRUPTED = 130 /* SIGINT or SIGTERM */
};

enum ctl_cmd {
    CTL_CMD_NONE = 0,
    CTL_CMD_SUBMIT_VIDEO,
    CTL_CMD_EXPORT,
    CTL_CMD_STATUS,
    CTL_CMD_WAIT,
    CTL_CMD_DOWNLOAD,
    CTL_CMD_CANCEL,
    CTL_CMD_JOBS,
    CTL_CMD_QUEUES,
    CTL_CMD_RETRY,
    CTL_CMD_HEALTH,
    CTL_CMD_WATCH,
    CTL_CMD_PAUSE,
    CTL_CMD_RESUME,
    CTL_CMD_SCHEDULES, /* schedules */
    CTL_CMD_SCHEDULE,  /* schedule create|show|pause|resume|delete|runs NAME */
    CTL_CMD_COUNT
};

#define CTL_DEFAULT_SERVER "http://127.0.0.1:8080"

/* Everything the command line says. Strings point into argv, the environment or
 * static defaults: nothing here is owned, nothing needs freeing. NULL means "not
 * given" unless a default is noted. */
typedef struct ctl_opts {
    int cmd;                 /* enum ctl_cmd */
    const char *server;      /* --server, SPOOL_SERVER, default CTL_DEFAULT_SERVER */
    const char *token;       /* --token, SPOOL_TOKEN */
    bool json;               /* --json: machine-readable output on stdout */
    bool quiet;              /* -q: print only what a script needs */
    bool wait;               /* submit-video/export --wait */
    bool ready;              /* health --ready: /readyz instead of /healthz */
    bool progress;           /* wait: a live bar (default: when stdout is a terminal) */
    bool progress_set;       /* --progress or --no-progress was given */
    int64_t timeout_ms;      /* wait --timeout (0: no limit) */
    int64_t retries;         /* submissions: retries after 429/503 (default 3) */
    const char *target;      /* submit-video/export: FILE, URL or "-"; else the job id */
    const char *name;        /* download NAME */
    const char *output;      /* download -o PATH|DIR|- */
    const char *idem_key;    /* --idempotency-key (default: a random one per command) */
    const char *priority;    /* high|normal */
    const char *callback_url; /* --callback-url: a webhook when the job ends */
    /* submit-video */
    const char *preset;
    const char *thumbnail;   /* "true"/"false" */
    const char *filename;
    const char *content_type;
    /* export */
    const char *title, *author, *columns, *page_size, *orientation, *font, *format;
    /* jobs */
    const char *state, *type;
    /* watch */
    const char *queue;
    int64_t limit;           /* 0: the server's default */
    /* schedule create (target: the action, name: the schedule) */
    const char *cron, *timezone, *missed;
    const char *job;         /* the job template: JSON text, or @FILE */
    bool paused;             /* create it paused */
} ctl_opts;

/* Parse argv (argv[0] is the program) into o, defaults and environment first.
 * Returns 0 to run o->cmd, 1 when --help or --version was written to out (exit 0),
 * or SP_EINVAL with err saying what is wrong (exit CTL_EXIT_USAGE). */
int ctl_opts_parse(ctl_opts *o, int argc, char **argv, FILE *out, sp_err *err);

/* The command's name as typed ("submit-video"), "" for CTL_CMD_NONE. */
const char *ctl_cmd_name(int cmd);

/* Write the help text (commands, options, environment, exit codes) to f. */
void ctl_usage(FILE *f);

#endif
