/* s3xml.c - the XML an S3-compatible object store answers, read with libxml2 into a
 * tree, and the two XML bodies spool sends it, written by libxml2 (see s3xml.h). */
#include "s3xml.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlwriter.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "spool/alloc.h"
#include "spool/utf8.h"

#define SP__S3_NS "http://s3.amazonaws.com/doc/2006-03-01/"

/* No entity substitution (XML_PARSE_NOENT is left out), no DTD loaded, no network, no
 * messages on stderr (they go into sp_err), CDATA as text, small text nodes compact
 * (the tree is only read), and the body read as UTF-8 whatever its XML declaration
 * says (S3 answers in UTF-8; bytes that are not UTF-8 are an error).
 * XML_PARSE_HUGE is left out, so libxml2's own limits hold: depth 256, 10 MB per text
 * node, 50000 bytes per name. */
#define SP__PARSE_OPTIONS                                                                 \
    (XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_NOCDATA |      \
     XML_PARSE_COMPACT | XML_PARSE_IGNORE_ENC)

/* Attributes allowed on one element. S3 puts at most a few namespace declarations on
 * one; libxml2 2.9 compares an element's attributes pairwise for duplicates, so their
 * number is quadratic in time (40000 attributes take 8 s, 8 MB of them an hour), and
 * more are refused before the parser sees them. */
#define SP__MAX_ATTRIBUTES 32

static pthread_once_t sp__xml_once = PTHREAD_ONCE_INIT;

/* xmlInitParser must run once before threads parse at the same time. */
static void sp__xml_init(void)
{
    xmlInitParser();
}

/* ---- reading ------------------------------------------------------------------------- */

static char sp__dtd_seen; /* its address marks a parser that met a DOCTYPE */

/* The internalSubset handler: a DOCTYPE stops the parser before its internal subset is
 * read. S3 sends none, and entity declarations are how a small body makes a parser
 * do a lot of work (billion laughs) or read files (external entities). */
static void sp__refuse_dtd(void *ctx, const xmlChar *name, const xmlChar *external_id,
                           const xmlChar *system_id)
{
    (void)name;
    (void)external_id;
    (void)system_id;
    xmlParserCtxtPtr ctxt = ctx;
    ctxt->_private = &sp__dtd_seen;
    xmlStopParser(ctxt);
}

/* True when no start tag in body[0..n) has more than SP__MAX_ATTRIBUTES attributes,
 * counted as '=' outside quotes. Exact for well-formed XML in UTF-8 (what the parser
 * is told it reads), where '<' is always escaped in text and attribute values; comments,
 * CDATA sections, processing instructions and declarations are skipped. Linear. */
static bool sp__attributes_ok(const char *body, size_t n)
{
    const char *end = body + n;
    for (const char *p = memchr(body, '<', n); p != NULL;
         p = memchr(p, '<', (size_t)(end - p))) {
        p++;
        if (p < end && (*p == '!' || *p == '?')) {
            const char *close = *p == '?' ? "?>" : ">";
            if (end - p >= 3 && memcmp(p, "!--", 3) == 0)
                close = "-->";
            else if (end - p >= 8 && memcmp(p, "![CDATA[", 8) == 0)
                close = "]]>";
            const char *q = memmem(p, (size_t)(end - p), close, strlen(close));
            if (q == NULL)
                return true; /* unterminated: the parser says so */
            p = q + strlen(close);
            continue;
        }
        int attributes = 0;
        char quote = 0;
        for (; p < end && (quote || (*p != '>' && *p != '<')); p++) {
            if (quote) {
                if (*p == quote)
                    quote = 0;
            } else if (*p == '"' || *p == '\'') {
                quote = *p;
            } else if (*p == '=' && ++attributes > SP__MAX_ATTRIBUTES) {
                return false;
            }
        }
        if (p == end)
            break;
    }
    return true;
}

/* Parse body into *docp (free it with xmlFreeDoc). SP_EPROTO for an empty or too large
 * body, a DOCTYPE, too many attributes on an element, or anything that is not
 * well-formed UTF-8 XML with a root element. */
