/* config.c - table-driven option parsing and the routing table (see config.h). */
#include "spool/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "spool/alloc.h"
#include "spool/log.h"
#include "spool/util.h"

#ifndef SPOOL_VERSION
#define SPOOL_VERSION "0.0.0"
#endif

static int sp__set(sp_option *o, const char *val, const char *origin, sp_err *err)
{
    int64_t v = 0;
    int rc = 0;
    switch (o->type) {
    case SP_OPT_STR: {
        char *copy = sp_strdup(val);
        if (copy == NULL)
            return sp_err_set(err, SP_ENOMEM, "out of memory");
        sp_free(*(char **)o->target);
        *(char **)o->target = copy;
        return 0;
    }
    case SP_OPT_INT:
        rc = sp_parse_i64(val, INT64_MIN, INT64_MAX, &v);
        break;
    case SP_OPT_SIZE:
        rc = sp_parse_size(val, &v);
        break;
    case SP_OPT_DURATION:
        rc = sp_parse_duration_ms(val, &v);
        break;
    case SP_OPT_BOOL:
        if (!strcasecmp(val, "1") || !strcasecmp(val, "true") || !strcasecmp(val, "yes") ||
            !strcasecmp(val, "on"))
            *(int *)o->target = 1;
        else if (!strcasecmp(val, "0") || !strcasecmp(val, "false") ||
                 !strcasecmp(val, "no") || !strcasecmp(val, "off"))
            *(int *)o->target = 0;
        else
            rc = SP_EINVAL;
        if (rc < 0)
            break;
        return 0;
    case SP_OPT_LOGLEVEL:
        rc = sp_log_parse_level(val, (int *)o->target);
        if (rc < 0)
            break;
        return 0;
    case SP_OPT_LOGFORMAT:
        rc = sp_log_parse_format(val, (int *)o->target);
        if (rc < 0)
            break;
        return 0;
    default:
        rc = SP_EINVAL;
    }
    if (rc == 0 && (o->min != 0 || o->max != 0) && (v < o->min || v > o->max))
        rc = SP_EINVAL;
    if (rc < 0)
        return sp_err_set(err, SP_EINVAL, "invalid value '%s' for %s", val, origin);
    *(int64_t *)o->target = v;
    return 0;
}

static void sp__usage(const char *prog, const char *summary, const sp_option *opts, size_t n)
{
    printf("Usage: %s [options]\n%s\n\nOptions (environment variable in brackets):\n", prog,
           summary);
    for (size_t i = 0; i < n; i++) {
        printf("  --%-22s %s", opts[i].flag, opts[i].help);
        if (opts[i].env)
            printf(" [%s]", opts[i].env);
        if (opts[i].def && opts[i].def[0])
            printf(" (default: %s)", opts[i].def);
        printf("\n");
    }
    printf("  --%-22s %s\n  --%-22s %s\n", "help", "show this help and exit", "version",
           "show the version and exit");
}

int sp_options_parse(const char *prog, const char *summary, sp_option *opts, size_t n,
                     int argc, char **argv, sp_err *err)
{
    for (size_t i = 0; i < n; i++) {
        if (opts[i].def && sp__set(&opts[i], opts[i].def, "default", err) < 0)
            return err ? err->code : SP_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        const char *v = opts[i].env ? getenv(opts[i].env) : NULL;
        if (v != NULL && v[0] != '\0' && sp__set(&opts[i], v, opts[i].env, err) < 0)
            return err ? err->code : SP_EINVAL;
    }
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            sp__usage(prog, summary, opts, n);
            return 1;
        }
        if (!strcmp(arg, "--version")) {
            printf("%s %s\n", prog, SPOOL_VERSION);
            return 1;
        }
        if (strncmp(arg, "--", 2) != 0)
            return sp_err_set(err, SP_EINVAL, "unexpected argument '%s' (see --help)", arg);
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        sp_option *o = NULL;
        for (size_t i = 0; i < n; i++) {
            if (strlen(opts[i].flag) == nlen && !strncmp(opts[i].flag, name, nlen)) {
                o = &opts[i];
                break;
            }
        }
        if (o == NULL)
            return sp_err_set(err, SP_EINVAL, "unknown option '%.*s' (see --help)",
                              (int)(nlen + 2), arg);
        const char *val;
        if (eq)
            val = eq + 1;
        else if (o->type == SP_OPT_BOOL)
            val = "1";
        else if (a + 1 < argc)
            val = argv[++a];
        else
            return sp_err_set(err, SP_EINVAL, "option '%s' needs a value", arg);
        char origin[96];
        snprintf(origin, sizeof origin, "--%s", o->flag);
        if (sp__set(o, val, origin, err) < 0)
            return err ? err->code : SP_EINVAL;
    }
    return 0;
}

