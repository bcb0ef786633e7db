/* test_common.c - the common library's pure parts: ids, buffers, the ticker, URL and
 * option parsing, routes, the blob store and the fetch module (against a loopback
 * HTTP server). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "redis.h"
#include "spool/alloc.h"
#include "spool/blob.h"
#include "spool/buf.h"
#include "spool/config.h"
#include "spool/fetch.h"
#include "spool/job.h"
#include "spool/outbound.h"
#include "spool/presets.h"
#include "spool/ticker.h"
#include "spool/util.h"

static void test_ids_are_valid_unique_and_time_sortable(void **state)
{
    (void)state;
    char prev[SP_ID_LEN + 1] = "";
    for (int i = 0; i < 2000; i++) {
        char id[SP_ID_LEN + 1];
        int64_t before = sp_now_ms();
        assert_int_equal(sp_id_new(id), 0);
        assert_int_equal(strlen(id), SP_ID_LEN);
        assert_true(sp_id_valid(id));
        int64_t t = sp_id_time_ms(id);
        assert_in_range(t, before, sp_now_ms());
        assert_string_not_equal(id, prev);
        if (i % 500 == 0)
            usleep(2000);
        if (prev[0] && sp_id_time_ms(prev) < t)
            assert_true(strcmp(prev, id) < 0); /* later ms sorts later */
        memcpy(prev, id, sizeof id);
    }
    assert_false(sp_id_valid(NULL));
    assert_false(sp_id_valid(""));
    assert_false(sp_id_valid("../../etc/passwd"));
    char bad[SP_ID_LEN + 2];
    sp_id_new(bad);
    bad[5] = 'u'; /* not in the alphabet */
    assert_false(sp_id_valid(bad));
    sp_id_new(bad);
    bad[SP_ID_LEN] = 'x';
    bad[SP_ID_LEN + 1] = '\0';
    assert_false(sp_id_valid(bad)); /* too long */
    sp_id_new(bad);
    bad[0] = '2';
    assert_false(sp_id_valid(bad)); /* overflowing 180 bits */
}

static void test_buf_grows_and_respects_its_maximum(void **state)
{
    (void)state;
    sp_buf b;
    sp_buf_init(&b, 16);
    assert_string_equal(sp_buf_cstr(&b), "");
    assert_int_equal(sp_buf_adds(&b, "hello"), 0);
    assert_int_equal(sp_buf_addf(&b, " %d", 42), 0);
    assert_string_equal(sp_buf_cstr(&b), "hello 42");
    assert_int_equal(sp_buf_adds(&b, "0123456789"), SP_ETOOBIG);
    assert_string_equal(sp_buf_cstr(&b), "hello 42"); /* unchanged on error */
    sp_buf_reset(&b);
    assert_int_equal(sp_buf_add_json_escaped(&b, "a\"b\\\n\x01", 6), 0);
    assert_string_equal(sp_buf_cstr(&b), "a\\\"b\\\\\\n\\u0001");
    sp_buf_free(&b);
    sp_buf_free(NULL);
    sp_buf_init(&b, 1 << 20);
    for (int i = 0; i < 10000; i++)
        assert_int_equal(sp_buf_addf(&b, "%04d", i % 10000), 0);
    assert_int_equal(b.len, 40000);
    char *taken = sp_buf_take(&b);
    assert_non_null(taken);
    assert_int_equal(b.len, 0);
    sp_free(taken);
}

static int fail_after;
static void *failing_malloc(size_t n)
{
    return fail_after-- > 0 ? malloc(n) : NULL;
}
static void *failing_realloc(void *p, size_t n)
{
    return fail_after-- > 0 ? realloc(p, n) : NULL;
}

static void test_allocation_failure_is_an_error_not_a_crash(void **state)
{
    (void)state;
    sp_alloc_hooks h = {failing_malloc, failing_realloc, free};
    sp_alloc_set_hooks(&h);
    fail_after = 0;
    sp_buf b;
    sp_buf_init(&b, 1024);
    assert_int_equal(sp_buf_adds(&b, "x"), SP_ENOMEM);
    assert_null(sp_strdup("abc"));
    sp_err err;
    assert_null(sp_blobs_open_at("/tmp", &err));
    assert_int_equal(err.code, SP_ENOMEM);
    sp_alloc_set_hooks(NULL);
    assert_int_equal(sp_buf_adds(&b, "x"), 0);
    sp_buf_free(&b);
}

static void count_tick(void *ud)
{
    atomic_fetch_add((atomic_int *)ud, 1);
}

static void test_ticker_calls_periodically_and_stops_at_once(void **state)
{
    (void)state;
    sp_err err;
    atomic_int n = 0;
    sp_ticker *t = sp_ticker_start(10, count_tick, &n, &err);
    assert_non_null(t);
    int64_t t0 = sp_mono_ms();
    while (atomic_load(&n) < 3) {
        if (sp_mono_ms() - t0 > 5000)
            fail_msg("%d calls in 5 s of a 10 ms ticker", atomic_load(&n));
        usleep(1000);
    }
    sp_ticker_stop(t);
    int after = atomic_load(&n);
    usleep(50 * 1000);
    assert_int_equal(atomic_load(&n), after); /* no call after stop */
    /* An hour's wait is cut short by stop. */
    t = sp_ticker_start(3600 * 1000, count_tick, &n, &err);
    assert_non_null(t);
    t0 = sp_mono_ms();
    sp_ticker_stop(t);
    assert_true(sp_mono_ms() - t0 < 1000);
    assert_int_equal(atomic_load(&n), after);
    sp_ticker_stop(NULL);
}

