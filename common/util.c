/* util.c - clocks, randomness, ids, time formatting, number parsing. */
#include "spool/util.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "spool/err.h"

int64_t sp_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t sp_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t sp_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sp_sleep_ms(int64_t ms, const sp_flag *stop)
{
    int64_t end = sp_mono_ms() + ms;
    for (;;) {
        if (stop && *stop)
            return;
        int64_t left = end - sp_mono_ms();
        if (left <= 0)
            return;
        /* Sleep in slices so a stop request is seen promptly. */
        if (stop && left > 50)
            left = 50;
        struct timespec ts = {left / 1000, (left % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

int sp_random_bytes(void *buf, size_t n)
{
    unsigned char *p = buf;
    while (n > 0) {
        ssize_t got = getrandom(p, n, 0);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            return SP_EIO;
        }
        p += got;
        n -= (size_t)got;
    }
    return 0;
}

/* xoshiro256** with a per-thread state seeded by getrandom. */
static _Thread_local uint64_t sp__rng[4];
static _Thread_local int sp__rng_seeded;

static uint64_t sp__rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t sp__rng_next(void)
{
    if (!sp__rng_seeded) {
        if (sp_random_bytes(sp__rng, sizeof sp__rng) < 0 ||
            (sp__rng[0] | sp__rng[1] | sp__rng[2] | sp__rng[3]) == 0) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            sp__rng[0] = (uint64_t)ts.tv_nsec ^ 0x9e3779b97f4a7c15ULL;
            sp__rng[1] = (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)&ts;
            sp__rng[2] = 0xbf58476d1ce4e5b9ULL;
            sp__rng[3] = 0x94d049bb133111ebULL;
        }
        sp__rng_seeded = 1;
    }
    uint64_t *s = sp__rng;
    uint64_t result = sp__rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = sp__rotl(s[3], 45);
    return result;
}

uint64_t sp_random_below(uint64_t bound)
{
    if (bound <= 1)
        return 0;
    /* Rejection sampling removes modulo bias. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
    uint64_t r;
    do {
        r = sp__rng_next();
    } while (r >= limit);
    return r % bound;
}

static const char sp__b32[] = "0123456789abcdefghjkmnpqrstvwxyz";

void sp_id_make(int64_t ms, const unsigned char rest[16], char out[SP_ID_LEN + 1])
{
    /* 180 bits of output: 4 zero bits, 48 bits of time, 128 bits of rest. */
    unsigned char raw[23] = {0}; /* 184 bits, big-endian; we use the low 180 */
    uint64_t t = (uint64_t)ms & 0xFFFFFFFFFFFFULL;
    for (int i = 0; i < 6; i++)
        raw[1 + i] = (unsigned char)(t >> (40 - 8 * i));
    memcpy(raw + 7, rest, 16);
    /* raw holds 8 leading zero bits, time, rest; skip 4 bits to get 180. */
    for (int i = 0; i < SP_ID_LEN; i++) {
        int bit = 4 + 5 * i; /* index of the first bit, from the top of raw */
        unsigned v = 0;
        for (int k = 0; k < 5; k++) {
            int b = bit + k;
            v = (v << 1) | ((raw[b / 8] >> (7 - b % 8)) & 1u);
        }
        out[i] = sp__b32[v];
    }
    out[SP_ID_LEN] = '\0';
}

int sp_id_new(char out[SP_ID_LEN + 1])
{
    unsigned char rest[16];
    if (sp_random_bytes(rest, sizeof rest) < 0)
        return SP_EIO;
    sp_id_make(sp_now_ms(), rest, out);
    return 0;
}

static int sp__b32_value(char c)
{
    const char *p = c ? strchr(sp__b32, c) : NULL;
    return p ? (int)(p - sp__b32) : -1;
}

bool sp_id_valid(const char *s)
{
    if (s == NULL)
        return false;
    for (int i = 0; i < SP_ID_LEN; i++) {
        if (sp__b32_value(s[i]) < 0)
            return false;
    }
    /* The first character carries only 1 bit (4 zero bits of padding + 1 of time). */
    return s[SP_ID_LEN] == '\0' && (s[0] == '0' || s[0] == '1');
}

int64_t sp_id_time_ms(const char *id)
{
    /* Bits 4..51 of the 180-bit value: characters 0..10 hold bits 0..54. */
    uint64_t acc = 0;
    for (int i = 0; i < 11; i++)
        acc = (acc << 5) | (uint64_t)sp__b32_value(id[i]);
    /* acc holds bits 0..54; time is bits 4..51, so drop the 3 low bits. */
    return (int64_t)((acc >> 3) & 0xFFFFFFFFFFFFULL);
}

void sp_format_time(int64_t ms, char out[SP_TIME_LEN])
{
    time_t sec = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    /* The modulos keep every field in its width (and tell the compiler so). */
    snprintf(out, SP_TIME_LEN, "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ",
             (unsigned)(tm.tm_year + 1900) % 10000u, (unsigned)(tm.tm_mon + 1) % 100u,
             (unsigned)tm.tm_mday % 100u, (unsigned)tm.tm_hour % 100u,
             (unsigned)tm.tm_min % 100u, (unsigned)tm.tm_sec % 100u,
             (unsigned)(ms % 1000) % 1000u);
}

int sp_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
    if (s == NULL || *s == '\0')
        return SP_EINVAL;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return SP_EINVAL;
    *out = v;
    return 0;
}

static int sp__parse_scaled(const char *s, const char *const *suffix, const int64_t *scale,
                            int nsuffix, int64_t *out)
{
    if (s == NULL || *s < '0' || *s > '9')
        return SP_EINVAL;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || v < 0)
        return SP_EINVAL;
    for (int i = 0; i < nsuffix; i++) {
        if (strcmp(end, suffix[i]) == 0) {
            if (v > INT64_MAX / scale[i])
                return SP_EINVAL;
            *out = v * scale[i];
            return 0;
        }
    }
    return SP_EINVAL;
}

int sp_parse_size(const char *s, int64_t *out)
{
    static const char *const suf[] = {"", "k", "K", "KiB", "m", "M", "MiB", "g", "G", "GiB"};
    static const int64_t sc[] = {1, 1 << 10, 1 << 10, 1 << 10, 1 << 20, 1 << 20, 1 << 20,
                                 1LL << 30, 1LL << 30, 1LL << 30};
    return sp__parse_scaled(s, suf, sc, 10, out);
}

int sp_parse_duration_ms(const char *s, int64_t *out)
{
    static const char *const suf[] = {"", "ms", "s", "m", "h", "d"};
    static const int64_t sc[] = {1000, 1, 1000, 60000, 3600000, 86400000};
    return sp__parse_scaled(s, suf, sc, 6, out);
}
