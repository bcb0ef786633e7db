/* harness.c - private redis-server per test suite (see harness.h). */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SP_MAX_SERVERS 8
static sp_test_redis *sp__servers[SP_MAX_SERVERS];
static pid_t sp__owner;

int64_t sp_test_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int sp_test_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static void sp__kill_all(void)
{
    if (getpid() != sp__owner)
        return; /* forked children must not stop the parent's servers */
    for (int i = 0; i < SP_MAX_SERVERS; i++) {
        if (sp__servers[i])
            sp_test_redis_destroy(sp__servers[i]);
    }
}

static void sp__on_signal(int sig)
{
    sp__kill_all();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void sp__track(sp_test_redis *r)
{
    static int installed;
    if (!installed) {
        installed = 1;
        sp__owner = getpid();
        atexit(sp__kill_all);
        signal(SIGINT, sp__on_signal);
        signal(SIGTERM, sp__on_signal);
        signal(SIGABRT, sp__on_signal);
        signal(SIGSEGV, sp__on_signal);
    }
    for (int i = 0; i < SP_MAX_SERVERS; i++) {
        if (sp__servers[i] == r)
            return;
    }
    for (int i = 0; i < SP_MAX_SERVERS; i++) {
        if (sp__servers[i] == NULL) {
            sp__servers[i] = r;
            return;
        }
    }
}

/* 0 when Redis on port answers PONG (or, with loading_ok, says it is loading). */
static int sp__ping(int port, int loading_ok)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int ok = -1;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        write(fd, "PING\r\n", 6) == 6) {
        char buf[64];
        ssize_t n = read(fd, buf, sizeof buf - 1);
        if (n > 0) {
            buf[n] = '\0';
            ok = strstr(buf, "+PONG") || (loading_ok && strstr(buf, "-LOADING")) ? 0 : -1;
        }
    }
    close(fd);
    return ok;
}

static int sp__spawn(sp_test_redis *r)
{
    char port[16];
    snprintf(port, sizeof port, "%d", r->port);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        /* If the test process dies, even by SIGKILL, its Redis goes with it. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() == 1)
            _exit(127);
        int devnull = open("/dev/null", O_RDWR);
        if (devnull >= 0) {
            dup2(devnull, 0);
            dup2(devnull, 1);
        }
        char logfile[300];
        snprintf(logfile, sizeof logfile, "%s/redis.log", r->dir);
        /* A slow load reads 100 us per key and answers clients (LOADING) every KiB. */
        const char *slow[] = {"--key-load-delay", "100", "--loading-process-events-interval-bytes",
                              "1024"};
        const char *argv[] = {"redis-server", "--port", port, "--bind", "127.0.0.1",
                              "--dir", r->dir, "--save", "", "--appendonly",
                              r->aof ? "yes" : "no", "--appendfsync", "always",
                              "--maxmemory-policy", "noeviction", "--logfile", logfile,
                              "--daemonize", "no", NULL, NULL, NULL, NULL, NULL};
        size_t n = 19;
        for (size_t i = 0; r->slow_load && i < 4; i++)
            argv[n++] = slow[i];
        execvp("redis-server", (char *const *)argv);
        _exit(127);
    }
    r->pid = pid;
    int64_t deadline = sp_test_ms() + 10000;
    while (sp_test_ms() < deadline) {
        if (sp__ping(r->port, r->slow_load) == 0)
            return 0;
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            r->pid = 0;
            return -1; /* exited: port taken, or redis-server missing */
        }
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    r->pid = 0;
    return -1;
}

int sp_test_redis_start(sp_test_redis *r, int aof)
{
    memset(r, 0, sizeof *r);
    r->aof = aof;
    snprintf(r->dir, sizeof r->dir, "/tmp/spool-test-redis-XXXXXX");
    if (mkdtemp(r->dir) == NULL) {
        fprintf(stderr, "harness: mkdtemp: %s\n", strerror(errno));
        return -1;
    }
    sp__track(r);
    for (int attempt = 0; attempt < 5; attempt++) {
        r->port = sp_test_free_port();
        if (r->port > 0 && sp__spawn(r) == 0) {
            snprintf(r->url, sizeof r->url, "redis://127.0.0.1:%d/0", r->port);
            return 0;
        }
    }
    fprintf(stderr, "harness: could not start redis-server (is it installed?)\n");
    return -1;
}

void sp_test_redis_stop(sp_test_redis *r)
{
    if (r->pid > 0) {
        kill(r->pid, SIGTERM);
        int64_t deadline = sp_test_ms() + 10000;
        int status;
        while (waitpid(r->pid, &status, WNOHANG) == 0) {
            if (sp_test_ms() > deadline) {
                kill(r->pid, SIGKILL);
                waitpid(r->pid, &status, 0);
                break;
            }
            usleep(5000);
        }
        r->pid = 0;
    }
}

int sp_test_redis_restart(sp_test_redis *r)
{
    sp_test_redis_stop(r);
    for (int attempt = 0; attempt < 50; attempt++) {
        if (sp__spawn(r) == 0)
            return 0;
        usleep(100000); /* the port may linger briefly */
    }
    return -1;
}

int sp_test_redis_restart_loading(sp_test_redis *r)
{
    r->slow_load = 1;
    int rc = sp_test_redis_restart(r);
    r->slow_load = 0;
    return rc;
}

void sp_test_redis_destroy(sp_test_redis *r)
{
    sp_test_redis_stop(r);
    if (r->dir[0]) {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", r->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "harness: could not remove %s\n", r->dir);
        r->dir[0] = '\0';
    }
    for (int i = 0; i < SP_MAX_SERVERS; i++) {
        if (sp__servers[i] == r)
            sp__servers[i] = NULL;
    }
}

const char *sp_test_redis_cli(sp_test_redis *r, const char *fmt, ...)
{
    static char line[4096];
    char args[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    char cmd[2300];
    snprintf(cmd, sizeof cmd, "redis-cli -p %d %s 2>/dev/null", r->port, args);
    FILE *f = popen(cmd, "r");
    if (f == NULL)
        return NULL;
    const char *res = NULL;
    if (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        res = line;
    }
    pclose(f);
    return res;
}