static void test_redis_url_parsing(void **state)
{
    (void)state;
    sp_redis_url u;
    sp_err err;
    assert_int_equal(sp_redis_url_parse("redis://127.0.0.1:6380/2", &u, &err), 0);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.db, 2);
    assert_int_equal(sp_redis_url_parse("redis://user:p%40ss@cache.local", &u, &err), 0);
    assert_string_equal(u.user, "user");
    assert_string_equal(u.password, "p@ss");
    assert_string_equal(u.host, "cache.local");
    assert_int_equal(u.port, 6379);
    assert_int_equal(sp_redis_url_parse("redis://:secret@[::1]:7000/0", &u, &err), 0);
    assert_string_equal(u.host, "::1");
    assert_string_equal(u.password, "secret");
    assert_int_equal(u.port, 7000);
    assert_int_equal(sp_redis_url_parse("unix:///run/redis.sock?db=3", &u, &err), 0);
    assert_string_equal(u.unix_path, "/run/redis.sock");
    assert_int_equal(u.db, 3);
    /* Sentinel, in the form Lettuce documents: the password is the data nodes' */
    assert_int_equal(sp_redis_url_parse("redis-sentinel://:pw@s1:26380,[::1],s3/4#my%2Dm", &u,
                                        &err),
                     0);
    assert_string_equal(u.master, "my-m");
    assert_string_equal(u.password, "pw");
    assert_int_equal(u.db, 4);
    assert_int_equal(u.nsentinels, 3);
    assert_string_equal(u.sentinels[0].host, "s1");
    assert_int_equal(u.sentinels[0].port, 26380);
    assert_string_equal(u.sentinels[1].host, "::1");
    assert_int_equal(u.sentinels[1].port, 26379);
    assert_string_equal(u.sentinels[2].host, "s3");
    assert_int_equal(u.sentinels[2].port, 26379);
    assert_string_equal(u.host, "");
    assert_int_equal(sp_redis_url_parse("redis-sentinel://p%3Aw@h#m", &u, &err), 0);
    assert_string_equal(u.password, "p:w"); /* Lettuce: "password@" alone is a password */
    assert_string_equal(u.user, "");
    assert_int_equal(sp_redis_url_parse("redis-sentinel://us:pw@h#m", &u, &err), 0);
    assert_string_equal(u.user, "us");
    assert_string_equal(u.password, "pw");
    assert_int_equal(sp_redis_url_parse("redis-sentinel://127.0.0.1:5000#m", &u, &err), 0);
    assert_int_equal(u.nsentinels, 1);
    assert_int_equal(u.db, 0);
    assert_string_equal(u.master, "m");
    char many[512] = "redis-sentinel://";
    for (int i = 0; i < 16; i++)
        strcat(many, i ? ",h" : "h");
    assert_int_equal(sp_redis_url_parse(strcat(many, "#m"), &u, &err), 0);
    assert_int_equal(u.nsentinels, 16);
    many[strlen(many) - 2] = '\0';
    assert_int_equal(sp_redis_url_parse(strcat(many, ",h#m"), &u, &err), SP_EINVAL);
    assert_non_null(strstr(err.msg, "more than 16 sentinels"));
    assert_int_equal(sp_redis_url_parse("redis-sentinel://h:26379", &u, &err), SP_EINVAL);
    assert_non_null(strstr(err.msg, "names its master after '#'"));
    const char *bad[] = {"http://x", "redis://", "redis://h:0", "redis://h:99999",
                         "redis://h:12x", "redis://h/abc", "unix://relative", "redis://u:%zz@h",
                         "redis://[]", "redis://[]:6379/0", "redis-sentinel://h#",
                         "redis-sentinel://#m", "redis-sentinel://h,#m", "redis-sentinel://,h#m",
                         "redis-sentinel://h:0#m", "redis-sentinel://h/x#m",
                         "redis-sentinel://h?timeout=1#m", "redis-sentinel://h#a b", NULL};
    for (int i = 0; bad[i]; i++) {
        assert_int_equal(sp_redis_url_parse(bad[i], &u, &err), SP_EINVAL);
        assert_non_null(strstr(err.msg, "Redis URL") ? err.msg : strstr(err.msg, "bad"));
    }
}

