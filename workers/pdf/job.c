/* job.c - the pdf.export handler (see job.h). */
#include "job.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "export.h"
#include "render.h"
#include "spool/alloc.h"
#include "spool/blob.h"
#include "spool/buf.h"
#include "spool/fetch.h"
#include "spool/log.h"
#include "spool/util.h"

#ifndef SPOOL_VERSION
#define SPOOL_VERSION "0.0.0"
#endif

#define SP__OUTPUT "export.pdf"
#define SP__DEFAULT_FALLBACK "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"
#define SP__SOURCE "source"

void sp_pdfjob_options(sp_pdfjob_config *c, sp_option *out)
{
    sp_option o[SP_PDFJOB_OPTION_COUNT] = {
        {"pdf-max-rows", "SPOOL_PDF_MAX_ROWS", SP_OPT_INT, &c->max_rows, "5000000",
         "most rows an export may have (0: no limit)", 0, INT64_MAX},
        {"pdf-max-pages", "SPOOL_PDF_MAX_PAGES", SP_OPT_INT, &c->max_pages, "100000",
         "most pages an export may have (0: no limit)", 0, INT64_MAX},
        {"pdf-max-memory", "SPOOL_PDF_MAX_MEMORY", SP_OPT_SIZE, &c->max_memory, "1G",
         "memory the PDF library may hold for one job; past it the job fails as too large",
         1 << 20, INT64_MAX},
        {"pdf-max-input", "SPOOL_PDF_MAX_INPUT", SP_OPT_SIZE, &c->max_input, "1G",
         "largest dataset accepted (blob or source_url)", 1, INT64_MAX},
        {"pdf-max-row-bytes", "SPOOL_PDF_MAX_ROW_BYTES", SP_OPT_SIZE, &c->max_row_bytes, "1M",
         "longest dataset row (CSV record, NDJSON line, array element), its line end not "
         "counted", 1024, 1 << 30},
        {"pdf-cell-lines", "SPOOL_PDF_CELL_LINES", SP_OPT_INT, &c->cell_lines, "3",
         "lines a text cell may wrap onto before it is cut with an ellipsis", 1, 50},
        {"pdf-time-limit", "SPOOL_PDF_TIME_LIMIT", SP_OPT_DURATION, &c->time_limit_ms, "30m",
         "longest an export may run before it is stopped and retried (0: none)", 0,
         INT64_C(604800000)},
        {"pdf-fetch-timeout", "SPOOL_PDF_FETCH_TIMEOUT", SP_OPT_DURATION, &c->fetch_timeout_ms,
         "10m", "longest a source_url download may take", 1000, INT64_C(86400000)},
        {"pdf-font-dir", "SPOOL_PDF_FONT_DIR", SP_OPT_STR, &c->font_dir,
         "/usr/share/fonts/truetype/dejavu",
         "directory of the DejaVu TrueType fonts (Debian package fonts-dejavu-core)", 0, 0},
        {"pdf-compression", "SPOOL_PDF_COMPRESSION", SP_OPT_STR, &c->compression, "default",
         "compression of the pages when a job does not say: default, fast (about 1.4x faster "
         "to render, about 1.5x larger) or a zlib level 1-9", 0, 0},
        {"pdf-fallback-fonts", "SPOOL_PDF_FALLBACK_FONTS", SP_OPT_STR, &c->fallback_fonts,
         SP__DEFAULT_FALLBACK,
         "TrueType fonts (.ttf, or a .ttc's first font) for the characters DejaVu lacks, "
         "tried in order, separated by ':'; none: no fallback (Debian package "
         "fonts-wqy-microhei covers Chinese, Japanese and Korean)", 0, 0},
    };
    memcpy(out, o, sizeof o);
}

/* Split SPOOL_PDF_FALLBACK_FONTS and check that libharu loads each font. */
static int sp__setup_fallbacks(sp_pdfjob_config *c, sp_err *err)
{
    for (size_t i = 0; i < c->nfallbacks; i++)
        sp_free(c->fallbacks[i]);
    c->nfallbacks = 0;
    const char *p = c->fallback_fonts ? c->fallback_fonts : "";
    if (strcmp(p, "none") == 0)
        p = "";
    while (*p) {
        size_t n = strcspn(p, ":");
        if (n > 0) {
            if (c->nfallbacks == SP_PDFJOB_MAX_FALLBACKS)
                return sp_err_set(err, SP_EINVAL, "SPOOL_PDF_FALLBACK_FONTS names more than %d "
                                  "fonts", SP_PDFJOB_MAX_FALLBACKS);
            char *path = sp_strndup(p, n);
            if (path == NULL)
                return sp_err_set(err, SP_ENOMEM, "out of memory");
            c->fallbacks[c->nfallbacks++] = path;
            if (access(path, R_OK) != 0)
                return sp_err_set(err, SP_EIO, "cannot read the fallback font %s (install "
                                  "fonts-wqy-microhei, or set SPOOL_PDF_FALLBACK_FONTS: none "
                                  "for no fallback)", path);
            if (sp_pdf_check_font(path, err) < 0) {
                sp_err_prefix(err, "SPOOL_PDF_FALLBACK_FONTS");
                return SP_EIO;
            }
        }
        p += n;
        if (*p == ':')
            p++;
    }
    return 0;
}

