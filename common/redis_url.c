/* redis_url.c - Redis URLs: redis://, unix:// and redis-sentinel:// (see redis.h). */
#include "redis.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "spool/util.h"

static int sp__hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Copy n bytes of s into out (size cap), decoding %XX escapes. */
static int sp__copy_decoded(char *out, size_t cap, const char *s, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return -1;
            int hi = sp__hexval(s[i + 1]);
            int lo = sp__hexval(s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (o + 1 >= cap)
            return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return 0;
}

/* host[:port] or [v6]:port in p[0..end-p-1] into *hp; port defport when not given. */
static int sp__hostport(const char *p, const char *end, int defport, const char *url,
                        sp_redis_hostport *hp, sp_err *err)
{
    const char *host_end = end;
    const char *port_colon = NULL;
    memset(hp, 0, sizeof *hp);
    hp->port = defport;
    if (p < end && *p == '[') { /* IPv6 literal */
        const char *rb = memchr(p, ']', (size_t)(end - p));
        if (rb == NULL)
            return sp_err_set(err, SP_EINVAL, "bad Redis URL '%s': unclosed '['", url);
        if (rb == p + 1)
            return sp_err_set(err, SP_EINVAL, "bad Redis URL '%s': missing host", url);
        if ((size_t)(rb - p - 1) >= sizeof hp->host)
            return sp_err_set(err, SP_EINVAL, "bad Redis URL: host too long");
        memcpy(hp->host, p + 1, (size_t)(rb - p - 1));
        if (rb + 1 < end && rb[1] == ':')
            port_colon = rb + 1;
        else if (rb + 1 != end)
            return sp_err_set(err, SP_EINVAL, "bad Redis URL '%s'", url);
    } else {
        port_colon = memchr(p, ':', (size_t)(end - p));
        if (port_colon)
            host_end = port_colon;
        size_t hn = (size_t)(host_end - p);
        if (hn == 0 || hn >= sizeof hp->host)
            return sp_err_set(err, SP_EINVAL, "bad Redis URL '%s': missing host", url);
        memcpy(hp->host, p, hn);
    }
    if (port_colon) {
        char portbuf[8];
        size_t pn = (size_t)(end - port_colon - 1);
        int64_t port;
        if (pn == 0 || pn >= sizeof portbuf)
            return sp_err_set(err, SP_EINVAL, "bad Redis URL '%s': bad port", url);
        memcpy(portbuf, port_colon + 1, pn);
        portbuf[pn] = '\0';
        if (sp_parse_i64(portbuf, 1, 65535, &port) < 0)
            return sp_err_set(err, SP_EINVAL, "bad Redis URL '%s': bad port", url);
        hp->port = (int)port;
    }
    return 0;
}

/* The hosts of a redis-sentinel:// URL, comma-separated, into u->sentinels. */
static int sp__sentinels(const char *p, const char *end, const char *url, sp_redis_url *u,
                         sp_err *err)
{
    while (p <= end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *item_end = comma ? comma : end;
        if (u->nsentinels == SP_REDIS_MAX_SENTINELS)
            return sp_err_set(err, SP_EINVAL, "bad Redis URL '%s': more than %d sentinels", url,
                              SP_REDIS_MAX_SENTINELS);
        int rc = sp__hostport(p, item_end, 26379, url, &u->sentinels[u->nsentinels], err);
        if (rc < 0)
            return rc;
        u->nsentinels++;
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    return 0;
}

int sp_redis_url_parse(const char *url, sp_redis_url *out, sp_err *err)
{
    sp_redis_url u;
    memset(&u, 0, sizeof u);
    u.port = 6379;
    if (url == NULL)
        return sp_err_set(err, SP_EINVAL, "no Redis URL");
    if (strncmp(url, "unix://", 7) == 0) {
        const char *path = url + 7;
        const char *q = strchr(path, '?');
        size_t n = q ? (size_t)(q - path) : strlen(path);
        if (n == 0 || path[0] != '/' || n >= sizeof u.unix_path)
            return sp_err_set(err, SP_EINVAL, "bad Redis URL '%s': unix:// needs an absolute path",
                              url);
        memcpy(u.unix_path, path, n);
        if (q) {
            int64_t db;
            if (strncmp(q, "?db=", 4) != 0 || sp_parse_i64(q + 4, 0, 1000, &db) < 0)
                return sp_err_set(err, SP_EINVAL, "bad Redis URL '%s': expected ?db=N", url);
            u.db = (int)db;
        }
        *out = u;
        return 0;
    }
    bool sentinel = strncmp(url, "redis-sentinel://", 17) == 0;
    if (!sentinel && strncmp(url, "redis://", 8) != 0)
        return sp_err_set(err, SP_EINVAL,
                          "bad Redis URL '%s': expected redis://host:port/db, unix:///path or "
                          "redis-sentinel://host:port,host:port/db#MASTER",
                          url);
    const char *p = url + (sentinel ? 17 : 8);
    const char *end = p + strlen(p);
    if (sentinel) {
        const char *hash = strchr(p, '#');
        if (hash == NULL || hash[1] == '\0')
            return sp_err_set(err, SP_EINVAL,
                              "bad Redis URL '%s': a redis-sentinel:// URL names its master "
                              "after '#' (redis-sentinel://host:26379#mymaster)",
                              url);
        if (sp__copy_decoded(u.master, sizeof u.master, hash + 1, strlen(hash + 1)) < 0 ||
            strpbrk(u.master, " \t\r\n") != NULL)
            return sp_err_set(err, SP_EINVAL, "bad Redis URL '%s': bad master name", url);
        end = hash;
        if (memchr(p, '?', (size_t)(end - p)) != NULL)
            return sp_err_set(err, SP_EINVAL,
                              "bad Redis URL '%s': query parameters are not supported (name the "
                              "master after '#', the database after '/')",
                              url);
    }
    const char *slash = memchr(p, '/', (size_t)(end - p));
    const char *hostpart_end = slash ? slash : end;
    const char *at = NULL;
    for (const char *s = p; s < hostpart_end; s++)
        if (*s == '@')
            at = s;
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *uend = colon ? colon : at;
        if (sp__copy_decoded(u.user, sizeof u.user, p, (size_t)(uend - p)) < 0 ||
            (colon && sp__copy_decoded(u.password, sizeof u.password, colon + 1,
                                       (size_t)(at - colon - 1)) < 0))
            return sp_err_set(err, SP_EINVAL, "bad Redis URL: bad user or password");
        p = at + 1;
    }
    int rc;
    if (sentinel) {
        rc = sp__sentinels(p, hostpart_end, url, &u, err);
    } else {
        sp_redis_hostport hp;
        rc = sp__hostport(p, hostpart_end, 6379, url, &hp, err);
        memcpy(u.host, hp.host, sizeof u.host);
        u.port = hp.port;
    }
    if (rc < 0)
        return rc;
    if (slash && slash + 1 < end) {
        char dbbuf[8];
        size_t dn = (size_t)(end - slash - 1);
        int64_t db;
        if (dn >= sizeof dbbuf)
            return sp_err_set(err, SP_EINVAL, "bad Redis URL '%s': bad database number", url);
        memcpy(dbbuf, slash + 1, dn);
        dbbuf[dn] = '\0';
        if (sp_parse_i64(dbbuf, 0, 1000, &db) < 0)
            return sp_err_set(err, SP_EINVAL, "bad Redis URL '%s': bad database number", url);
        u.db = (int)db;
    }
    *out = u;
    return 0;
}