static void test_options_defaults_env_and_flags(void **state)
{
    (void)state;
    sp_common_config c = {0};
    char *name = NULL;
    int64_t size = 0, dur = 0;
    int flag = 0;
    sp_option opts[SP_COMMON_OPTION_COUNT + 4];
    sp_common_options(&c, opts);
    sp_option more[] = {
        {"name", "T_NAME", SP_OPT_STR, &name, "anon", "a name", 0, 0},
        {"size", "T_SIZE", SP_OPT_SIZE, &size, "1k", "a size", 0, 0},
        {"wait", "T_WAIT", SP_OPT_DURATION, &dur, "2s", "a duration", 0, 0},
        {"flag", NULL, SP_OPT_BOOL, &flag, "off", "a flag", 0, 0},
    };
    memcpy(opts + SP_COMMON_OPTION_COUNT, more, sizeof more);
    size_t n = SP_COMMON_OPTION_COUNT + 4;
    setenv("T_SIZE", "10M", 1);
    setenv("SPOOL_REDIS_URL", "redis://env:1/0", 1);
    char *argv[] = {"prog", "--name", "given", "--wait=250ms", "--flag",
                    "--redis-url", "redis://flag:2/0", NULL};
    sp_err err;
    assert_int_equal(sp_options_parse("prog", "test", opts, n, 7, argv, &err), 0);
    assert_string_equal(name, "given");
    assert_int_equal(size, 10 << 20);
    assert_int_equal(dur, 250);
    assert_int_equal(flag, 1);
    assert_string_equal(c.redis_url, "redis://flag:2/0"); /* flags beat the environment */
    assert_string_equal(c.data_dir, "./var/data");
    assert_int_equal(c.retention_ms, 7LL * 86400000);
    char *bad[] = {"prog", "--size", "ten", NULL};
    assert_int_equal(sp_options_parse("prog", "test", opts, n, 3, bad, &err), SP_EINVAL);
    assert_non_null(strstr(err.msg, "--size"));
    char *unknown[] = {"prog", "--nope", NULL};
    assert_int_equal(sp_options_parse("prog", "test", opts, n, 2, unknown, &err), SP_EINVAL);
    assert_non_null(strstr(err.msg, "--nope"));
    setenv("T_SIZE", "lots", 1);
    char *plain[] = {"prog", NULL};
    assert_int_equal(sp_options_parse("prog", "test", opts, n, 1, plain, &err), SP_EINVAL);
    assert_non_null(strstr(err.msg, "T_SIZE"));
    unsetenv("T_SIZE");
    unsetenv("SPOOL_REDIS_URL");
    sp_options_free(opts, n);
    assert_null(name);
}

static void test_routes_and_retry_policies(void **state)
{
    (void)state;
    sp_routes r;
    sp_err err;
    assert_int_equal(sp_routes_parse(&r, "video.*=video,pdf.export=pdf,*=misc",
                                     "video.*=5:2s:10m,*=3:1s:1m", &err),
                     0);
    assert_string_equal(sp_routes_queue(&r, "video.transcode"), "video");
    assert_string_equal(sp_routes_queue(&r, "pdf.export"), "pdf");
    assert_string_equal(sp_routes_queue(&r, "pdf.other"), "misc");
    sp_retry_policy p = sp_routes_retry(&r, "video.transcode");
    assert_int_equal(p.max_attempts, 5);
    assert_int_equal(p.base_ms, 2000);
    assert_int_equal(p.cap_ms, 600000);
    assert_int_equal(sp_routes_retry(&r, "x").max_attempts, 3);
    assert_int_equal(sp_routes_parse(&r, "video.*=video", NULL, &err), 0);
    assert_null(sp_routes_queue(&r, "pdf.export"));
    assert_int_equal(sp_routes_parse(&r, "novalue", NULL, &err), SP_EINVAL);
    assert_int_equal(sp_routes_parse(&r, "a=bad queue", NULL, &err), SP_EINVAL);
    assert_int_equal(sp_routes_parse(&r, "a=q", "a=3:5s:1s", &err), SP_EINVAL); /* cap < base */
    assert_non_null(sp_preset_find("mp4-720p"));
    assert_null(sp_preset_find("mp4-4k"));
}

static void test_job_fields_and_states(void **state)
{
    (void)state;
    sp_job j;
    sp_job_init(&j);
    assert_int_equal(sp_job_set_field(&j, "state", "retrying", 8), 0);
    assert_int_equal(sp_job_set_field(&j, "attempts", "2", 1), 0);
    assert_int_equal(sp_job_set_field(&j, "params", "{\"a\":1}", 7), 0);
    assert_int_equal(sp_job_set_field(&j, "error_code", "io_error", 8), 0);
    assert_int_equal(sp_job_set_field(&j, "unknown_field", "x", 1), 0);
    assert_int_equal(j.state, SP_STATE_RETRYING);
    assert_int_equal(j.attempts, 2);
    assert_string_equal(j.params, "{\"a\":1}");
    assert_true(j.has_error);
    sp_job_clear(&j);
    assert_null(j.params);
    sp_job_clear(NULL);
    sp_state s;
    for (int i = 0; i < SP_STATE_COUNT; i++) {
        assert_int_equal(sp_state_parse(sp_state_name((sp_state)i), &s), 0);
        assert_int_equal(s, i);
    }
    assert_int_equal(sp_state_parse("pending", &s), SP_EINVAL);
    assert_true(sp_state_terminal(SP_STATE_CANCELLED));
    assert_false(sp_state_terminal(SP_STATE_RETRYING));
}

static char blobdir[64];

static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static int keep_none(const char *id, void *ud)
{
    (void)id;
    (void)ud;
    return 0;
}