int sp_pdfjob_setup(void *userdata, sp_err *err)
{
    sp_pdfjob_config *c = userdata;
    int level;
    if (sp_export_compression_parse(c->compression, &level) < 0)
        return sp_err_set(err, SP_EINVAL, "SPOOL_PDF_COMPRESSION must be default, fast or a "
                          "zlib level from 1 to 9, not '%s'", c->compression ? c->compression : "");
    for (int f = SP_EXPORT_SANS; f <= SP_EXPORT_MONO; f++) {
        char reg[PATH_MAX], bold[PATH_MAX];
        if (sp_export_font_paths(c->font_dir, (sp_export_font)f, reg, bold, sizeof reg) < 0)
            return sp_err_set(err, SP_EINVAL, "SPOOL_PDF_FONT_DIR is too long");
        const char *paths[2] = {reg, bold};
        for (int i = 0; i < 2; i++)
            if (access(paths[i], R_OK) != 0)
                return sp_err_set(err, SP_EIO, "cannot read the font %s (install "
                                  "fonts-dejavu-core or set SPOOL_PDF_FONT_DIR)", paths[i]);
    }
    return sp__setup_fallbacks(c, err);
}

/* The job's input: {"blob": name, "format": f}, {"url": u, "format": f} or
 * {"inline": rows, "format": f} (small inline datasets kept in the job record). */
typedef struct sp__input {
    char blob[80];
    char url[2100];
    char *inline_rows; /* owned; NULL unless inline */
    size_t inline_len;
    sp_dataset_format format;
} sp__input;

static void sp__input_free(sp__input *in)
{
    sp_free(in->inline_rows);
    in->inline_rows = NULL;
}

static int sp__parse_input(const char *json, sp__input *in, sp_err *err)
{
    memset(in, 0, sizeof *in);
    json_error_t je;
    json_t *root = json_loads(json ? json : "", 0, &je);
    int rc = 0;
    if (root == NULL || !json_is_object(root)) {
        rc = sp_err_set(err, SP_EINVAL, "the job's input must be a JSON object");
        goto out;
    }
    json_t *blob = json_object_get(root, "blob");
    json_t *url = json_object_get(root, "url");
    json_t *rows = json_object_get(root, "inline");
    json_t *fmt = json_object_get(root, "format");
    if ((blob != NULL) + (url != NULL) + (rows != NULL) != 1) {
        rc = sp_err_set(err, SP_EINVAL, "input must have one of \"blob\", \"url\" or \"inline\"");
        goto out;
    }
    if (rows != NULL) {
        if (!json_is_string(rows)) {
            rc = sp_err_set(err, SP_EINVAL, "input.inline must be a string");
            goto out;
        }
        in->inline_len = json_string_length(rows);
        in->inline_rows = sp_strndup(json_string_value(rows), in->inline_len);
        if (in->inline_rows == NULL)
            rc = sp_err_set(err, SP_ENOMEM, "out of memory");
    } else if (blob != NULL) {
        if (!json_is_string(blob) || !sp_blob_name_valid(json_string_value(blob))) {
            rc = sp_err_set(err, SP_EINVAL, "input.blob must be a blob name");
            goto out;
        }
        snprintf(in->blob, sizeof in->blob, "%s", json_string_value(blob));
    } else {
        if (!json_is_string(url) || !sp_fetch_url_valid(json_string_value(url))) {
            rc = sp_err_set(err, SP_EINVAL, "input.url must be an http or https URL");
            goto out;
        }
        snprintf(in->url, sizeof in->url, "%s", json_string_value(url));
    }
    if (rc == 0 && (!json_is_string(fmt) ||
                    sp_dataset_format_parse(json_string_value(fmt), &in->format) < 0))
        rc = sp_err_set(err, SP_EINVAL, "input.format must be \"csv\", \"ndjson\" or \"json\"");
out:
    json_decref(root);
    if (rc < 0)
        sp__input_free(in);
    return rc;
}

/* Return what the runtime expects when the job was told to stop. */
static int sp__stopped(sp_job_ctx *ctx, int rc)
{
    int reason = sp_job_ctx_stop_reason(ctx);
    return reason ? reason : rc;
}

