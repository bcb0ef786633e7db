/* outbound.h - the guard every URL a user supplies goes through (source_url today,
 * webhook callback URLs later): http and https only, also after redirects; no proxy;
 * every connection's address checked just before curl connects (each redirect hop,
 * after DNS, so a name that resolves to an internal address is refused wherever it
 * comes from); one allow-list, SPOOL_OUTBOUND_ALLOW, for sources inside a private
 * network; and one uniform error for a destination that is refused or unreachable, so
 * a job cannot tell a refused address from a closed port.
 *
 * Addresses the operator configures (Redis, the blob store, an object store) are
 * trusted and never go through this guard. */
#ifndef SPOOL_OUTBOUND_H
#define SPOOL_OUTBOUND_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "spool/err.h"

/* The uniform error text for a destination that was refused or could not be reached
 * (refused by the guard, DNS failure, connection refused, timeout before an answer,
 * TLS failure...): it names neither the address nor the cause. */
#define SP_OUTBOUND_UNREACHABLE_MSG                                                         \
    "cannot reach the URL's host: it does not resolve, does not answer, refuses the "     \
    "connection or TLS, or its address is not one this server may fetch from"

/* A parsed allow-list. Immutable once built, so threads may share it. */
typedef struct sp_outbound sp_outbound;

/* Parse an allow-list: comma-separated entries, each a CIDR ("10.0.0.0/8", "fd00::/8"),
 * a single address ("192.168.1.5", "::1"), a host name ("files.internal") or a domain
 * wildcard ("*.corp.example": its subdomains, not the domain itself). Spaces around
 * entries are ignored; "" or NULL allows nothing beyond public addresses. A host name
 * in the list is allowed whatever it resolves to; a CIDR allows addresses. Returns a
 * guard the caller frees with sp_outbound_free, or NULL with err naming the first bad
 * entry (SP_EINVAL) or SP_ENOMEM. */
sp_outbound *sp_outbound_new(const char *allow, sp_err *err);

/* Free a guard. Accepts NULL. */
void sp_outbound_free(sp_outbound *g);

/* Why sa (AF_INET or AF_INET6) is not a public unicast address, as a short phrase
 * ("loopback", "private (RFC 1918)", ...), or NULL when it is public. An IPv4-mapped
 * IPv6 address is judged as the IPv4 address it holds; NAT64 (64:ff9b::/96) and 6to4
 * (2002::/16) addresses by the IPv4 address they embed. Ignores any allow-list. */
const char *sp_outbound_addr_class(const struct sockaddr *sa);

/* True when g lets a connection go to sa for a URL whose host is host (NULL if not
 * known): host is in g's names, sa is in g's CIDRs, or sa is public. On false, why
 * (n bytes, may be NULL) says what was refused, for the operator's log. g may be NULL
 * (nothing allowed beyond public addresses). */
bool sp_outbound_allows(const sp_outbound *g, const char *host, const struct sockaddr *sa,
                        char *why, size_t n);

/* Judge url as far as can be done without DNS, the way the API does at submit: it must
 * be an http or https URL curl can parse; a host written as an address in any form
 * curl or inet_aton accept ("2130706433", "0x7f.1", "127.1", "[::ffff:127.0.0.1]")
 * must be allowed by sp_outbound_allows; "localhost", "*.localhost" and the Debian
 * names of ::1 are refused unless the allow-list names them. Returns 0, SP_EINVAL
 * (not such a URL) or SP_EUNREACHABLE (refused), with err saying why in words meant
 * for the person who gave the URL. g may be NULL. */
int sp_outbound_check_url(const sp_outbound *g, const char *url, sp_err *err);

/* One transfer's guard state: what the socket callback saw. Lives as long as the
 * transfer (the caller's stack is fine); read it after curl_easy_perform. */
typedef struct sp_outbound_xfer {
    const sp_outbound *guard;
    CURL *curl;
    unsigned sockets; /* connections curl asked to open, refused ones included */
    unsigned refused; /* of those, refused by the guard */
    char why[200];    /* the last refusal, for the operator's log ("" if none) */
} sp_outbound_xfer;

/* Configure the easy handle c for a user-supplied URL, with x (filled here) as the
 * transfer's state: http and https only, also for redirects; proxies off, whatever
 * http_proxy and friends in the environment say (a proxy would resolve names out of
 * the guard's sight); no .netrc; and a socket callback that refuses every connection
 * sp_outbound_allows refuses, so curl fails that address with CURLE_COULDNT_CONNECT
 * (after trying the name's other addresses). The caller sets the URL, redirects and
 * timeouts, and must not replace CURLOPT_OPENSOCKETFUNCTION or CURLOPT_PROXY. Returns 0
 * or SP_EINVAL (this libcurl lacks an option the guard needs). */
int sp_outbound_curl_setup(sp_outbound_xfer *x, const sp_outbound *g, CURL *c, sp_err *err);

/* Fill err with SP_EUNREACHABLE and SP_OUTBOUND_UNREACHABLE_MSG; returns
 * SP_EUNREACHABLE. The error is transient (sp_code_transient): whether the guard
 * refused or the network failed, the job is retried the same way, so neither its
 * attempts nor its timing tell one from the other. */
int sp_outbound_unreachable(sp_err *err);

#endif
