/* videos.c - POST /v1/videos: a video to transcode, as a multipart/form-data upload
 * (field `file` and the parameters as fields), a raw video or
 * application/octet-stream body (parameters in the query string), or JSON with a
 * source_url for the worker to fetch. Uploads stream to the blob `input` as they
 * arrive. */
#include <jansson.h>
#include <string.h>

#include "handlers.h"
#include "multipart.h"
#include "reply.h"
#include "spool/alloc.h"
#include "spool/utf8.h"
#include "submit.h"
#include "validate.h"

#define API_FIELD_MAX (API_CALLBACK_MAX + 1) /* a form field's value (the longest:
                                                 * callback_url, and one byte to tell
                                                 * a longer one) */
/* A JSON request is a source_url (at most API_URL_MAX) and three short fields: a body
 * past this is refused before it is read, whatever SPOOL_MAX_JSON_BYTES allows. */
#define API_VIDEO_JSON_MAX (64 * 1024)
#define API_MP_OVERHEAD (64 * 1024) /* multipart framing allowed above the upload limit */

enum { API_VIDEO_JSON, API_VIDEO_RAW, API_VIDEO_MULTIPART };
enum { API_PART_NONE, API_PART_FILE, API_PART_FIELD };

typedef struct api_video_state {
    int kind;
    api_video_req v;
    api_mp *mp;
    int part;
    char field[API_MP_NAME_MAX + 1];
    bool have_file;
    char ctype[API_MEDIA_MAX + 1]; /* the file's content type */
    char filename[API_MP_FILENAME_MAX + 1];
} api_video_state;

static void api__video_free(void *p)
{
    api_video_state *st = p;
    if (st)
        sp_free(st->mp);
    sp_free(st);
}

static const char api__video_types[] =
    "multipart/form-data, video/*, application/octet-stream or application/json";

static int api__query_field(void *ud, const char *name, const char *value)
{
    api_req *r = ud;
    api_video_state *st = r->state;
    api_invalid inv;
    if (st->kind == API_VIDEO_JSON)
        api_invalid_set(&inv, name, "parameters of a JSON request go in its body, not the query "
                                    "string");
    else if (api_video_field(&st->v, name, value, st->kind == API_VIDEO_RAW, &inv) == 0)
        return 0;
    api_reply_invalid(r, &inv);
    return -1;
}

/* ---- multipart callbacks ------------------------------------------------------------ */

static int api__part_begin(void *ud, const api_mp_part *p, sp_err *err)
{
    api_req *r = ud;
    api_video_state *st = r->state;
    api_submit_hash(r, p->name, strlen(p->name) + 1);
    api_submit_hash(r, p->filename, strlen(p->filename) + 1);
    api_submit_hash(r, p->content_type, strlen(p->content_type) + 1);
    if (strcmp(p->name, "file") != 0) {
        st->part = API_PART_FIELD;
        memcpy(st->field, p->name, strlen(p->name) + 1);
        sp_buf_free(&r->text);
        sp_buf_init(&r->text, API_FIELD_MAX);
        return 0;
    }
    if (st->have_file) {
        api_invalid inv;
        api_invalid_set(&inv, "file", "the file is given more than once");
        api_reply_invalid(r, &inv);
        return sp_err_set(err, SP_ECANCELLED, "answered");
    }
    if (!sp_utf8_valid(p->filename, strlen(p->filename))) {
        api_invalid inv;
        api_invalid_set(&inv, "file", "the file name must be UTF-8");
        api_reply_invalid(r, &inv);
        return sp_err_set(err, SP_ECANCELLED, "answered");
    }
    api_media m;
    if (p->content_type[0] &&
        (api_hdr_media_type(p->content_type, &m) < 0 ||
         (!api_hdr_is_video(m.type) && strcmp(m.type, "application/octet-stream") != 0))) {
        api_reply_error(r, API_E_MEDIA_TYPE,
                        "the file's Content-Type must be video/* or application/octet-stream, "
                        "not %s",
                        p->content_type);
        return sp_err_set(err, SP_ECANCELLED, "answered");
    }
    snprintf(st->ctype, sizeof st->ctype, "%s",
             p->content_type[0] ? m.type : "application/octet-stream");
    snprintf(st->filename, sizeof st->filename, "%s", p->filename);
    st->have_file = true;
    st->part = API_PART_FILE;
    if (api_submit_blob_open(r, "input") < 0)
        return sp_err_set(err, SP_ECANCELLED, "answered");
    return 0;
}