/* An inline dataset as a file descriptor (an anonymous memory file), so it is read
 * like any other. */
static int sp__open_inline(sp_job_ctx *ctx, const sp__input *in, int *fd)
{
    int f = memfd_create("spool-dataset", MFD_CLOEXEC);
    size_t off = 0;
    while (f >= 0 && off < in->inline_len) {
        ssize_t n = write(f, in->inline_rows + off, in->inline_len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            close(f);
            f = -1;
            break;
        }
        off += (size_t)n;
    }
    if (f < 0 || lseek(f, 0, SEEK_SET) < 0) {
        if (f >= 0)
            close(f);
        return sp_job_ctx_fail(ctx, SP_EIO, true, "io_error",
                               "cannot hold the inline dataset: %s", strerror(errno));
    }
    *fd = f;
    return 0;
}

/* Open the dataset: inline rows, the uploaded blob, or source_url (fetched on the first
 * attempt into the blob "source", which later attempts reuse). */
static int sp__open_input(sp_job_ctx *ctx, const sp_pdfjob_config *c, const sp__input *in,
                          int *fd)
{
    if (in->inline_rows)
        return sp__open_inline(ctx, in, fd);
    const sp_job *job = sp_job_ctx_job(ctx);
    sp_blobs *blobs = sp_job_ctx_blobs(ctx);
    sp_err err;
    sp_err_clear(&err);
    int64_t size = 0;
    const char *name = in->blob[0] ? in->blob : SP__SOURCE;
    int rc = sp_blob_open_read(blobs, job->id, name, c->max_input, fd, &size, &err);
    if (rc == SP_ENOTFOUND && in->url[0]) {
        sp_err detail;
        sp_fetch_opts fo = {.max_bytes = c->max_input,
                            .total_timeout_ms = c->fetch_timeout_ms,
                            .max_redirects = -1,
                            .stop = sp_job_ctx_stop_flag(ctx),
                            .outbound = sp_job_ctx_outbound(ctx),
                            .detail = &detail};
        int64_t bytes = 0;
        int64_t t0 = sp_mono_ms();
        rc = sp_fetch_to_blob(blobs, job->id, SP__SOURCE, in->url, &fo, &bytes, NULL, &err);
        if (rc == SP_ECANCELLED)
            return sp__stopped(ctx, rc);
        if (rc == SP_EUNREACHABLE) { /* one message for the job; the cause is logged */
            sp_warn(sp_job_ctx_log(ctx), "source_url not fetched: %s", detail.msg);
            return sp_job_ctx_fail(ctx, rc, true, "source_unreachable",
                                   "cannot fetch the dataset: %s", err.msg);
        }
        if (rc < 0) {
            bool retry = rc == SP_EFETCH || rc == SP_ETIMEDOUT || rc == SP_EIO || rc == SP_ENOMEM;
            return sp_job_ctx_fail(ctx, rc, retry, rc == SP_ETOOBIG ? "too_large" : "fetch_failed",
                                   "cannot fetch the dataset: %s", err.msg);
        }
        sp_info(sp_job_ctx_log(ctx), "fetched the dataset (%lld bytes) in %lld ms",
                (long long)bytes, (long long)(sp_mono_ms() - t0));
        rc = sp_blob_open_read(blobs, job->id, SP__SOURCE, c->max_input, fd, &size, &err);
    }
    if (rc == SP_ETOOBIG) /* known from the size alone, before a copy was made */
        return sp_job_ctx_fail(ctx, SP_ETOOBIG, false, "too_large",
                               "export too large: the dataset is %lld bytes, the limit is %lld",
                               (long long)size, (long long)c->max_input);
    if (rc == SP_ENOTFOUND)
        return sp_job_ctx_fail(ctx, rc, false, "input_missing",
                               "the dataset blob '%s' is not in the blob store", name);
    if (rc < 0)
        return sp_job_ctx_fail(ctx, rc, true, "io_error", "cannot open the dataset: %s", err.msg);
    if (c->max_input > 0 && size > c->max_input) {
        close(*fd);
        *fd = -1;
        return sp_job_ctx_fail(ctx, SP_ETOOBIG, false, "too_large",
                               "export too large: the dataset is %lld bytes, the limit is %lld",
                               (long long)size, (long long)c->max_input);
    }
    return 0;
}

static void sp__on_progress(void *ud, int percent)
{
    sp_job_ctx_progress(ud, percent);
}

