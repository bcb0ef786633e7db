/* conns.c - per-address connection limit and header deadlines (see conns.h). */
#include "conns.h"

#include <pthread.h>
#include <string.h>
#include <sys/socket.h>

#include "spool/alloc.h"
#include "spool/log.h"
#include "spool/ticker.h"
#include "spool/util.h"

#define API_CONNS_BUCKETS 1024 /* per-address counts: a power of two */
#define API_CONNS_TICK_MS 200  /* how often deadlines are checked */

/* Connections from one client address (an IPv4 address, or an IPv6 /64). */
typedef struct api__addr {
    struct api__addr *next;
    uint8_t key[9]; /* family tag, then 4 or 8 bytes */
    uint32_t count;
} api__addr;

/* One connection, from libmicrohttpd's STARTED notice to its CLOSED one. */
typedef struct api__conn {
    struct api__conn *prev, *next;
    api_conns *g;
    int fd;
    api__addr *addr;  /* NULL: not counted (exempt, or an address of another kind) */
    int64_t deadline; /* ms (monotonic) by which the headers must be in; 0: none */
    bool cut;         /* its socket was shut: closing */
} api__conn;

struct api_conns {
    api_conns_opts o;
    pthread_mutex_t mu;
    sp_ticker *ticker;  /* checks the header deadlines */
    api__conn *conns; /* every open connection */
    api__addr *buckets[API_CONNS_BUCKETS];
    uint64_t over_limit, header_late;
};

static int64_t api__now(void)
{
    return sp_mono_ms();
}

/* The key of the address in sa; false for an address of another family. */
static bool api__key(const struct sockaddr *sa, uint8_t key[9])
{
    int family;
    const uint8_t *a;
    if (!sp_cidr_addr(sa, &family, &a))
        return false;
    memset(key, 0, 9);
    key[0] = family == AF_INET ? 4 : 6;
    memcpy(key + 1, a, family == AF_INET ? 4 : 8); /* IPv6: the /64 */
    return true;
}

static size_t api__bucket(const uint8_t key[9])
{
    uint32_t h = 2166136261u; /* FNV-1a: addresses are not chosen to collide cheaply */
    for (int i = 0; i < 9; i++)
        h = (h ^ key[i]) * 16777619u;
    return h & (API_CONNS_BUCKETS - 1);
}

/* Count one more connection from key; NULL when out of memory. */
static api__addr *api__addr_get(api_conns *g, const uint8_t key[9])
{
    api__addr **b = &g->buckets[api__bucket(key)];
    for (api__addr *a = *b; a; a = a->next) {
        if (memcmp(a->key, key, 9) == 0) {
            a->count++;
            return a;
        }
    }
    api__addr *a = sp_calloc(1, sizeof *a);
    if (a == NULL)
        return NULL;
    memcpy(a->key, key, 9);
    a->count = 1;
    a->next = *b;
    *b = a;
    return a;
}

static void api__addr_put(api_conns *g, api__addr *a)
{
    if (--a->count > 0)
        return;
    api__addr **p = &g->buckets[api__bucket(a->key)];
    while (*p != a)
        p = &(*p)->next;
    *p = a->next;
    sp_free(a);
}

/* Shut the connection's socket: libmicrohttpd sees the end of the stream and closes it
 * (the socket stays open until then, so the descriptor cannot be another's). */
static void api__cut(api__conn *c)
{
    if (!c->cut)
        shutdown(c->fd, SHUT_RDWR);
    c->cut = true;
    c->deadline = 0;
}

/* Every API_CONNS_TICK_MS: cut the connections whose headers are late. */
static void api__tick(void *arg)
{
    api_conns *g = arg;
    pthread_mutex_lock(&g->mu);
    int64_t now = api__now();
    for (api__conn *c = g->conns; c; c = c->next) {
        if (c->deadline > 0 && now >= c->deadline) {
            api__cut(c);
            g->header_late++;
        }
    }
    pthread_mutex_unlock(&g->mu);
}

api_conns *api_conns_start(const api_conns_opts *o, sp_err *err)
{
    api_conns *g = sp_calloc(1, sizeof *g);
    if (g == NULL) {
        sp_err_set(err, SP_ENOMEM, "out of memory");
        return NULL;
    }
    g->o = *o;
    pthread_mutex_init(&g->mu, NULL);
    if (o->header_ms > 0 &&
        (g->ticker = sp_ticker_start(API_CONNS_TICK_MS, api__tick, g, err)) == NULL) {
        api_conns_stop(g);
        return NULL;
    }
    return g;
}

