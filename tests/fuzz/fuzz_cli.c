/* fuzz_cli.c - spoolctl's parsers and what it prints from a server's answers: command
 * lines (ctl_opts_parse), RFC 3339 times (ctl_parse_time), and the text made from job,
 * job-list and queue JSON (the server is not trusted to send only clean text). The
 * first byte picks the parser; command lines are split at newlines. Printed text must
 * hold no control character but the line ends (which a progress line must not hold
 * either), and every time the API writes must parse back to itself. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_input.h"
#include "opts.h"
#include "output.h"
#include "spool/buf.h"
#include "spool/util.h"

#define MAX_ARGS 24

static FILE *devnull;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    devnull = fopen("/dev/null", "w");
    unsetenv("SPOOL_SERVER");
    unsetenv("SPOOL_TOKEN");
    return devnull ? 0 : -1;
}

/* No control characters (C0, DEL, C1 as UTF-8) except '\n' where newline_ok. */
static void check_clean(const sp_buf *b, bool newline_ok)
{
    const unsigned char *p = (const unsigned char *)sp_buf_cstr(b);
    for (size_t i = 0; i < b->len; i++) {
        if ((p[i] < 0x20 && !(p[i] == '\n' && newline_ok)) || p[i] == 0x7f ||
            (p[i] == 0xc2 && i + 1 < b->len && p[i + 1] >= 0x80 && p[i + 1] <= 0x9f))
            abort();
    }
}

static void command_line(char *s)
{
    char *argv[MAX_ARGS + 1] = {"spoolctl"};
    int argc = 1;
    for (char *p = s; p && argc < MAX_ARGS; argc++) {
        argv[argc] = p;
        p = strchr(p, '\n');
        if (p)
            *p++ = '\0';
    }
    argv[argc] = NULL;
    ctl_opts o;
    sp_err err;
    int rc = ctl_opts_parse(&o, argc, argv, devnull, &err);
    if (rc < 0 && err.msg[0] == '\0')
        abort();
    if (rc == 0) {
        if (o.cmd <= CTL_CMD_NONE || o.cmd >= CTL_CMD_COUNT || o.server == NULL ||
            ctl_cmd_name(o.cmd)[0] == '\0' || o.retries < 0 || o.timeout_ms < 0 || o.limit < 0)
            abort();
        bool by_id = o.cmd == CTL_CMD_STATUS || o.cmd == CTL_CMD_WAIT ||
                     o.cmd == CTL_CMD_DOWNLOAD || o.cmd == CTL_CMD_CANCEL ||
                     o.cmd == CTL_CMD_RETRY;
        if (by_id && (o.target == NULL || !sp_id_valid(o.target)))
            abort();
    }
}

static void times(const uint8_t *d, size_t n, const char *s)
{
    int64_t ms;
    (void)ctl_parse_time(s, &ms);
    if (n < 8)
        return;
    /* any time the API writes (sp_format_time, years 1970-9999) reads back */
    uint64_t v;
    memcpy(&v, d, 8);
    int64_t t = 1 + (int64_t)(v % UINT64_C(253402300799999));
    char text[SP_TIME_LEN];
    sp_format_time(t, text);
    if (ctl_parse_time(text, &ms) != 0 || ms != t)
        abort();
}

static void answers(const char *s, size_t n, int columns)
{
    json_t *v = json_loadb(s, n, JSON_DECODE_ANY, NULL);
    if (v == NULL)
        return;
    sp_buf b;
    sp_buf_init(&b, (size_t)1 << 24);
    if (ctl_out_job(&b, v, "http://h:1/api") < 0)
        abort();
    check_clean(&b, true);
    sp_buf_reset(&b);
    if (ctl_out_summary(&b, v, "http://h:1") < 0)
        abort();
    check_clean(&b, true);
    sp_buf_reset(&b);
    if (ctl_out_job_line(&b, v) < 0)
        abort();
    check_clean(&b, false);
    sp_buf_reset(&b);
    if (ctl_out_progress(&b, v, columns, (int64_t)columns * 997) < 0)
        abort();
    check_clean(&b, false);
    sp_buf_reset(&b);
    if (ctl_out_jobs(&b, v) < 0)
        abort();
    check_clean(&b, true);
    sp_buf_reset(&b);
    if (ctl_out_queues(&b, v) < 0)
        abort();
    check_clean(&b, true);
    (void)ctl_state_terminal(ctl_job_state(v));
    sp_buf_free(&b);
    json_decref(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 16384)
        return 0;
    char *s = fuzz_text_after_selector(data, size);
    switch (data[0] % 3) {
    case 0:
        command_line(s);
        break;
    case 1:
        times(data + 1, size - 1, s);
        break;
    default:
        answers(s, size - 1, data[0] / 3);
        break;
    }
    free(s);
    return 0;
}
