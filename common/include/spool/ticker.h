/* ticker.h - a function called every period on a thread of its own, for background
 * chores (the blob store refreshing its staging files, the API's blob GC); stopping
 * interrupts the wait at once. */
#ifndef SPOOL_TICKER_H
#define SPOOL_TICKER_H

#include <stdint.h>

#include "spool/err.h"

typedef struct sp_ticker sp_ticker;

/* Start a thread that calls fn(ud) every period_ms (the first call one period from
 * now; a slow call delays the next) until sp_ticker_stop. NULL with err set when the
 * thread cannot start. Stop it with sp_ticker_stop. */
sp_ticker *sp_ticker_start(int64_t period_ms, void (*fn)(void *ud), void *ud, sp_err *err);

/* Stop the thread: its wait ends at once, a call under way finishes first. Joins and
 * frees. Accepts NULL. */
void sp_ticker_stop(sp_ticker *t);

#endif
