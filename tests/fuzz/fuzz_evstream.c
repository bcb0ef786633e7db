/* fuzz_evstream.c - the event stream's parsers: Last-Event-ID values (sp_evid_parse)
 * and stream pairs (sp_event_parse). An id that parses formats back to the same text
 * (no second spelling of one position); an event that parses carries only valid
 * fields, so the SSE line built from it needs no escaping. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spool/config.h"
#include "spool/evstream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char s[512];
    if (size >= sizeof s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    sp_evid id;
    if (strlen(s) == size && sp_evid_parse(s, &id) == 0) {
        char back[SP_EVID_LEN];
        sp_evid_format(&id, back);
        if (strcmp(back, s) != 0 || id.idx > SP_EVID_IDX_MAX || id.idx < -1)
            abort();
        if (sp_evid_cmp(&id, &id) != 0 || sp_evid_cmp_entry(&id, &id) != 0)
            abort();
    }
    /* field|value, split at the first '|' (a field of any length) */
    const char *bar = memchr(data, '|', size);
    if (bar == NULL)
        return 0;
    size_t flen = (size_t)(bar - (const char *)data);
    sp_evid entry = {1765112345678, 3, -1};
    sp_event ev;
    if (sp_event_parse(&entry, 2, (const char *)data, flen, bar + 1, size - flen - 1, &ev) == 0) {
        if (!sp_id_valid(ev.job) || ev.progress < 0 || ev.progress > 100 ||
            !sp_queue_name_valid(ev.queue) || ev.state >= SP_STATE_COUNT ||
            ev.id.idx != 2 || ev.at_ms != 1765112345678)
            abort();
        for (const char *c = ev.type; *c; c++) {
            if (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20)
                abort();
        }
    }
    return 0;
}