static int sp__parse(const char *body, size_t n, xmlDoc **docp, sp_err *err)
{
    pthread_once(&sp__xml_once, sp__xml_init);
    if (body == NULL || n == 0)
        return sp_err_set(err, SP_EPROTO, "empty reply where XML was expected");
    if (n > SP_S3XML_MAX_BYTES)
        return sp_err_set(err, SP_EPROTO, "XML reply of %zu bytes: more than the %d allowed",
                          n, SP_S3XML_MAX_BYTES);
    if (!sp__attributes_ok(body, n))
        return sp_err_set(err, SP_EPROTO, "XML reply with an element of more than %d "
                          "attributes (refused: S3 sends a few)", SP__MAX_ATTRIBUTES);
    xmlParserCtxtPtr ctxt = xmlNewParserCtxt();
    if (ctxt == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory reading an XML reply");
    ctxt->sax->internalSubset = sp__refuse_dtd;
    xmlDoc *doc = xmlCtxtReadMemory(ctxt, body, (int)n, NULL, "UTF-8", SP__PARSE_OPTIONS);
    int rc = 0;
    if (ctxt->_private == &sp__dtd_seen) {
        rc = sp_err_set(err, SP_EPROTO, "XML reply with a DOCTYPE (refused: S3 sends none)");
    } else if (doc == NULL || xmlDocGetRootElement(doc) == NULL) {
        const xmlError *e = &ctxt->lastError;
        const char *msg = e->message ? e->message : "no root element";
        size_t len = strlen(msg);
        while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
            len--;
        if (e->code == XML_ERR_NO_MEMORY)
            rc = sp_err_set(err, SP_ENOMEM, "out of memory reading an XML reply");
        else
            rc = sp_err_set(err, SP_EPROTO, "not XML: line %d: %.*s", e->line, (int)len, msg);
    }
    xmlFreeParserCtxt(ctxt);
    if (rc < 0) {
        xmlFreeDoc(doc);
        return rc;
    }
    *docp = doc;
    return 0;
}

static bool sp__is(const xmlNode *node, const char *name)
{
    return node->type == XML_ELEMENT_NODE && strcmp((const char *)node->name, name) == 0;
}

/* The first child element of parent named name (local name: any namespace), or NULL. */
static xmlNode *sp__child(const xmlNode *parent, const char *name)
{
    for (xmlNode *c = parent->children; c != NULL; c = c->next)
        if (sp__is(c, name))
            return c;
    return NULL;
}

static bool sp__space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* An element's text: its text children joined (there is one unless a comment or a
 * processing instruction splits it). s points into the tree, or into owned. */
typedef struct sp__text {
    const char *s;
    size_t len;
    char *owned;
} sp__text;

/* The text of el (NULL: absent, the same as empty) into *t, without surrounding white
 * space when trim; release it with sp__text_free. 0 or SP_ENOMEM. */
static int sp__text_get(const xmlNode *el, bool trim, sp__text *t, sp_err *err)
{
    t->s = "";
    t->len = 0;
    t->owned = NULL;
    if (el == NULL)
        return 0;
    const xmlNode *only = NULL;
    size_t pieces = 0, len = 0;
    for (const xmlNode *c = el->children; c != NULL; c = c->next) {
        if ((c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) &&
            c->content != NULL) {
            only = c;
            pieces++;
            len += strlen((const char *)c->content);
        }
    }
    if (pieces == 1) {
        t->s = (const char *)only->content;
    } else if (pieces > 1) {
        char *p = sp_malloc(len + 1);
        if (p == NULL)
            return sp_err_set(err, SP_ENOMEM, "out of memory reading an XML reply");
        size_t at = 0;
        for (const xmlNode *c = el->children; c != NULL; c = c->next) {
            if ((c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) &&
                c->content != NULL) {
                size_t k = strlen((const char *)c->content);
                memcpy(p + at, c->content, k);
                at += k;
            }
        }
        p[at] = '\0';
        t->s = t->owned = p;
    }
    t->len = len;
    if (trim) {
        while (t->len > 0 && sp__space(t->s[0])) {
            t->s++;
            t->len--;
        }
        while (t->len > 0 && sp__space(t->s[t->len - 1]))
            t->len--;
        if (t->s[t->len] != '\0') { /* trailing space cut: a NUL-terminated copy */
            char *p = sp_strndup(t->s, t->len);
            if (p == NULL) {
                sp_free(t->owned);
                t->owned = NULL;
                return sp_err_set(err, SP_ENOMEM, "out of memory reading an XML reply");
            }
            sp_free(t->owned);
            t->s = t->owned = p;
        }
    }
    return 0;
}

