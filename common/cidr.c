/* cidr.c - address ranges (see cidr.h). */
#include "spool/cidr.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <string.h>

#include "spool/alloc.h"

int sp_cidr_parse(const char *s, const char *what, sp_cidr *out, sp_err *err)
{
    memset(out, 0, sizeof *out);
    char addr[64];
    const char *slash = strchr(s, '/');
    size_t alen = slash ? (size_t)(slash - s) : strlen(s);
    if (alen >= sizeof addr)
        return 1;
    memcpy(addr, s, alen);
    addr[alen] = '\0';
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, addr, &a4) == 1) {
        out->family = AF_INET;
        memcpy(out->net, &a4, 4);
        out->bits = 32;
    } else if (inet_pton(AF_INET6, addr, &a6) == 1) {
        out->family = AF_INET6;
        memcpy(out->net, &a6, 16);
        out->bits = 128;
    } else {
        return 1;
    }
    if (slash) {
        const char *b = slash + 1;
        int bits = 0;
        size_t k = 0;
        for (; isdigit((unsigned char)b[k]) && k < 3; k++)
            bits = bits * 10 + (b[k] - '0');
        if (k == 0 || b[k] != '\0' || bits > out->bits)
            return sp_err_set(err, SP_EINVAL, "%s: '%s' has a bad prefix length (0-%d)", what, s,
                              out->bits);
        uint8_t net[16] = {0};
        memcpy(net, out->net, (size_t)bits / 8);
        if (bits % 8)
            net[bits / 8] = (uint8_t)(out->net[bits / 8] & (0xff << (8 - bits % 8)));
        if (memcmp(net, out->net, out->family == AF_INET ? 4 : 16) != 0)
            return sp_err_set(err, SP_EINVAL, "%s: '%s' has bits set past its /%d prefix", what,
                              s, bits);
        out->bits = bits;
    }
    return 0;
}

bool sp_cidr_contains(const sp_cidr *c, int family, const uint8_t *a)
{
    if (c->family != family)
        return false;
    int full = c->bits / 8, rest = c->bits % 8;
    if (memcmp(a, c->net, (size_t)full) != 0)
        return false;
    return rest == 0 || (a[full] & (0xff << (8 - rest))) == c->net[full];
}

bool sp_cidr_addr(const struct sockaddr *sa, int *family, const uint8_t **a)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (sa != NULL && sa->sa_family == AF_INET) {
        *family = AF_INET;
        *a = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
        return true;
    }
    if (sa != NULL && sa->sa_family == AF_INET6) {
        const uint8_t *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        bool v4 = memcmp(b, mapped, sizeof mapped) == 0;
        *family = v4 ? AF_INET : AF_INET6;
        *a = v4 ? b + 12 : b;
        return true;
    }
    return false;
}

struct sp_cidrs {
    size_t n;
    sp_cidr c[];
};

sp_cidrs *sp_cidrs_parse(const char *list, const char *what, sp_err *err)
{
    const char *p = list ? list : "";
    size_t max = 1;
    for (const char *q = p; *q; q++)
        max += *q == ',';
    sp_cidrs *l = sp_calloc(1, sizeof *l + max * sizeof l->c[0]);
    if (l == NULL) {
        sp_err_set(err, SP_ENOMEM, "out of memory");
        return NULL;
    }
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        const char *s = p;
        while (n > 0 && (*s == ' ' || *s == '\t')) {
            s++;
            n--;
        }
        while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
            n--;
        p += (comma ? (size_t)(comma - p) + 1 : strlen(p));
        if (n == 0)
            continue;
        char entry[80];
        int rc = 1;
        if (n < sizeof entry) {
            memcpy(entry, s, n);
            entry[n] = '\0';
            rc = sp_cidr_parse(entry, what, &l->c[l->n], err);
        }
        if (rc == 1)
            sp_err_set(err, SP_EINVAL, "%s: '%.*s' is not an address or a CIDR (10.0.0.0/8, "
                       "fd00::/8)", what, (int)(n < 80 ? n : 80), s);
        if (rc != 0) {
            sp_free(l);
            return NULL;
        }
        l->n++;
    }
    return l;
}

void sp_cidrs_free(sp_cidrs *l)
{
    sp_free(l);
}

bool sp_cidrs_match(const sp_cidrs *l, const struct sockaddr *sa)
{
    int family;
    const uint8_t *a;
    if (l == NULL || !sp_cidr_addr(sa, &family, &a))
        return false;
    for (size_t i = 0; i < l->n; i++) {
        if (sp_cidr_contains(&l->c[i], family, a))
            return true;
    }
    return false;
}

size_t sp_cidrs_count(const sp_cidrs *l)
{
    return l ? l->n : 0;
}
