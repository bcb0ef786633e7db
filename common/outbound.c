/* outbound.c - the guard for URLs users supply: address classification, the
 * SPOOL_OUTBOUND_ALLOW list, the submit-time URL check and the curl socket callback
 * (see outbound.h). */
#include "spool/outbound.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "spool/alloc.h"
#include "spool/cidr.h"

#define SP__ALLOW_MAX 256 /* entries in one allow-list */
#define SP__NAME_MAX 253  /* a DNS name, without its trailing dot */

typedef struct sp__allow {
    sp_cidr cidr;    /* when name is NULL */
    bool wildcard;   /* a name "*.suffix": name holds ".suffix" */
    char *name;      /* lowercase, without a trailing dot */
} sp__allow;

struct sp_outbound {
    size_t n;
    sp__allow e[];
};

/* ---- classification ------------------------------------------------------------------
 * The reference is IANA's special-purpose address registries (RFC 6890 and the RFCs
 * each entry names), https://www.iana.org/assignments/iana-ipv4-special-registry and
 * https://www.iana.org/assignments/iana-ipv6-special-registry, plus the multicast
 * blocks and the IPv6 address space registry (only 2000::/3 is global unicast).
 * Blocks the registry marks globally reachable but that hold protocol service
 * anycast addresses (192.0.0.9/32, 192.0.0.10/32 in 192.0.0.0/24; the 2001::/23
 * sub-blocks) are refused with their parent block: nothing a user would fetch lives
 * there. Entries are refused; an address in none of them is public unicast. */

typedef struct sp__block {
    sp_cidr range;
    const char *what; /* completes "<address> is ..." */
} sp__block;

static const sp__block sp__v4_blocks[] = {
    {{AF_INET, {0, 0, 0, 0}, 8}, "a 'this network' address (0.0.0.0/8)"},
    {{AF_INET, {10, 0, 0, 0}, 8}, "a private address (10.0.0.0/8)"},
    {{AF_INET, {100, 64, 0, 0}, 10}, "a shared carrier-grade NAT address (100.64.0.0/10)"},
    {{AF_INET, {127, 0, 0, 0}, 8}, "a loopback address (127.0.0.0/8)"},
    {{AF_INET, {169, 254, 0, 0}, 16}, "a link-local or cloud metadata address (169.254.0.0/16)"},
    {{AF_INET, {172, 16, 0, 0}, 12}, "a private address (172.16.0.0/12)"},
    {{AF_INET, {192, 0, 0, 0}, 24}, "an IETF protocol address (192.0.0.0/24)"},
    {{AF_INET, {192, 0, 2, 0}, 24}, "a documentation address (192.0.2.0/24)"},
    {{AF_INET, {192, 88, 99, 0}, 24}, "a deprecated 6to4 relay address (192.88.99.0/24)"},
    {{AF_INET, {192, 168, 0, 0}, 16}, "a private address (192.168.0.0/16)"},
    {{AF_INET, {198, 18, 0, 0}, 15}, "a benchmarking address (198.18.0.0/15)"},
    {{AF_INET, {198, 51, 100, 0}, 24}, "a documentation address (198.51.100.0/24)"},
    {{AF_INET, {203, 0, 113, 0}, 24}, "a documentation address (203.0.113.0/24)"},
    {{AF_INET, {224, 0, 0, 0}, 4}, "a multicast address (224.0.0.0/4)"},
    {{AF_INET, {255, 255, 255, 255}, 32}, "the broadcast address"},
    {{AF_INET, {240, 0, 0, 0}, 4}, "a reserved address (240.0.0.0/4)"},
};

static const sp__block sp__v6_blocks[] = {
    {{AF_INET6, {0}, 128}, "the unspecified address (::)"},
    {{AF_INET6, {[15] = 1}, 128}, "a loopback address (::1)"},
    {{AF_INET6, {0, 0x64, 0xff, 0x9b, 0, 1}, 48}, "a local-use NAT64 address (64:ff9b:1::/48)"},
    {{AF_INET6, {1, 0, 0, 0, 0, 0, 0, 0}, 64}, "a discard-only address (100::/64)"},
    {{AF_INET6, {0x20, 0x01, 0x0d, 0xb8}, 32}, "a documentation address (2001:db8::/32)"},
    {{AF_INET6, {0x20, 0x01, 0, 0}, 23},
     "an IETF protocol address (2001::/23: Teredo, benchmarking, ORCHID...)"},
    {{AF_INET6, {0x3f, 0xff}, 20}, "a documentation address (3fff::/20)"},
    {{AF_INET6, {0xfc}, 7}, "a unique local address (fc00::/7)"},
    {{AF_INET6, {0xfe, 0x80}, 10}, "a link-local address (fe80::/10)"},
    {{AF_INET6, {0xfe, 0xc0}, 10}, "a deprecated site-local address (fec0::/10)"},
    {{AF_INET6, {0xff}, 8}, "a multicast address (ff00::/8)"},
};