int sp_pdfjob_handle(sp_job_ctx *ctx, void *userdata, int slot)
{
    (void)slot;
    const sp_pdfjob_config *c = userdata;
    const sp_job *job = sp_job_ctx_job(ctx);
    const sp_logctx *log = sp_job_ctx_log(ctx);
    if (sp_job_ctx_stopping(ctx))
        return sp__stopped(ctx, SP_ECANCELLED);
    if (strcmp(job->type, "pdf.export") != 0)
        return sp_job_ctx_fail(ctx, SP_EUNSUPPORTED, false, "unsupported_type",
                               "spool-pdf runs pdf.export jobs, not %s", job->type);
    if (c->time_limit_ms > 0)
        sp_job_ctx_set_time_limit(ctx, c->time_limit_ms);

    sp_err err;
    sp_err_clear(&err);
    sp_export_params params;
    if (sp_export_params_parse(job->params, &params, &err) < 0)
        return sp_job_ctx_fail(ctx, err.code, err.code == SP_ENOMEM, "invalid_params", "%s",
                               err.msg);
    sp__input in;
    if (sp__parse_input(job->input, &in, &err) < 0) {
        sp_export_params_free(&params);
        return sp_job_ctx_fail(ctx, err.code, false, "invalid_input", "%s", err.msg);
    }
    int fd = -1;
    int rc = sp__open_input(ctx, c, &in, &fd);
    sp__input_free(&in); /* inline rows now live in fd */
    if (rc < 0) {
        sp_export_params_free(&params);
        return rc;
    }

    sp_blob_writer *w = NULL;
    rc = sp_blob_create_file(sp_job_ctx_blobs(ctx), job->id, SP__OUTPUT, &w, &err);
    if (rc < 0) {
        close(fd);
        sp_export_params_free(&params);
        return sp_job_ctx_fail(ctx, rc, true, "io_error", "cannot create the PDF: %s", err.msg);
    }
    int level = 0;
    sp_export_compression_parse(c->compression, &level); /* checked at start-up */
    sp_export_opts o = {
        .font_dir = c->font_dir,
        .compression = level,
        .fallbacks = (const char *const *)c->fallbacks,
        .nfallbacks = c->nfallbacks,
        .creator = "spool-pdf " SPOOL_VERSION,
        .limits = {.max_rows = c->max_rows,
                   .max_pages = c->max_pages,
                   .max_memory = c->max_memory,
                   .max_row_bytes = (size_t)c->max_row_bytes,
                   .max_lines = (int)c->cell_lines},
        .stop = sp_job_ctx_stop_flag(ctx),
        .progress = sp__on_progress,
        .ud = ctx,
    };
    sp_export_result res;
    rc = sp_export_run(&params, fd, in.format, sp_blob_staging_path(w), &o, &res, &err);
    sp_export_params_free(&params);
    if (rc < 0) {
        sp_blob_abort(w);
        if (rc == SP_ECANCELLED || sp_job_ctx_stopping(ctx))
            return sp__stopped(ctx, rc);
        return sp_job_ctx_fail(ctx, rc, res.retryable, res.error_code ? res.error_code : "failed",
                               "%s", err.msg);
    }
    /* The export checks for a stop only between pages; the end of the file (fonts, page
     * tree, cross-reference table) and a slow disk take a moment. A cancel (or a shutdown past its grace, a lost lease, the time limit)
     * that came meanwhile wins: the PDF is discarded, not published. */
    if (sp_job_ctx_stopping(ctx)) {
        sp_blob_abort(w);
        sp_info(log, "asked to stop before the PDF was published (its end took %lld ms): "
                     "the PDF is discarded", (long long)res.save_ms);
        return sp__stopped(ctx, SP_ECANCELLED);
    }
    rc = sp_blob_commit(w, true, NULL, &err);
    if (rc < 0)
        return sp_job_ctx_fail(ctx, rc, true, "io_error", "cannot store the PDF: %s", err.msg);
    rc = sp_job_ctx_add_output(ctx, SP__OUTPUT, "application/pdf", res.bytes, NULL);
    if (rc < 0)
        return sp_job_ctx_fail(ctx, rc, true, "out_of_memory", "out of memory");
    char meta[160];
    snprintf(meta, sizeof meta, "{\"pages\":%lld,\"rows\":%lld,\"missing_glyphs\":%lld}",
             (long long)res.pages, (long long)res.rows, (long long)res.missing_glyphs);
    rc = sp_job_ctx_set_metadata(ctx, meta);
    if (rc < 0)
        return sp__stopped(ctx, rc);
    sp_info(log, "exported %lld rows (%s) on %lld pages (%lld bytes): fonts %lld ms, sample "
            "%lld ms, layout %lld ms, render %lld ms, save %lld ms, PDF memory peak %lld bytes",
            (long long)res.rows, sp_dataset_format_name(in.format), (long long)res.pages,
            (long long)res.bytes, (long long)res.font_ms, (long long)res.sample_ms,
            (long long)res.layout_ms, (long long)res.render_ms, (long long)res.save_ms,
            (long long)res.memory_peak);
    return 0;
}
