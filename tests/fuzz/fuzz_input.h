/* fuzz_input.h - what several fuzz targets do with their input first: the first byte
 * picks what to fuzz, the rest is a text. */
#ifndef SPOOL_FUZZ_INPUT_H
#define SPOOL_FUZZ_INPUT_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* data[1..size-1] as a NUL-terminated heap string (free it); abort() when out of
 * memory. size must be at least 1. */
static inline char *fuzz_text_after_selector(const uint8_t *data, size_t size)
{
    char *s = malloc(size);
    if (s == NULL)
        abort();
    memcpy(s, data + 1, size - 1);
    s[size - 1] = '\0';
    return s;
}

#endif
