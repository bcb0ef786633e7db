/* buf.h - a growable byte buffer with a hard maximum (after curl's dynbuf). The data is
 * always NUL-terminated so it can be used as a C string. */
#ifndef SPOOL_BUF_H
#define SPOOL_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct sp_buf {
    char *data;  /* NULL until the first byte is added; owned by the buffer */
    size_t len;  /* bytes used, not counting the terminating NUL */
    size_t cap;  /* bytes allocated */
    size_t max;  /* hard limit on len */
} sp_buf;

/* Start an empty buffer that may grow to max bytes. Allocates nothing. */
void sp_buf_init(sp_buf *b, size_t max);

/* Append n bytes. Returns 0, SP_ENOMEM, or SP_ETOOBIG past the maximum; on error the
 * buffer is unchanged. */
int sp_buf_add(sp_buf *b, const void *data, size_t n);
int sp_buf_adds(sp_buf *b, const char *s);
int sp_buf_addc(sp_buf *b, char c);
int sp_buf_addf(sp_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int sp_buf_vaddf(sp_buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* Append s as the body of a JSON string (escaped, without the quotes). */
int sp_buf_add_json_escaped(sp_buf *b, const char *s, size_t n);

/* The contents as a C string; "" when empty. Valid until the next change. */
const char *sp_buf_cstr(const sp_buf *b);

/* Forget the contents but keep the allocation. */
void sp_buf_reset(sp_buf *b);

/* Hand the contents to the caller (free with sp_free) and reset the buffer.
 * Returns NULL when empty. */
char *sp_buf_take(sp_buf *b);

/* Free the contents. Accepts NULL and a buffer that never allocated. */
void sp_buf_free(sp_buf *b);

#endif