static const char *sp__v4_class(const uint8_t a[4])
{
    for (size_t i = 0; i < sizeof sp__v4_blocks / sizeof sp__v4_blocks[0]; i++) {
        if (sp_cidr_contains(&sp__v4_blocks[i].range, AF_INET, a))
            return sp__v4_blocks[i].what;
    }
    return NULL;
}

static const uint8_t sp__mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
static const uint8_t sp__nat64[12] = {0, 0x64, 0xff, 0x9b};

/* The IPv4 address an IPv6 address stands for or embeds (mapped, NAT64, 6to4), or
 * NULL. *mapped is set when a is just another spelling of that IPv4 address. */
static const uint8_t *sp__embedded_v4(const uint8_t a[16], bool *mapped)
{
    *mapped = false;
    if (memcmp(a, sp__mapped, 12) == 0) {
        *mapped = true;
        return a + 12;
    }
    if (memcmp(a, sp__nat64, 12) == 0)
        return a + 12;
    if (a[0] == 0x20 && a[1] == 0x02)
        return a + 2;
    return NULL;
}

static const char *sp__v6_class(const uint8_t a[16])
{
    bool mapped;
    const uint8_t *v4 = sp__embedded_v4(a, &mapped);
    if (v4 != NULL) {
        const char *c = sp__v4_class(v4);
        if (mapped || c == NULL)
            return c;
        return a[0] == 0x20 ? "a 6to4 address (2002::/16) of a non-public IPv4 address"
                            : "a NAT64 address (64:ff9b::/96) of a non-public IPv4 address";
    }
    for (size_t i = 0; i < sizeof sp__v6_blocks / sizeof sp__v6_blocks[0]; i++) {
        if (sp_cidr_contains(&sp__v6_blocks[i].range, AF_INET6, a))
            return sp__v6_blocks[i].what;
    }
    if ((a[0] & 0xe0) != 0x20)
        return "not a global unicast address (outside 2000::/3)";
    return NULL;
}

const char *sp_outbound_addr_class(const struct sockaddr *sa)
{
    if (sa == NULL)
        return "not an address";
    if (sa->sa_family == AF_INET)
        return sp__v4_class((const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr);
    if (sa->sa_family == AF_INET6)
        return sp__v6_class(((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr);
    return "not an IPv4 or IPv6 address";
}

/* ---- the allow-list ------------------------------------------------------------------ */

static bool sp__label_char(char c)
{
    return isalnum((unsigned char)c) || c == '-' || c == '_';
}

/* True for a host name: dot-separated labels of letters, digits, '-' and '_', each 1
 * to 63 long and neither starting nor ending with '-', at most 253 in all, whose last
 * label is not all digits (that would be an address in a form inet_aton reads, or no
 * name at all). */
static bool sp__name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > SP__NAME_MAX)
        return false;
    size_t label = 0;
    bool digits = true;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '.') {
            if (label == 0 || label > 63 || s[i - 1] == '-')
                return false;
            if (i < n)
                digits = true;
            label = 0;
            continue;
        }
        if (!sp__label_char(s[i]) || (label == 0 && s[i] == '-'))
            return false;
        if (!isdigit((unsigned char)s[i]))
            digits = false;
        label++;
    }
    return !digits;
}

/* Copy s into out (SP__NAME_MAX + 2 bytes) in lowercase, without one trailing dot.
 * False when it does not fit. */
static bool sp__name_fold(const char *s, char *out)
{
    size_t n = strlen(s);
    if (n > 0 && s[n - 1] == '.')
        n--;
    if (n > SP__NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)tolower((unsigned char)s[i]);
    out[n] = '\0';
    return true;
}