/* Blob names may be folder paths, never ones that leave the job's folder. */
static void test_blob_names_allow_folders_never_escapes(void **state)
{
    (void)state;
    const char *good[] = {"video.mp4", "hls/master.m3u8", "hls/720p/seg_00001.m4s", "a/b/c/d/e/f/g/h",
                          "x", "a-b_c.d/e"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        assert_true(sp_blob_name_valid(good[i]));
    const char *bad[] = {"", "/", "/abs", "abs/", "a//b", ".", "..", "../x", "a/../b", "a/./b",
                         "hls/..", ".hidden", "a/.hidden", "a\\b", "a b", "%2e%2e", "a/%2e%2e",
                         "a:b", "a/b/c/d/e/f/g/h/i", "\xc3\xa9", "a\nb"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (sp_blob_name_valid(bad[i]))
            fail_msg("'%s' taken as a blob name", bad[i]);
    }
    assert_false(sp_blob_name_valid(NULL));
    const char nul[] = "a\0/../b"; /* what follows a NUL is not looked at: "a" */
    assert_true(sp_blob_name_valid(nul));
    /* A part: 64 bytes at most. */
    char part[SP_BLOB_PART_MAX + 2];
    memset(part, 'p', sizeof part);
    part[SP_BLOB_PART_MAX] = '\0';
    assert_true(sp_blob_name_valid(part));
    part[SP_BLOB_PART_MAX] = 'p';
    part[SP_BLOB_PART_MAX + 1] = '\0';
    assert_false(sp_blob_name_valid(part));
    /* The whole name: SP_BLOB_NAME_MAX - 1, SP_BLOB_NAME_MAX, SP_BLOB_NAME_MAX + 1. */
    char name[SP_BLOB_NAME_MAX + 2];
    for (int len = SP_BLOB_NAME_MAX - 1; len <= SP_BLOB_NAME_MAX + 1; len++) {
        for (int i = 0; i < len; i++)
            name[i] = (i % 40 == 39) ? '/' : 'n'; /* parts of 39 */
        name[len] = '\0';
        if (name[len - 1] == '/')
            name[len - 1] = 'n';
        assert_int_equal(sp_blob_name_valid(name), len <= SP_BLOB_NAME_MAX);
    }
}

/* In the directory store a folder name is a folder: written, read, swept and removed
 * with the job. */
static void test_blob_store_keeps_folder_names(void **state)
{
    (void)state;
    char dirbuf[64];
    snprintf(dirbuf, sizeof dirbuf, "/tmp/spool-test-blobs-XXXXXX");
    assert_non_null(mkdtemp(dirbuf));
    sp_err err;
    sp_blobs *b = sp_blobs_open_at(dirbuf, &err);
    assert_non_null(b);
    char id[SP_ID_LEN + 1];
    assert_int_equal(sp_id_new(id), 0);
    sp_blob_writer *w;
    assert_int_equal(sp_blob_create(b, id, "hls/720p/seg_00001.m4s", 0, &w, &err), 0);
    assert_int_equal(sp_blob_write(w, "seg", 3, &err), 0);
    /* its marker is flat: '+' for '/' */
    char marker_dir[512];
    snprintf(marker_dir, sizeof marker_dir, "%s/staging", dirbuf);
    DIR *d = opendir(marker_dir);
    assert_non_null(d);
    struct dirent *e;
    int markers = 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        markers++;
        assert_non_null(strstr(e->d_name, ".hls+720p+seg_00001.m4s.tmp-"));
    }
    closedir(d);
    assert_int_equal(markers, 1);
    /* a staging file in a folder is a staging file: remove_staging finds it */
    assert_int_equal(sp_blobs_remove_staging(b, id, &err), 0);
    sp_blob_abort(w);
    assert_int_equal(count_files(marker_dir), 0);
    assert_int_equal(sp_blob_create(b, id, "hls/720p/seg_00001.m4s", 0, &w, &err), 0);
    assert_int_equal(sp_blob_write(w, "seg", 3, &err), 0);
    assert_int_equal(sp_blob_commit(w, true, NULL, &err), 0);
    int fd;
    int64_t size;
    assert_int_equal(sp_blob_open_read(b, id, "hls/720p/seg_00001.m4s", 0, &fd, &size, &err), 0);
    assert_int_equal(size, 3);
    close(fd);
    /* a folder is not a blob */
    assert_int_equal(sp_blob_open_read(b, id, "hls/720p", 0, &fd, &size, &err), SP_ENOTFOUND);
    assert_int_equal(sp_blob_open_read(b, id, "hls", 0, &fd, &size, &err), SP_ENOTFOUND);
    /* a file of the work directory published as a blob */
    char work[512], file[600];
    assert_int_equal(sp_blobs_work_dir(b, id, work, sizeof work, &err), 0);
    snprintf(file, sizeof file, "%s/master.m3u8", work);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fputs("#EXTM3U\n", f);
    fclose(f);
    assert_int_equal(sp_blob_put_file(b, id, "hls/master.m3u8", file, true, &size, &err), 0);
    assert_int_equal(size, 8);
    sp_blobs_work_dir_remove(work);
    assert_int_equal(access(work, F_OK), -1);
    assert_string_equal(sp_blob_content_type("hls/master.m3u8"), "application/vnd.apple.mpegurl");
    assert_string_equal(sp_blob_content_type("hls/720p/seg_00001.m4s"), "video/mp4");
    assert_string_equal(sp_blob_content_type("hls.d/x"), "application/octet-stream");
    /* removing the job removes its folders */
    assert_int_equal(sp_blobs_remove_job(b, id, &err), 0);
    char jobdir[512];
    snprintf(jobdir, sizeof jobdir, "%s/jobs/%s/%s", dirbuf, id + SP_ID_LEN - 2, id);
    assert_int_equal(access(jobdir, F_OK), -1);
    sp_blobs_close(b);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dirbuf);
    assert_int_equal(system(cmd), 0);
}

