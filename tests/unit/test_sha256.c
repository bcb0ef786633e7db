/* test_sha256.c - SHA-256 and HMAC-SHA256 through libcrypto (common/sha256.c): known
 * vectors, input fed in odd chunk sizes, and libcrypto's allocation failures reported as
 * errors. Its own
 * binary, because libcrypto's allocator can only be replaced before its first use. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spool/err.h"
#include "spool/sha256.h"

/* libcrypto's allocator: libc's, except that every allocation from the fail_from-th
 * on (counted from when fail_from was set) fails. */
static long alloc_count, fail_from = -1;

static int alloc_fails(void)
{
    return fail_from >= 0 && alloc_count++ >= fail_from;
}
static void *t_malloc(size_t n, const char *file, int line)
{
    (void)file;
    (void)line;
    return alloc_fails() ? NULL : malloc(n);
}
static void *t_realloc(void *p, size_t n, const char *file, int line)
{
    (void)file;
    (void)line;
    return alloc_fails() ? NULL : realloc(p, n);
}
static void t_free(void *p, const char *file, int line)
{
    (void)file;
    (void)line;
    free(p);
}

/* NIST's two-block messages (FIPS 180-2 appendix B.2, and the 896-bit one). */
static const char msg448[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
static const char hex448[] = "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1";
static const char msg896[] = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
                             "ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
static const char hex896[] = "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1";

static void digest_is(const char *in, const char *want)
{
    char hex[65];
    sp_err err;
    int rc = sp_sha256_hex_of(in, strlen(in), hex, &err);
    if (rc != 0)
        fail_msg("sha256(\"%s\"): %s", in, err.msg);
    assert_string_equal(hex, want);
}

static void test_sha256_known_vectors(void **state)
{
    (void)state;
    digest_is("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    digest_is("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    digest_is(msg448, hex448);
    digest_is(msg896, hex896);
    /* One million 'a's, in 100-byte pieces. */
    sp_sha256 s;
    sp_err err;
    char hex[65];
    assert_int_equal(sp_sha256_init(&s, &err), 0);
    char a[100];
    memset(a, 'a', sizeof a);
    for (int i = 0; i < 1000000 / 100; i++)
        sp_sha256_update(&s, a, sizeof a);
    assert_int_equal(sp_sha256_hex(&s, hex, &err), 0);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static void test_sha256_same_digest_whatever_the_chunk_sizes(void **state)
{
    (void)state;
    /* Chunks that straddle the 64-byte blocks in every way, and empty ones between. */
    static const size_t sizes[] = {1, 2, 3, 5, 7, 13, 31, 63, 64, 65, 127};
    size_t len = strlen(msg896);
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        sp_sha256 s;
        sp_err err;
        char hex[65];
        assert_int_equal(sp_sha256_init(&s, &err), 0);
        for (size_t off = 0; off < len; off += sizes[k]) {
            size_t n = len - off < sizes[k] ? len - off : sizes[k];
            sp_sha256_update(&s, msg896 + off, n);
            sp_sha256_update(&s, msg896, 0);
        }
        assert_int_equal(sp_sha256_hex(&s, hex, &err), 0);
        if (strcmp(hex, hex896) != 0)
            fail_msg("chunks of %zu: %s, want %s", sizes[k], hex, hex896);
    }
}

static void test_sha256_finish_twice_or_unstarted_is_an_error(void **state)
{
    (void)state;
    sp_sha256 s;
    sp_err err;
    char hex[65];
    assert_int_equal(sp_sha256_init(&s, &err), 0);
    sp_sha256_update(&s, "abc", 3);
    assert_int_equal(sp_sha256_hex(&s, hex, &err), 0);
    assert_int_equal(sp_sha256_hex(&s, hex, &err), SP_EINVAL);
    assert_string_equal(hex, "");
    sp_sha256_free(&s); /* after finishing: nothing to free */
    sp_sha256 zero = {0};
    sp_sha256_free(&zero);
    assert_int_equal(sp_sha256_hex(&zero, hex, &err), SP_EINVAL);
    /* Abandoned part way (a request that ends before its fingerprint is done). */
    assert_int_equal(sp_sha256_init(&s, &err), 0);
    sp_sha256_update(&s, "abc", 3);
    sp_sha256_free(&s);
    sp_sha256_free(&s);
}

/* Every allocation libcrypto makes for a digest, failed in turn: each failure comes back
 * as an error with a message (never a crash, never a wrong digest), and the next digest
 * is right again. */
static void test_sha256_allocation_failures_are_errors(void **state)
{
    (void)state;
    digest_is("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    int failures = 0;
    for (long k = 0;; k++) {
        assert_true(k < 1000);
        alloc_count = 0;
        fail_from = k;
        sp_sha256 s;
        sp_err err = {0};
        char hex[65] = "x";
        int rc0 = sp_sha256_init(&s, &err);
        sp_sha256_update(&s, msg448, strlen(msg448));
        int rc = sp_sha256_hex(&s, hex, &err);
        long used = alloc_count;
        fail_from = -1;
        if (rc == 0) {
            assert_int_equal(rc0, 0);
            assert_string_equal(hex, hex448);
            if (used <= k) /* no allocation failed: every point has been tried */
                break;
            continue;
        }
        failures++;
        if (rc != SP_ENOMEM && rc != SP_ECRYPTO)
            fail_msg("allocation %ld failed: code %d (%s)", k, rc, err.msg);
        assert_int_equal(rc0, rc); /* the digest's allocations all happen at init */
        assert_string_equal(hex, "");
        assert_int_equal(err.code, rc);
        assert_non_null(strstr(err.msg, "SHA-256"));
        digest_is(msg448, hex448);
    }
    assert_true(failures > 0);
}

/* The same for HMAC-SHA256 (webhook signatures): every allocation failure is an error
 * with a message and an empty out, and the next MAC is right again. RFC 4231 case 2. */
static void test_hmac_allocation_failures_are_errors(void **state)
{
    (void)state;
    static const char want[] = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
    const char *data = "what do ya want for nothing?";
    int failures = 0;
    for (long k = 0;; k++) {
        assert_true(k < 1000);
        alloc_count = 0;
        fail_from = k;
        sp_err err = {0};
        char hex[65] = "x";
        int rc = sp_hmac_sha256_hex("Jefe", 4, data, 10, data + 10, strlen(data) - 10, hex, &err);
        long used = alloc_count;
        fail_from = -1;
        if (rc == 0) {
            assert_string_equal(hex, want);
            if (used <= k)
                break;
            continue;
        }
        failures++;
        if (rc != SP_ENOMEM && rc != SP_ECRYPTO)
            fail_msg("allocation %ld failed: code %d (%s)", k, rc, err.msg);
        assert_string_equal(hex, "");
        assert_int_equal(err.code, rc);
        assert_non_null(strstr(err.msg, "HMAC-SHA256"));
        assert_int_equal(sp_hmac_sha256_hex("Jefe", 4, data, strlen(data), NULL, 0, hex, &err),
                         0);
        assert_string_equal(hex, want);
    }
    assert_true(failures > 0);
}

int main(void)
{
    if (CRYPTO_set_mem_functions(t_malloc, t_realloc, t_free) != 1) {
        fprintf(stderr, "libcrypto allocated before main: cannot replace its allocator\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_known_vectors),
        cmocka_unit_test(test_sha256_same_digest_whatever_the_chunk_sizes),
        cmocka_unit_test(test_sha256_finish_twice_or_unstarted_is_an_error),
        cmocka_unit_test(test_sha256_allocation_failures_are_errors),
        cmocka_unit_test(test_hmac_allocation_failures_are_errors),
    };
    return cmocka_run_group_tests_name("sha256", tests, NULL, NULL);
}