static int sp__parse_entry(sp__allow *e, const char *s, sp_err *err)
{
    memset(e, 0, sizeof *e);
    int rc = sp_cidr_parse(s, "SPOOL_OUTBOUND_ALLOW", &e->cidr, err);
    if (rc <= 0)
        return rc;
    const char *name = s;
    if (strncmp(s, "*.", 2) == 0) {
        e->wildcard = true;
        name = s + 2;
    }
    char folded[SP__NAME_MAX + 2];
    struct in_addr a4;
    if (strchr(s, '/') || !sp__name_fold(name, folded) || !sp__name_valid(folded) ||
        inet_aton(folded, &a4) != 0)
        return sp_err_set(err, SP_EINVAL,
                          "SPOOL_OUTBOUND_ALLOW: '%s' is not a CIDR (10.0.0.0/8, fd00::/8), "
                          "an address in standard form, a host name or *.domain",
                          s);
    size_t n = strlen(folded);
    e->name = sp_malloc(n + 2);
    if (e->name == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    snprintf(e->name, n + 2, "%s%s", e->wildcard ? "." : "", folded);
    return 0;
}

sp_outbound *sp_outbound_new(const char *allow, sp_err *err)
{
    sp_outbound *g = sp_calloc(1, sizeof *g + SP__ALLOW_MAX * sizeof(sp__allow));
    if (g == NULL) {
        sp_err_set(err, SP_ENOMEM, "out of memory");
        return NULL;
    }
    const char *p = allow ? allow : "";
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        const char *next = p + len + (comma ? 1 : 0);
        while (len > 0 && isspace((unsigned char)*p)) {
            p++;
            len--;
        }
        while (len > 0 && isspace((unsigned char)p[len - 1]))
            len--;
        char item[300];
        if (len >= sizeof item) {
            sp_err_set(err, SP_EINVAL, "SPOOL_OUTBOUND_ALLOW: an entry is too long: '%.40s...'",
                       p);
            goto fail;
        }
        memcpy(item, p, len);
        item[len] = '\0';
        p = next;
        if (len == 0)
            continue;
        if (g->n == SP__ALLOW_MAX) {
            sp_err_set(err, SP_EINVAL, "SPOOL_OUTBOUND_ALLOW: more than %d entries",
                       SP__ALLOW_MAX);
            goto fail;
        }
        if (sp__parse_entry(&g->e[g->n], item, err) < 0)
            goto fail;
        g->n++;
    }
    return g;
fail:
    sp_outbound_free(g);
    return NULL;
}

void sp_outbound_free(sp_outbound *g)
{
    if (g == NULL)
        return;
    for (size_t i = 0; i < g->n; i++)
        sp_free(g->e[i].name);
    sp_free(g);
}

static bool sp__name_allowed(const sp_outbound *g, const char *host)
{
    if (g == NULL || host == NULL)
        return false;
    char h[SP__NAME_MAX + 2];
    if (!sp__name_fold(host, h))
        return false;
    size_t hn = strlen(h);
    for (size_t i = 0; i < g->n; i++) {
        const sp__allow *e = &g->e[i];
        if (e->name == NULL)
            continue;
        size_t en = strlen(e->name);
        if (!e->wildcard && strcmp(h, e->name) == 0)
            return true;
        if (e->wildcard && hn > en && strcmp(h + hn - en, e->name) == 0)
            return true;
    }
    return false;
}

static bool sp__cidr_allowed(const sp_outbound *g, int family, const uint8_t *a)
{
    for (size_t i = 0; g && i < g->n; i++) {
        const sp__allow *e = &g->e[i];
        if (e->name == NULL && sp_cidr_contains(&e->cidr, family, a))
            return true;
    }
    return false;
}

bool sp_outbound_allows(const sp_outbound *g, const char *host, const struct sockaddr *sa,
                        char *why, size_t n)
{
    if (sp__name_allowed(g, host))
        return true;
    const char *cls = NULL;
    char text[INET6_ADDRSTRLEN] = "?";
    if (sa != NULL && sa->sa_family == AF_INET) {
        const uint8_t *a = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
        if (sp__cidr_allowed(g, AF_INET, a))
            return true;
        cls = sp__v4_class(a);
        inet_ntop(AF_INET, a, text, sizeof text);
    } else if (sa != NULL && sa->sa_family == AF_INET6) {
        const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        bool mapped;
        const uint8_t *v4 = sp__embedded_v4(a, &mapped);
        /* A mapped address is its IPv4 address; NAT64 and 6to4 ones reach the IPv4
         * address they embed, so an IPv4 CIDR that allows it allows them too. */
        if (sp__cidr_allowed(g, AF_INET6, a) ||
            (v4 && sp__cidr_allowed(g, AF_INET, v4)))
            return true;
        cls = sp__v6_class(a);
        inet_ntop(AF_INET6, a, text, sizeof text);
    } else {
        cls = "not an IPv4 or IPv6 address";
    }
    if (cls == NULL)
        return true;
    if (why && n)
        snprintf(why, n, "%s%s%s is %s", host ? host : "", host ? " -> " : "", text, cls);
    return false;
}

/* ---- the URL check at submit --------------------------------------------------------- */

/* Names that mean this machine without asking DNS: RFC 6761's localhost and its
 * subdomains, and the names Debian's /etc/hosts gives ::1. */
static bool sp__local_name(const char *h)
{
    static const char *const names[] = {"localhost", "localhost.localdomain", "ip6-localhost",
                                        "ip6-loopback", NULL};
    for (size_t i = 0; names[i]; i++) {
        if (strcmp(h, names[i]) == 0)
            return true;
    }
    size_t n = strlen(h);
    return n > 10 && strcmp(h + n - 10, ".localhost") == 0;
}