void sp_options_free(sp_option *opts, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (opts[i].type == SP_OPT_STR) {
            sp_free(*(char **)opts[i].target);
            *(char **)opts[i].target = NULL;
        }
    }
}

void sp_common_options(sp_common_config *c, sp_option *out)
{
    sp_option o[SP_COMMON_OPTION_COUNT] = {
        {"redis-url", "SPOOL_REDIS_URL", SP_OPT_STR, &c->redis_url, "redis://127.0.0.1:6379/0",
         "Redis URL: redis://[user:password@]host:port/db, unix:///path, or "
         "redis-sentinel://[[user:]password@]host:port[,host:port...][/db]#MASTER", 0, 0},
        {"data-dir", "SPOOL_DATA_DIR", SP_OPT_STR, &c->data_dir, "./var/data",
         "blob store directory shared by the API and the workers", 0, 0},
        {"key-prefix", "SPOOL_KEY_PREFIX", SP_OPT_STR, &c->prefix, "spool:",
         "prefix of every Redis key spool uses", 0, 0},
        {"log-level", "SPOOL_LOG_LEVEL", SP_OPT_LOGLEVEL, &c->log_level, "info",
         "debug, info, warn or error", 0, 0},
        {"log-format", "SPOOL_LOG_FORMAT", SP_OPT_LOGFORMAT, &c->log_format, "text",
         "text or json", 0, 0},
        {"retention", "SPOOL_RETENTION", SP_OPT_DURATION, &c->retention_ms, "7d",
         "how long finished jobs and their files are kept", 1000, INT64_C(3153600000000)},
        {"outbound-allow", "SPOOL_OUTBOUND_ALLOW", SP_OPT_STR, &c->outbound_allow, "",
         "non-public destinations a user's URL (source_url) may reach: comma-separated "
         "CIDRs (10.0.0.0/8, fd00::/8), addresses, host names and *.domain; by default only "
         "public addresses, never through a proxy",
         0, 0},
        {"blob-url", "SPOOL_BLOB_URL", SP_OPT_STR, &c->blob_url, "",
         "where uploads and outputs live: file:///path (as --data-dir) or s3://BUCKET/PREFIX "
         "(credentials from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN); "
         "empty: --data-dir",
         0, 0},
        {"scratch-dir", "SPOOL_SCRATCH_DIR", SP_OPT_STR, &c->scratch_dir, "",
         "local directory for the files a worker's libraries read and write, with an object "
         "store (emptied as jobs end); empty: $TMPDIR/spool-scratch",
         0, 0},
        {"s3-endpoint", "SPOOL_S3_ENDPOINT", SP_OPT_STR, &c->s3_endpoint, "",
         "the object store's URL, http(s)://host[:port]; empty: AWS S3 in --s3-region", 0, 0},
        {"s3-region", "SPOOL_S3_REGION", SP_OPT_STR, &c->s3_region, "",
         "the bucket's region; empty: AWS_REGION, else us-east-1", 0, 0},
        {"s3-path-style", "SPOOL_S3_PATH_STYLE", SP_OPT_BOOL, &c->s3_path_style, "0",
         "address the bucket as ENDPOINT/BUCKET/KEY (MinIO, most local stores) rather than "
         "BUCKET.HOST/KEY",
         0, 0},
        {"s3-part-size", "SPOOL_S3_PART_SIZE", SP_OPT_SIZE, &c->s3_part_size, "8M",
         "bytes per part of a multipart upload (each write holds one in memory)",
         5 * 1024 * 1024, INT64_C(5368709120)},
    };
    memcpy(out, o, sizeof o);
}

