/* config.h - options from defaults, the environment and the command line (in that
 * order of precedence, lowest first), described by one table per binary so --help is
 * generated from the same place that parses. Also the job-type routing table. */
#ifndef SPOOL_CONFIG_H
#define SPOOL_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "spool/err.h"

enum sp_opt_type {
    SP_OPT_STR,      /* target: char ** (heap copy, freed by sp_options_free) */
    SP_OPT_INT,      /* target: int64_t *; plain integer */
    SP_OPT_SIZE,     /* target: int64_t *; bytes, with k/M/G suffixes */
    SP_OPT_DURATION, /* target: int64_t *; milliseconds, with ms/s/m/h/d suffixes */
    SP_OPT_BOOL,     /* target: int *; 1/0, true/false, yes/no, on/off */
    SP_OPT_LOGLEVEL, /* target: int *; debug|info|warn|error */
    SP_OPT_LOGFORMAT /* target: int *; text|json */
};

typedef struct sp_option {
    const char *flag; /* long option name without the dashes, e.g. "redis-url" */
    const char *env;  /* environment variable, or NULL */
    int type;
    void *target;
    const char *def;  /* default, as it would be written in the environment */
    const char *help;
    int64_t min, max; /* bounds for numeric types (ignored when min == max == 0) */
} sp_option;

/* Parse defaults, then the environment, then argv into the targets.
 * Returns 0 to go on, 1 when --help or --version was printed (exit 0), or a negative
 * code with err naming the bad option (exit 2). Strings already set are freed. */
int sp_options_parse(const char *prog, const char *summary, sp_option *opts, size_t n,
                     int argc, char **argv, sp_err *err);

/* Free every SP_OPT_STR target in opts. */
void sp_options_free(sp_option *opts, size_t n);

/* The settings every spool binary shares. */
typedef struct sp_common_config {
    char *redis_url;      /* SPOOL_REDIS_URL */
    char *data_dir;       /* SPOOL_DATA_DIR */
    char *prefix;         /* SPOOL_KEY_PREFIX: prepended to every Redis key */
    int log_level;        /* SPOOL_LOG_LEVEL */
    int log_format;       /* SPOOL_LOG_FORMAT */
    int64_t retention_ms; /* SPOOL_RETENTION: how long terminal jobs and blobs stay */
    char *outbound_allow; /* SPOOL_OUTBOUND_ALLOW: parsed by sp_outbound_new */
    /* the blob store (see spool/blob.h; credentials come from AWS_* only) */
    char *blob_url;       /* SPOOL_BLOB_URL: file:///path or s3://BUCKET/PREFIX */
    char *scratch_dir;    /* SPOOL_SCRATCH_DIR */
    char *s3_endpoint;    /* SPOOL_S3_ENDPOINT */
    char *s3_region;      /* SPOOL_S3_REGION */
    int s3_path_style;    /* SPOOL_S3_PATH_STYLE */
    int64_t s3_part_size; /* SPOOL_S3_PART_SIZE */
} sp_common_config;

#define SP_COMMON_OPTION_COUNT 13
/* Write the shared options for c into out[0..SP_COMMON_OPTION_COUNT-1]. */
void sp_common_options(sp_common_config *c, sp_option *out);

/* The routing table: job type pattern -> queue, and per-pattern retry policy.
 * Patterns are exact ("pdf.export") or end in ".*" or "*" to match a prefix. */
typedef struct sp_route {
    char pattern[64];
    char queue[64];
} sp_route;

typedef struct sp_retry_policy {
    char pattern[64];
    int64_t max_attempts;
    int64_t base_ms;
    int64_t cap_ms;
} sp_retry_policy;

#define SP_MAX_ROUTES 32
typedef struct sp_routes {
    sp_route route[SP_MAX_ROUTES];
    size_t nroute;
    sp_retry_policy retry[SP_MAX_ROUTES];
    size_t nretry;
} sp_routes;

/* Parse "video.*=video,pdf.*=pdf" and "video.*=3:2s:5m,*=3:1s:1m"
 * (max_attempts:base:cap). Returns 0 or SP_EINVAL with err saying where. */
int sp_routes_parse(sp_routes *r, const char *routes, const char *retry, sp_err *err);

/* The queue for type, or NULL when no route matches. First match wins. */
const char *sp_routes_queue(const sp_routes *r, const char *type);

/* The retry policy for type; a built-in default (3 attempts, 1 s, 5 min) if none. */
sp_retry_policy sp_routes_retry(const sp_routes *r, const char *type);

/* True for a valid queue name: 1-64 of [A-Za-z0-9_.-]. */
int sp_queue_name_valid(const char *name);

#endif