static void sp__text_free(sp__text *t)
{
    sp_free(t->owned);
    t->owned = NULL;
}

/* Copy t into dst[cap], cut at a UTF-8 character boundary when it does not fit. */
static void sp__copy_cut(char *dst, size_t cap, const sp__text *t)
{
    size_t k = t->len;
    if (k >= cap) {
        k = cap - 1;
        while (k > 0 && ((unsigned char)t->s[k] & 0xC0) == 0x80)
            k--; /* t->s[k] starts the first character left out */
    }
    memcpy(dst, t->s, k);
    dst[k] = '\0';
}

/* Copy t, known to fit, into dst. */
static void sp__copy(char *dst, const sp__text *t)
{
    memcpy(dst, t->s, t->len);
    dst[t->len] = '\0';
}

/* The fields of an <Error> element into *out. 0 or SP_ENOMEM. */
static int sp__error_fields(const xmlNode *el, sp_s3xml_error *out, sp_err *err)
{
    static const struct {
        const char *name;
        size_t off, cap;
    } fields[] = {
        {"Code", offsetof(sp_s3xml_error, code), sizeof out->code},
        {"Message", offsetof(sp_s3xml_error, message), sizeof out->message},
        {"Region", offsetof(sp_s3xml_error, region), sizeof out->region},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        sp__text t;
        if (sp__text_get(sp__child(el, fields[i].name), true, &t, err) < 0)
            return SP_ENOMEM;
        sp__copy_cut((char *)out + fields[i].off, fields[i].cap, &t);
        sp__text_free(&t);
    }
    return 0;
}

/* The root element of doc when its local name is want. Otherwise SP_EPROTO saying
 * what came instead: an <Error> document by its code and message. */
static int sp__root(xmlDoc *doc, const char *want, xmlNode **out, sp_err *err)
{
    xmlNode *root = xmlDocGetRootElement(doc);
    if (sp__is(root, want)) {
        *out = root;
        return 0;
    }
    if (sp__is(root, "Error")) {
        sp_s3xml_error e;
        if (sp__error_fields(root, &e, err) < 0)
            return SP_ENOMEM;
        return sp_err_set(err, SP_EPROTO, "S3 error %s: %s", e.code[0] ? e.code : "(no Code)",
                          e.message);
    }
    return sp_err_set(err, SP_EPROTO, "XML reply of root %.64s where %s was expected",
                      (const char *)root->name, want);
}

/* IsTruncated, a child of parent: absent is false. SP_EPROTO unless a boolean. */
static int sp__truncated(const xmlNode *parent, bool *out, sp_err *err)
{
    sp__text t;
    if (sp__text_get(sp__child(parent, "IsTruncated"), true, &t, err) < 0)
        return SP_ENOMEM;
    int rc = 0;
    if (t.len == 0 || !strcmp(t.s, "false") || !strcmp(t.s, "0"))
        *out = false;
    else if (!strcmp(t.s, "true") || !strcmp(t.s, "1"))
        *out = true;
    else
        rc = sp_err_set(err, SP_EPROTO, "IsTruncated is %.32s, not true or false", t.s);
    sp__text_free(&t);
    return rc;
}

/* A decimal integer of at most 18 digits (no sign), or -1. */
static int64_t sp__decimal(const char *s, size_t n)
{
    if (n == 0 || n > 18)
        return -1;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static bool sp__leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* An RFC 3339 time as S3 writes it, "2026-12-07T06:40:37.000Z" (the fraction
 * optional and of any length, 'Z' or a numeric offset such as +02:00), in ms since the
 * epoch; -1 for anything else, or a time before 1970. */
static int64_t sp__time_ms(const char *s, size_t n)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (n < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
        s[13] != ':' || s[16] != ':')
        return -1;
    int64_t y = sp__decimal(s, 4), mo = sp__decimal(s + 5, 2), d = sp__decimal(s + 8, 2);
    int64_t h = sp__decimal(s + 11, 2), mi = sp__decimal(s + 14, 2);
    int64_t sec = sp__decimal(s + 17, 2);
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 59 || h < 0 ||
        mi < 0 || sec < 0)
        return -1;
    if (d > mdays[mo - 1] + (mo == 2 && sp__leap((int)y)))
        return -1;
    size_t i = 19;
    int64_t ms = 0;
    if (i < n && s[i] == '.') {
        size_t digits = 0;
        for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++, digits++)
            if (digits < 3)
                ms = ms * 10 + (s[i] - '0');
        if (digits == 0)
            return -1;
        for (; digits < 3; digits++)
            ms *= 10;
    }
    int64_t offset_s = 0;
    if (i + 1 == n && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i + 6 == n && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
        int64_t oh = sp__decimal(s + i + 1, 2), om = sp__decimal(s + i + 4, 2);
        if (oh < 0 || oh > 23 || om < 0 || om > 59)
            return -1;
        offset_s = (oh * 3600 + om * 60) * (s[i] == '-' ? -1 : 1);
        i += 6;
    } else {
        return -1;
    }
    struct tm tm = {0};
    tm.tm_year = (int)y - 1900;
    tm.tm_mon = (int)mo - 1;
    tm.tm_mday = (int)d;
    tm.tm_hour = (int)h;
    tm.tm_min = (int)mi;
    tm.tm_sec = (int)sec;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    int64_t when = ((int64_t)t - offset_s) * 1000 + ms;
    return when >= 0 ? when : -1;
}