void api_conns_stop(api_conns *g)
{
    if (g == NULL)
        return;
    sp_ticker_stop(g->ticker);
    for (size_t i = 0; i < API_CONNS_BUCKETS; i++) {
        while (g->buckets[i]) {
            api__addr *a = g->buckets[i];
            g->buckets[i] = a->next;
            sp_free(a);
        }
    }
    while (g->conns) { /* none once libmicrohttpd stopped; freed in any case */
        api__conn *c = g->conns;
        g->conns = c->next;
        sp_free(c);
    }
    pthread_mutex_destroy(&g->mu);
    sp_free(g);
}

static void api__started(api_conns *g, struct MHD_Connection *mc, void **socket_context)
{
    const union MHD_ConnectionInfo *fd = MHD_get_connection_info(mc,
                                                                 MHD_CONNECTION_INFO_CONNECTION_FD);
    const union MHD_ConnectionInfo *ad = MHD_get_connection_info(mc,
                                                                 MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    api__conn *c = sp_calloc(1, sizeof *c);
    if (c == NULL) {
        if (fd)
            shutdown(fd->connect_fd, SHUT_RDWR); /* no memory to watch it: not served */
        return;
    }
    c->g = g;
    c->fd = fd ? fd->connect_fd : -1;
    const struct sockaddr *sa = ad ? ad->client_addr : NULL;
    uint8_t key[9];
    pthread_mutex_lock(&g->mu);
    c->next = g->conns;
    if (g->conns)
        g->conns->prev = c;
    g->conns = c;
    *socket_context = c;
    if (g->o.header_ms > 0)
        c->deadline = api__now() + g->o.header_ms;
    if (g->o.per_ip > 0 && sa && !sp_cidrs_match(g->o.exempt, sa) && api__key(sa, key)) {
        c->addr = api__addr_get(g, key);
        if (c->addr == NULL || c->addr->count > (uint64_t)g->o.per_ip) {
            api__cut(c);
            g->over_limit++;
        }
    }
    pthread_mutex_unlock(&g->mu);
}

static void api__closed(api_conns *g, api__conn *c)
{
    pthread_mutex_lock(&g->mu);
    if (c->prev)
        c->prev->next = c->next;
    else
        g->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->addr)
        api__addr_put(g, c->addr);
    pthread_mutex_unlock(&g->mu);
    sp_free(c);
}

void api_conns_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                      enum MHD_ConnectionNotificationCode code)
{
    api_conns *g = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED)
        api__started(g, c, socket_context);
    else if (code == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context)
        api__closed(g, *socket_context);
}

/* The connection's record, or NULL. */
static api__conn *api__of(struct MHD_Connection *mc)
{
    const union MHD_ConnectionInfo *i = MHD_get_connection_info(mc,
                                                                MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return i ? i->socket_context : NULL;
}

/* Set the connection's deadline to `at` (0: none), or only move it earlier. */
static void api__deadline(struct MHD_Connection *mc, int64_t at, bool earlier_only)
{
    api__conn *c = api__of(mc);
    if (c == NULL || c->g->o.header_ms <= 0)
        return;
    pthread_mutex_lock(&c->g->mu);
    if (!c->cut && (!earlier_only || c->deadline == 0 || at < c->deadline))
        c->deadline = at;
    pthread_mutex_unlock(&c->g->mu);
}

void api_conns_request_line(struct MHD_Connection *mc)
{
    api__conn *c = api__of(mc);
    if (c)
        api__deadline(mc, api__now() + c->g->o.header_ms, true);
}

void api_conns_headers_done(struct MHD_Connection *mc)
{
    api__deadline(mc, 0, false);
}

void api_conns_request_done(struct MHD_Connection *mc)
{
    api__conn *c = api__of(mc);
    if (c)
        api__deadline(mc, api__now() + c->g->o.idle_ms + c->g->o.header_ms, false);
}

void api_conns_counts(const api_conns *g, uint64_t *over_limit, uint64_t *header_late)
{
    api_conns *m = (api_conns *)g;
    pthread_mutex_lock(&m->mu);
    *over_limit = g->over_limit;
    *header_late = g->header_late;
    pthread_mutex_unlock(&m->mu);
}

bool api_rate_slow(api_rate *r, uint64_t n, int64_t now_ms, int64_t min_rate, int64_t window_ms)
{
    if (min_rate <= 0)
        return false;
    if (r->start_ms == 0) {
        r->start_ms = now_ms;
        r->bytes = 0;
    }
    r->bytes += n;
    if (now_ms - r->start_ms < window_ms)
        return false;
    /* The window closed: judge its average, and start the next. */
    uint64_t want = (uint64_t)min_rate * (uint64_t)(now_ms - r->start_ms) / 1000;
    bool slow = r->bytes < want;
    r->start_ms = now_ms;
    r->bytes = 0;
    return slow;
}
