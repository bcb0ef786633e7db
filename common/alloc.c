/* alloc.c - allocation through replaceable hooks (see alloc.h). */
#include "spool/alloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static sp_alloc_hooks sp__hooks = {malloc, realloc, free};

void sp_alloc_set_hooks(const sp_alloc_hooks *hooks)
{
    if (hooks == NULL) {
        sp__hooks = (sp_alloc_hooks){malloc, realloc, free};
        return;
    }
    sp__hooks = *hooks;
}

void *sp_malloc(size_t size)
{
    return sp__hooks.malloc_fn(size ? size : 1);
}

void *sp_calloc(size_t n, size_t size)
{
    if (size != 0 && n > SIZE_MAX / size)
        return NULL;
    void *p = sp_malloc(n * size);
    if (p != NULL)
        memset(p, 0, n * size);
    return p;
}

void *sp_realloc(void *ptr, size_t size)
{
    return sp__hooks.realloc_fn(ptr, size ? size : 1);
}

void sp_free(void *ptr)
{
    if (ptr != NULL)
        sp__hooks.free_fn(ptr);
}

char *sp_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = sp_malloc(len + 1);
    if (p == NULL)
        return NULL;
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *sp_strdup(const char *s)
{
    return sp_strndup(s, SIZE_MAX);
}
