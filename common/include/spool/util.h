/* util.h - small process-wide helpers: clocks, randomness, ids, time formatting,
 * number parsing. */
#ifndef SPOOL_UTIL_H
#define SPOOL_UTIL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A stop or drain flag one thread sets and others (libav and libcurl callbacks among
 * them) read: an atomic int, so the reads are well defined across threads. */
typedef atomic_int sp_flag;

/* Wall-clock milliseconds since the Unix epoch. */
int64_t sp_now_ms(void);

/* Monotonic milliseconds, for timeouts and durations. */
int64_t sp_mono_ms(void);

/* Monotonic microseconds, for short durations. */
int64_t sp_mono_us(void);

/* Sleep ms milliseconds (restarting after signals unless *stop becomes true).
 * stop may be NULL. */
void sp_sleep_ms(int64_t ms, const sp_flag *stop);

/* Fill buf with n cryptographically random bytes. Returns 0 or SP_EIO. */
int sp_random_bytes(void *buf, size_t n);

/* A uniformly random integer in [0, bound) (bound > 0), from a fast per-thread PRNG
 * seeded from the OS. For jitter and sampling, not for secrets. */
uint64_t sp_random_below(uint64_t bound);

/* Job ids: a 48-bit millisecond timestamp followed by 128 random bits, written as 36
 * lowercase Crockford base32 characters, so ids sort by creation time and are safe
 * in URLs, file names and Redis keys. */
#define SP_ID_LEN 36

/* Write a new id and its NUL into out. Returns 0 or SP_EIO. */
int sp_id_new(char out[SP_ID_LEN + 1]);

/* Write the id of time ms (its low 48 bits) and the 128 bits at rest into out: for ids
 * derived from something else (a schedule's tick) rather than drawn at random. */
void sp_id_make(int64_t ms, const unsigned char rest[16], char out[SP_ID_LEN + 1]);

/* True when s is exactly a well-formed id (length and alphabet). */
bool sp_id_valid(const char *s);

/* The creation time (ms) encoded in a valid id. */
int64_t sp_id_time_ms(const char *id);

/* Format ms since the epoch as RFC 3339 UTC with milliseconds ("...T...Z").
 * out needs 25 bytes. */
#define SP_TIME_LEN 25
void sp_format_time(int64_t ms, char out[SP_TIME_LEN]);

/* Parse a whole decimal integer in [min, max]. Returns 0 or SP_EINVAL. */
int sp_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);

/* Parse a size such as "512", "64k", "10M", "2G" (binary units). 0 or SP_EINVAL. */
int sp_parse_size(const char *s, int64_t *out);

/* Parse a duration such as "250ms", "30s", "5m", "2h", "7d" (bare numbers are
 * seconds) into milliseconds. Returns 0 or SP_EINVAL. */
int sp_parse_duration_ms(const char *s, int64_t *out);

#endif
