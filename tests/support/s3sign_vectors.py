#!/usr/bin/python3
"""s3sign_vectors: the expected presigned URLs and URI encodings that
tests/unit/test_s3sign.c checks common/s3sign.c against, made by botocore (an
independent SigV4 implementation) with a fixed clock, written as a C header.

Run with Debian's python3 and its python3-botocore (not a python3 from PATH, whose
botocore may differ):

    /usr/bin/python3 -I tests/support/s3sign_vectors.py > tests/unit/s3sign_vectors.h
    /usr/bin/python3 -I tests/support/s3sign_vectors.py --check   # its vectors are current

botocore puts a presigned URL's operation parameters (response-*) first and
X-Amz-Security-Token after X-Amz-SignedHeaders; S3 takes the parameters in any order,
and spool writes them in canonical order (sorted by name), X-Amz-Signature last. So
the query of botocore's URL is put in that order here, each parameter exactly as
botocore encoded it. Everything else (scheme, host, path, each parameter's encoding,
the signature) is botocore's, byte for byte.
"""
import contextlib
import datetime
import os
import sys
from unittest import mock

import botocore
import botocore.session
from botocore.config import Config
from botocore.auth import S3SigV4QueryAuth
from botocore.utils import percent_encode

# botocore's two SigV4 presigners: its own in Python, and AWS's C one (aws-c-auth,
# through python3-awscrt, in deps/debian.txt). Each vector must come out the same from
# both. The clocks they read are stopped at the case's time.
try:
    from botocore.crt.auth import CrtS3SigV4QueryAuth
except ImportError:
    raise SystemExit("s3sign_vectors.py: botocore cannot load awscrt: install python3-awscrt "
                     "(deps/debian.txt) and run it with /usr/bin/python3 -I")
SIGNERS = {"botocore": S3SigV4QueryAuth, "awscrt": CrtS3SigV4QueryAuth}
CLOCKS = ["botocore.auth", "botocore.crt.auth"]

HERE = os.path.dirname(os.path.abspath(__file__))
SESSION = botocore.session.get_session()
HEADER = os.path.join(os.path.dirname(HERE), "unit", "s3sign_vectors.h")

AK, SK = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOKEN = ("IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD+abc/def="
         "+ghi/jkl==")
T2013 = 1369353600          # 2013-05-24T00:00:00Z (AWS's documented example)
T2024 = 1709251199          # 2024-02-29T23:59:59Z (a leap day's last second)
T2038 = 2147483648          # 2038-01-19T03:14:08Z (past a 32-bit time_t)
T1999 = 946684799           # 1999-12-31T23:59:59Z

