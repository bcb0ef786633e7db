/* test_s3xml.c - the XML of S3 replies and request bodies (common/s3xml.c, libxml2):
 * replies as AWS and s3rver write them (with, without and with other namespaces), every
 * required element missing, limits at one below, at and one above, hostile documents
 * (DOCTYPEs, entity bombs, external entities, deep nesting, many attributes) and
 * escaping of keys that XML must escape. Whether a real store accepts the bodies is
 * tests/integration/test_blob_s3.py's part. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s3xml.h"
#include "spool/alloc.h"
#include "spool/err.h"

#define NS " xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\""
#define DECL "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"

static size_t len_of(const char *s)
{
    return strlen(s);
}

/* ---- <Error> ----------------------------------------------------------------------- */

static void test_error_as_aws_writes_it(void **state)
{
    (void)state;
    const char *body = DECL "<Error><Code>SignatureDoesNotMatch</Code>"
                            "<Message>The request signature we calculated does not match"
                            "</Message><RequestId>4442587FB7D0A2F9</RequestId></Error>";
    sp_s3xml_error e;
    sp_err err = {0};
    assert_int_equal(sp_s3xml_error_parse(body, len_of(body), &e, &err), 1);
    assert_string_equal(e.code, "SignatureDoesNotMatch");
    assert_string_equal(e.message, "The request signature we calculated does not match");
    assert_string_equal(e.region, "");
}

static void test_error_region_namespace_and_white_space(void **state)
{
    (void)state;
    const char *body = "<Error" NS ">\n  <Code>\n AuthorizationHeaderMalformed\t</Code>\n"
                       "  <Message>the region 'us-east-1' is wrong; expecting "
                       "'eu-west-1'</Message>\n  <Region> eu-west-1 </Region>\n</Error>\n";
    sp_s3xml_error e;
    sp_err err = {0};
    assert_int_equal(sp_s3xml_error_parse(body, len_of(body), &e, &err), 1);
    assert_string_equal(e.code, "AuthorizationHeaderMalformed");
    assert_string_equal(e.region, "eu-west-1");
    /* a prefixed namespace (s3rver's style differs) and entities in text */
    const char *other = "<s3:Error xmlns:s3=\"urn:x\"><s3:Code>SlowDown</s3:Code>"
                        "<s3:Message>Please reduce &amp; retry &lt;now&gt;</s3:Message>"
                        "</s3:Error>";
    assert_int_equal(sp_s3xml_error_parse(other, len_of(other), &e, &err), 1);
    assert_string_equal(e.code, "SlowDown");
    assert_string_equal(e.message, "Please reduce & retry <now>");
}

static void test_error_other_root_is_zero_and_leaves_output(void **state)
{
    (void)state;
    const char *body = "<CompleteMultipartUploadResult" NS "><Location>x</Location>"
                       "<ETag>\"abc-2\"</ETag></CompleteMultipartUploadResult>";
    sp_s3xml_error e;
    memset(&e, 'Z', sizeof e);
    sp_err err = {0};
    assert_int_equal(sp_s3xml_error_parse(body, len_of(body), &e, &err), 0);
    assert_int_equal(e.code[0], 'Z');
}

static void test_error_message_cut_at_a_character(void **state)
{
    (void)state;
    /* 300 two-byte characters: the 256-byte field holds 127 of them and a NUL */
    char body[1024];
    size_t at = (size_t)snprintf(body, sizeof body, "<Error><Code>X</Code><Message>");
    for (int i = 0; i < 300; i++) {
        body[at++] = (char)0xC3;
        body[at++] = (char)0xA9; /* é */
    }
    at += (size_t)snprintf(body + at, sizeof body - at, "</Message></Error>");
    sp_s3xml_error e;
    sp_err err = {0};
    assert_int_equal(sp_s3xml_error_parse(body, at, &e, &err), 1);
    assert_int_equal(strlen(e.message), 254);
    assert_int_equal((unsigned char)e.message[253], 0xA9);
    /* a code of 63 bytes fits, one of 64 is cut to 63 */
    char code[200];
    snprintf(code, sizeof code, "<Error><Code>%063d</Code></Error>", 7);
    assert_int_equal(sp_s3xml_error_parse(code, strlen(code), &e, &err), 1);
    assert_int_equal(strlen(e.code), 63);
    snprintf(code, sizeof code, "<Error><Code>%064d</Code></Error>", 7);
    assert_int_equal(sp_s3xml_error_parse(code, strlen(code), &e, &err), 1);
    assert_int_equal(strlen(e.code), 63);
}