/* The time in the child element name of parent: ms since the epoch, -1 when absent or
 * unparseable. 0 or SP_ENOMEM. */
static int sp__child_time(const xmlNode *parent, const char *name, int64_t *ms, sp_err *err)
{
    sp__text t;
    if (sp__text_get(sp__child(parent, name), true, &t, err) < 0)
        return SP_ENOMEM;
    *ms = sp__time_ms(t.s, t.len);
    sp__text_free(&t);
    return 0;
}

/* The text of the child element name of parent into *t (verbatim, or trimmed for a
 * number; release it). SP_EPROTO when it is empty and required, or would not fit in cap
 * bytes with its NUL. */
static int sp__child_marker(const xmlNode *parent, const char *name, bool required, bool trim,
                            size_t cap, sp__text *t, sp_err *err)
{
    if (sp__text_get(sp__child(parent, name), trim, t, err) < 0)
        return SP_ENOMEM;
    int rc = 0;
    if (required && t->len == 0)
        rc = sp_err_set(err, SP_EPROTO, "no %s in the reply", name);
    else if (t->len >= cap)
        rc = sp_err_set(err, SP_EPROTO, "%s of %zu bytes: longer than the %zu allowed", name,
                        t->len, cap ? cap - 1 : 0);
    if (rc < 0)
        sp__text_free(t);
    return rc;
}

int sp_s3xml_error_parse(const char *body, size_t n, sp_s3xml_error *out, sp_err *err)
{
    xmlDoc *doc;
    int rc = sp__parse(body, n, &doc, err);
    if (rc < 0)
        return rc;
    xmlNode *root = xmlDocGetRootElement(doc);
    if (sp__is(root, "Error")) {
        sp_s3xml_error e;
        rc = sp__error_fields(root, &e, err);
        if (rc == 0) {
            *out = e;
            rc = 1;
        }
    }
    xmlFreeDoc(doc);
    return rc;
}

int sp_s3xml_upload_id(const char *body, size_t n, char *out, size_t cap, sp_err *err)
{
    xmlDoc *doc;
    xmlNode *root;
    sp__text id;
    int rc = sp__parse(body, n, &doc, err);
    if (rc < 0)
        return rc;
    rc = sp__root(doc, "InitiateMultipartUploadResult", &root, err);
    if (rc == 0 && (rc = sp__child_marker(root, "UploadId", true, false, cap, &id, err)) == 0) {
        sp__copy(out, &id);
        sp__text_free(&id);
    }
    xmlFreeDoc(doc);
    return rc;
}

/* One <Contents> element: key (verbatim, into *key: release it), size and mtime. */
static int sp__object(const xmlNode *el, sp_s3xml_object *o, sp__text *key, sp_err *err)
{
    sp__text size;
    if (sp__text_get(sp__child(el, "Key"), false, key, err) < 0)
        return SP_ENOMEM;
    if (sp__text_get(sp__child(el, "Size"), true, &size, err) < 0) {
        sp__text_free(key);
        return SP_ENOMEM;
    }
    o->key = key->s;
    o->size = sp__decimal(size.s, size.len);
    int rc = sp__child_time(el, "LastModified", &o->mtime_ms, err);
    if (rc == 0 && key->len == 0)
        rc = sp_err_set(err, SP_EPROTO, "an object without a Key in the listing");
    else if (rc == 0 && o->size < 0)
        rc = sp_err_set(err, SP_EPROTO, "object %.100s: Size is %.32s, not a byte count",
                        key->s, size.s);
    sp__text_free(&size);
    if (rc < 0)
        sp__text_free(key);
    return rc;
}

