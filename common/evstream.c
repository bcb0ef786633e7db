/* evstream.c - the job event stream, read side (see evstream.h). */
#include "spool/evstream.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "queue_internal.h"
#include "spool/alloc.h"
#include "spool/config.h"

struct sp_evstream {
    sp_redis *r;
    char key[SP_KEY_MAX];
};

/* ---- ids -------------------------------------------------------------------------- */

/* Parse a run of 1-20 digits at *p into *out (no overflow, no leading zero: one
 * spelling per number); advance *p. */
static bool sp__digits(const char **p, uint64_t *out)
{
    const char *s = *p;
    if (s[0] == '0' && s[1] >= '0' && s[1] <= '9')
        return false;
    uint64_t v = 0;
    size_t n = 0;
    while (s[n] >= '0' && s[n] <= '9') {
        unsigned d = (unsigned)(s[n] - '0');
        if (n == 20 || v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
        n++;
    }
    if (n == 0)
        return false;
    *p = s + n;
    *out = v;
    return true;
}

/* Parse an entry id "ms-seq" of length len. */
static bool sp__entry_parse(const char *s, size_t len, sp_evid *out)
{
    char tmp[48];
    if (len == 0 || len >= sizeof tmp)
        return false;
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    const char *p = tmp;
    sp_evid id = {0, 0, -1};
    if (!sp__digits(&p, &id.ms) || *p++ != '-' || !sp__digits(&p, &id.seq) || *p != '\0')
        return false;
    *out = id;
    return true;
}

int sp_evid_parse(const char *s, sp_evid *out)
{
    if (s == NULL)
        return SP_EINVAL;
    const char *p = s;
    sp_evid id = {0, 0, -1};
    if (!sp__digits(&p, &id.ms) || *p++ != '-' || !sp__digits(&p, &id.seq))
        return SP_EINVAL;
    if (*p == '/') {
        p++;
        uint64_t idx;
        if (!sp__digits(&p, &idx) || idx > SP_EVID_IDX_MAX)
            return SP_EINVAL;
        id.idx = (int32_t)idx;
    }
    if (*p != '\0')
        return SP_EINVAL;
    *out = id;
    return 0;
}

void sp_evid_format(const sp_evid *id, char out[SP_EVID_LEN])
{
    if (id->idx < 0)
        snprintf(out, SP_EVID_LEN, "%" PRIu64 "-%" PRIu64, id->ms, id->seq);
    else
        snprintf(out, SP_EVID_LEN, "%" PRIu64 "-%" PRIu64 "/%" PRId32, id->ms, id->seq,
                 id->idx);
}

int sp_evid_cmp_entry(const sp_evid *a, const sp_evid *b)
{
    if (a->ms != b->ms)
        return a->ms < b->ms ? -1 : 1;
    if (a->seq != b->seq)
        return a->seq < b->seq ? -1 : 1;
    return 0;
}

int sp_evid_cmp(const sp_evid *a, const sp_evid *b)
{
    int c = sp_evid_cmp_entry(a, b);
    if (c != 0)
        return c;
    /* -1 (the whole entry) after every index */
    int64_t ia = a->idx < 0 ? INT64_MAX : a->idx, ib = b->idx < 0 ? INT64_MAX : b->idx;
    return ia < ib ? -1 : ia > ib ? 1 : 0;
}

/* ---- events ----------------------------------------------------------------------- */

/* The next space-separated word of [*p, end) into out (cap with the NUL). */
static bool sp__word(const char **p, const char *end, char *out, size_t cap)
{
    const char *s = *p;
    const char *e = s;
    while (e < end && *e != ' ')
        e++;
    size_t n = (size_t)(e - s);
    if (n == 0 || n >= cap)
        return false;
    memcpy(out, s, n);
    out[n] = '\0';
    *p = e < end ? e + 1 : e;
    return true;
}

int sp_event_parse(const sp_evid *entry, int32_t idx, const char *field, size_t flen,
                   const char *value, size_t vlen, sp_event *out)
{
    sp_event ev;
    memset(&ev, 0, sizeof ev);
    if (field == NULL || value == NULL || flen != SP_ID_LEN)
        return SP_EINVAL;
    memcpy(ev.job, field, SP_ID_LEN);
    ev.job[SP_ID_LEN] = '\0';
    if (!sp_id_valid(ev.job))
        return SP_EINVAL;
    const char *p = value, *end = value + vlen;
    char state[16], prog[8];
    int64_t progress;
    if (!sp__word(&p, end, state, sizeof state) || sp_state_parse(state, &ev.state) < 0 ||
        !sp__word(&p, end, prog, sizeof prog) || sp_parse_i64(prog, 0, 100, &progress) < 0 ||
        !sp__word(&p, end, ev.queue, sizeof ev.queue) || !sp_queue_name_valid(ev.queue) ||
        !sp__word(&p, end, ev.type, sizeof ev.type) || !sp_job_type_valid(ev.type) || p != end ||
        value[vlen - 1] == ' ')
        return SP_EINVAL;
    ev.progress = (int)progress;
    ev.id = *entry;
    ev.id.idx = idx;
    ev.at_ms = (int64_t)entry->ms;
    *out = ev;
    return 0;
}

void sp_evbatch_init(sp_evbatch *b)
{
    memset(b, 0, sizeof *b);
    b->last.idx = -1;
}

void sp_evbatch_free(sp_evbatch *b)
{
    if (b == NULL)
        return;
    sp_free(b->ev);
    sp_evbatch_init(b);
}

/* Append the events of the entries in reply (an array of [id, [f, v, ...]]) to b,
 * skipping pairs at or before skip (may be NULL). Returns the entries read or
 * SP_ENOMEM/SP_EPROTO, with b as it was. */
static int sp__take_entries(const redisReply *entries, const sp_evid *skip, sp_evbatch *b,
                            sp_err *err)
{
    size_t n0 = b->n, nent = sp_reply_len(entries);
    sp_evid last = b->last;
    for (size_t i = 0; i < nent; i++) {
        const redisReply *e = sp_reply_elem(entries, i);
        size_t idlen;
        const char *ids = sp_reply_str(sp_reply_elem(e, 0), &idlen);
        const redisReply *pairs = sp_reply_elem(e, 1);
        sp_evid eid;
        if (ids == NULL || !sp__entry_parse(ids, idlen, &eid)) {
            b->n = n0;
            return sp_err_set(err, SP_EPROTO, "the event stream holds a malformed entry");
        }
        size_t np = sp_reply_len(pairs) / 2;
        for (size_t k = 0; k < np && k <= SP_EVID_IDX_MAX; k++) {
            if (skip && sp_evid_cmp_entry(&eid, skip) == 0 &&
                (skip->idx < 0 || (int32_t)k <= skip->idx))
                continue;
            size_t flen, vlen;
            const char *f = sp_reply_str(sp_reply_elem(pairs, 2 * k), &flen);
            const char *v = sp_reply_str(sp_reply_elem(pairs, 2 * k + 1), &vlen);
            if (b->n == b->cap) {
                size_t cap = b->cap ? b->cap * 2 : 64;
                sp_event *ev = sp_realloc(b->ev, cap * sizeof *ev);
                if (ev == NULL) {
                    b->n = n0;
                    return sp_err_set(err, SP_ENOMEM, "out of memory");
                }
                b->ev = ev;
                b->cap = cap;
            }
            if (sp_event_parse(&eid, (int32_t)k, f, flen, v, vlen, &b->ev[b->n]) == 0)
                b->n++; /* a pair that is not an event is skipped */
        }
        last = eid;
    }
    b->last = last;
    b->last.idx = -1;
    b->entries += nent;
    return (int)nent;
}

/* ---- the handle --------------------------------------------------------------------- */

sp_evstream *sp_evstream_open(const char *url, const char *prefix, sp_err *err)
{
    char pfx[SP_PREFIX_MAX + 1];
    if (sp__prefix_copy(pfx, prefix, err) < 0)
        return NULL;
    sp_evstream *s = sp_calloc(1, sizeof *s);
    if (s == NULL) {
        sp_err_set(err, SP_ENOMEM, "out of memory");
        return NULL;
    }
    sp_key k;
    memcpy(s->key, sp__key(&k, pfx, "events"), sizeof s->key);
    if ((s->r = sp_redis_new(url, NULL, 0, 5000, err)) == NULL) {
        sp_free(s);
        return NULL;
    }
    return s;
}

void sp_evstream_close(sp_evstream *s)
{
    if (s == NULL)
        return;
    sp_redis_free(s->r);
    sp_free(s);
}

/* A read-only command, tried a second time when the first found an old connection
 * broken (Redis restarted while we were idle). */
static int sp__read_cmd(sp_evstream *s, redisReply **rep, sp_err *err, int argc,
                        const char **argv)
{
    int rc = sp_redis_cmd(s->r, rep, err, argc, argv, NULL);
    if (rc == SP_EREDIS && sp_redis_stale_error(s->r))
        rc = sp_redis_cmd(s->r, rep, err, argc, argv, NULL);
    return rc;
}

int sp_evstream_tail(sp_evstream *s, sp_evid *last, sp_err *err)
{
    const char *argv[] = {"XREVRANGE", s->key, "+", "-", "COUNT", "1"};
    redisReply *rep;
    int rc = sp__read_cmd(s, &rep, err, 6, argv);
    if (rc < 0)
        return rc;
    sp_evid id = {0, 0, -1};
    size_t len;
    const char *ids = sp_reply_str(sp_reply_elem(sp_reply_elem(rep, 0), 0), &len);
    if (sp_reply_len(rep) > 0 && (ids == NULL || !sp__entry_parse(ids, len, &id))) {
        sp_redis_reply_free(rep);
        return sp_err_set(err, SP_EPROTO, "the event stream holds a malformed entry");
    }
    sp_redis_reply_free(rep);
    *last = id;
    return 0;
}

int sp_evstream_read(sp_evstream *s, const sp_evid *after, int64_t block_ms,
                     size_t max_entries, sp_evbatch *b, sp_err *err)
{
    char from[SP_EVID_LEN], count[24], block[24];
    sp_evid e = *after;
    e.idx = -1;
    sp_evid_format(&e, from);
    snprintf(count, sizeof count, "%zu", max_entries ? max_entries : 1);
    snprintf(block, sizeof block, "%lld", (long long)(block_ms > 0 ? block_ms : 1));
    const char *argv[] = {"XREAD", "COUNT", count, "BLOCK", block, "STREAMS", s->key, from};
    redisReply *rep;
    int rc = sp_redis_cmd_blocking(s->r, block_ms, &rep, err, 8, argv, NULL);
    if (rc < 0)
        return rc;
    /* nil when the wait ran out; else [[key, entries]] */
    rc = sp_reply_len(rep) ? sp__take_entries(sp_reply_elem(sp_reply_elem(rep, 0), 1), NULL, b,
                                              err)
                           : 0;
    sp_redis_reply_free(rep);
    return rc;
}

int sp_evstream_range(sp_evstream *s, const sp_evid *after, size_t max_entries,
                      sp_evbatch *b, sp_err *err)
{
    char from[SP_EVID_LEN + 1], count[24];
    sp_evid e = *after;
    e.idx = -1;
    /* after a whole entry: exclusive; after a pair in it: the entry again, its later
     * pairs only */
    from[0] = '(';
    sp_evid_format(&e, from + 1);
    snprintf(count, sizeof count, "%zu", max_entries ? max_entries : 1);
    const char *argv[] = {"XRANGE", s->key, after->idx < 0 ? from : from + 1, "+", "COUNT",
                          count};
    redisReply *rep;
    int rc = sp__read_cmd(s, &rep, err, 6, argv);
    if (rc < 0)
        return rc;
    rc = sp__take_entries(rep, after, b, err);
    sp_redis_reply_free(rep);
    return rc;
}

int sp_evstream_gap(sp_evstream *s, const sp_evid *after, sp_evid *oldest, sp_err *err)
{
    const char *argv[] = {"XINFO", "STREAM", s->key};
    redisReply *rep;
    sp_err e2;
    int rc = sp__read_cmd(s, &rep, &e2, 3, argv);
    sp_evid first = {0, 0, -1};
    if (rc == SP_EPROTO && strstr(e2.msg, "no such key")) {
        *oldest = first; /* nothing written yet, nothing lost */
        return 0;
    }
    if (rc < 0) {
        if (err)
            *err = e2;
        return rc;
    }
    int64_t length = -1, added = -1;
    sp_evid lastgen = {0, 0, -1};
    size_t n = sp_reply_len(rep) / 2;
    for (size_t i = 0; i < n; i++) {
        const redisReply *name = sp_reply_elem(rep, 2 * i), *val = sp_reply_elem(rep, 2 * i + 1);
        size_t len;
        const char *v;
        if (sp_reply_is(name, "length"))
            length = sp_reply_int(val, -1);
        else if (sp_reply_is(name, "entries-added"))
            added = sp_reply_int(val, -1);
        else if (sp_reply_is(name, "last-generated-id") && (v = sp_reply_str(val, &len)))
            sp__entry_parse(v, len, &lastgen);
        else if (sp_reply_is(name, "first-entry") &&
                 (v = sp_reply_str(sp_reply_elem(val, 0), &len)))
            sp__entry_parse(v, len, &first);
    }
    sp_redis_reply_free(rep);
    *oldest = first;
    if (length < 0 || added < 0)
        return sp_err_set(err, SP_EPROTO, "XINFO STREAM lacks length or entries-added "
                          "(Redis 7 or later is needed)");
    if (added <= length)
        return 0; /* nothing was ever trimmed */
    /* Trimming removes the oldest entries first, so what is gone lies before the first
     * entry kept (or, with none kept, up to the last one written). A client whose last
     * id is older than that missed some of it (a client that saw exactly the entry
     * before the first kept one is told so too: the stream cannot say it is not). */
    if (length == 0) {
        /* the last entry is gone too: a client inside it may have missed its rest */
        int c = sp_evid_cmp_entry(after, &lastgen);
        return c < 0 || (c == 0 && after->idx >= 0) ? 1 : 0;
    }
    return sp_evid_cmp_entry(after, &first) < 0 ? 1 : 0;
}