static void test_not_xml_is_named(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "<html><body>502 Bad Gateway</body>", /* not closed */
        "Service Unavailable",
        "<a></b>",
        "<Error><Code>X</Code></Error><Error/>", /* two roots */
        "\xff\xfe<\x00E\x00",                    /* UTF-16 bytes read as UTF-8 */
        "<Error><Code>\xc3\x28</Code></Error>",  /* invalid UTF-8 */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sp_s3xml_error e;
        sp_err err = {0};
        size_t n = i == 4 ? 6 : strlen(bad[i]);
        int rc = sp_s3xml_error_parse(bad[i], n, &e, &err);
        if (rc != SP_EPROTO)
            fail_msg("body %zu: %d (%s)", i, rc, err.msg);
        if (strncmp(err.msg, "not XML: line ", 14) != 0)
            fail_msg("body %zu: %s", i, err.msg);
    }
    sp_s3xml_error e;
    sp_err err = {0};
    assert_int_equal(sp_s3xml_error_parse("", 0, &e, &err), SP_EPROTO);
    assert_string_equal(err.msg, "empty reply where XML was expected");
    assert_int_equal(sp_s3xml_error_parse(NULL, 0, &e, &err), SP_EPROTO);
}

/* A well-formed document of exactly n bytes: an <Error> padded with a comment. */
static char *padded(size_t n)
{
    const char *head = "<Error><Code>Padded</Code><!--", *tail = "--></Error>";
    size_t fixed = strlen(head) + strlen(tail);
    assert_true(n > fixed);
    char *p = malloc(n);
    assert_non_null(p);
    memcpy(p, head, strlen(head));
    memset(p + strlen(head), 'x', n - fixed);
    memcpy(p + n - strlen(tail), tail, strlen(tail));
    return p;
}

static void test_size_limit(void **state)
{
    (void)state;
    for (size_t n = SP_S3XML_MAX_BYTES - 1; n <= SP_S3XML_MAX_BYTES + 1; n++) {
        char *body = padded(n);
        sp_s3xml_error e;
        sp_err err = {0};
        int rc = sp_s3xml_error_parse(body, n, &e, &err);
        if (n <= SP_S3XML_MAX_BYTES) {
            assert_int_equal(rc, 1);
            assert_string_equal(e.code, "Padded");
        } else {
            assert_int_equal(rc, SP_EPROTO);
            assert_non_null(strstr(err.msg, "more than the 8388608 allowed"));
        }
        free(body);
    }
}

static void test_doctype_and_entities_are_refused(void **state)
{
    (void)state;
    static const char *const hostile[] = {
        /* billion laughs */
        "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">"
        "<!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">"
        "<!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">"
        "<!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">"
        "<!ENTITY lol5 \"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;\">"
        "<!ENTITY lol6 \"&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;\">"
        "<!ENTITY lol7 \"&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;\">"
        "<!ENTITY lol8 \"&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;\">"
        "<!ENTITY lol9 \"&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;\">"
        "]><Error><Code>&lol9;</Code></Error>",
        /* an external entity naming a local file */
        "<!DOCTYPE e [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>"
        "<Error><Code>&x;</Code></Error>",
        /* an external DTD over the network */
        "<!DOCTYPE Error SYSTEM \"http://127.0.0.1:1/evil.dtd\"><Error><Code>X</Code></Error>",
    };
    for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
        sp_s3xml_error e;
        sp_err err = {0};
        int rc = sp_s3xml_error_parse(hostile[i], strlen(hostile[i]), &e, &err);
        if (rc != SP_EPROTO || strstr(err.msg, "DOCTYPE") == NULL)
            fail_msg("document %zu: %d (%s)", i, rc, err.msg);
        char id[64] = "unchanged";
        rc = sp_s3xml_upload_id(hostile[i], strlen(hostile[i]), id, sizeof id, &err);
        assert_int_equal(rc, SP_EPROTO);
        assert_string_equal(id, "unchanged");
    }
    /* an undeclared entity is simply not XML */
    const char *undeclared = "<Error><Code>&x;</Code></Error>";
    sp_s3xml_error e;
    sp_err err = {0};
    assert_int_equal(sp_s3xml_error_parse(undeclared, strlen(undeclared), &e, &err), SP_EPROTO);
}

static void test_depth_limit(void **state)
{
    (void)state;
    /* libxml2 refuses more than 256 levels without XML_PARSE_HUGE */
    for (int depth = 200; depth <= 300; depth += 100) {
        size_t cap = (size_t)depth * 8 + 64;
        char *body = malloc(cap);
        assert_non_null(body);
        size_t at = 0;
        for (int i = 0; i < depth; i++)
            at += (size_t)snprintf(body + at, cap - at, "<a>");
        for (int i = 0; i < depth; i++)
            at += (size_t)snprintf(body + at, cap - at, "</a>");
        sp_s3xml_error e;
        sp_err err = {0};
        int rc = sp_s3xml_error_parse(body, at, &e, &err);
        assert_int_equal(rc, depth == 200 ? 0 : SP_EPROTO);
        free(body);
    }
}

