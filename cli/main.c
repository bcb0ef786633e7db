/* main.c - spoolctl: parse the command line, set up the HTTP client, run the command,
 * exit with its code. The commands are in commands.c and submit.c. */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "output.h"
#include "spool/alloc.h"

static void on_signal(int sig)
{
    (void)sig;
    ctl_interrupted = 1;
}

int main(int argc, char **argv)
{
    static int (*const run[CTL_CMD_COUNT])(ctl_client *) = {
        [CTL_CMD_SUBMIT_VIDEO] = ctl_cmd_submit_video,
        [CTL_CMD_EXPORT] = ctl_cmd_export,
        [CTL_CMD_STATUS] = ctl_cmd_status,
        [CTL_CMD_WAIT] = ctl_cmd_wait,
        [CTL_CMD_DOWNLOAD] = ctl_cmd_download,
        [CTL_CMD_CANCEL] = ctl_cmd_cancel,
        [CTL_CMD_JOBS] = ctl_cmd_jobs,
        [CTL_CMD_QUEUES] = ctl_cmd_queues,
        [CTL_CMD_RETRY] = ctl_cmd_retry,
        [CTL_CMD_HEALTH] = ctl_cmd_health,
        [CTL_CMD_WATCH] = ctl_cmd_watch,
        [CTL_CMD_PAUSE] = ctl_cmd_pause,
        [CTL_CMD_RESUME] = ctl_cmd_pause,
        [CTL_CMD_SCHEDULES] = ctl_cmd_schedules,
        [CTL_CMD_SCHEDULE] = ctl_cmd_schedule,
    };
    json_set_alloc_funcs(sp_malloc, sp_free);
    ctl_opts o;
    sp_err err;
    int rc = ctl_opts_parse(&o, argc, argv, stdout, &err);
    if (rc == 1)
        return fflush(stdout) == 0 ? CTL_EXIT_OK : CTL_EXIT_SERVER;
    if (rc < 0) {
        fprintf(stderr, "spoolctl: %s\n", err.msg);
        for (int i = 1; i < argc; i++) {
            if (strcmp(argv[i], "--") == 0)
                break;
            if (strcmp(argv[i], "--json") == 0) {
                sp_buf b;
                sp_buf_init(&b, 4096);
                if (ctl_out_error_json(&b, "usage", err.msg) == 0)
                    fputs(sp_buf_cstr(&b), stdout);
                sp_buf_free(&b);
                break;
            }
        }
        return CTL_EXIT_USAGE;
    }

    /* The first SIGINT or SIGTERM stops the transfer and cleans up (exit 130); a second
     * one, with the default action restored, ends the process at once. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = (int)SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    if (ctl_http_global_init(&err) < 0) {
        fprintf(stderr, "spoolctl: %s\n", err.msg);
        return CTL_EXIT_SERVER;
    }
    ctl_client c = {&o, NULL, stdout, stderr, isatty(STDOUT_FILENO) == 1,
                    isatty(STDERR_FILENO) == 1};
    c.http = ctl_http_new(o.server, o.token, &err);
    if (c.http == NULL) {
        fprintf(stderr, "spoolctl: %s\n", err.msg);
        rc = CTL_EXIT_SERVER;
    } else {
        rc = run[o.cmd](&c);
    }
    ctl_http_free(c.http);
    ctl_http_global_cleanup();
    if (fflush(stdout) != 0 && rc == CTL_EXIT_OK)
        rc = CTL_EXIT_SERVER;
    return rc;
}
