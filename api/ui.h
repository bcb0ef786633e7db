/* ui.h - the dashboard's files, embedded into spool-api at build time
 * (scripts/embed-files.sh writes the table from api/ui/ and Chart.js). */
#ifndef SPOOL_API_UI_H
#define SPOOL_API_UI_H

#include <stddef.h>

typedef struct api_ui_file {
    const char *name;          /* e.g. "app.js" */
    const unsigned char *data; /* len bytes (and a NUL after them) */
    size_t len;
    const char *etag;          /* quoted, from the file's SHA-256 */
} api_ui_file;

extern const api_ui_file api_ui_files[];
extern const size_t api_ui_nfiles;

/* The embedded file called name, or NULL. */
const api_ui_file *api_ui_find(const char *name);

/* The Content-Type for a file name, by its extension. */
const char *api_ui_type(const char *name);

#endif