/* An element with n attributes, as the one child of an InitiateMultipartUploadResult. */
static char *with_attributes(int n, size_t *len)
{
    size_t cap = (size_t)n * 24 + 200;
    char *p = malloc(cap);
    assert_non_null(p);
    size_t at = (size_t)snprintf(p, cap, "<InitiateMultipartUploadResult><UploadId");
    for (int i = 0; i < n; i++)
        at += (size_t)snprintf(p + at, cap - at, " a%d='x=\"%d\"'", i, i);
    at += (size_t)snprintf(p + at, cap - at, ">id-1</UploadId></InitiateMultipartUploadResult>");
    *len = at;
    return p;
}

static void test_attribute_limit(void **state)
{
    (void)state;
    for (int n = 31; n <= 33; n++) {
        size_t len;
        char *body = with_attributes(n, &len);
        char id[32] = "";
        sp_err err = {0};
        int rc = sp_s3xml_upload_id(body, len, id, sizeof id, &err);
        if (n <= 32) {
            assert_int_equal(rc, 0);
            assert_string_equal(id, "id-1");
        } else {
            assert_int_equal(rc, SP_EPROTO);
            assert_non_null(strstr(err.msg, "more than 32 attributes"));
        }
        free(body);
    }
    /* '=' in comments, CDATA and processing instructions is not counted */
    char body[4096];
    size_t at = (size_t)snprintf(body, sizeof body, "<InitiateMultipartUploadResult><!--");
    for (int i = 0; i < 100; i++)
        body[at++] = '=';
    at += (size_t)snprintf(body + at, sizeof body - at, "--><?pi ");
    for (int i = 0; i < 100; i++)
        body[at++] = '=';
    at += (size_t)snprintf(body + at, sizeof body - at, "?><UploadId><![CDATA[");
    for (int i = 0; i < 100; i++)
        body[at++] = '=';
    at += (size_t)snprintf(body + at, sizeof body - at, "]]></UploadId>"
                                                        "</InitiateMultipartUploadResult>");
    char id[128] = "";
    sp_err err = {0};
    assert_int_equal(sp_s3xml_upload_id(body, at, id, sizeof id, &err), 0);
    assert_int_equal(strlen(id), 100);
}

/* ---- InitiateMultipartUploadResult --------------------------------------------------- */

static void test_upload_id(void **state)
{
    (void)state;
    const char *body = DECL "<InitiateMultipartUploadResult" NS "><Bucket>spool</Bucket>"
                            "<Key>jobs/a/out.mp4</Key><UploadId>VXBsb2FkIElE.x-y_z</UploadId>"
                            "</InitiateMultipartUploadResult>";
    char id[64] = "";
    sp_err err = {0};
    assert_int_equal(sp_s3xml_upload_id(body, len_of(body), id, sizeof id, &err), 0);
    assert_string_equal(id, "VXBsb2FkIElE.x-y_z");
    /* cap: the id of 18 bytes fits in 19, not in 18 */
    assert_int_equal(sp_s3xml_upload_id(body, len_of(body), id, 19, &err), 0);
    strcpy(id, "unchanged");
    assert_int_equal(sp_s3xml_upload_id(body, len_of(body), id, 18, &err), SP_EPROTO);
    assert_string_equal(err.msg, "UploadId of 18 bytes: longer than the 17 allowed");
    assert_string_equal(id, "unchanged");
}