static int api__part_data(void *ud, const char *data, size_t n, sp_err *err)
{
    api_req *r = ud;
    api_video_state *st = r->state;
    if (st->part == API_PART_FILE) {
        if (api_submit_blob_write(r, data, n) < 0)
            return sp_err_set(err, SP_ECANCELLED, "answered");
        return 0;
    }
    api_submit_hash(r, data, n);
    if (sp_buf_add(&r->text, data, n) < 0) {
        api_invalid inv;
        api_invalid_set(&inv, st->field, "%s is longer than %d bytes", st->field, API_FIELD_MAX);
        api_reply_invalid(r, &inv);
        return sp_err_set(err, SP_ECANCELLED, "answered");
    }
    return 0;
}

static int api__part_end(void *ud, sp_err *err)
{
    api_req *r = ud;
    api_video_state *st = r->state;
    int part = st->part;
    st->part = API_PART_NONE;
    api_submit_hash(r, "\n", 1);
    if (part != API_PART_FIELD)
        return 0;
    api_invalid inv;
    bool nul = r->text.len > 0 && memchr(r->text.data, '\0', r->text.len) != NULL;
    if (nul)
        api_invalid_set(&inv, st->field, "%s has a NUL byte", st->field);
    if (nul || api_video_field(&st->v, st->field, sp_buf_cstr(&r->text), false, &inv) < 0) {
        api_reply_invalid(r, &inv);
        return sp_err_set(err, SP_ECANCELLED, "answered");
    }
    return 0;
}

static const api_mp_callbacks api__video_mp = {api__part_begin, api__part_data, api__part_end};

/* ---- the handler ---------------------------------------------------------------------- */

enum MHD_Result api_videos_begin(api_req *r)
{
    const api_config *cfg = r->srv->cfg;
    const char *ct = api_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (ct == NULL || api_hdr_media_type(ct, &r->media) < 0)
        return api_reply_error(r, API_E_MEDIA_TYPE, "Content-Type must be %s", api__video_types);
    int kind;
    int64_t limit = cfg->max_upload;
    if (strcmp(r->media.type, "multipart/form-data") == 0) {
        if (r->media.boundary[0] == '\0')
            return api_reply_error(r, API_E_BAD_MULTIPART,
                                   "multipart/form-data needs a boundary parameter");
        kind = API_VIDEO_MULTIPART;
        limit += API_MP_OVERHEAD;
    } else if (api_hdr_is_video(r->media.type) ||
               strcmp(r->media.type, "application/octet-stream") == 0) {
        kind = API_VIDEO_RAW;
    } else if (strcmp(r->media.type, "application/json") == 0) {
        kind = API_VIDEO_JSON;
        limit = cfg->max_json < API_VIDEO_JSON_MAX ? cfg->max_json : API_VIDEO_JSON_MAX;
    } else {
        return api_reply_error(r, API_E_MEDIA_TYPE, "Content-Type must be %s, not %s",
                               api__video_types, r->media.type);
    }
    if (api_submit_check_length(r, limit) < 0)
        return api_replied(r);
    api_video_state *st = sp_calloc(1, sizeof *st);
    if (st == NULL)
        return api_reply_code(r, SP_ENOMEM, NULL);
    r->state = st;
    r->state_free = api__video_free;
    st->kind = kind;
    api_video_init(&st->v);
    if (api_submit_begin(r) < 0 || api_query_each(r, api__query_field, r) != 0)
        return api_replied(r);
    api_invalid inv;
    if (kind == API_VIDEO_RAW && api_video_check(&st->v, &inv) < 0) /* all of it is here */
        return api_reply_invalid(r, &inv);
    if (kind == API_VIDEO_JSON) {
        sp_buf_init(&r->text, (size_t)limit);
        return MHD_YES;
    }
    if (api_submit_precheck(r, "video.transcode") < 0)
        return api_replied(r);
    if (kind == API_VIDEO_RAW) {
        snprintf(st->ctype, sizeof st->ctype, "%s", r->media.type);
        if (api_submit_blob_open(r, "input") < 0)
            return api_replied(r);
        return MHD_YES;
    }
    sp_err err;
    if ((st->mp = sp_malloc(sizeof *st->mp)) == NULL)
        return api_reply_code(r, SP_ENOMEM, NULL);
    if (api_mp_init(st->mp, r->media.boundary, &api__video_mp, r, &err) < 0)
        return api_reply_error(r, API_E_BAD_MULTIPART, "%s", err.msg);
    return MHD_YES;
}

