/* s3presign.c - common/s3sign.c from the command line, for integration tests:
 *
 *   s3presign --endpoint URL --bucket B --key K --access-key AK --secret-key SK
 *             [--method GET] [--region us-east-1] [--token T] [--expires 3600]
 *             [--now UNIX_SECONDS] [--vhost] [--disposition D] [--content-type T]
 *             [--cap BYTES]                          -> the presigned URL
 *   s3presign --encode TEXT [--keep-slash] [--cap BYTES]  -> sp_s3_uri_encode(TEXT)
 *
 * Path style unless --vhost; now is the current time unless --now. Exit status 0, or
 * 1 with "s3presign: CODE_NAME: message" on stderr (2 for a bad command line). */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "s3sign.h"
#include "spool/alloc.h"
#include "spool/err.h"

static int usage(void)
{
    fprintf(stderr, "usage: s3presign --endpoint URL --bucket B --key K --access-key AK "
                    "--secret-key SK [--method M] [--region R] [--token T] [--expires S] "
                    "[--now T] [--vhost] [--disposition D] [--content-type T] [--cap N]\n"
                    "       s3presign --encode TEXT [--keep-slash] [--cap N]\n");
    return 2;
}

static int number(const char *s, long long *out)
{
    char *end;
    *out = strtoll(s, &end, 10);
    return *s != '\0' && *end == '\0' ? 0 : -1;
}

int main(int argc, char **argv)
{
    sp_s3_presign p = {.method = "GET", .region = "us-east-1", .path_style = true,
                       .expires_s = 3600, .now = time(NULL)};
    const char *encode = NULL;
    bool keep_slash = false;
    long long cap = 65536, n;
    enum { O_ENDPOINT = 256, O_BUCKET, O_KEY, O_AK, O_SK, O_METHOD, O_REGION, O_TOKEN,
           O_EXPIRES, O_NOW, O_VHOST, O_DISP, O_CTYPE, O_CAP, O_ENCODE, O_KEEP };
    static const struct option opts[] = {
        {"endpoint", required_argument, NULL, O_ENDPOINT},
        {"bucket", required_argument, NULL, O_BUCKET},
        {"key", required_argument, NULL, O_KEY},
        {"access-key", required_argument, NULL, O_AK},
        {"secret-key", required_argument, NULL, O_SK},
        {"method", required_argument, NULL, O_METHOD},
        {"region", required_argument, NULL, O_REGION},
        {"token", required_argument, NULL, O_TOKEN},
        {"expires", required_argument, NULL, O_EXPIRES},
        {"now", required_argument, NULL, O_NOW},
        {"vhost", no_argument, NULL, O_VHOST},
        {"disposition", required_argument, NULL, O_DISP},
        {"content-type", required_argument, NULL, O_CTYPE},
        {"cap", required_argument, NULL, O_CAP},
        {"encode", required_argument, NULL, O_ENCODE},
        {"keep-slash", no_argument, NULL, O_KEEP},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_ENDPOINT: p.endpoint = optarg; break;
        case O_BUCKET: p.bucket = optarg; break;
        case O_KEY: p.key = optarg; break;
        case O_AK: p.access_key = optarg; break;
        case O_SK: p.secret_key = optarg; break;
        case O_METHOD: p.method = optarg; break;
        case O_REGION: p.region = optarg; break;
        case O_TOKEN: p.session_token = optarg; break;
        case O_VHOST: p.path_style = false; break;
        case O_DISP: p.content_disposition = optarg; break;
        case O_CTYPE: p.content_type = optarg; break;
        case O_ENCODE: encode = optarg; break;
        case O_KEEP: keep_slash = true; break;
        case O_EXPIRES:
            if (number(optarg, &n) < 0)
                return usage();
            p.expires_s = n;
            break;
        case O_NOW:
            if (number(optarg, &n) < 0)
                return usage();
            p.now = (time_t)n;
            break;
        case O_CAP:
            if (number(optarg, &cap) < 0 || cap < 0 || cap > (1 << 24))
                return usage();
            break;
        default:
            return usage();
        }
    }
    if (optind != argc)
        return usage();
    char *out = sp_malloc(cap > 0 ? (size_t)cap : 1);
    if (out == NULL) {
        fprintf(stderr, "s3presign: out of memory\n");
        return 1;
    }
    sp_err err = {0};
    int rc = encode ? sp_s3_uri_encode(encode, keep_slash, out, (size_t)cap, &err)
                    : sp_s3_presign_url(&p, out, (size_t)cap, &err);
    if (rc == 0)
        printf("%s\n", out);
    else
        fprintf(stderr, "s3presign: %s: %s\n", sp_code_name(rc), err.msg);
    sp_free(out);
    return rc == 0 ? 0 : 1;
}