static void test_upload_id_missing_error_or_other_root(void **state)
{
    (void)state;
    struct {
        const char *body, *msg;
    } cases[] = {
        {"<InitiateMultipartUploadResult><Key>k</Key></InitiateMultipartUploadResult>",
         "no UploadId in the reply"},
        {"<InitiateMultipartUploadResult><UploadId> </UploadId>"
         "</InitiateMultipartUploadResult>",
         NULL}, /* white space is an id as far as XML goes: kept verbatim */
        {"<InitiateMultipartUploadResult><UploadId></UploadId>"
         "</InitiateMultipartUploadResult>",
         "no UploadId in the reply"},
        {"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>",
         "S3 error AccessDenied: Access Denied"},
        {"<Error><Message>odd</Message></Error>", "S3 error (no Code): odd"},
        {"<ListBucketResult/>",
         "XML reply of root ListBucketResult where InitiateMultipartUploadResult was "
         "expected"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char id[64] = "unchanged";
        sp_err err = {0};
        int rc = sp_s3xml_upload_id(cases[i].body, strlen(cases[i].body), id, sizeof id, &err);
        if (cases[i].msg == NULL) {
            assert_int_equal(rc, 0);
            assert_string_equal(id, " ");
            continue;
        }
        if (rc != SP_EPROTO || strcmp(err.msg, cases[i].msg) != 0)
            fail_msg("case %zu: %d (%s)", i, rc, err.msg);
        assert_string_equal(id, "unchanged");
    }
}

/* ---- ListObjectsV2 ----------------------------------------------------------------- */

typedef struct seen {
    int n;
    char keys[8][64];
    int64_t sizes[8], mtimes[8];
    int stop_at; /* return 7 on this call (1-based); 0: never */
} seen;

static int on_object(const sp_s3xml_object *o, void *ud)
{
    seen *s = ud;
    if (s->n < 8) {
        snprintf(s->keys[s->n], sizeof s->keys[0], "%s", o->key);
        s->sizes[s->n] = o->size;
        s->mtimes[s->n] = o->mtime_ms;
    }
    s->n++;
    return s->n == s->stop_at ? 7 : 0;
}

static const char list_page[] =
    DECL "<ListBucketResult" NS "><Name>spool</Name><Prefix>p/</Prefix><KeyCount>3</KeyCount>"
         "<MaxKeys>3</MaxKeys><IsTruncated>true</IsTruncated>"
         "<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM="
         "</NextContinuationToken>"
         "<Contents><Key>p/jobs/a/out.mp4</Key><LastModified>2026-12-07T06:40:37.000Z"
         "</LastModified><ETag>\"e\"</ETag><Size>1048576</Size>"
         "<StorageClass>STANDARD</StorageClass></Contents>"
         "<Contents><Key> p/jobs/b/a &amp; b.pdf </Key><LastModified>2024-02-29T23:59:59Z"
         "</LastModified><Size>0</Size></Contents>"
         "<Contents><Key>p/jobs/c/x</Key><LastModified>yesterday</LastModified>"
         "<Size>999999999999999999</Size></Contents>"
         "</ListBucketResult>";

static void test_list_page(void **state)
{
    (void)state;
    seen s = {0};
    bool truncated = false;
    char next[128] = "";
    sp_err err = {0};
    assert_int_equal(sp_s3xml_list(list_page, sizeof list_page - 1, on_object, &s, &truncated,
                                   next, sizeof next, &err),
                     0);
    assert_int_equal(s.n, 3);
    assert_true(truncated);
    assert_string_equal(next, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");
    assert_string_equal(s.keys[0], "p/jobs/a/out.mp4");
    assert_int_equal(s.sizes[0], 1048576);
    assert_int_equal(s.mtimes[0], 1796625637000LL);
    assert_string_equal(s.keys[1], " p/jobs/b/a & b.pdf "); /* keys are verbatim */
    assert_int_equal(s.sizes[1], 0);
    assert_int_equal(s.mtimes[1], 1709251199000LL);
    assert_int_equal(s.sizes[2], 999999999999999999LL);
    assert_int_equal(s.mtimes[2], -1);
    /* the callback stops the walk: its value comes back, outputs untouched */
    seen stop = {.stop_at = 2};
    truncated = false;
    strcpy(next, "unchanged");
    assert_int_equal(sp_s3xml_list(list_page, sizeof list_page - 1, on_object, &stop,
                                   &truncated, next, sizeof next, &err),
                     7);
    assert_int_equal(stop.n, 2);
    assert_false(truncated);
    assert_string_equal(next, "unchanged");
    /* no callback, a token cap one short */
    assert_int_equal(sp_s3xml_list(list_page, sizeof list_page - 1, NULL, NULL, &truncated,
                                   next, 46, &err),
                     0);
    assert_int_equal(sp_s3xml_list(list_page, sizeof list_page - 1, NULL, NULL, &truncated,
                                   next, 45, &err),
                     SP_EPROTO);
    assert_non_null(strstr(err.msg, "NextContinuationToken of 45 bytes"));
}

static void test_list_last_and_empty_pages(void **state)
{
    (void)state;
    static const char *const last[] = {
        "<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>",
        "<ListBucketResult><IsTruncated>0</IsTruncated><KeyCount>0</KeyCount>"
        "</ListBucketResult>",
        "<ListBucketResult/>",
    };
    for (size_t i = 0; i < sizeof last / sizeof last[0]; i++) {
        seen s = {0};
        bool truncated = true;
        char next[16] = "x";
        sp_err err = {0};
        assert_int_equal(sp_s3xml_list(last[i], strlen(last[i]), on_object, &s, &truncated,
                                       next, sizeof next, &err),
                         0);
        assert_int_equal(s.n, 0);
        assert_false(truncated);
        assert_string_equal(next, "");
    }
}

static void test_list_refuses_a_bad_page_before_any_callback(void **state)
{
    (void)state;
    struct {
        const char *body, *msg;
    } cases[] = {
        {"<ListBucketResult><IsTruncated>true</IsTruncated>"
         "<Contents><Key>a</Key><Size>1</Size></Contents></ListBucketResult>",
         "no NextContinuationToken in the reply"},
        {"<ListBucketResult><IsTruncated>maybe</IsTruncated></ListBucketResult>",
         "IsTruncated is maybe, not true or false"},
        {"<ListBucketResult><Contents><Key>a</Key><Size>1</Size></Contents>"
         "<Contents><Key>b</Key></Contents></ListBucketResult>",
         "object b: Size is , not a byte count"},
        {"<ListBucketResult><Contents><Key>a</Key><Size>1</Size></Contents>"
         "<Contents><Key>b</Key><Size>-1</Size></Contents></ListBucketResult>",
         "object b: Size is -1, not a byte count"},
        {"<ListBucketResult><Contents><Key>a</Key><Size>1</Size></Contents>"
         "<Contents><Key>b</Key><Size>1234567890123456789</Size></Contents>"
         "</ListBucketResult>",
         "object b: Size is 1234567890123456789, not a byte count"},
        {"<ListBucketResult><Contents><Key>a</Key><Size>1</Size></Contents>"
         "<Contents><Size>1</Size></Contents></ListBucketResult>",
         "an object without a Key in the listing"},
        {"<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist"
         "</Message></Error>",
         "S3 error NoSuchBucket: The specified bucket does not exist"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        seen s = {0};
        bool truncated = false;
        char next[64] = "unchanged";
        sp_err err = {0};
        int rc = sp_s3xml_list(cases[i].body, strlen(cases[i].body), on_object, &s, &truncated,
                               next, sizeof next, &err);
        if (rc != SP_EPROTO || strcmp(err.msg, cases[i].msg) != 0)
            fail_msg("case %zu: %d (%s)", i, rc, err.msg);
        assert_int_equal(s.n, 0);
        assert_string_equal(next, "unchanged");
    }
}

static int64_t mtime_of(const char *when)
{
    char body[256];
    snprintf(body, sizeof body,
             "<ListBucketResult><Contents><Key>k</Key><Size>1</Size>"
             "<LastModified>%s</LastModified></Contents></ListBucketResult>",
             when);
    seen s = {0};
    bool truncated;
    char next[8];
    sp_err err = {0};
    assert_int_equal(sp_s3xml_list(body, strlen(body), on_object, &s, &truncated, next,
                                   sizeof next, &err),
                     0);
    return s.mtimes[0];
}

static void test_list_times(void **state)
{
    (void)state;
    assert_int_equal(mtime_of("1970-01-01T00:00:00Z"), 0);
    assert_int_equal(mtime_of("1970-01-01T00:00:00.5Z"), 500);
    assert_int_equal(mtime_of("1970-01-01T00:00:01.123456789Z"), 1123);
    assert_int_equal(mtime_of(" 2026-12-07T06:40:37.000Z\n"), 1796625637000LL);
    assert_int_equal(mtime_of("2026-12-07T08:40:37.000+02:00"), 1796625637000LL);
    assert_int_equal(mtime_of("2026-12-07T01:40:37-05:00"), 1796625637000LL);
    assert_int_equal(mtime_of("2000-02-29T00:00:00Z"), 951782400000LL);
    static const char *const bad[] = {
        "",
        "2026-12-07",
        "2026-12-07T06:40:37",      /* no zone */
        "2026-12-07 06:40:37Z",     /* no T */
        "2026-13-07T06:40:37Z",     /* month 13 */
        "2026-02-29T06:40:37Z",     /* not a leap year */
        "1900-02-29T00:00:00Z",     /* nor this */
        "2026-12-07T24:00:00Z",     /* hour 24 */
        "2026-12-07T06:60:00Z",     /* minute 60 */
        "2026-12-07T06:40:37.Z",    /* no digits after the point */
        "2026-12-07T06:40:37+2:00", /* short offset */
        "1969-12-31T23:59:59Z",     /* before the epoch */
        "1970-01-01T00:00:00+00:01",
        "2026-12-07T06:40:37ZZ",
        "Mon, 07 Dec 2026 06:40:37 GMT",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (mtime_of(bad[i]) != -1)
            fail_msg("'%s' read as %lld", bad[i], (long long)mtime_of(bad[i]));
}

/* ---- ListMultipartUploads, ListParts, DeleteResult ---------------------------------- */

static int on_upload(const sp_s3xml_upload *u, void *ud)
{
    char *out = ud;
    size_t at = strlen(out);
    snprintf(out + at, 256 - at, "%s|%s|%lld;", u->key, u->upload_id,
             (long long)u->initiated_ms);
    return 0;
}

static void test_uploads(void **state)
{
    (void)state;
    const char *body =
        "<ListMultipartUploadsResult" NS "><Bucket>spool</Bucket><KeyMarker></KeyMarker>"
        "<NextKeyMarker>p/jobs/b/out</NextKeyMarker><NextUploadIdMarker>u2"
        "</NextUploadIdMarker><IsTruncated>true</IsTruncated>"
        "<Upload><Key>p/jobs/a/out</Key><UploadId>u1</UploadId>"
        "<Initiated>1970-01-01T00:00:10.000Z</Initiated></Upload>"
        "<Upload><Key>p/jobs/b/out</Key><UploadId>u2</UploadId></Upload>"
        "</ListMultipartUploadsResult>";
    char out[256] = "", next_key[32] = "", next_id[32] = "";
    bool truncated = false;
    sp_err err = {0};
    assert_int_equal(sp_s3xml_uploads(body, strlen(body), on_upload, out, &truncated, next_key,
                                      next_id, sizeof next_key, &err),
                     0);
    assert_string_equal(out, "p/jobs/a/out|u1|10000;p/jobs/b/out|u2|-1;");
    assert_true(truncated);
    assert_string_equal(next_key, "p/jobs/b/out");
    assert_string_equal(next_id, "u2");

    const char *no_id = "<ListMultipartUploadsResult><Upload><Key>k</Key></Upload>"
                        "</ListMultipartUploadsResult>";
    out[0] = '\0';
    assert_int_equal(sp_s3xml_uploads(no_id, strlen(no_id), on_upload, out, &truncated,
                                      next_key, next_id, sizeof next_key, &err),
                     SP_EPROTO);
    assert_string_equal(err.msg, "an Upload without a UploadId in the listing");
    const char *no_marker = "<ListMultipartUploadsResult><IsTruncated>true</IsTruncated>"
                            "<Upload><Key>k</Key><UploadId>u</UploadId></Upload>"
                            "</ListMultipartUploadsResult>";
    assert_int_equal(sp_s3xml_uploads(no_marker, strlen(no_marker), on_upload, out, &truncated,
                                      next_key, next_id, sizeof next_key, &err),
                     SP_EPROTO);
    assert_string_equal(err.msg, "no NextKeyMarker in the reply");
    assert_string_equal(out, "");
}

static void test_parts(void **state)
{
    (void)state;
    const char *body =
        "<ListPartsResult" NS "><Bucket>spool</Bucket><UploadId>u</UploadId>"
        "<NextPartNumberMarker> 2 </NextPartNumberMarker><IsTruncated>true</IsTruncated>"
        "<Part><PartNumber>1</PartNumber><LastModified>1970-01-01T00:00:05Z</LastModified>"
        "<Size>5242880</Size></Part>"
        "<Part><PartNumber>2</PartNumber><LastModified>1970-01-01T00:00:09Z</LastModified>"
        "</Part><Part><PartNumber>3</PartNumber></Part></ListPartsResult>";
    int64_t last = 0;
    int parts = 0;
    bool truncated = false;
    char next[8] = "";
    sp_err err = {0};
    assert_int_equal(sp_s3xml_parts(body, strlen(body), &last, &parts, &truncated, next,
                                    sizeof next, &err),
                     0);
    assert_int_equal(last, 9000);
    assert_int_equal(parts, 3);
    assert_true(truncated);
    assert_string_equal(next, "2");

    const char *none = "<ListPartsResult/>";
    assert_int_equal(sp_s3xml_parts(none, strlen(none), &last, &parts, &truncated, next,
                                    sizeof next, &err),
                     0);
    assert_int_equal(last, -1);
    assert_int_equal(parts, 0);
    assert_false(truncated);
    assert_string_equal(next, "");

    const char *bad = "<ListPartsResult><IsTruncated>true</IsTruncated>"
                      "<NextPartNumberMarker>x2</NextPartNumberMarker></ListPartsResult>";
    assert_int_equal(sp_s3xml_parts(bad, strlen(bad), &last, &parts, &truncated, next,
                                    sizeof next, &err),
                     SP_EPROTO);
    assert_string_equal(err.msg, "NextPartNumberMarker is x2, not a part number");
}

static int on_delete_error(const char *key, const char *code, const char *message, void *ud)
{
    char *out = ud;
    size_t at = strlen(out);
    snprintf(out + at, 256 - at, "%s|%s|%s;", key, code, message);
    return strcmp(key, "stop") == 0 ? 9 : 0;
}

static void test_delete_result(void **state)
{
    (void)state;
    const char *body = "<DeleteResult" NS "><Deleted><Key>a</Key></Deleted>"
                       "<Error><Key>b &amp; c</Key><Code>AccessDenied</Code>"
                       "<Message>Access Denied</Message></Error>"
                       "<Deleted><Key>d</Key></Deleted><Error><Key>e</Key></Error>"
                       "</DeleteResult>";
    char out[256] = "";
    int deleted = -1;
    sp_err err = {0};
    assert_int_equal(
        sp_s3xml_delete_result(body, strlen(body), on_delete_error, out, &deleted, &err), 0);
    assert_string_equal(out, "b & c|AccessDenied|Access Denied;e||;");
    assert_int_equal(deleted, 2);
    /* quiet mode from S3 itself: nothing at all */
    const char *quiet = DECL "<DeleteResult" NS "></DeleteResult>";
    assert_int_equal(
        sp_s3xml_delete_result(quiet, strlen(quiet), on_delete_error, out, &deleted, &err), 0);
    assert_int_equal(deleted, 0);
    /* a stop from the callback */
    const char *stop = "<DeleteResult><Error><Key>stop</Key></Error><Deleted/></DeleteResult>";
    deleted = -1;
    assert_int_equal(
        sp_s3xml_delete_result(stop, strlen(stop), on_delete_error, out, &deleted, &err), 9);
    assert_int_equal(deleted, -1);
    const char *error = "<Error><Code>MalformedXML</Code><Message>m</Message></Error>";
    assert_int_equal(
        sp_s3xml_delete_result(error, strlen(error), NULL, NULL, &deleted, &err), SP_EPROTO);
    assert_string_equal(err.msg, "S3 error MalformedXML: m");
}

/* ---- request bodies ------------------------------------------------------------------ */

static void test_delete_body_escapes_keys(void **state)
{
    (void)state;
    const char *keys[] = {"p/jobs/a/out.mp4", "a&b<c>d\"e'f", "tab\there\r\nline",
                          "caf\xc3\xa9 \xf0\x9f\x8e\xac", "]]>"};
    char *body = NULL;
    size_t len = 0;
    sp_err err = {0};
    assert_int_equal(sp_s3xml_delete_body(keys, 5, &body, &len, &err), 0);
    assert_int_equal(strlen(body), len);
    assert_non_null(strstr(body, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"));
    assert_non_null(strstr(body, "<Delete" NS "><Quiet>true</Quiet>"
                                 "<Object><Key>p/jobs/a/out.mp4</Key></Object>"));
    assert_non_null(strstr(body, "<Key>a&amp;b&lt;c&gt;d&quot;e'f</Key>"));
    assert_non_null(strstr(body, "<Key>tab\there&#13;\nline</Key>"));
    assert_non_null(strstr(body, "<Key>caf\xc3\xa9 \xf0\x9f\x8e\xac</Key>"));
    assert_non_null(strstr(body, "<Key>]]&gt;</Key>"));
    assert_non_null(strstr(body, "</Delete>"));
    sp_free(body);
}

static void test_delete_body_limits(void **state)
{
    (void)state;
    static const char *many[SP_S3XML_DELETE_MAX + 1];
    for (size_t i = 0; i <= SP_S3XML_DELETE_MAX; i++)
        many[i] = "k";
    for (size_t n = SP_S3XML_DELETE_MAX - 1; n <= SP_S3XML_DELETE_MAX + 1; n++) {
        char *body = NULL;
        size_t len = 0;
        sp_err err = {0};
        int rc = sp_s3xml_delete_body(many, n, &body, &len, &err);
        if (n <= SP_S3XML_DELETE_MAX) {
            assert_int_equal(rc, 0);
            size_t count = 0;
            for (const char *p = body; (p = strstr(p, "<Key>k</Key>")) != NULL; p++)
                count++;
            assert_int_equal(count, n);
            sp_free(body);
        } else {
            assert_int_equal(rc, SP_EINVAL);
            assert_string_equal(err.msg, "1001 keys in one request: 1 to 1000 allowed");
            assert_null(body);
        }
    }
    struct {
        const char *key, *msg;
    } bad[] = {
        {NULL, "key 1 is NULL: XML cannot carry it"},
        {"", "key 1 is empty: XML cannot carry it"},
        {"a\x01" "b", "key 1 is not UTF-8 or holds a control character: XML cannot carry it"},
        {"a\x1f", "key 1 is not UTF-8 or holds a control character: XML cannot carry it"},
        {"\xc3\x28", "key 1 is not UTF-8 or holds a control character: XML cannot carry it"},
        {"\xef\xbf\xbe", "key 1 is not UTF-8 or holds a control character: XML cannot carry it"},
        {"\xef\xbf\xbf", "key 1 is not UTF-8 or holds a control character: XML cannot carry it"},
        {"\xed\xa0\x80", "key 1 is not UTF-8 or holds a control character: XML cannot carry it"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *keys[] = {"fine", bad[i].key};
        char *body = NULL;
        size_t len = 0;
        sp_err err = {0};
        assert_int_equal(sp_s3xml_delete_body(keys, 2, &body, &len, &err), SP_EINVAL);
        assert_string_equal(err.msg, bad[i].msg);
        assert_null(body);
    }
    char *body = NULL;
    size_t len = 0;
    sp_err err = {0};
    assert_int_equal(sp_s3xml_delete_body(many, 0, &body, &len, &err), SP_EINVAL);
    /* the highest character XML allows is fine */
    const char *top[] = {"\xf4\x8f\xbf\xbf"};
    assert_int_equal(sp_s3xml_delete_body(top, 1, &body, &len, &err), 0);
    sp_free(body);
}

static void test_complete_body(void **state)
{
    (void)state;
    const char *etags[] = {"\"7e10e7d25dc4581d89b9285be5f384fd\"",
                           "\"b54357faf0632cce46e942fa68356b38\""};
    char *body = NULL;
    size_t len = 0;
    sp_err err = {0};
    assert_int_equal(sp_s3xml_complete_body(etags, 2, &body, &len, &err), 0);
    assert_non_null(strstr(body,
                           "<CompleteMultipartUpload" NS "><Part><PartNumber>1</PartNumber>"
                           "<ETag>&quot;7e10e7d25dc4581d89b9285be5f384fd&quot;</ETag></Part>"
                           "<Part><PartNumber>2</PartNumber>"
                           "<ETag>&quot;b54357faf0632cce46e942fa68356b38&quot;</ETag></Part>"
                           "</CompleteMultipartUpload>"));
    sp_free(body);

    static const char *many[SP_S3XML_PARTS_MAX + 1];
    for (size_t i = 0; i <= SP_S3XML_PARTS_MAX; i++)
        many[i] = "\"e\"";
    assert_int_equal(sp_s3xml_complete_body(many, SP_S3XML_PARTS_MAX, &body, &len, &err), 0);
    assert_non_null(strstr(body, "<Part><PartNumber>10000</PartNumber><ETag>&quot;e&quot;</ETag>"
                                 "</Part></CompleteMultipartUpload>"));
    assert_null(strstr(body, "<PartNumber>10001</PartNumber>"));
    sp_free(body);
    body = NULL;
    assert_int_equal(sp_s3xml_complete_body(many, SP_S3XML_PARTS_MAX + 1, &body, &len, &err),
                     SP_EINVAL);
    assert_string_equal(err.msg, "10001 ETags in one request: 1 to 10000 allowed");
    assert_null(body);
    assert_int_equal(sp_s3xml_complete_body(many, 0, &body, &len, &err), SP_EINVAL);
}

/* ---- threads --------------------------------------------------------------------------- */

static void *parse_many(void *arg)
{
    (void)arg;
    for (int i = 0; i < 300; i++) {
        seen s = {0};
        bool truncated;
        char next[128];
        sp_err err = {0};
        if (sp_s3xml_list(list_page, sizeof list_page - 1, on_object, &s, &truncated, next,
                          sizeof next, &err) != 0 ||
            s.n != 3)
            return (void *)1;
        const char *keys[] = {"a&b", "c"};
        char *body = NULL;
        size_t len;
        if (sp_s3xml_delete_body(keys, 2, &body, &len, &err) != 0 ||
            strstr(body, "<Key>a&amp;b</Key>") == NULL)
            return (void *)1;
        sp_free(body);
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    pthread_t t[8];
    for (int i = 0; i < 8; i++)
        assert_int_equal(pthread_create(&t[i], NULL, parse_many, NULL), 0);
    for (int i = 0; i < 8; i++) {
        void *r;
        pthread_join(t[i], &r);
        assert_null(r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_as_aws_writes_it),
        cmocka_unit_test(test_error_region_namespace_and_white_space),
        cmocka_unit_test(test_error_other_root_is_zero_and_leaves_output),
        cmocka_unit_test(test_error_message_cut_at_a_character),
        cmocka_unit_test(test_not_xml_is_named),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_doctype_and_entities_are_refused),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_attribute_limit),
        cmocka_unit_test(test_upload_id),
        cmocka_unit_test(test_upload_id_missing_error_or_other_root),
        cmocka_unit_test(test_list_page),
        cmocka_unit_test(test_list_last_and_empty_pages),
        cmocka_unit_test(test_list_refuses_a_bad_page_before_any_callback),
        cmocka_unit_test(test_list_times),
        cmocka_unit_test(test_uploads),
        cmocka_unit_test(test_parts),
        cmocka_unit_test(test_delete_result),
        cmocka_unit_test(test_delete_body_escapes_keys),
        cmocka_unit_test(test_delete_body_limits),
        cmocka_unit_test(test_complete_body),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