# name, method, endpoint, path_style, bucket, key, region, access key, secret, token,
# expires, now, response-content-disposition, response-content-type
CASES = [
    ("aws_doc_example", "GET", "https://s3.amazonaws.com", False, "examplebucket", "test.txt",
     "us-east-1", AK, SK, None, 86400, T2013, None, None),
    ("path_style_loopback_port", "GET", "http://127.0.0.1:9000", True, "spool",
     "jobs/0123/out put+1=2&x~y.mp4", "us-east-1", "AKIDSPOOLTEST0000001",
     "spool/test+secret=0123456789abcdefghijkl", None, 3600, T2024, None, None),
    ("vhost_custom_endpoint_port", "GET", "http://minio.example:9000", False, "my-bucket",
     "a/b/c.txt", "us-east-1", AK, SK, None, 900, T2024, None, None),
    ("vhost_https_utf8_key_token", "GET", "https://s3.eu-west-1.amazonaws.com", False,
     "spool-eu", "vidéos/été 2024/ファイル €.pdf", "eu-west-1", AK, SK, TOKEN, 600, T2038,
     None, None),
    ("path_style_trailing_slash", "GET", "https://s3.eu-central-1.amazonaws.com/", True,
     "spool-de", "x/y z", "eu-central-1", AK, SK, None, 60, T1999, None, None),
    ("head", "HEAD", "https://s3.us-west-2.amazonaws.com", False, "spool-west",
     "outputs/page 1.png", "us-west-2", AK, SK, None, 120, T2024, None, None),
    ("put_with_token", "PUT", "http://127.0.0.1:9000", True, "spool", "uploads/in+put=1.bin",
     "us-east-1", "AKIDSPOOLTEST0000001", "spool/test+secret=0123456789abcdefghijkl", TOKEN,
     300, T2024, None, None),
    ("response_overrides", "GET", "https://s3.amazonaws.com", False, "examplebucket",
     "reports/report 2024.pdf", "us-east-1", AK, SK, None, 3600, T2013,
     'attachment; filename="report 2024.pdf"', "application/pdf"),
    ("response_overrides_utf8_token", "GET", "http://127.0.0.1:9000", True, "spool",
     "r/ü.csv", "us-east-1", AK, SK, TOKEN, 3600, T2024,
     "attachment; filename*=UTF-8''%C3%BC.csv; x=é", "text/csv; charset=utf-8"),
    ("expires_1", "GET", "http://127.0.0.1:9000", True, "spool", "k", "us-east-1", AK, SK,
     None, 1, T2024, None, None),
    ("expires_604800", "GET", "http://127.0.0.1:9000", True, "spool", "k", "us-east-1", AK, SK,
     None, 604800, T2024, None, None),
    ("ipv6_loopback", "GET", "http://[::1]:9000", True, "spool", "v6/key.txt", "us-east-1", AK,
     SK, None, 3600, T2024, None, None),
    ("odd_key_bytes", "GET", "http://127.0.0.1:9000", True, "spool",
     "/lead//double/a%2Fb?q=1#frag;semi:colon,comma!*'()[]@$ tab\there", "us-east-1", AK, SK,
     None, 3600, T2024, None, None),
    ("legacy_path_bucket", "GET", "https://s3.amazonaws.com", True, "Legacy_Bucket", "k.txt",
     "us-east-1", AK, SK, None, 3600, T2024, None, None),
    ("delete_other_region", "DELETE", "https://storage.example.net:8443", True, "bkt",
     "x/y/z", "auto", "GK0123456789", "secret with spaces & symbols +/=", None, 3600, T2024,
     None, None),
]

# (input bytes, keep_slash): what botocore's percent_encode makes of them (safe '-._~',
# and '/' too when keep_slash, as botocore encodes an S3 key in a path).
ENCODINGS = [
    (b"", False), (b"", True),
    (b"AZaz09-_.~", False),
    (b"a b+c=d&e/f", False), (b"a b+c=d&e/f", True),
    (b"%2F%", False),
    ("é€ファイル😀".encode(), True),
    (bytes(range(1, 256)), False), (bytes(range(1, 256)), True),
]


def presign(c, signer):
    """The URL botocore's client makes for case c with the given s3v4-query signer
    class, the clock stopped at the case's time, its query put in spool's order."""
    name, method, endpoint, path_style, bucket, key, region, ak, sk, token, expires, now, cd, ct = c
    client = SESSION.create_client(
        "s3", region_name=region, endpoint_url=endpoint, aws_access_key_id=ak,
        aws_secret_access_key=sk, aws_session_token=token,
        config=Config(signature_version="s3v4",
                      s3={"addressing_style": "path" if path_style else "virtual"}))
    op = {"GET": "get_object", "HEAD": "head_object", "PUT": "put_object",
          "DELETE": "delete_object"}[method]
    params = {"Bucket": bucket, "Key": key}
    if cd:
        params["ResponseContentDisposition"] = cd
    if ct:
        params["ResponseContentType"] = ct
    at = datetime.datetime.fromtimestamp(now, datetime.timezone.utc).replace(tzinfo=None)
    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.dict(botocore.auth.AUTH_TYPE_MAPS, {"s3v4-query": signer}))
        for module in CLOCKS:
            dt = stack.enter_context(mock.patch(module + ".datetime"))
            dt.datetime.utcnow.return_value = at
            dt.timezone = datetime.timezone
        url = client.generate_presigned_url(op, Params=params, ExpiresIn=expires, HttpMethod=method)
    base, _, query = url.partition("?")
    pieces = query.split("&")
    sig = [p for p in pieces if p.startswith("X-Amz-Signature=")]
    rest = sorted((p for p in pieces if not p.startswith("X-Amz-Signature=")),
                  key=lambda p: p.split("=", 1)[0])
    assert len(sig) == 1, url
    return base + "?" + "&".join(rest + sig)


