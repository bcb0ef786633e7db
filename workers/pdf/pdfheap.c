/* pdfheap.c - libharu's memory: a heap per document, counted and capped (render_int.h). */
#include <stdint.h>
#include <string.h>

#include "render_int.h"
#include "spool/alloc.h"

/* Every allocation libharu makes for a document comes from that document's heap: small
 * blocks from size classes carved out of 256 KB chunks (free blocks kept on a list per
 * class), larger ones from malloc on a list. Freeing the document releases the chunks
 * and whatever large blocks remain, so memory libharu loses on its own error paths (it
 * leaks an object or two when an allocation fails mid-page) cannot outlive the job.
 * The cap counts what the heap holds (chunks and large blocks). */

#define SP__CHUNK (256 * 1024)
#define SP__SMALL_MAX 2048 /* block size, header included */
#define SP__BIG_TAG UINT64_C(0x5350424947424C4B) /* marks a large block's header */

static const uint32_t sp__class_size[] = {16,  32,  48,  64,  80,  96,   112,  128,
                                          144, 160, 176, 192, 224, 256,  320,  384,
                                          448, 512, 640, 768, 1024, 1280, 1536, 2048};
_Static_assert(sizeof sp__class_size / sizeof sp__class_size[0] == SP_PDF__NCLASS,
               "one free list per size class");

struct sp_pdf__chunk {
    struct sp_pdf__chunk *next;
    uint64_t pad;
};

/* A large block: its links and size, then the tag just before the user's bytes. */
struct sp_pdf__big {
    struct sp_pdf__big *prev, *next;
    uint64_t size;
    uint64_t tag;
};
_Static_assert(sizeof(sp_pdf__big) == 32, "large blocks stay 16-byte aligned");


/* The heap of the document whose function is running on this thread: libharu's
 * allocator callbacks have no user data. Every public function sets it. */
static _Thread_local sp_pdf__heap *sp__tls_heap;

void sp_pdf__heap_use(sp_pdf__heap *h)
{
    sp__tls_heap = h;
}

static bool sp__grow(sp_pdf__heap *h, int64_t n)
{
    if (h->max > 0 && h->cur + n > h->max) {
        h->hit = true;
        return false;
    }
    h->cur += n;
    if (h->cur > h->peak)
        h->peak = h->cur;
    return true;
}

void *HPDF_STDCALL sp_pdf__heap_alloc(HPDF_UINT size)
{
    sp_pdf__heap *h = sp__tls_heap;
    if (h == NULL)
        return NULL; /* not within a document's call: never happens */
    size_t need = (size_t)size + 8;
    if (need <= SP__SMALL_MAX) {
        size_t k = 0;
        while (sp__class_size[k] < need)
            k++;
        char *b = h->free[k];
        if (b != NULL) {
            h->free[k] = *(void **)b;
        } else {
            size_t sz = sp__class_size[k];
            if ((size_t)(h->end - h->bump) < sz) {
                if (!sp__grow(h, SP__CHUNK))
                    return NULL;
                sp_pdf__chunk *c = sp_malloc(SP__CHUNK);
                if (c == NULL) {
                    h->cur -= SP__CHUNK;
                    return NULL;
                }
                c->next = h->chunks;
                h->chunks = c;
                h->bump = (char *)(c + 1);
                h->end = (char *)c + SP__CHUNK;
            }
            b = h->bump;
            h->bump += sz;
        }
        *(uint64_t *)b = k;
        return b + 8;
    }
    if (!sp__grow(h, (int64_t)(sizeof(sp_pdf__big) + size)))
        return NULL;
    sp_pdf__big *g = sp_malloc(sizeof *g + size);
    if (g == NULL) {
        h->cur -= (int64_t)(sizeof(sp_pdf__big) + size);
        return NULL;
    }
    g->prev = NULL;
    g->next = h->big;
    if (h->big)
        h->big->prev = g;
    h->big = g;
    g->size = size;
    g->tag = SP__BIG_TAG;
    return g + 1;
}

static void sp__big_free(sp_pdf__heap *h, sp_pdf__big *g)
{
    if (g->prev)
        g->prev->next = g->next;
    else
        h->big = g->next;
    if (g->next)
        g->next->prev = g->prev;
    h->cur -= (int64_t)(sizeof *g + g->size);
    sp_free(g);
}

void HPDF_STDCALL sp_pdf__heap_free(void *p)
{
    if (p == NULL)
        return;
    sp_pdf__heap *h = sp__tls_heap;
    if (h == NULL)
        return;
    uint64_t tag = ((uint64_t *)p)[-1];
    if (tag == SP__BIG_TAG) {
        sp__big_free(h, (sp_pdf__big *)p - 1);
        return;
    }
    char *b = (char *)p - 8;
    *(void **)b = h->free[tag];
    h->free[tag] = b;
}

/* Release everything the heap holds (after HPDF_Free). */
void sp_pdf__heap_release(sp_pdf__heap *h)
{
    while (h->big)
        sp__big_free(h, h->big);
    for (sp_pdf__chunk *c = h->chunks, *next; c; c = next) {
        next = c->next;
        sp_free(c);
    }
    h->chunks = NULL;
    h->bump = h->end = NULL;
    memset(h->free, 0, sizeof h->free);
    h->cur = 0;
}