int sp_s3xml_list(const char *body, size_t n, int (*fn)(const sp_s3xml_object *o, void *ud),
                  void *ud, bool *truncated, char *next, size_t cap, sp_err *err)
{
    xmlDoc *doc;
    xmlNode *root;
    bool trunc = false;
    sp__text token = {"", 0, NULL};
    int rc = sp__parse(body, n, &doc, err);
    if (rc < 0)
        return rc;
    rc = sp__root(doc, "ListBucketResult", &root, err);
    if (rc == 0)
        rc = sp__truncated(root, &trunc, err);
    if (rc == 0)
        rc = sp__child_marker(root, "NextContinuationToken", trunc, false, cap, &token, err);
    /* The whole page is checked (pass 0) before fn sees any of it (pass 1). */
    for (int pass = 0; pass < (fn ? 2 : 1); pass++) {
        for (xmlNode *c = rc == 0 ? root->children : NULL; c != NULL && rc == 0; c = c->next) {
            sp_s3xml_object o;
            sp__text key;
            if (!sp__is(c, "Contents") || (rc = sp__object(c, &o, &key, err)) < 0)
                continue;
            if (pass == 1)
                rc = fn(&o, ud);
            sp__text_free(&key);
        }
    }
    if (rc == 0) {
        *truncated = trunc;
        sp__copy(next, &token);
    }
    sp__text_free(&token);
    xmlFreeDoc(doc);
    return rc;
}

/* One <Upload> element: key and upload id (verbatim: release them), initiated. */
static int sp__upload(const xmlNode *el, sp_s3xml_upload *u, sp__text *key, sp__text *id,
                      sp_err *err)
{
    if (sp__text_get(sp__child(el, "Key"), false, key, err) < 0)
        return SP_ENOMEM;
    if (sp__text_get(sp__child(el, "UploadId"), false, id, err) < 0) {
        sp__text_free(key);
        return SP_ENOMEM;
    }
    u->key = key->s;
    u->upload_id = id->s;
    int rc = sp__child_time(el, "Initiated", &u->initiated_ms, err);
    if (rc == 0 && (key->len == 0 || id->len == 0))
        rc = sp_err_set(err, SP_EPROTO, "an Upload without a %s in the listing",
                        key->len == 0 ? "Key" : "UploadId");
    if (rc < 0) {
        sp__text_free(key);
        sp__text_free(id);
    }
    return rc;
}

int sp_s3xml_uploads(const char *body, size_t n,
                     int (*fn)(const sp_s3xml_upload *u, void *ud), void *ud, bool *truncated,
                     char *next_key, char *next_id, size_t cap, sp_err *err)
{
    xmlDoc *doc;
    xmlNode *root;
    bool trunc = false;
    sp__text key_marker = {"", 0, NULL}, id_marker = {"", 0, NULL};
    int rc = sp__parse(body, n, &doc, err);
    if (rc < 0)
        return rc;
    rc = sp__root(doc, "ListMultipartUploadsResult", &root, err);
    if (rc == 0)
        rc = sp__truncated(root, &trunc, err);
    if (rc == 0)
        rc = sp__child_marker(root, "NextKeyMarker", trunc, false, cap, &key_marker, err);
    if (rc == 0)
        rc = sp__child_marker(root, "NextUploadIdMarker", false, false, cap, &id_marker, err);
    for (int pass = 0; pass < (fn ? 2 : 1); pass++) {
        for (xmlNode *c = rc == 0 ? root->children : NULL; c != NULL && rc == 0; c = c->next) {
            sp_s3xml_upload u;
            sp__text key, id;
            if (!sp__is(c, "Upload") || (rc = sp__upload(c, &u, &key, &id, err)) < 0)
                continue;
            if (pass == 1)
                rc = fn(&u, ud);
            sp__text_free(&key);
            sp__text_free(&id);
        }
    }
    if (rc == 0) {
        *truncated = trunc;
        sp__copy(next_key, &key_marker);
        sp__copy(next_id, &id_marker);
    }
    sp__text_free(&key_marker);
    sp__text_free(&id_marker);
    xmlFreeDoc(doc);
    return rc;
}

