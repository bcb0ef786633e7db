/* fuzz_outbound.c - the guard for URLs users supply (outbound.h) and the address ranges
 * it is built on (cidr.h). The first byte picks the part:
 *   0  SPOOL_OUTBOUND_ALLOW and CIDR lists as an operator writes them: parsed, or
 *      refused with a message;
 *   1  a source_url at submit (sp_outbound_check_url): when it is accepted and its
 *      host is an address in any form the system resolver reads without DNS
 *      (getaddrinfo AI_NUMERICHOST, which is what curl ends up asking), that address
 *      must be public, and the host must not be a name for this machine;
 *   2  an address (family byte, 16 bytes) as the socket callback sees it: with no
 *      allow-list it is allowed exactly when it is public, an allow-list only adds to
 *      that, and ::ffff:a.b.c.d is judged as a.b.c.d. */
#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "fuzz_input.h"
#include "spool/cidr.h"
#include "spool/outbound.h"

static sp_outbound *guard;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    sp_err err;
    guard = sp_outbound_new("10.1.0.0/16, fd00::/8,192.168.7.7,files.internal,*.corp.example",
                            &err);
    return guard ? 0 : -1;
}

static void lists(const char *s)
{
    sp_err err = {0};
    sp_outbound *g = sp_outbound_new(s, &err);
    if (g == NULL && (err.code != SP_EINVAL || err.msg[0] == '\0'))
        abort();
    sp_outbound_free(g);
    memset(&err, 0, sizeof err);
    sp_cidrs *l = sp_cidrs_parse(s, "FUZZ", &err);
    if (l == NULL && (err.code != SP_EINVAL || err.msg[0] == '\0'))
        abort();
    size_t commas = 0;
    for (const char *p = s; *p; p++)
        commas += *p == ',';
    if (l && sp_cidrs_count(l) > commas + 1)
        abort();
    sp_cidrs_free(l);
}

/* True for names that mean this machine (what the guard refuses without DNS). */
static bool local_name(const char *host)
{
    char h[300];
    size_t n = strlen(host);
    if (n >= sizeof h)
        return false;
    for (size_t i = 0; i <= n; i++)
        h[i] = (char)tolower((unsigned char)host[i]);
    if (n > 0 && h[n - 1] == '.')
        h[--n] = '\0';
    return !strcmp(h, "localhost") || (n > 10 && !strcmp(h + n - 10, ".localhost"));
}

static void url(const char *s)
{
    sp_err err = {0};
    int rc = sp_outbound_check_url(NULL, s, &err);
    if (rc != 0) {
        if ((rc != SP_EINVAL && rc != SP_EUNREACHABLE) || err.msg[0] == '\0')
            abort();
        return;
    }
    /* accepted: look at the host the way curl will */
    CURLU *u = curl_url();
    char *host = NULL;
    if (u == NULL)
        abort();
    if (curl_url_set(u, CURLUPART_URL, s, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, CURLU_URLDECODE) != CURLUE_OK)
        abort(); /* check_url parsed it */
    if (local_name(host))
        abort();
    char h[300];
    size_t n = strlen(host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        memcpy(h, host + 1, n - 2);
        h[n - 2] = '\0';
    } else if (n < sizeof h) {
        memcpy(h, host, n + 1);
    } else {
        h[0] = '\0';
    }
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_flags = AI_NUMERICHOST;
    hints.ai_socktype = SOCK_STREAM;
    if (h[0] && getaddrinfo(h, NULL, &hints, &res) == 0) {
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
            if (sp_outbound_addr_class(ai->ai_addr) != NULL)
                abort(); /* an internal address got past the check at submit */
        freeaddrinfo(res);
    }
    curl_free(host);
    curl_url_cleanup(u);
}

static void address(const uint8_t *d, size_t n)
{
    if (n < 17)
        return;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (d[0] & 1) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        memcpy(&s6->sin6_addr, d + 1, 16);
        if (d[0] & 2) { /* an IPv4-mapped address */
            memset(&s6->sin6_addr, 0, 10);
            s6->sin6_addr.s6_addr[10] = s6->sin6_addr.s6_addr[11] = 0xff;
            struct sockaddr_in s4;
            memset(&s4, 0, sizeof s4);
            s4.sin_family = AF_INET;
            memcpy(&s4.sin_addr, s6->sin6_addr.s6_addr + 12, 4);
            if ((sp_outbound_addr_class((struct sockaddr *)&s4) == NULL) !=
                    (sp_outbound_addr_class((struct sockaddr *)&ss) == NULL) ||
                sp_outbound_allows(guard, NULL, (struct sockaddr *)&s4, NULL, 0) !=
                    sp_outbound_allows(guard, NULL, (struct sockaddr *)&ss, NULL, 0))
                abort();
        }
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        memcpy(&s4->sin_addr, d + 1, 4);
    }
    const struct sockaddr *sa = (const struct sockaddr *)&ss;
    char why[200] = "";
    bool pub = sp_outbound_addr_class(sa) == NULL;
    bool bare = sp_outbound_allows(NULL, NULL, sa, why, sizeof why);
    if (bare != pub || (!bare && why[0] == '\0'))
        abort();
    if (bare && !sp_outbound_allows(guard, "example.com", sa, NULL, 0))
        abort();
    /* a range made from the address contains it */
    char text[INET6_ADDRSTRLEN + 8];
    int bits = d[0] >> 2;
    int family = ss.ss_family;
    const void *a = family == AF_INET ? (const void *)&((struct sockaddr_in *)&ss)->sin_addr
                                      : (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr;
    if (inet_ntop(family, a, text, INET6_ADDRSTRLEN) == NULL)
        abort();
    sp_cidr c;
    sp_err err;
    if (sp_cidr_parse(text, "FUZZ", &c, &err) != 0 || !sp_cidr_contains(&c, family, a))
        abort();
    size_t len = strlen(text);
    snprintf(text + len, sizeof text - len, "/%d", bits);
    if (sp_cidr_parse(text, "FUZZ", &c, &err) == 0 && !sp_cidr_contains(&c, family, a))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4096)
        return 0;
    char *s = fuzz_text_after_selector(data, size);
    switch (data[0] % 3) {
    case 0:
        lists(s);
        break;
    case 1:
        url(s);
        break;
    default:
        address(data + 1, size - 1);
        break;
    }
    free(s);
    return 0;
}
