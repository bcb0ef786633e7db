/* test_outbound.c - the outbound guard: address classification against IANA's
 * special-purpose registries, the submit-time URL check in every numeric form, the
 * SPOOL_OUTBOUND_ALLOW list, and the curl socket callback on real loopback sockets
 * (names pinned with CURLOPT_RESOLVE stand in for DNS, rebinding included). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "spool/cidr.h"
#include "spool/outbound.h"

/* addr as a sockaddr (IPv4 or IPv6 text). */
static struct sockaddr_storage addr_of(const char *addr)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1)
        s4->sin_family = AF_INET;
    else if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1)
        s6->sin6_family = AF_INET6;
    else
        fail_msg("bad test address %s", addr);
    return ss;
}

/* Each address and whether it is public unicast. */
typedef struct {
    const char *addr;
    bool public;
} addr_case;

static void check_classes(const addr_case *cases, size_t n)
{
    int wrong = 0;
    for (size_t i = 0; i < n; i++) {
        struct sockaddr_storage ss = addr_of(cases[i].addr);
        const char *cls = sp_outbound_addr_class((struct sockaddr *)&ss);
        if ((cls == NULL) != cases[i].public) {
            print_error("%s: expected %s, got %s\n", cases[i].addr,
                        cases[i].public ? "public" : "refused", cls ? cls : "public");
            wrong++;
        }
    }
    assert_int_equal(wrong, 0);
}

static void test_ipv4_special_purpose_blocks_are_refused_and_their_edges_are_not(void **state)
{
    (void)state;
    static const addr_case cases[] = {
        {"0.0.0.0", false},          {"0.255.255.255", false},  {"1.0.0.0", true},
        {"9.255.255.255", true},     {"10.0.0.0", false},       {"10.255.255.255", false},
        {"11.0.0.0", true},          {"100.63.255.255", true},  {"100.64.0.0", false},
        {"100.127.255.255", false},  {"100.128.0.0", true},     {"126.255.255.255", true},
        {"127.0.0.1", false},        {"127.255.255.255", false}, {"128.0.0.0", true},
        {"169.253.255.255", true},   {"169.254.0.0", false},    {"169.254.169.254", false},
        {"169.254.255.255", false},  {"169.255.0.0", true},     {"172.15.255.255", true},
        {"172.16.0.0", false},       {"172.31.255.255", false}, {"172.32.0.0", true},
        {"191.255.255.255", true},   {"192.0.0.0", false},      {"192.0.0.9", false},
        {"192.0.0.255", false},      {"192.0.1.0", true},       {"192.0.2.0", false},
        {"192.0.2.255", false},      {"192.0.3.0", true},       {"192.88.99.1", false},
        {"192.88.100.0", true},      {"192.167.255.255", true}, {"192.168.0.0", false},
        {"192.168.255.255", false},  {"192.169.0.0", true},     {"198.17.255.255", true},
        {"198.18.0.0", false},       {"198.19.255.255", false}, {"198.20.0.0", true},
        {"198.51.99.255", true},     {"198.51.100.0", false},   {"198.51.100.255", false},
        {"198.51.101.0", true},      {"203.0.112.255", true},   {"203.0.113.0", false},
        {"203.0.113.255", false},    {"203.0.114.0", true},     {"223.255.255.255", true},
        {"224.0.0.0", false},        {"239.255.255.255", false}, {"240.0.0.0", false},
        {"255.255.255.254", false},  {"255.255.255.255", false}, {"8.8.8.8", true},
        {"1.1.1.1", true},           {"93.184.215.14", true},
    };
    check_classes(cases, sizeof cases / sizeof cases[0]);
    struct sockaddr_storage ss = addr_of("169.254.169.254");
    assert_non_null(strstr(sp_outbound_addr_class((struct sockaddr *)&ss), "metadata"));
    ss = addr_of("255.255.255.255");
    assert_string_equal(sp_outbound_addr_class((struct sockaddr *)&ss), "the broadcast address");
}

