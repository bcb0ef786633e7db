/* alloc.h - the tree's one allocator. Out of memory is an error, not an abort: every
 * sp_* allocation returns NULL on failure and callers return SP_ENOMEM. Tests install
 * hooks to make allocations fail on purpose. */
#ifndef SPOOL_ALLOC_H
#define SPOOL_ALLOC_H

#include <stddef.h>

typedef struct sp_alloc_hooks {
    void *(*malloc_fn)(size_t size);
    void *(*realloc_fn)(void *ptr, size_t size);
    void (*free_fn)(void *ptr);
} sp_alloc_hooks;

/* Replace the allocator (NULL restores libc's). Call before any thread starts. */
void sp_alloc_set_hooks(const sp_alloc_hooks *hooks);

void *sp_malloc(size_t size);                 /* NULL on failure */
void *sp_calloc(size_t n, size_t size);       /* zeroed; NULL on failure or overflow */
void *sp_realloc(void *ptr, size_t size);     /* NULL on failure, ptr left valid */
void sp_free(void *ptr);                      /* accepts NULL */
char *sp_strdup(const char *s);               /* caller frees with sp_free */
char *sp_strndup(const char *s, size_t n);    /* copies at most n bytes, NUL-terminates */

#endif