int sp_outbound_check_url(const sp_outbound *g, const char *url, sp_err *err)
{
    CURLU *u = curl_url();
    if (u == NULL)
        return sp_err_set(err, SP_ENOMEM, "out of memory");
    char *scheme = NULL, *host = NULL;
    int rc = 0;
    if (url == NULL || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, CURLU_URLDECODE) != CURLUE_OK) {
        rc = sp_err_set(err, SP_EINVAL, "not a URL with a host that can be fetched");
        goto out;
    }
    if (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0) {
        rc = sp_err_set(err, SP_EINVAL, "only http and https URLs can be fetched");
        goto out;
    }
    /* curl writes an IPv4 host in every numeric form as a dotted quad already; inet_aton
     * also reads what curl leaves alone, such as a trailing dot, as the resolver would. */
    char h[SP__NAME_MAX + 2];
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    size_t hn = strlen(host);
    if (hn > 2 && host[0] == '[' && host[hn - 1] == ']' && hn - 2 < sizeof h) {
        memcpy(h, host + 1, hn - 2);
        h[hn - 2] = '\0';
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        if (inet_pton(AF_INET6, h, &s6->sin6_addr) != 1) {
            rc = sp_err_set(err, SP_EINVAL, "the host %.80s is not a valid IPv6 address", host);
            goto out;
        }
    } else if (!sp__name_fold(host, h)) {
        rc = sp_err_set(err, SP_EINVAL, "the host name is too long");
        goto out;
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        if (inet_aton(h, &s4->sin_addr) != 0) {
            s4->sin_family = AF_INET;
        } else if (sp__local_name(h) && !sp__name_allowed(g, h)) {
            rc = sp_err_set(err, SP_EUNREACHABLE,
                            "the host %.80s is this machine; only URLs at public addresses are "
                            "accepted",
                            host);
            goto out;
        }
    }
    char why[200];
    if (ss.ss_family != AF_UNSPEC &&
        !sp_outbound_allows(g, NULL, (struct sockaddr *)&ss, why, sizeof why))
        rc = sp_err_set(err, SP_EUNREACHABLE,
                        "the host %s; only URLs at public addresses are accepted", why);
out:
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return rc;
}

/* ---- the curl socket callback -------------------------------------------------------- */

/* The host of the URL curl is connecting for: the effective URL is the current
 * redirect hop's while curl opens its sockets. out has SP__NAME_MAX + 2 bytes; "" when
 * it cannot be told. */
static void sp__hop_host(CURL *c, char *out)
{
    out[0] = '\0';
    char *url = NULL, *host = NULL;
    if (curl_easy_getinfo(c, CURLINFO_EFFECTIVE_URL, &url) != CURLE_OK || url == NULL)
        return;
    CURLU *u = curl_url();
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, CURLU_URLDECODE) == CURLUE_OK &&
        strlen(host) <= SP__NAME_MAX)
        snprintf(out, SP__NAME_MAX + 2, "%s", host);
    curl_free(host);
    curl_url_cleanup(u);
}

static curl_socket_t sp__open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
    sp_outbound_xfer *x = ud;
    x->sockets++;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    bool ok = purpose == CURLSOCKTYPE_IPCXN && a->addrlen <= sizeof ss &&
              (a->family == AF_INET || a->family == AF_INET6);
    if (ok) {
        memcpy(&ss, &a->addr, a->addrlen);
        char host[SP__NAME_MAX + 2];
        sp__hop_host(x->curl, host);
        ok = sp_outbound_allows(x->guard, host[0] ? host : NULL, (struct sockaddr *)&ss,
                                x->why, sizeof x->why);
    } else {
        snprintf(x->why, sizeof x->why, "a socket of family %d for purpose %d", a->family,
                 (int)purpose);
    }
    if (!ok) {
        x->refused++;
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

int sp_outbound_curl_setup(sp_outbound_xfer *x, const sp_outbound *g, CURL *c, sp_err *err)
{
    memset(x, 0, sizeof *x);
    x->guard = g;
    x->curl = c;
    CURLcode cc = curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(c, CURLOPT_PROXY, ""); /* "" : no proxy, even from env */
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(c, CURLOPT_NETRC, (long)CURL_NETRC_IGNORED);
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, sp__open_socket);
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, x);
    if (cc != CURLE_OK)
        return sp_err_set(err, SP_EINVAL, "libcurl refused an outbound guard option: %s",
                          curl_easy_strerror(cc));
    return 0;
}

int sp_outbound_unreachable(sp_err *err)
{
    return sp_err_set(err, SP_EUNREACHABLE, "%s", SP_OUTBOUND_UNREACHABLE_MSG);
}