int sp_s3xml_parts(const char *body, size_t n, int64_t *last_ms, int *parts, bool *truncated,
                   char *next, size_t cap, sp_err *err)
{
    xmlDoc *doc;
    xmlNode *root;
    bool trunc = false;
    int64_t newest = -1;
    int count = 0;
    sp__text marker = {"", 0, NULL};
    int rc = sp__parse(body, n, &doc, err);
    if (rc < 0)
        return rc;
    rc = sp__root(doc, "ListPartsResult", &root, err);
    if (rc == 0)
        rc = sp__truncated(root, &trunc, err);
    if (rc == 0)
        rc = sp__child_marker(root, "NextPartNumberMarker", trunc, true, cap, &marker, err);
    if (rc == 0 && marker.len > 0 && sp__decimal(marker.s, marker.len) < 0)
        rc = sp_err_set(err, SP_EPROTO, "NextPartNumberMarker is %.32s, not a part number",
                        marker.s);
    for (xmlNode *c = rc == 0 ? root->children : NULL; c != NULL && rc == 0; c = c->next) {
        int64_t ms;
        if (!sp__is(c, "Part"))
            continue;
        if (count == INT_MAX) {
            rc = sp_err_set(err, SP_EPROTO, "too many parts in the listing");
            break;
        }
        count++;
        rc = sp__child_time(c, "LastModified", &ms, err);
        if (ms > newest)
            newest = ms;
    }
    if (rc == 0) {
        *last_ms = newest;
        *parts = count;
        *truncated = trunc;
        sp__copy(next, &marker);
    }
    sp__text_free(&marker);
    xmlFreeDoc(doc);
    return rc;
}

int sp_s3xml_delete_result(const char *body, size_t n,
                           int (*fn)(const char *key, const char *code, const char *message,
                                     void *ud),
                           void *ud, int *deleted, sp_err *err)
{
    xmlDoc *doc;
    xmlNode *root;
    int count = 0;
    int rc = sp__parse(body, n, &doc, err);
    if (rc < 0)
        return rc;
    rc = sp__root(doc, "DeleteResult", &root, err);
    for (xmlNode *c = rc == 0 ? root->children : NULL; c != NULL && rc == 0; c = c->next) {
        if (sp__is(c, "Deleted")) {
            if (count == INT_MAX)
                rc = sp_err_set(err, SP_EPROTO, "too many Deleted in the reply");
            else
                count++;
        } else if (sp__is(c, "Error") && fn != NULL) {
            sp__text key, code, msg;
            if (sp__text_get(sp__child(c, "Key"), false, &key, err) < 0)
                rc = SP_ENOMEM;
            else if (sp__text_get(sp__child(c, "Code"), true, &code, err) < 0) {
                sp__text_free(&key);
                rc = SP_ENOMEM;
            } else if (sp__text_get(sp__child(c, "Message"), true, &msg, err) < 0) {
                sp__text_free(&key);
                sp__text_free(&code);
                rc = SP_ENOMEM;
            } else {
                rc = fn(key.s, code.s, msg.s, ud);
                sp__text_free(&key);
                sp__text_free(&code);
                sp__text_free(&msg);
            }
        }
    }
    if (rc == 0)
        *deleted = count;
    xmlFreeDoc(doc);
    return rc;
}

/* ---- writing ------------------------------------------------------------------------- */

/* True when s is text an XML 1.0 document can carry: non-empty, UTF-8, and no
 * character outside XML's Char production (controls but tab, LF, CR; U+FFFE, U+FFFF). */
static bool sp__xml_text_ok(const char *s)
{
    if (s == NULL || s[0] == '\0')
        return false;
    size_t n = strlen(s);
    if (!sp_utf8_valid(s, n))
        return false;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += sp_utf8_decode((const unsigned char *)s + i, n - i, &cp);
        if ((cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') || cp == 0xFFFE ||
            cp == 0xFFFF)
            return false;
    }
    return true;
}

