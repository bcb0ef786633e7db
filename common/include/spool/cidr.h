/* cidr.h - address ranges (CIDRs, "10.0.0.0/8", "fd00::/8", or one address) and lists
 * of them, for settings that name networks: the outbound allow-list, the API's
 * trusted proxies. */
#ifndef SPOOL_CIDR_H
#define SPOOL_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "spool/err.h"

typedef struct sp_cidr {
    int family;      /* AF_INET or AF_INET6 */
    uint8_t net[16]; /* the network (4 bytes used for AF_INET), no bits past the prefix */
    int bits;        /* the prefix length */
} sp_cidr;

/* Parse one range. Returns 0; 1 when s is not an address at all (the caller may take
 * it for a host name); or SP_EINVAL with err naming setting `what` and s (a bad prefix
 * length, or bits set past the prefix: "10.0.0.1/8" is a mistake for 10.0.0.0/8). */
int sp_cidr_parse(const char *s, const char *what, sp_cidr *out, sp_err *err);

/* True when address a (4 or 16 bytes, of family) is in c. */
bool sp_cidr_contains(const sp_cidr *c, int family, const uint8_t *a);

/* The address in sa as family and bytes: an IPv4-mapped IPv6 address (::ffff:a.b.c.d)
 * comes out as the IPv4 address it holds. False for other families. */
bool sp_cidr_addr(const struct sockaddr *sa, int *family, const uint8_t **a);

typedef struct sp_cidrs sp_cidrs;

/* Parse a comma-separated list of ranges (spaces around entries ignored; "" or NULL
 * is an empty list). NULL with err (SP_EINVAL naming setting `what` and the bad entry,
 * or SP_ENOMEM). Free with sp_cidrs_free. */
sp_cidrs *sp_cidrs_parse(const char *list, const char *what, sp_err *err);
void sp_cidrs_free(sp_cidrs *l); /* accepts NULL */

/* True when the address in sa is in one of l's ranges (l may be NULL: false). */
bool sp_cidrs_match(const sp_cidrs *l, const struct sockaddr *sa);

/* The number of ranges. */
size_t sp_cidrs_count(const sp_cidrs *l);

#endif
