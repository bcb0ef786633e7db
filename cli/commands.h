/* commands.h - spoolctl's commands. Each takes the client (options, HTTP, output) and
 * returns the process exit code (enum ctl_exit), having printed its result or its
 * error. */
#ifndef SPOOLCTL_COMMANDS_H
#define SPOOLCTL_COMMANDS_H

#include "client.h"

/* submit.c: uploads (streamed from a file or standard input) and URLs. */
int ctl_cmd_submit_video(ctl_client *c);
int ctl_cmd_export(ctl_client *c);

/* commands.c */
int ctl_cmd_status(ctl_client *c);
int ctl_cmd_wait(ctl_client *c);
int ctl_cmd_download(ctl_client *c);
int ctl_cmd_cancel(ctl_client *c);
int ctl_cmd_jobs(ctl_client *c);
int ctl_cmd_queues(ctl_client *c);
int ctl_cmd_retry(ctl_client *c);
int ctl_cmd_health(ctl_client *c);
int ctl_cmd_pause(ctl_client *c); /* pause and resume */

/* schedules.c: schedules and schedule ACTION NAME */
int ctl_cmd_schedules(ctl_client *c);
int ctl_cmd_schedule(ctl_client *c);

/* watch.c: the live event stream (GET /v1/events, /v1/jobs/{id}/events). */
int ctl_cmd_watch(ctl_client *c);

/* Follow job id until it ends or c->o->timeout_ms runs out, printing progress as the
 * options say. 0 when it succeeded, CTL_EXIT_JOB when it failed or was cancelled,
 * CTL_EXIT_TIMEOUT, CTL_EXIT_NOTFOUND, CTL_EXIT_SERVER, CTL_EXIT_INTERRUPTED. */
int ctl_wait_job(ctl_client *c, const char *id);

#endif