static void test_ipv6_special_purpose_blocks_and_embedded_ipv4_are_judged(void **state)
{
    (void)state;
    static const addr_case cases[] = {
        {"::", false},
        {"::1", false},
        {"::2", false},                     /* IPv4-compatible, outside 2000::/3 */
        {"::127.0.0.1", false},
        {"::ffff:127.0.0.1", false},        /* mapped: judged as 127.0.0.1 */
        {"::ffff:7f00:1", false},
        {"::ffff:10.1.2.3", false},
        {"::ffff:169.254.169.254", false},
        {"::ffff:8.8.8.8", true},
        {"64:ff9b::7f00:1", false},         /* NAT64 of 127.0.0.1 */
        {"64:ff9b::a9fe:a9fe", false},      /* NAT64 of 169.254.169.254 */
        {"64:ff9b::808:808", true},         /* NAT64 of 8.8.8.8 */
        {"64:ff9b:1::1", false},            /* local-use NAT64 */
        {"100::", false},                   /* discard-only */
        {"100::ffff:ffff:ffff:ffff", false},
        {"1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false},
        {"2000::", true},
        {"2001::", false},                  /* Teredo */
        {"2001:0:4136:e378:8000:63bf:3fff:fdd2", false},
        {"2001:1::1", false},
        {"2001:2::1", false},               /* benchmarking */
        {"2001:10::1", false},              /* ORCHID */
        {"2001:1ff:ffff:ffff::", false},
        {"2001:200::1", true},
        {"2001:db8::1", false},
        {"2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", false},
        {"2001:db9::1", true},
        {"2001:4860:4860::8888", true},
        {"2002:7f00:1::1", false},          /* 6to4 of 127.0.0.1 */
        {"2002:a00:1::", false},            /* 6to4 of 10.0.0.1 */
        {"2002:808:808::1", true},          /* 6to4 of 8.8.8.8 */
        {"2606:4700:4700::1111", true},
        {"3ffe::1", true},
        {"3fff::1", false},                 /* documentation (RFC 9637) */
        {"3fff:fff:ffff::", false},
        {"3fff:1000::", true},
        {"4000::1", false},                 /* outside 2000::/3 */
        {"5f00::1", false},                 /* SRv6 SIDs */
        {"fc00::1", false},
        {"fd00::1", false},
        {"fd00:ec2::254", false},           /* AWS metadata */
        {"fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false},
        {"fe80::1", false},
        {"febf:ffff::1", false},
        {"fec0::1", false},                 /* deprecated site-local */
        {"ff02::1", false},
        {"ff0e::1", false},
    };
    check_classes(cases, sizeof cases / sizeof cases[0]);
    struct sockaddr_storage ss = addr_of("::ffff:127.0.0.1");
    assert_string_equal(sp_outbound_addr_class((struct sockaddr *)&ss),
                        "a loopback address (127.0.0.0/8)");
    ss = addr_of("64:ff9b::7f00:1");
    assert_non_null(strstr(sp_outbound_addr_class((struct sockaddr *)&ss), "NAT64"));
    struct sockaddr un = {.sa_family = AF_UNIX};
    assert_non_null(sp_outbound_addr_class(&un));
    assert_non_null(sp_outbound_addr_class(NULL));
}

/* sp_outbound_check_url(g, url) must return want; err.msg must contain words. */
static void expect_url(const sp_outbound *g, const char *url, int want, const char *words)
{
    sp_err err;
    sp_err_clear(&err);
    int rc = sp_outbound_check_url(g, url, &err);
    if (rc != want)
        fail_msg("%s: expected %d, got %d (%s)", url, want, rc, err.msg);
    if (words && strstr(err.msg, words) == NULL)
        fail_msg("%s: message '%s' lacks '%s'", url, err.msg, words);
}

static void test_url_check_refuses_every_numeric_spelling_of_internal_addresses(void **state)
{
    (void)state;
    static const char *const refused[] = {
        "http://127.0.0.1/",
        "http://2130706433/",           /* decimal */
        "http://0x7f000001/",           /* hex */
        "http://0x7f.1/",               /* hex, two parts */
        "http://127.1/",                /* two parts */
        "http://127.0.1/",              /* three parts */
        "http://0177.0.0.1/",           /* octal */
        "http://017700000001/",         /* octal, one part */
        "http://127.0.0.1./",           /* trailing dot */
        "http://%31%32%37.0.0.1/",      /* percent-encoded */
        "http://user:pw@127.0.0.1:8080/x",
        "http://public.example@127.0.0.1/",
        "HTTP://127.0.0.1/",
        "http://0/",                    /* 0.0.0.0: this host */
        "http://0.0.0.0:6379/",
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::FFFF:7f00:1]:80/",
        "http://[0:0:0:0:0:ffff:127.0.0.1]/",
        "http://[fe80::1%25eth0]/",
        "https://[fd00:ec2::254]/",
        "http://[64:ff9b::7f00:1]/",
        "http://[2002:7f00:1::]/",
        "http://[::]/",
        "http://localhost/",
        "http://LOCALHOST./",
        "http://localhost:6379/",
        "http://api.localhost/",
        "http://ip6-localhost/",
        "http://ip6-loopback/",
        "http://localhost.localdomain/",
        NULL,
    };
    for (size_t i = 0; refused[i]; i++)
        expect_url(NULL, refused[i], SP_EUNREACHABLE, "public");
    static const char *const fine[] = {
        "https://example.com/clip.mp4",
        "http://8.8.8.8/x.csv",
        "http://134744072/",            /* 8.8.8.8 in decimal */
        "http://[2606:4700:4700::1111]:8080/",
        "http://[::ffff:8.8.8.8]/",
        "http://localhost.example.com/",
        "http://mylocalhost/",
        "http://1.2.3.4.5/",            /* not an address: a name for DNS */
        NULL,
    };
    for (size_t i = 0; fine[i]; i++)
        expect_url(NULL, fine[i], 0, NULL);
    static const char *const invalid[] = {
        "ftp://example.com/x", "file:///etc/passwd", "gopher://127.0.0.1:6379/_x",
        "dict://127.0.0.1:11211/", "http://", "http://[::1/", "not a url", "//example.com/x",
        NULL,
    };
    for (size_t i = 0; invalid[i]; i++)
        expect_url(NULL, invalid[i], SP_EINVAL, NULL);
    expect_url(NULL, NULL, SP_EINVAL, NULL);
    /* The message names the address as the resolver would read it. */
    expect_url(NULL, "http://0x7f.1/", SP_EUNREACHABLE, "127.0.0.1 is a loopback address");
    expect_url(NULL, "http://169.254.169.254/", SP_EUNREACHABLE, "metadata");
    expect_url(NULL, "http://api.localhost/", SP_EUNREACHABLE, "this machine");
}

static void test_allow_list_parses_cidrs_addresses_and_names(void **state)
{
    (void)state;
    sp_err err;
    sp_outbound *g = sp_outbound_new(
        " 10.0.0.0/8, 192.168.1.5 ,fd00::/8,::1,files.internal,*.corp.example,, 127.0.0.0/8",
        &err);
    if (g == NULL)
        fail_msg("%s", err.msg);
    static const struct {
        const char *host, *addr;
        bool allowed;
    } cases[] = {
        {NULL, "10.1.2.3", true},          {NULL, "11.0.0.1", true},   /* public anyway */
        {NULL, "172.16.0.1", false},       {NULL, "192.168.1.5", true},
        {NULL, "192.168.1.6", false},      {NULL, "::ffff:10.0.0.1", true},
        {NULL, "64:ff9b::a00:1", true},    {NULL, "fd12::1", true},
        {NULL, "fe80::1", false},          {NULL, "::1", true},
        {NULL, "127.0.0.2", true},         {NULL, "169.254.169.254", false},
        {"files.internal", "169.254.169.254", true},
        {"FILES.Internal.", "10.9.9.9", true},
        {"x.files.internal", "172.16.0.1", false},
        {"evilfiles.internal", "172.16.0.1", false},
        {"a.corp.example", "172.16.0.1", true},
        {"a.b.corp.example", "fe80::1", true},
        {"corp.example", "172.16.0.1", false},
        {"xcorp.example", "172.16.0.1", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct sockaddr_storage ss = addr_of(cases[i].addr);
        char why[200] = "";
        bool got = sp_outbound_allows(g, cases[i].host, (struct sockaddr *)&ss, why, sizeof why);
        if (got != cases[i].allowed)
            fail_msg("%s -> %s: expected %s (%s)", cases[i].host ? cases[i].host : "(no host)",
                     cases[i].addr, cases[i].allowed ? "allowed" : "refused", why);
        if (!got && strstr(why, cases[i].addr) == NULL)
            fail_msg("the refusal '%s' does not name %s", why, cases[i].addr);
    }
    /* What the allow-list allows, the submit check lets through too. */
    expect_url(g, "http://10.0.0.1:9000/x.csv", 0, NULL);
    expect_url(g, "http://167772161/", 0, NULL); /* 10.0.0.1 */
    expect_url(g, "http://[::ffff:127.0.0.1]/", 0, NULL);
    expect_url(g, "http://[::1]:8080/", 0, NULL);
    expect_url(g, "http://172.16.0.1/", SP_EUNREACHABLE, "private");
    expect_url(g, "http://localhost/", SP_EUNREACHABLE, "this machine");
    sp_outbound_free(g);
    g = sp_outbound_new("localhost", &err);
    assert_non_null(g);
    expect_url(g, "http://localhost:8080/", 0, NULL);
    expect_url(g, "http://api.localhost/", SP_EUNREACHABLE, NULL);
    sp_outbound_free(g);
    /* Nothing, or only separators: public addresses only. */
    g = sp_outbound_new(" , ,", &err);
    assert_non_null(g);
    struct sockaddr_storage ss = addr_of("127.0.0.1");
    assert_false(sp_outbound_allows(g, "localhost", (struct sockaddr *)&ss, NULL, 0));
    sp_outbound_free(g);
    g = sp_outbound_new(NULL, &err);
    assert_non_null(g);
    sp_outbound_free(g);
    g = sp_outbound_new("0.0.0.0/0,::/0", &err);
    assert_non_null(g);
    assert_true(sp_outbound_allows(g, NULL, (struct sockaddr *)&ss, NULL, 0));
    sp_outbound_free(g);
    sp_outbound_free(NULL);
}

static void test_allow_list_refuses_bad_entries_by_name(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "10.0.0.0/33",   "10.0.0.1/8",     "::1/129",      "fd00::1/8",     "10.0.0.0/",
        "10.0.0.0/-1",   "10.0.0.0/8x",    "10.0.0.0/8/8", "/8",            "127.1",
        "2130706433",    "0x7f.1",         "0x7f000001",   "1.2.3.4.5",     "0177.0.0.1",
        "bad_host!",     "a..b",           ".a",           "*.",            "*",
        "*.*.example",   "host:8080",      "http://x",     "[::1]",         "files.internal/8",
        "10.0.0.0 /8",   "a b",            "-",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char list[128];
        snprintf(list, sizeof list, "10.0.0.0/8,%s,files.internal", bad[i]);
        sp_err err;
        sp_err_clear(&err);
        sp_outbound *g = sp_outbound_new(list, &err);
        if (g != NULL)
            fail_msg("'%s' was accepted", bad[i]);
        assert_int_equal(err.code, SP_EINVAL);
        if (strstr(err.msg, "SPOOL_OUTBOUND_ALLOW") == NULL || strstr(err.msg, bad[i]) == NULL)
            fail_msg("'%s': the message '%s' does not name the setting and the entry", bad[i],
                     err.msg);
    }
    char many[256 * 12 + 32] = "";
    size_t used = 0;
    for (int i = 0; i < 257; i++)
        used += (size_t)snprintf(many + used, sizeof many - used, "10.0.%d.%d,", i / 250,
                                 i % 250);
    sp_err err;
    assert_null(sp_outbound_new(many, &err));
    assert_non_null(strstr(err.msg, "256"));
    char longname[400];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_null(sp_outbound_new(longname, &err));
    assert_int_equal(err.code, SP_EINVAL);
}

/* ---- the curl socket callback, on loopback sockets --------------------------------- */

typedef struct listener {
    int fd;
    int port;
} listener;

static listener listen_on(const char *addr)
{
    listener l = {-1, 0};
    struct sockaddr_in sa = {.sin_family = AF_INET};
    inet_pton(AF_INET, addr, &sa.sin_addr);
    l.fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(l.fd >= 0);
    int one = 1;
    setsockopt(l.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    assert_int_equal(bind(l.fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(l.fd, 8), 0);
    socklen_t len = sizeof sa;
    getsockname(l.fd, (struct sockaddr *)&sa, &len);
    l.port = ntohs(sa.sin_port);
    return l;
}

/* Connections waiting to be accepted on l (each is accepted and closed). */
static int connections(listener *l)
{
    int n = 0;
    struct pollfd p = {l->fd, POLLIN, 0};
    while (poll(&p, 1, n ? 0 : 100) == 1) {
        int c = accept(l->fd, NULL, NULL);
        if (c < 0)
            break;
        close(c);
        n++;
    }
    return n;
}

/* Connect (only) to url through the guard g, with the names in resolve pinned.
 * Returns curl's code; *x is the guard's state afterwards. */
static CURLcode guarded_connect(const sp_outbound *g, const char *url, const char *resolve,
                                sp_outbound_xfer *x)
{
    CURL *c = curl_easy_init();
    assert_non_null(c);
    sp_err err;
    assert_int_equal(sp_outbound_curl_setup(x, g, c, &err), 0);
    struct curl_slist *r = resolve ? curl_slist_append(NULL, resolve) : NULL;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CONNECT_ONLY, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (r)
        curl_easy_setopt(c, CURLOPT_RESOLVE, r);
    CURLcode cc = curl_easy_perform(c);
    curl_easy_cleanup(c);
    curl_slist_free_all(r);
    return cc;
}

static void test_guard_refuses_a_name_that_resolves_to_loopback_before_connecting(void **state)
{
    (void)state;
    listener l = listen_on("127.0.0.1");
    char url[128], resolve[128];
    snprintf(url, sizeof url, "http://rebind.test:%d/", l.port);
    snprintf(resolve, sizeof resolve, "rebind.test:%d:127.0.0.1", l.port);
    sp_outbound_xfer x;
    /* Public addresses only: curl is not even allowed to open the socket. */
    assert_int_equal(guarded_connect(NULL, url, resolve, &x), CURLE_COULDNT_CONNECT);
    assert_int_equal(x.refused, 1);
    assert_non_null(strstr(x.why, "rebind.test -> 127.0.0.1 is a loopback address"));
    assert_int_equal(connections(&l), 0);
    /* The literal forms curl reads as 127.0.0.1, with no name to resolve. */
    const char *forms[] = {"2130706433", "0x7f.1", "127.1", "0177.0.0.1", "[::ffff:127.0.0.1]",
                           NULL};
    for (int i = 0; forms[i]; i++) {
        snprintf(url, sizeof url, "http://%s:%d/", forms[i], l.port);
        assert_int_equal(guarded_connect(NULL, url, NULL, &x), CURLE_COULDNT_CONNECT);
        assert_int_equal(x.refused, 1);
    }
    assert_int_equal(connections(&l), 0);
    /* Allowed by name (whatever it resolves to), or by CIDR: the connection is made. */
    sp_err err;
    sp_outbound *by_name = sp_outbound_new("rebind.test", &err);
    sp_outbound *by_cidr = sp_outbound_new("127.0.0.0/8", &err);
    snprintf(url, sizeof url, "http://rebind.test:%d/", l.port);
    assert_int_equal(guarded_connect(by_name, url, resolve, &x), CURLE_OK);
    assert_int_equal(x.refused, 0);
    assert_int_equal(connections(&l), 1);
    assert_int_equal(guarded_connect(by_cidr, url, resolve, &x), CURLE_OK);
    assert_int_equal(connections(&l), 1);
    /* Another name at the same address is not allowed by rebind.test's entry. */
    snprintf(url, sizeof url, "http://other.test:%d/", l.port);
    snprintf(resolve, sizeof resolve, "other.test:%d:127.0.0.1", l.port);
    assert_int_equal(guarded_connect(by_name, url, resolve, &x), CURLE_COULDNT_CONNECT);
    assert_int_equal(connections(&l), 0);
    sp_outbound_free(by_name);
    sp_outbound_free(by_cidr);
    close(l.fd);
}

static void test_guard_checks_each_address_of_a_name(void **state)
{
    (void)state;
    listener l = listen_on("127.0.0.1");
    char url[128], resolve[128];
    snprintf(url, sizeof url, "http://mixed.test:%d/", l.port);
    snprintf(resolve, sizeof resolve, "mixed.test:%d:127.0.0.2,127.0.0.1", l.port);
    sp_err err;
    sp_outbound *g = sp_outbound_new("127.0.0.1", &err);
    sp_outbound_xfer x;
    /* 127.0.0.2 is refused; curl goes on to 127.0.0.1, which is allowed. */
    assert_int_equal(guarded_connect(g, url, resolve, &x), CURLE_OK);
    assert_int_equal(x.sockets, 2);
    assert_int_equal(x.refused, 1);
    assert_non_null(strstr(x.why, "127.0.0.2"));
    assert_int_equal(connections(&l), 1);
    sp_outbound_free(g);
    close(l.fd);
}

static void test_guard_ignores_proxies_from_the_environment(void **state)
{
    (void)state;
    listener target = listen_on("127.0.0.1");
    listener proxy = listen_on("127.0.0.1");
    char p[64], url[64];
    snprintf(p, sizeof p, "http://127.0.0.1:%d", proxy.port);
    setenv("http_proxy", p, 1);
    setenv("HTTPS_PROXY", p, 1);
    setenv("ALL_PROXY", p, 1);
    sp_err err;
    sp_outbound *g = sp_outbound_new("127.0.0.1", &err);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", target.port);
    sp_outbound_xfer x;
    assert_int_equal(guarded_connect(g, url, NULL, &x), CURLE_OK);
    assert_int_equal(connections(&target), 1);
    assert_int_equal(connections(&proxy), 0);
    /* Through a proxy the guard would judge the proxy's address, not the target's: a
     * URL at a refused address must fail even though the proxy is allowed. */
    assert_int_equal(guarded_connect(g, "http://10.0.0.1:9/", NULL, &x), CURLE_COULDNT_CONNECT);
    assert_int_equal(connections(&proxy), 0);
    unsetenv("http_proxy");
    unsetenv("HTTPS_PROXY");
    unsetenv("ALL_PROXY");
    sp_outbound_free(g);
    close(target.fd);
    close(proxy.fd);
}

static void test_guard_allows_only_http_and_https(void **state)
{
    (void)state;
    listener l = listen_on("127.0.0.1");
    sp_err err;
    sp_outbound *g = sp_outbound_new("127.0.0.0/8", &err);
    char url[64];
    const char *schemes[] = {"ftp", "gopher", "dict", "telnet", "smtp", NULL};
    for (int i = 0; schemes[i]; i++) {
        snprintf(url, sizeof url, "%s://127.0.0.1:%d/", schemes[i], l.port);
        sp_outbound_xfer x;
        CURLcode cc = guarded_connect(g, url, NULL, &x);
        if (cc != CURLE_UNSUPPORTED_PROTOCOL)
            fail_msg("%s: expected CURLE_UNSUPPORTED_PROTOCOL, got %d", url, cc);
    }
    assert_int_equal(connections(&l), 0);
    sp_outbound_free(g);
    close(l.fd);
    assert_string_equal(sp_strerror(SP_EUNREACHABLE), "destination unreachable or not allowed");
    assert_true(sp_code_transient(SP_EUNREACHABLE));
    assert_int_equal(sp_outbound_unreachable(&err), SP_EUNREACHABLE);
    assert_string_equal(err.msg, SP_OUTBOUND_UNREACHABLE_MSG);
}

/* The ranges SPOOL_TRUSTED_PROXIES (and the allow-list's CIDRs) are made of. */
static void test_cidr_lists_match_their_edges_and_refuse_bad_entries(void **state)
{
    (void)state;
    sp_err err;
    sp_cidrs *l = sp_cidrs_parse(" 10.1.0.0/16, 192.0.2.7 ,fd00:1::/32,, 172.16.0.0/12", "X", &err);
    assert_non_null(l);
    assert_int_equal(sp_cidrs_count(l), 4);
    static const struct {
        const char *addr;
        bool in;
    } cases[] = {
        {"10.1.0.0", true},       {"10.1.255.255", true},    {"10.0.255.255", false},
        {"10.2.0.0", false},      {"192.0.2.7", true},       {"192.0.2.8", false},
        {"172.31.255.255", true}, {"172.32.0.0", false},     {"::ffff:10.1.2.3", true},
        {"fd00:1::1", true},      {"fd00:1:ffff::", true},   {"fd00:2::", false},
        {"::1", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct sockaddr_storage ss = addr_of(cases[i].addr);
        if (sp_cidrs_match(l, (struct sockaddr *)&ss) != cases[i].in)
            fail_msg("%s: expected %s", cases[i].addr, cases[i].in ? "in" : "out");
    }
    sp_cidrs_free(l);
    assert_false(sp_cidrs_match(NULL, NULL));
    l = sp_cidrs_parse("", "X", &err);
    assert_non_null(l);
    assert_int_equal(sp_cidrs_count(l), 0);
    sp_cidrs_free(l);
    static const struct {
        const char *list;
        const char *msg;
    } bad[] = {
        {"10.0.0.1/8", "X: '10.0.0.1/8' has bits set past its /8 prefix"},
        {"10.0.0.0/33", "X: '10.0.0.0/33' has a bad prefix length (0-32)"},
        {"10.0.0.0/", "X: '10.0.0.0/' has a bad prefix length (0-32)"},
        {"proxy.local", "X: 'proxy.local' is not an address or a CIDR (10.0.0.0/8, fd00::/8)"},
        {"10.0.0.0/8, 127.1", "X: '127.1' is not an address or a CIDR (10.0.0.0/8, fd00::/8)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_null(sp_cidrs_parse(bad[i].list, "X", &err));
        assert_int_equal(err.code, SP_EINVAL);
        assert_string_equal(err.msg, bad[i].msg);
    }
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ipv4_special_purpose_blocks_are_refused_and_their_edges_are_not),
        cmocka_unit_test(test_ipv6_special_purpose_blocks_and_embedded_ipv4_are_judged),
        cmocka_unit_test(test_url_check_refuses_every_numeric_spelling_of_internal_addresses),
        cmocka_unit_test(test_allow_list_parses_cidrs_addresses_and_names),
        cmocka_unit_test(test_allow_list_refuses_bad_entries_by_name),
        cmocka_unit_test(test_guard_refuses_a_name_that_resolves_to_loopback_before_connecting),
        cmocka_unit_test(test_guard_checks_each_address_of_a_name),
        cmocka_unit_test(test_guard_ignores_proxies_from_the_environment),
        cmocka_unit_test(test_guard_allows_only_http_and_https),
        cmocka_unit_test(test_cidr_lists_match_their_edges_and_refuse_bad_entries),
    };
    int rc = cmocka_run_group_tests_name("outbound", tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