def botocore_url(c):
    """botocore's URL for case c, the same from both of its signers."""
    urls = {name: presign(c, cls) for name, cls in SIGNERS.items()}
    if len(set(urls.values())) != 1:
        raise SystemExit(f"botocore's signers disagree on {c[0]}: {urls}")
    return urls[next(iter(SIGNERS))]


def c_str(v):
    """A C string literal for v (str: its UTF-8; bytes as they are; None: NULL). Octal
    escapes (at most three digits, so the next character cannot join them), and '?'
    escaped (trigraphs exist in -std=c11)."""
    if v is None:
        return "NULL"
    b = v.encode() if isinstance(v, str) else v
    out = []
    for x in b:
        ch = chr(x)
        if ch in '"\\?':
            out.append("\\" + ch)
        elif 0x20 <= x < 0x7f:
            out.append(ch)
        else:
            out.append("\\%03o" % x)
    return '"' + "".join(out) + '"'


def header():
    lines = [
        f"/* s3sign_vectors.h - presigned URLs and URI encodings made by botocore {botocore.__version__}",
        f" * (signed by {' and by '.join(SIGNERS)}, which agree): what tests/unit/test_s3sign.c",
        " * expects. Generated by tests/support/s3sign_vectors.py (with /usr/bin/python3 -I);",
        " * do not edit. */",
        "",
        "struct s3sign_vector {",
        "    const char *name, *method, *endpoint;",
        "    bool path_style;",
        "    const char *bucket, *key, *region, *access_key, *secret_key, *session_token;",
        "    int64_t expires_s;",
        "    int64_t now;",
        "    const char *content_disposition, *content_type;",
        "    const char *url; /* botocore's */",
        "};",
        "",
        "static const struct s3sign_vector s3sign_vectors[] = {",
    ]
    for c in CASES:
        name, method, endpoint, path_style, bucket, key, region, ak, sk, token, expires, now, cd, ct = c
        lines.append(f"    {{{c_str(name)}, {c_str(method)}, {c_str(endpoint)}, "
                     f"{'true' if path_style else 'false'},")
        lines.append(f"     {c_str(bucket)}, {c_str(key)}, {c_str(region)},")
        lines.append(f"     {c_str(ak)}, {c_str(sk)}, {c_str(token)},")
        lines.append(f"     {expires}, {now}, {c_str(cd)}, {c_str(ct)},")
        lines.append(f"     {c_str(botocore_url(c))}}},")
    lines += [
        "};",
        "",
        "struct s3sign_encoding {",
        "    const char *in;",
        "    bool keep_slash;",
        "    const char *out; /* botocore.utils.percent_encode's */",
        "};",
        "",
        "static const struct s3sign_encoding s3sign_encodings[] = {",
    ]
    for data, keep in ENCODINGS:
        out = percent_encode(data, safe="/-._~" if keep else "-._~")
        lines.append(f"    {{{c_str(data)}, {'true' if keep else 'false'},")
        lines.append(f"     {c_str(out)}}},")
    lines += ["};", ""]
    return "\n".join(lines)


def main():
    text = header()
    if sys.argv[1:] == ["--check"]:
        body = text.split("*/", 1)[1]               # the vectors, not the versions named above them
        with open(HEADER) as f:
            if f.read().split("*/", 1)[-1] != body:
                print(f"{HEADER} is not what botocore {botocore.__version__} makes now: run "
                      "/usr/bin/python3 -I tests/support/s3sign_vectors.py > tests/unit/s3sign_vectors.h",
                      file=sys.stderr)
                return 1
        print(f"{HEADER} matches botocore {botocore.__version__}")
        return 0
    if sys.argv[1:]:
        print(__doc__, file=sys.stderr)
        return 2
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