/* Check items[0..n) (what names them in a message: "key", "ETag") for a body. */
static int sp__check_items(const char *const *items, size_t n, size_t max, const char *what,
                           sp_err *err)
{
    if (n == 0 || n > max)
        return sp_err_set(err, SP_EINVAL, "%zu %ss in one request: 1 to %zu allowed", n, what,
                          max);
    for (size_t i = 0; i < n; i++)
        if (!sp__xml_text_ok(items[i]))
            return sp_err_set(err, SP_EINVAL,
                              "%s %zu is %s: XML cannot carry it", what, i,
                              items[i] == NULL  ? "NULL"
                              : !items[i][0]    ? "empty"
                                                : "not UTF-8 or holds a control character");
    return 0;
}

typedef struct sp__writer {
    xmlBufferPtr buf;
    xmlTextWriterPtr w;
    bool ok; /* false once a libxml2 call failed (out of memory: it checked the rest) */
} sp__writer;

/* Start a document whose root element root is in S3's namespace. */
static void sp__write_start(sp__writer *wr, const char *root)
{
    pthread_once(&sp__xml_once, sp__xml_init);
    wr->buf = xmlBufferCreate();
    wr->w = wr->buf ? xmlNewTextWriterMemory(wr->buf, 0) : NULL;
    wr->ok = wr->w != NULL && xmlTextWriterStartDocument(wr->w, "1.0", "UTF-8", NULL) >= 0 &&
             xmlTextWriterStartElement(wr->w, BAD_CAST root) >= 0 &&
             xmlTextWriterWriteAttribute(wr->w, BAD_CAST "xmlns", BAD_CAST SP__S3_NS) >= 0;
}

/* <name>text</name>, text escaped by libxml2. */
static void sp__write_element(sp__writer *wr, const char *name, const char *text)
{
    wr->ok = wr->ok && xmlTextWriterWriteElement(wr->w, BAD_CAST name, BAD_CAST text) >= 0;
}

static void sp__write_open(sp__writer *wr, const char *name)
{
    wr->ok = wr->ok && xmlTextWriterStartElement(wr->w, BAD_CAST name) >= 0;
}

static void sp__write_close(sp__writer *wr)
{
    wr->ok = wr->ok && xmlTextWriterEndElement(wr->w) >= 0;
}

/* End the document and hand it over as a NUL-terminated sp_malloc'd copy. */
static int sp__write_finish(sp__writer *wr, char **out, size_t *len, sp_err *err)
{
    wr->ok = wr->ok && xmlTextWriterEndDocument(wr->w) >= 0;
    xmlFreeTextWriter(wr->w); /* flushes into buf */
    char *copy = NULL;
    size_t n = 0;
    if (wr->ok && wr->buf != NULL) {
        n = (size_t)xmlBufferLength(wr->buf);
        copy = sp_malloc(n + 1);
        if (copy != NULL) {
            memcpy(copy, xmlBufferContent(wr->buf), n);
            copy[n] = '\0';
        }
    }
    xmlBufferFree(wr->buf);
    if (copy == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory writing an XML request body");
    *out = copy;
    *len = n;
    return 0;
}

int sp_s3xml_delete_body(const char *const *keys, size_t n, char **out, size_t *len,
                         sp_err *err)
{
    int rc = sp__check_items(keys, n, SP_S3XML_DELETE_MAX, "key", err);
    if (rc < 0)
        return rc;
    sp__writer wr;
    sp__write_start(&wr, "Delete");
    sp__write_element(&wr, "Quiet", "true");
    for (size_t i = 0; i < n && wr.ok; i++) {
        sp__write_open(&wr, "Object");
        sp__write_element(&wr, "Key", keys[i]);
        sp__write_close(&wr);
    }
    return sp__write_finish(&wr, out, len, err);
}

int sp_s3xml_complete_body(const char *const *etags, size_t n, char **out, size_t *len,
                           sp_err *err)
{
    int rc = sp__check_items(etags, n, SP_S3XML_PARTS_MAX, "ETag", err);
    if (rc < 0)
        return rc;
    sp__writer wr;
    sp__write_start(&wr, "CompleteMultipartUpload");
    for (size_t i = 0; i < n && wr.ok; i++) {
        char number[24];
        snprintf(number, sizeof number, "%zu", i + 1);
        sp__write_open(&wr, "Part");
        sp__write_element(&wr, "PartNumber", number);
        sp__write_element(&wr, "ETag", etags[i]);
        sp__write_close(&wr);
    }
    return sp__write_finish(&wr, out, len, err);
}
