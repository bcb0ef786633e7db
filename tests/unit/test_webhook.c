/* test_webhook.c - webhooks' common parts (common/webhook.c, HMAC in common/sha256.c):
 * the Spool-Signature header against vectors computed independently (RFC 4231, and
 * `openssl dgst -sha256 -hmac` / Python's hmac for the header's own recipe), the
 * callback URL check at its length limit and against hostile forms, and the safe
 * excerpt of a receiver's answer. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spool/err.h"
#include "spool/fetch.h"
#include "spool/outbound.h"
#include "spool/sha256.h"
#include "spool/webhook.h"

/* ---- HMAC-SHA256 and the signature ----------------------------------------------------- */

static void test_hmac_sha256_rfc4231_vectors(void **state)
{
    (void)state;
    char hex[65];
    sp_err err;
    /* RFC 4231 test case 2, the data split in two parts at every position */
    const char *data = "what do ya want for nothing?";
    for (size_t cut = 0; cut <= strlen(data); cut++) {
        assert_int_equal(sp_hmac_sha256_hex("Jefe", 4, data, cut, data + cut,
                                            strlen(data) - cut, hex, &err),
                         0);
        assert_string_equal(hex,
                            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }
    /* test case 6: a key longer than the block size is hashed first */
    unsigned char key[131];
    memset(key, 0xaa, sizeof key);
    const char *d6 = "Test Using Larger Than Block-Size Key - Hash Key First";
    assert_int_equal(sp_hmac_sha256_hex(key, sizeof key, d6, strlen(d6), NULL, 0, hex, &err), 0);
    assert_string_equal(hex, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    /* an empty key is a key (python3 -c "hmac.new(b'', b'1.x', 'sha256')") */
    assert_int_equal(sp_hmac_sha256_hex("", 0, "1.", 2, "x", 1, hex, &err), 0);
    assert_string_equal(hex, "d356c76f2be16120eca994746a279fd612267e791d245c4745ebbf0f98fc31f2");
}

static void test_signature_header_matches_the_documented_recipe(void **state)
{
    (void)state;
    /* printf '%s' '1700000000.{"id":...}\n' | openssl dgst -sha256 -hmac 'whsec_...' */
    const char *secret = "whsec_5WbX5kEWLlfzsGNjH64I8lOOqUB6e8FH";
    const char *body =
        "{\"id\":\"00d2a6fb3pqbj4xfgddxjbk1e4ven5332qha\",\"state\":\"succeeded\"}\n";
    char sig[SP_WEBHOOK_SIG_MAX];
    sp_err err;
    assert_int_equal(sp_webhook_sign(secret, strlen(secret), 1700000000, body, strlen(body), sig,
                                     &err),
                     0);
    assert_string_equal(sig, "t=1700000000,v1="
                             "a38fdd085a9b918810746b52911aebb0db545db14946aaed073fcea76b72965a");
    /* another second, another signature over the same body */
    char later[SP_WEBHOOK_SIG_MAX];
    assert_int_equal(sp_webhook_sign(secret, strlen(secret), 1700000001, body, strlen(body),
                                     later, &err),
                     0);
    assert_string_not_equal(strchr(sig, ','), strchr(later, ','));
    /* the largest time fits the header's buffer */
    assert_int_equal(sp_webhook_sign(secret, strlen(secret), INT64_MAX, body, strlen(body), sig,
                                     &err),
                     0);
    assert_int_equal(strlen(sig), strlen("t=9223372036854775807,v1=") + 64);
}

/* ---- the callback URL check ------------------------------------------------------------- */

/* A URL of exactly n bytes: https://example.com/ and a path of 'a's. */
static char *url_of(size_t n)
{
    char *u = malloc(n + 1);
    assert_non_null(u);
    const char *head = "https://example.com/";
    memcpy(u, head, strlen(head));
    memset(u + strlen(head), 'a', n - strlen(head));
    u[n] = '\0';
    return u;
}

static int check(const sp_outbound *g, const char *url)
{
    sp_err err;
    return sp_webhook_url_check(g, url, strlen(url), &err);
}

static void test_callback_url_length_limit(void **state)
{
    (void)state;
    sp_err err;
    for (size_t n = SP_WEBHOOK_URL_MAX - 1; n <= SP_WEBHOOK_URL_MAX + 1; n++) {
        char *u = url_of(n);
        int rc = sp_webhook_url_check(NULL, u, n, &err);
        if (n <= SP_WEBHOOK_URL_MAX) {
            assert_int_equal(rc, 0);
        } else {
            assert_int_equal(rc, SP_EINVAL);
            assert_non_null(strstr(err.msg, "at most 2048 bytes"));
        }
        free(u);
    }
    assert_int_equal(sp_webhook_url_check(NULL, "", 0, &err), SP_EINVAL);
    assert_int_equal(sp_webhook_url_check(NULL, NULL, 0, &err), SP_EINVAL);
}

static void test_callback_url_hostile_forms_are_refused(void **state)
{
    (void)state;
    sp_err err;
    /* a NUL inside: what a C string would have cut short */
    const char nul[] = "https://example.com/\0.evil.example/";
    assert_int_equal(sp_webhook_url_check(NULL, nul, sizeof nul - 1, &err), SP_EINVAL);
    assert_non_null(strstr(err.msg, "NUL"));
    static const char *const bad[] = {
        "ftp://example.com/x",
        "file:///etc/passwd",
        "gopher://example.com/",
        "javascript:alert(1)",
        "//example.com/x",
        "example.com/x",
        "http://",
        "https:///path",
        "http://:80/",
        "https://user@example.com/",
        "https://user:secret@example.com/",
        "https://:secret@example.com/",
        "https://example.com@evil.example/",
        "https://example.com /x",
        "https://example.com/\tx",
        "https://example.com/\r\nX-Injected: 1",
        "https://example.com/\x7f",
        "https://ex\xc3\xa4mple.com/",
        "https://[::1/",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = check(NULL, bad[i]);
        if (rc != SP_EINVAL)
            fail_msg("'%s': expected SP_EINVAL, got %d", bad[i], rc);
    }
    assert_int_equal(check(NULL, "https://example.com/hook?token=abc#frag"), 0);
    assert_int_equal(check(NULL, "HTTP://EXAMPLE.COM:8443/hook"), 0);
}

static void test_callback_url_internal_hosts_need_the_allow_list(void **state)
{
    (void)state;
    static const char *const internal[] = {
        "http://127.0.0.1:8080/hook",
        "http://127.1/hook",
        "http://2130706433/hook",
        "http://0x7f000001/hook",
        "http://0177.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[fe80::1]/hook",
        "http://10.0.0.1/hook",
        "http://localhost/hook",
        "http://api.localhost/hook",
        "http://0.0.0.0/hook",
    };
    for (size_t i = 0; i < sizeof internal / sizeof *internal; i++) {
        int rc = check(NULL, internal[i]);
        if (rc != SP_EUNREACHABLE)
            fail_msg("'%s': expected SP_EUNREACHABLE, got %d", internal[i], rc);
    }
    sp_err err;
    sp_outbound *g = sp_outbound_new("127.0.0.1, ::1", &err);
    assert_non_null(g);
    assert_int_equal(check(g, "http://127.0.0.1:8080/hook"), 0);
    assert_int_equal(check(g, "http://2130706433/hook"), 0);
    assert_int_equal(check(g, "http://[::1]/hook"), 0);
    assert_int_equal(check(g, "http://169.254.169.254/"), SP_EUNREACHABLE);
    assert_int_equal(check(g, "http://127.0.0.2/"), SP_EUNREACHABLE);
    sp_outbound_free(g);
}

/* ---- the answer's excerpt --------------------------------------------------------------- */

static void test_excerpt_is_safe_text(void **state)
{
    (void)state;
    char out[16];
    size_t n = sp_webhook_excerpt("ok\r\n\tdone", 9, out, sizeof out);
    assert_int_equal(n, 9);
    assert_string_equal(out, "ok\r\n\tdone");
    /* control characters, DEL and invalid UTF-8 become '?', valid UTF-8 stays */
    const char in[] = "a\x00" "b\x1b[31m\x7f\xff\xc3\xa9";
    n = sp_webhook_excerpt(in, sizeof in - 1, out, sizeof out);
    assert_string_equal(out, "a?b?[31m??\xc3\xa9");
    assert_int_equal(n, strlen(out));
    /* never a character cut in two at the end: "é" needs 2 bytes, 1 is left */
    char small[4];
    n = sp_webhook_excerpt("ab\xc3\xa9", 4, small, sizeof small);
    assert_string_equal(small, "ab");
    /* at most cap - 1 bytes, however long the answer */
    char big[2000];
    memset(big, 'x', sizeof big);
    char ex[SP_FETCH_REPLY_MAX + 1];
    n = sp_webhook_excerpt(big, sizeof big, ex, sizeof ex);
    assert_int_equal(n, SP_FETCH_REPLY_MAX);
    assert_int_equal(sp_webhook_excerpt("", 0, small, sizeof small), 0);
    assert_string_equal(small, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hmac_sha256_rfc4231_vectors),
        cmocka_unit_test(test_signature_header_matches_the_documented_recipe),
        cmocka_unit_test(test_callback_url_length_limit),
        cmocka_unit_test(test_callback_url_hostile_forms_are_refused),
        cmocka_unit_test(test_callback_url_internal_hosts_need_the_allow_list),
        cmocka_unit_test(test_excerpt_is_safe_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