enum MHD_Result api_videos_data(api_req *r, const char *data, size_t n)
{
    api_video_state *st = r->state;
    if (st->kind == API_VIDEO_JSON) {
        int rc = sp_buf_add(&r->text, data, n);
        if (rc == SP_ETOOBIG)
            return api_reply_error(r, API_E_TOO_LARGE, "the JSON body is larger than %zu bytes",
                                   r->text.max);
        if (rc < 0)
            return api_reply_code(r, rc, NULL);
        api_submit_hash(r, data, n);
        return MHD_YES;
    }
    if (st->kind == API_VIDEO_RAW) {
        if (api_submit_blob_write(r, data, n) < 0)
            return api_replied(r);
        return MHD_YES;
    }
    sp_err err;
    int rc = api_mp_feed(st->mp, data, n, &err);
    if (rc < 0 && r->status == 0)
        return rc == SP_EINVAL ? api_reply_error(r, API_E_BAD_MULTIPART, "%s", err.msg)
                               : api_reply_code(r, rc, &err);
    return rc < 0 ? api_replied(r) : MHD_YES;
}

/* The input of an uploaded video, as docs/jobs.md describes it. */
static int api__upload_input(const api_video_state *st, int64_t bytes, sp_buf *out)
{
    json_t *in = json_pack("{s:s, s:I, s:s}", "blob", "input", "bytes", (json_int_t)bytes,
                           "content_type", st->ctype);
    const char *name = st->kind == API_VIDEO_RAW ? st->v.filename : st->filename;
    if (in && name[0] && json_object_set_new(in, "filename", json_string(name)) < 0) {
        json_decref(in);
        in = NULL;
    }
    int rc = in ? api_json_append(out, in) : SP_ENOMEM;
    json_decref(in);
    return rc;
}

enum MHD_Result api_videos_end(api_req *r)
{
    api_video_state *st = r->state;
    api_invalid inv;
    sp_buf params, input;
    /* escaped, a byte of the URL, file name or type takes at most 6 ("\u0001") */
    sp_buf_init(&params, 4096);
    sp_buf_init(&input, 6 * (API_URL_MAX + API_FILENAME_MAX + API_MEDIA_MAX) + 1024);
    enum MHD_Result ret;
    int rc = 0;
    if (st->kind == API_VIDEO_JSON) {
        json_error_t jerr;
        json_t *req = json_loadb(r->text.data ? r->text.data : "", r->text.len,
                                 JSON_REJECT_DUPLICATES, &jerr);
        if (req == NULL) {
            ret = api_reply_error(r, API_E_INVALID_JSON, "the body is not valid JSON: %s (line %d, "
                                                         "column %d)",
                                  jerr.text, jerr.line, jerr.column);
            goto out;
        }
        rc = api_video_from_json(&st->v, req, &inv);
        json_decref(req);
        if (rc < 0) {
            ret = api_reply_invalid(r, &inv);
            goto out;
        }
        json_t *in = json_pack("{s:s}", "url", st->v.source_url);
        rc = in ? api_json_append(&input, in) : SP_ENOMEM;
        json_decref(in);
    } else {
        sp_err err;
        if (st->kind == API_VIDEO_MULTIPART && api_mp_finish(st->mp, &err) < 0) {
            ret = api_reply_error(r, API_E_BAD_MULTIPART, "%s", err.msg);
            goto out;
        }
        if (api_video_check(&st->v, &inv) < 0) {
            ret = api_reply_invalid(r, &inv);
            goto out;
        }
        if (st->kind == API_VIDEO_MULTIPART && !st->have_file) {
            api_invalid_set(&inv, "file", "a file field named 'file' is required");
            ret = api_reply_invalid(r, &inv);
            goto out;
        }
        if (sp_blob_written(r->blob) == 0) {
            api_invalid_set(&inv, st->kind == API_VIDEO_RAW ? "body" : "file",
                            "the uploaded file is empty");
            ret = api_reply_invalid(r, &inv);
            goto out;
        }
        int64_t bytes;
        if (api_submit_blob_commit(r, &bytes) < 0) {
            ret = api_replied(r);
            goto out;
        }
        rc = api__upload_input(st, bytes, &input);
    }
    if (rc == 0)
        rc = api_video_params(&st->v, &params);
    if (rc < 0)
        ret = api_reply_code(r, rc, NULL);
    else
        ret = api_submit(r, "video.transcode", sp_buf_cstr(&params), sp_buf_cstr(&input),
                         st->v.high_priority, st->v.callback_url, &st->v.when);
out:
    sp_buf_free(&params);
    sp_buf_free(&input);
    return ret;
}