static void test_blob_store_commits_atomically(void **state)
{
    (void)state;
    snprintf(blobdir, sizeof blobdir, "/tmp/spool-test-blobs-XXXXXX");
    assert_non_null(mkdtemp(blobdir));
    sp_err err;
    sp_blobs *b = sp_blobs_open_at(blobdir, &err);
    assert_non_null(b);
    assert_int_equal(sp_blobs_check(b, &err), 0);
    char id[SP_ID_LEN + 1];
    sp_id_new(id);
    sp_blob_writer *w;
    assert_int_equal(sp_blob_create(b, id, "out.bin", 10, &w, &err), 0);
    assert_int_equal(sp_blob_write(w, "hello", 5, &err), 0);
    int fd;
    int64_t size;
    /* Not visible before commit. */
    assert_int_equal(sp_blob_open_read(b, id, "out.bin", 0, &fd, &size, &err), SP_ENOTFOUND);
    assert_int_equal(sp_blob_write(w, "0123456789", 10, &err), SP_ETOOBIG);
    assert_int_equal(sp_blob_written(w), 5);
    assert_int_equal(sp_blob_commit(w, true, NULL, &err), 0);
    assert_int_equal(sp_blob_open_read(b, id, "out.bin", 0, &fd, &size, &err), 0);
    assert_int_equal(size, 5);
    close(fd);
    /* A second writer replaces the blob whole. */
    assert_int_equal(sp_blob_create(b, id, "out.bin", 0, &w, &err), 0);
    assert_int_equal(sp_blob_write(w, "bye", 3, &err), 0);
    assert_int_equal(sp_blob_commit(w, false, NULL, &err), 0);
    assert_int_equal(sp_blob_open_read(b, id, "out.bin", 0, &fd, &size, &err), 0);
    assert_int_equal(size, 3);
    close(fd);
    /* An aborted writer leaves nothing. */
    assert_int_equal(sp_blob_create(b, id, "gone.bin", 0, &w, &err), 0);
    assert_int_equal(sp_blob_write(w, "x", 1, &err), 0);
    sp_blob_abort(w);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/jobs/%s/%s", blobdir, id + SP_ID_LEN - 2, id);
    assert_int_equal(count_files(dir), 1);
    /* Staging files of a dead attempt can be cleared; committed blobs stay. */
    assert_int_equal(sp_blob_create(b, id, "half.bin", 0, &w, &err), 0);
    assert_int_equal(sp_blob_write(w, "x", 1, &err), 0);
    assert_int_equal(count_files(dir), 2); /* out.bin and the staging file */
    assert_int_equal(sp_blobs_remove_staging(b, id, &err), 0);
    assert_int_equal(count_files(dir), 1);
    assert_int_equal(sp_blob_open_read(b, id, "out.bin", 0, &fd, &size, &err), 0);
    close(fd);
    sp_blob_abort(w); /* its file is gone already: abort still frees it */
    /* ...and so are markers without their file (a writer killed between its commit's
     * rename and its marker's removal), but only this job's */
    char marker[512], other[512];
    snprintf(marker, sizeof marker, "%s/staging/%s.out.bin.tmp-0123abcd", blobdir, id);
    /* another job: the id with its last character changed */
    snprintf(other, sizeof other, "%s/staging/%.*s%c.out.bin.tmp-0123abcd", blobdir,
             SP_ID_LEN - 1, id, id[SP_ID_LEN - 1] == '0' ? '1' : '0');
    FILE *mf = fopen(marker, "w"), *of = fopen(other, "w");
    assert_non_null(mf);
    assert_non_null(of);
    fclose(mf);
    fclose(of);
    assert_int_equal(sp_blobs_remove_staging(b, id, &err), 0);
    assert_int_equal(access(marker, F_OK), -1);
    assert_int_equal(access(other, F_OK), 0);
    unlink(other);
    /* Bad names and ids never reach the disk. */
    assert_int_equal(sp_blob_create(b, id, "../x", 0, &w, &err), SP_EINVAL);
    assert_int_equal(sp_blob_create(b, id, ".hidden", 0, &w, &err), SP_EINVAL);
    assert_int_equal(sp_blob_create(b, "not-an-id", "x", 0, &w, &err), SP_EINVAL);
    assert_int_equal(sp_blob_open_read(b, id, "../../x", 0, &fd, &size, &err), SP_ENOTFOUND);
    /* Garbage collection removes directories the callback lets go. */
    int removed = -1;
    assert_int_equal(sp_blobs_gc(b, 0, keep_none, NULL, &removed, &err), 0);
    assert_int_equal(removed, 1);
    assert_int_equal(count_files(dir), -1);
    sp_blobs_close(b);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", blobdir);
    assert_int_equal(system(cmd), 0);
}

