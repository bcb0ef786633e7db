/* evstream.h - the job event stream, read side: a capped Redis stream ("<prefix>events",
 * see EVENTS.md) in which every script that changes job states appends one entry with a
 * field/value pair per event ("<job id>" -> "<state> <progress> <queue> <type>"). This
 * module parses entries into events, reads the entries after an id (blocking XREAD with
 * a timeout, for the one reader thread of a process), reads a range for a client that
 * resumes (XRANGE), and tells whether the history a client resumes from was trimmed.
 *
 * An event's id is "<entry id>/<index of its pair in the entry>"; "<entry id>" alone
 * means "after the whole entry". Handles are not thread-safe: one per thread. */
#ifndef SPOOL_EVSTREAM_H
#define SPOOL_EVSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spool/err.h"
#include "spool/job.h"
#include "spool/util.h"

/* A position in the stream: an entry id (ms-seq) and a pair index in it; idx -1 stands
 * for the whole entry (resume after it). */
typedef struct sp_evid {
    uint64_t ms, seq;
    int32_t idx;
} sp_evid;

/* Longest formatted id: 20 digits, '-', 20 digits, '/', 10 digits, NUL. */
#define SP_EVID_LEN 56
/* Highest pair index accepted in an id (an entry holds at most this many events). */
#define SP_EVID_IDX_MAX 100000

/* Parse "ms-seq/idx" or "ms-seq" (digits only, no signs, spaces or leading zeros).
 * 0 or SP_EINVAL (out unchanged). */
int sp_evid_parse(const char *s, sp_evid *out);

/* Format as "ms-seq/idx" ("ms-seq" when idx is -1). */
void sp_evid_format(const sp_evid *id, char out[SP_EVID_LEN]);

/* Compare the entry parts of a and b only (index ignored): <0, 0, >0. */
int sp_evid_cmp_entry(const sp_evid *a, const sp_evid *b);

/* Compare a and b with the index (-1, a whole entry, sorts after every index). */
int sp_evid_cmp(const sp_evid *a, const sp_evid *b);

/* One job event. */
typedef struct sp_event {
    sp_evid id;
    char job[SP_ID_LEN + 1];
    sp_state state;
    int progress;
    char queue[SP_QUEUE_MAX + 1];
    char type[SP_TYPE_MAX + 1];
    int64_t at_ms; /* the entry's time */
} sp_event;

/* Parse one pair of an entry: field is the job id, value "<state> <progress> <queue>
 * <type>". Fills out (id and at_ms from entry and idx). 0 or SP_EINVAL for a pair that
 * is not an event (out unchanged). */
int sp_event_parse(const sp_evid *entry, int32_t idx, const char *field, size_t flen,
                   const char *value, size_t vlen, sp_event *out);

/* Events read from the stream, in order. `last` is the id (idx -1) of the last entry
 * read, whether or not it held events; `entries` how many entries were read. */
typedef struct sp_evbatch {
    sp_event *ev;   /* owned: free with sp_evbatch_free */
    size_t n, cap;
    size_t entries;
    sp_evid last;
} sp_evbatch;

void sp_evbatch_init(sp_evbatch *b);
void sp_evbatch_free(sp_evbatch *b); /* accepts NULL; leaves b empty */

typedef struct sp_evstream sp_evstream;

/* A handle on the stream of the Redis at url with key prefix, on its own connection
 * (made on first use). NULL with err set for a bad URL or prefix, or out of memory.
 * Close with sp_evstream_close. */
sp_evstream *sp_evstream_open(const char *url, const char *prefix, sp_err *err);
void sp_evstream_close(sp_evstream *s); /* accepts NULL */

/* The id of the newest entry (idx -1) into *last; 0-0 when the stream is empty or does
 * not exist. 0 or an error (SP_EREDIS...). */
int sp_evstream_tail(sp_evstream *s, sp_evid *last, sp_err *err);

/* Wait up to block_ms for entries after after's entry (XREAD BLOCK; the index of after
 * is ignored) and read at most max_entries of them, appending their events to b
 * (b->last and b->entries are set; unchanged when none came). Returns the number of
 * entries read (0 when the wait ran out) or an error; on error b is unchanged. */
int sp_evstream_read(sp_evstream *s, const sp_evid *after, int64_t block_ms,
                     size_t max_entries, sp_evbatch *b, sp_err *err);

/* Read at most max_entries entries from after on without waiting (XRANGE): the pairs of
 * after's entry with an index above after->idx (none when idx is -1), then the entries
 * after it. Appends to b like sp_evstream_read. Returns the number of entries read
 * (counting after's own entry when it was read again) or an error (b unchanged). */
int sp_evstream_range(sp_evstream *s, const sp_evid *after, size_t max_entries,
                      sp_evbatch *b, sp_err *err);

/* Whether resuming after `after` misses events the stream no longer holds: entries
 * were trimmed and `after` is older than the oldest entry kept (XINFO STREAM; Redis 7).
 * *oldest gets the oldest entry kept (0-0 when empty). 1 (gap), 0 (none) or an error. */
int sp_evstream_gap(sp_evstream *s, const sp_evid *after, sp_evid *oldest, sp_err *err);

#endif
