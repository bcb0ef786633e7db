/* bench_pdf_driver.c - run spool-pdf's export pipeline (the code the worker's handler
 * runs: params validation, the sample/layout/render passes, libharu, the save) on a
 * dataset file, without Redis. For the benchmark and for trying params by hand.
 *
 *   bench_pdf_driver PARAMS.json DATASET csv|ndjson|json OUT.pdf
 *
 * Prints one JSON line: rows, pages, bytes, timings, libharu's peak memory, the
 * characters no font had and this process's own peak RSS (VmHWM: unlike getrusage's
 * ru_maxrss it leaves out the memory of the process that forked it, before the exec).
 * Limits come from SPOOL_PDF_MAX_ROWS / _MAX_PAGES / _MAX_MEMORY (bytes), the
 * compression from SPOOL_PDF_COMPRESSION (default, fast or 1-9), when set; the fallback
 * font from SPOOL_PDF_FALLBACK_FONTS (one path; default spool-pdf's, WenQuanYi Micro
 * Hei; none: no fallback). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "export.h"
#include "spool/alloc.h"
#include "spool/util.h"

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            char *p = realloc(buf, cap);
            if (p == NULL) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = p;
        }
        size_t n = fread(buf + len, 1, 4096, f);
        len += n;
        if (n == 0)
            break;
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

static int64_t env_i64(const char *name)
{
    const char *v = getenv(name);
    int64_t x = 0;
    if (v && *v && sp_parse_size(v, &x) < 0) {
        fprintf(stderr, "bad %s\n", name);
        exit(2);
    }
    return x;
}

/* This process's peak resident set in KB (/proc/self/status VmHWM), -1 if unknown. */
static long long vm_hwm_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return -1;
    char line[256];
    long long kb = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0)
            kb = atoll(line + 6);
    fclose(f);
    return kb;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s PARAMS.json DATASET csv|ndjson|json OUT.pdf\n", argv[0]);
        return 2;
    }
    char *json = slurp(argv[1]);
    if (json == NULL) {
        fprintf(stderr, "cannot read %s: %s\n", argv[1], strerror(errno));
        return 2;
    }
    sp_err err = {0};
    sp_export_params p;
    if (sp_export_params_parse(json, &p, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        free(json);
        return 2;
    }
    free(json);
    sp_dataset_format fmt;
    if (sp_dataset_format_parse(argv[3], &fmt) < 0) {
        fprintf(stderr, "unknown format %s\n", argv[3]);
        sp_export_params_free(&p);
        return 2;
    }
    int fd = open(argv[2], O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "cannot open %s: %s\n", argv[2], strerror(errno));
        sp_export_params_free(&p);
        return 2;
    }
    const char *fb = getenv("SPOOL_PDF_FALLBACK_FONTS");
    if (fb == NULL || fb[0] == '\0')
        fb = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc";
    const char *fallbacks[1] = {fb};
    sp_export_opts o = {.creator = "spool-pdf bench driver",
                        .fallbacks = fallbacks,
                        .nfallbacks = strcmp(fb, "none") != 0,
                        .limits = {.max_rows = env_i64("SPOOL_PDF_MAX_ROWS"),
                                   .max_pages = env_i64("SPOOL_PDF_MAX_PAGES"),
                                   .max_memory = env_i64("SPOOL_PDF_MAX_MEMORY")}};
    const char *level = getenv("SPOOL_PDF_COMPRESSION");
    if (level && *level && sp_export_compression_parse(level, &o.compression) < 0) {
        fprintf(stderr, "bad SPOOL_PDF_COMPRESSION\n");
        sp_export_params_free(&p);
        close(fd);
        return 2;
    }
    sp_export_result r;
    int64_t t0 = sp_mono_ms();
    int rc = sp_export_run(&p, fd, fmt, argv[4], &o, &r, &err);
    int64_t ms = sp_mono_ms() - t0;
    sp_export_params_free(&p);
    if (rc < 0) {
        printf("{\"error\":\"%s\",\"retryable\":%s,\"message\":\"%s\"}\n",
               r.error_code ? r.error_code : sp_code_name(rc), r.retryable ? "true" : "false",
               err.msg);
        return 1;
    }
    printf("{\"rows\":%lld,\"pages\":%lld,\"bytes\":%lld,\"ms\":%lld,\"font_ms\":%lld,"
           "\"sample_ms\":%lld,\"layout_ms\":%lld,\"render_ms\":%lld,\"save_ms\":%lld,"
           "\"pdf_memory_peak\":%lld,\"missing_glyphs\":%lld,\"vm_hwm_kb\":%lld}\n",
           (long long)r.rows, (long long)r.pages, (long long)r.bytes, (long long)ms,
           (long long)r.font_ms, (long long)r.sample_ms, (long long)r.layout_ms,
           (long long)r.render_ms, (long long)r.save_ms, (long long)r.memory_peak,
           (long long)r.missing_glyphs, vm_hwm_kb());
    return 0;
}