/* Set path's modification time to secs ago. */
static void age_file(const char *path, int secs)
{
    struct timespec t[2];
    clock_gettime(CLOCK_REALTIME, &t[0]);
    t[0].tv_sec -= secs;
    t[1] = t[0];
    if (utimensat(AT_FDCWD, path, t, 0) != 0)
        fail_msg("utimensat %s: %s", path, strerror(errno));
}

static int64_t age_ms(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return -1;
    return sp_now_ms() - ((int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000);
}

/* The path of the one file in dir whose name starts with prefix, into out ("" if none). */
static void find_file(const char *dir, const char *prefix, char *out, size_t n)
{
    out[0] = '\0';
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
            snprintf(out, n, "%s/%s", dir, e->d_name);
    }
    closedir(d);
}

/* A live writer's staging file survives a sweep: its process refreshes it while no data
 * comes, and its lock outweighs a late refresh. A dead writer's (its process gone: no
 * refresh, no lock) is swept with its marker once it has gone stale, not before (it
 * could be a writer on another host whose lock does not reach here). */
static void test_blob_sweep_takes_dead_writers_staging_files_only(void **state)
{
    (void)state;
    char root[] = "/tmp/spool-test-sweep-XXXXXX";
    assert_non_null(mkdtemp(root));
    sp_err err;
    sp_blobs *b = sp_blobs_open_at(root, &err);
    assert_non_null(b);
    char id[SP_ID_LEN + 1], dir[512], markers[512];
    sp_id_new(id);
    snprintf(dir, sizeof dir, "%s/jobs/%s/%s", root, id + SP_ID_LEN - 2, id);
    snprintf(markers, sizeof markers, "%s/staging", root);
    int removed = -1;

    /* Live, and silent for an hour as far as its file says: its lock keeps it. */
    sp_blob_writer *live;
    assert_int_equal(sp_blob_create(b, id, "live.bin", 0, &live, &err), 0);
    assert_int_equal(sp_blob_write(live, "x", 1, &err), 0);
    assert_int_equal(count_files(markers), 1);
    age_file(sp_blob_staging_path(live), 3600);
    assert_int_equal(sp_blobs_sweep_staging(b, SP_BLOB_STALE_MIN_MS, &removed, &err), 0);
    assert_int_equal(removed, 0);
    assert_true(age_ms(sp_blob_staging_path(live)) >= 3500 * 1000);
    /* ...and its process refreshes it within a heartbeat, data or not. */
    int64_t t0 = sp_mono_ms();
    while (age_ms(sp_blob_staging_path(live)) > 2 * SP_BLOB_HEARTBEAT_MS) {
        if (sp_mono_ms() - t0 > 3 * SP_BLOB_HEARTBEAT_MS)
            fail_msg("not refreshed after %lld ms", (long long)(sp_mono_ms() - t0));
        usleep(50 * 1000);
    }

    /* A writer in a process that dies mid-write (as kill -9 would end it). */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        sp_blobs *cb = sp_blobs_open_at(root, NULL);
        sp_blob_writer *w;
        _exit(cb && sp_blob_create(cb, id, "dead.bin", 0, &w, NULL) == 0 &&
                      sp_blob_write(w, "half", 4, NULL) == 0
                  ? 0
                  : 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(WEXITSTATUS(status), 0);
    char dead[1024];
    find_file(dir, "dead.bin.tmp-", dead, sizeof dead);
    assert_true(dead[0] != '\0');
    assert_int_equal(count_files(markers), 2);
    /* Fresh, so it could be a live writer on a host whose locks do not reach here. */
    assert_int_equal(sp_blobs_sweep_staging(b, SP_BLOB_STALE_MIN_MS, &removed, &err), 0);
    assert_int_equal(removed, 0);
    assert_int_equal(access(dead, F_OK), 0);
    /* Stale and unlocked: gone, with its marker; the live one stays. */
    age_file(dead, SP_BLOB_STALE_MIN_MS / 1000 + 1);
    assert_int_equal(sp_blobs_sweep_staging(b, SP_BLOB_STALE_MIN_MS, &removed, &err), 0);
    assert_int_equal(removed, 1);
    assert_int_not_equal(access(dead, F_OK), 0);
    assert_int_equal(access(sp_blob_staging_path(live), F_OK), 0);
    assert_int_equal(count_files(markers), 1);

    /* A marker whose file never came (a crash in between) goes once it is stale. */
    char ghost[1024];
    snprintf(ghost, sizeof ghost, "%s/%s.ghost.bin.tmp-0123456789abcdef", markers, id);
    int fd = open(ghost, O_WRONLY | O_CREAT | O_EXCL, 0644);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(sp_blobs_sweep_staging(b, SP_BLOB_STALE_MIN_MS, &removed, &err), 0);
    assert_int_equal(access(ghost, F_OK), 0);
    age_file(ghost, SP_BLOB_STALE_MIN_MS / 1000 + 1);
    assert_int_equal(sp_blobs_sweep_staging(b, SP_BLOB_STALE_MIN_MS, &removed, &err), 0);
    assert_int_equal(removed, 0);
    assert_int_not_equal(access(ghost, F_OK), 0);

    /* The live writer commits as ever, and takes its marker along. */
    assert_int_equal(sp_blob_commit(live, false, NULL, &err), 0);
    assert_int_equal(count_files(markers), 0);
    assert_int_equal(count_files(dir), 1);
    sp_blobs_close(b);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    assert_int_equal(system(cmd), 0);
}

/* ---- fetch against a loopback HTTP server -------------------------------------------- */

static pid_t httpd_pid;
static int httpd_in = -1;
static int httpd_port;
static sp_blobs *fetch_blobs;
static char fetch_dir[64];

static int fetch_setup(void **state)
{
    (void)state;
    int in[2], out[2];
    if (pipe(in) < 0 || pipe(out) < 0)
        return -1;
    httpd_pid = fork();
    if (httpd_pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[1]);
        close(out[0]);
        execlp("python3", "python3", "tests/support/httpd.py", (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    httpd_in = in[1];
    FILE *f = fdopen(out[0], "r");
    if (f == NULL || fscanf(f, "%d", &httpd_port) != 1)
        return -1;
    fclose(f);
    snprintf(fetch_dir, sizeof fetch_dir, "/tmp/spool-test-fetch-XXXXXX");
    if (mkdtemp(fetch_dir) == NULL)
        return -1;
    sp_err err;
    fetch_blobs = sp_blobs_open_at(fetch_dir, &err);
    return fetch_blobs ? 0 : -1;
}

static int fetch_teardown(void **state)
{
    (void)state;
    close(httpd_in); /* the server exits when its stdin closes */
    waitpid(httpd_pid, NULL, 0);
    sp_blobs_close(fetch_blobs);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", fetch_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int do_fetch(const char *path, const sp_fetch_opts *o, int64_t *bytes, sp_err *err)
{
    char url[256], id[SP_ID_LEN + 1];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", httpd_port, path);
    sp_id_new(id);
    char ct[128];
    int rc = sp_fetch_to_blob(fetch_blobs, id, "source", url, o, bytes, ct, err);
    int fd;
    int64_t size;
    sp_err e2;
    int exists = sp_blob_open_read(fetch_blobs, id, "source", 0, &fd, &size, &e2) == 0;
    if (exists)
        close(fd);
    /* A blob exists exactly when the fetch succeeded. */
    assert_int_equal(exists, rc == 0);
    if (rc == 0)
        assert_int_equal(size, *bytes);
    return rc;
}

static void test_fetch_downloads_and_classifies_failures(void **state)
{
    (void)state;
    sp_err err;
    int64_t bytes = 0;
    sp_outbound *loopback = sp_outbound_new("127.0.0.1", &err); /* the test server's */
    assert_non_null(loopback);
    sp_fetch_opts o = {1 << 20, 2000, 5000, 3, NULL, NULL, NULL, loopback, NULL};
    assert_int_equal(do_fetch("/bytes/300000", &o, &bytes, &err), 0);
    assert_int_equal(bytes, 300000);
    assert_int_equal(do_fetch("/chunked/200000", &o, &bytes, &err), 0);
    assert_int_equal(bytes, 200000);
    assert_int_equal(do_fetch("/redirect/3", &o, &bytes, &err), 0);
    assert_int_equal(bytes, 10);
    assert_int_equal(do_fetch("/redirect/4", &o, &bytes, &err), SP_EINVAL);
    if (strstr(err.msg, "redirects") == NULL)
        fail_msg("unexpected message: %s", err.msg);
    assert_int_equal(do_fetch("/to-ftp", &o, &bytes, &err), SP_EINVAL);
    assert_int_equal(do_fetch("/bytes/2000000", &o, &bytes, &err), SP_ETOOBIG);
    assert_int_equal(do_fetch("/chunked/2000000", &o, &bytes, &err), SP_ETOOBIG);
    assert_int_equal(do_fetch("/status/404", &o, &bytes, &err), SP_ENOTFOUND);
    assert_non_null(strstr(err.msg, "404"));
    assert_int_equal(do_fetch("/status/403", &o, &bytes, &err), SP_EUNSUPPORTED);
    assert_int_equal(do_fetch("/status/503", &o, &bytes, &err), SP_EFETCH);
    assert_int_equal(do_fetch("/status/429", &o, &bytes, &err), SP_EFETCH);
    o.total_timeout_ms = 1500;
    int64_t t0 = sp_test_ms();
    assert_int_equal(do_fetch("/slow", &o, &bytes, &err), SP_ETIMEDOUT);
    assert_true(sp_test_ms() - t0 < 4000);
    sp_flag stop = 0;
    o.total_timeout_ms = 60000;
    o.stop = &stop;
    pid_t p = fork();
    if (p == 0)
        _exit(0);
    waitpid(p, NULL, 0);
    stop = 1; /* already asked to stop: the fetch gives up at its first progress call */
    assert_int_equal(do_fetch("/slow", &o, &bytes, &err), SP_ECANCELLED);
    char closed[64];
    snprintf(closed, sizeof closed, "http://127.0.0.1:%d/x", sp_test_free_port());
    char id[SP_ID_LEN + 1];
    sp_id_new(id);
    o.stop = NULL;
    assert_int_equal(sp_fetch_to_blob(fetch_blobs, id, "source", closed, &o, &bytes, NULL, &err),
                     SP_EUNREACHABLE);
    assert_int_equal(sp_fetch_to_blob(fetch_blobs, id, "source", "file:///etc/passwd", &o,
                                      &bytes, NULL, &err),
                     SP_EINVAL);
    assert_false(sp_fetch_url_valid("ftp://x/y"));
    assert_false(sp_fetch_url_valid("http://"));
    assert_false(sp_fetch_url_valid("http://a b/"));
    assert_true(sp_fetch_url_valid("https://example.com/v.mp4?x=1"));
    sp_outbound_free(loopback);
}

/* A refused address, a closed port, TLS spoken to a plain HTTP port, a redirect to a
 * refused address: one error, one message, whatever the port's state; only the detail
 * meant for the operator's log tells them apart. */
static void test_fetch_errors_before_an_answer_are_uniform(void **state)
{
    (void)state;
    sp_err err, detail;
    int64_t bytes = 0;
    sp_outbound *loopback = sp_outbound_new("127.0.0.1", &err);
    sp_fetch_opts strict = {.max_redirects = 3, .connect_timeout_ms = 2000,
                            .total_timeout_ms = 5000, .detail = &detail};
    sp_fetch_opts allowed = strict;
    allowed.outbound = loopback;
    char open_url[96], closed_url[96], tls_url[96], redirect_url[128];
    snprintf(open_url, sizeof open_url, "http://127.0.0.1:%d/bytes/10", httpd_port);
    snprintf(closed_url, sizeof closed_url, "http://127.0.0.1:%d/bytes/10", sp_test_free_port());
    snprintf(tls_url, sizeof tls_url, "https://127.0.0.1:%d/bytes/10", httpd_port);
    snprintf(redirect_url, sizeof redirect_url, "http://127.0.0.1:%d/redirect-to/127.0.0.2:%d",
             httpd_port, httpd_port);
    const struct {
        const char *url;
        const sp_fetch_opts *o;
        const char *detail;
    } cases[] = {
        {open_url, &strict, "loopback"},    {closed_url, &strict, "loopback"},
        {closed_url, &allowed, "connect"},  {tls_url, &allowed, "SSL"},
        {redirect_url, &allowed, "127.0.0.2 is a loopback address"},
        {"http://[::ffff:127.0.0.1]:1/", &strict, "loopback"},
        {"http://2130706433:1/", &strict, "loopback"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char id[SP_ID_LEN + 1];
        sp_id_new(id);
        sp_err_clear(&err);
        int rc = sp_fetch_to_blob(fetch_blobs, id, "source", cases[i].url, cases[i].o, &bytes,
                                  NULL, &err);
        if (rc != SP_EUNREACHABLE || strcmp(err.msg, SP_OUTBOUND_UNREACHABLE_MSG) != 0)
            fail_msg("%s: expected the uniform error, got %d '%s'", cases[i].url, rc, err.msg);
        if (strstr(detail.msg, cases[i].detail) == NULL)
            fail_msg("%s: the detail '%s' lacks '%s'", cases[i].url, detail.msg,
                     cases[i].detail);
    }
    /* The same server, allowed, answers; its HTTP errors keep their own messages. */
    char id[SP_ID_LEN + 1];
    sp_id_new(id);
    assert_int_equal(sp_fetch_to_blob(fetch_blobs, id, "source", open_url, &allowed, &bytes, NULL,
                                      &err),
                     0);
    snprintf(open_url, sizeof open_url, "http://127.0.0.1:%d/status/503", httpd_port);
    sp_id_new(id);
    assert_int_equal(sp_fetch_to_blob(fetch_blobs, id, "source", open_url, &allowed, &bytes, NULL,
                                      &err),
                     SP_EFETCH);
    assert_non_null(strstr(err.msg, "HTTP 503"));
    sp_outbound_free(loopback);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids_are_valid_unique_and_time_sortable),
        cmocka_unit_test(test_buf_grows_and_respects_its_maximum),
        cmocka_unit_test(test_allocation_failure_is_an_error_not_a_crash),
        cmocka_unit_test(test_ticker_calls_periodically_and_stops_at_once),
        cmocka_unit_test(test_redis_url_parsing),
        cmocka_unit_test(test_options_defaults_env_and_flags),
        cmocka_unit_test(test_routes_and_retry_policies),
        cmocka_unit_test(test_job_fields_and_states),
        cmocka_unit_test(test_blob_names_allow_folders_never_escapes),
        cmocka_unit_test(test_blob_store_keeps_folder_names),
        cmocka_unit_test(test_blob_store_commits_atomically),
        cmocka_unit_test(test_blob_sweep_takes_dead_writers_staging_files_only),
        cmocka_unit_test_setup_teardown(test_fetch_downloads_and_classifies_failures,
                                        fetch_setup, fetch_teardown),
        cmocka_unit_test_setup_teardown(test_fetch_errors_before_an_answer_are_uniform,
                                        fetch_setup, fetch_teardown),
    };
    return cmocka_run_group_tests_name("common", tests, NULL, NULL);
}