int sp_queue_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

static int sp__pattern_match(const char *pattern, const char *type)
{
    size_t n = strlen(pattern);
    if (n > 0 && pattern[n - 1] == '*')
        return strncmp(pattern, type, n - 1) == 0;
    return strcmp(pattern, type) == 0;
}

/* Split "a=b,c=d" into pairs; calls fn(key, value) for each. */
static int sp__pairs(const char *spec, const char *what, sp_err *err,
                     int (*fn)(void *ctx, const char *k, const char *v, sp_err *err), void *ctx)
{
    char item[256];
    const char *p = spec;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len >= sizeof item)
            return sp_err_set(err, SP_EINVAL, "%s entry too long", what);
        memcpy(item, p, len);
        item[len] = '\0';
        p += len + (comma ? 1 : 0);
        if (len == 0)
            continue;
        char *eq = strchr(item, '=');
        if (eq == NULL || eq == item || eq[1] == '\0')
            return sp_err_set(err, SP_EINVAL, "%s entry '%s' is not pattern=value", what, item);
        *eq = '\0';
        int rc = fn(ctx, item, eq + 1, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int sp__add_route(void *ctx, const char *k, const char *v, sp_err *err)
{
    sp_routes *r = ctx;
    if (r->nroute == SP_MAX_ROUTES)
        return sp_err_set(err, SP_EINVAL, "too many routes (max %d)", SP_MAX_ROUTES);
    if (strlen(k) >= sizeof r->route[0].pattern || !sp_queue_name_valid(v))
        return sp_err_set(err, SP_EINVAL, "bad route '%s=%s'", k, v);
    sp_route *e = &r->route[r->nroute++];
    snprintf(e->pattern, sizeof e->pattern, "%s", k);
    snprintf(e->queue, sizeof e->queue, "%s", v);
    return 0;
}

static int sp__add_retry(void *ctx, const char *k, const char *v, sp_err *err)
{
    sp_routes *r = ctx;
    if (r->nretry == SP_MAX_ROUTES || strlen(k) >= sizeof r->retry[0].pattern)
        return sp_err_set(err, SP_EINVAL, "bad retry policy '%s'", k);
    char a[32], b[32], c[32];
    if (sscanf(v, "%31[^:]:%31[^:]:%31s", a, b, c) != 3)
        return sp_err_set(err, SP_EINVAL,
                          "retry policy '%s=%s' is not max_attempts:base:cap", k, v);
    sp_retry_policy p;
    snprintf(p.pattern, sizeof p.pattern, "%s", k);
    if (sp_parse_i64(a, 1, 100, &p.max_attempts) < 0 || sp_parse_duration_ms(b, &p.base_ms) < 0 ||
        sp_parse_duration_ms(c, &p.cap_ms) < 0 || p.base_ms < 1 || p.cap_ms < p.base_ms)
        return sp_err_set(err, SP_EINVAL, "bad retry policy '%s=%s'", k, v);
    r->retry[r->nretry++] = p;
    return 0;
}

int sp_routes_parse(sp_routes *r, const char *routes, const char *retry, sp_err *err)
{
    sp_routes tmp;
    memset(&tmp, 0, sizeof tmp);
    int rc = sp__pairs(routes ? routes : "", "route", err, sp__add_route, &tmp);
    if (rc == 0)
        rc = sp__pairs(retry ? retry : "", "retry", err, sp__add_retry, &tmp);
    if (rc == 0)
        *r = tmp;
    return rc;
}

const char *sp_routes_queue(const sp_routes *r, const char *type)
{
    for (size_t i = 0; i < r->nroute; i++) {
        if (sp__pattern_match(r->route[i].pattern, type))
            return r->route[i].queue;
    }
    return NULL;
}

sp_retry_policy sp_routes_retry(const sp_routes *r, const char *type)
{
    for (size_t i = 0; i < r->nretry; i++) {
        if (sp__pattern_match(r->retry[i].pattern, type))
            return r->retry[i];
    }
    sp_retry_policy d = {"*", 3, 1000, 300000};
    return d;
}
