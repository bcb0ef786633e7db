#!/usr/bin/env python3
"""Presigned S3 URLs made by common/s3sign.c (through tests' s3presign tool) against
the S3 test endpoint (harness.S3: s3rver behind tests/support/s3proxy.py, which checks
each URL with botocore's own SigV4 code): objects put by boto3 come back over plain
HTTP (urllib) for keys that need encoding, both addressing styles, HEAD/PUT/DELETE,
response overrides and session tokens; a wrong secret, an expired URL and every kind
of tampering are refused (403) and reach nothing. Also that tests/unit/s3sign_vectors.h
is still what botocore makes."""
import calendar
import os
import random
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT, S3, S3PROXY_PYTHON, TEST_BIN, Refusals, Suite, eq  # noqa: E402

suite = Suite("s3_presign")
TOOL = os.path.join(TEST_BIN, "s3presign")
# No proxy from the environment: the URLs go straight to the test endpoint.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def presign(s3, key, *args, creds=None, endpoint=None, check=True):
    """The URL s3presign makes for key (str, or bytes as they are), path style with s3's
    bucket, region and keys unless creds=(access key, secret[, token]) or args say
    otherwise; or with check=False (returncode, stdout, stderr)."""
    ak, sk, *tok = creds or (s3.access_key, s3.secret_key)
    argv = [TOOL, "--endpoint", endpoint or s3.endpoint, "--bucket", s3.bucket, "--key", key,
            "--region", s3.region, "--access-key", ak, "--secret-key", sk,
            *(a if isinstance(a, bytes) else str(a) for a in args)]
    if tok:
        argv += ["--token", tok[0]]
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    out, err = p.stdout.decode().strip(), p.stderr.decode().strip()
    if not check:
        return p.returncode, out, err
    if p.returncode != 0:
        raise AssertionError(f"s3presign {key!r} {args}: {err}")
    return out


def fetch(url, method="GET", data=None, host=None):
    """(status, {header: value} lower-case names, body) of url over plain HTTP. host:
    connect to 127.0.0.1 (the proxy) and send this Host header (virtual-host style,
    where BUCKET.localhost need not resolve)."""
    headers = {}
    if host:
        u = urllib.parse.urlsplit(url)
        headers["Host"] = u.netloc
        url = urllib.parse.urlunsplit((u.scheme, "127.0.0.1:" + str(u.port), u.path, u.query, ""))
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with OPENER.open(req, timeout=30) as r:
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def code_of(xml):
    s = xml.decode(errors="replace")
    return s.split("<Code>", 1)[1].split("</Code>", 1)[0] if "<Code>" in s else s[:200]


def message_of(xml):
    s = xml.decode(errors="replace")
    return s.split("<Message>", 1)[1].split("</Message>", 1)[0] if "<Message>" in s else ""


def refused(url, code, status=403, method="GET", data=None, host=None, message=None):
    st, _, body = fetch(url, method, data, host)
    eq((st, code_of(body)), (status, code), f"{method} {url}")
    if message:
        assert message in message_of(body), f"{message!r} not in {body!r}"


def with_query(url, change):
    """url with its query's raw name=value pieces passed through change(list)."""
    base, _, query = url.partition("?")
    return base + "?" + "&".join(change(query.split("&")))


def replace_param(name, value):
    return lambda ps: [f"{name}={value}" if p.split("=", 1)[0] == name else p for p in ps]


# ---- the URLs work -----------------------------------------------------------------------

@suite.test
def test_vectors_are_what_botocore_makes(s3):
    p = subprocess.run([S3PROXY_PYTHON, "-I", os.path.join(ROOT, "tests/support/s3sign_vectors.py"),
                        "--check"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    eq(p.returncode, 0, p.stdout.decode())


# s3rver answers 404 to a key with an empty segment ("/a", "a//b"): the unit tests check
# those URLs against botocore's instead.
KEYS = ["plain.txt", "dir/sub dir/a b.txt", "p+q=r&s~t.bin", "utf8/été/ファイル €.txt",
        "odd/%2F?#[]@!$'()*,;:.txt", "deep/a/b/c/d/e/f.txt", "trailing/", "tab\tand\x7fdel",
        "...", "a/.b/..c", "a%zz\\|<>\"^`{}", "nb\u00a0sp😀"]


@suite.test
def test_presigned_get_returns_the_object(s3):
    c = s3.client()
    with Refusals(s3):
        for i, key in enumerate(KEYS):
            body = f"object {i}: {key}".encode() * (i + 1)
            c.put_object(Bucket=s3.bucket, Key=key, Body=body)
            url = presign(s3, key)
            eq(fetch(url)[::2], (200, body), key)


@suite.test
def test_presigned_get_virtual_host_style(s3):
    c = s3.client()
    key = "vh/a b+c=d.txt"
    c.put_object(Bucket=s3.bucket, Key=key, Body=b"virtual host")
    port = s3.endpoint.rsplit(":", 1)[1]
    with Refusals(s3):
        url = presign(s3, key, "--vhost", endpoint=s3.vhost_endpoint + "/")
        assert url.startswith(f"http://{s3.bucket}.localhost:{port}/vh/a%20b%2Bc%3Dd.txt?"), url
        eq(fetch(url, host=True)[::2], (200, b"virtual host"))
    # The same URL with the bucket in the path instead is another request: refused.
    with Refusals(s3, ["SignatureDoesNotMatch"]):
        u = urllib.parse.urlsplit(url)
        refused(f"{s3.endpoint}/{s3.bucket}{u.path}?{u.query}", "SignatureDoesNotMatch")


@suite.test
def test_presigned_head_put_delete(s3):
    c = s3.client()
    key = "methods/up load+1.bin"
    data = os.urandom(100000)
    with Refusals(s3):
        eq(fetch(presign(s3, key, "--method", "PUT"), "PUT", data)[0], 200, "presigned PUT")
        eq(c.get_object(Bucket=s3.bucket, Key=key)["Body"].read(), data)
        st, h, body = fetch(presign(s3, key, "--method", "HEAD"), "HEAD")
        eq((st, h.get("content-length"), body), (200, str(len(data)), b""), "presigned HEAD")
        eq(fetch(presign(s3, key, "--method", "DELETE"), "DELETE")[0], 204, "presigned DELETE")
    eq(s3.objects("methods/"), {})


@suite.test
def test_response_overrides_reach_the_client(s3):
    c = s3.client()
    key = "over/report 2024.csv"
    c.put_object(Bucket=s3.bucket, Key=key, Body=b"a,b\n1,2\n", ContentType="text/csv")
    disposition = 'attachment; filename="report 2024.csv"; filename*=UTF-8\'\'r%C3%A9port.csv'
    with Refusals(s3):
        url = presign(s3, key, "--disposition", disposition, "--content-type", "application/x-spool")
        st, h, body = fetch(url)
        eq((st, h.get("content-disposition"), h.get("content-type"), body),
           (200, disposition, "application/x-spool", b"a,b\n1,2\n"))
        st, h, _ = fetch(presign(s3, key, "--method", "HEAD", "--content-type", "text/x-head"), "HEAD")
        eq((st, h.get("content-type")), (200, "text/x-head"))
        eq(c.head_object(Bucket=s3.bucket, Key=key)["ContentType"], "text/csv", "the object's own type")
    with Refusals(s3, ["SignatureDoesNotMatch"]):
        refused(with_query(url, replace_param("response-content-type", "text%2Fhtml")), "SignatureDoesNotMatch")


@suite.test
def test_session_token(s3):
    c = s3.client()
    c.put_object(Bucket=s3.bucket, Key="tok/t.txt", Body=b"token")
    creds = (s3.session_access_key, s3.session_secret_key, s3.session_token)
    with Refusals(s3):
        url = presign(s3, "tok/t.txt", creds=creds)
        assert "&X-Amz-Security-Token=" in url, url
        eq(fetch(url)[::2], (200, b"token"))
        # boto3 with the same temporary credentials passes too.
        tc = s3.client(access_key=creds[0], secret_key=creds[1], session_token=creds[2])
        eq(tc.get_object(Bucket=s3.bucket, Key="tok/t.txt")["Body"].read(), b"token")
    with Refusals(s3, ["InvalidToken", "InvalidAccessKeyId", "InvalidToken"]):
        refused(presign(s3, "tok/t.txt", creds=creds[:2] + ("not-the-token",)), "InvalidToken")
        refused(presign(s3, "tok/t.txt", creds=creds[:2]), "InvalidAccessKeyId")
        refused(presign(s3, "tok/t.txt", creds=(s3.access_key, s3.secret_key, "a-token")), "InvalidToken")


@suite.test
def test_random_keys_round_trip(s3):
    seed = int(os.environ.get("SPOOL_PRESIGN_SEED", time.time()))
    print(f"# SPOOL_PRESIGN_SEED={seed}", flush=True)
    rnd = random.Random(seed)
    alphabet = list("abcXYZ019-_.~ +=&%?#;:@!$'()*,[]{}<>|\\^`\"") + ["é", "€", "ß", "ファ", "😀", "\u00a0"]
    c = s3.client()
    with Refusals(s3):
        for i in range(40):
            segs = ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(1, 12))) for _ in range(rnd.randint(1, 3))]
            key = f"rnd/{i}/" + "/".join(s if s not in (".", "..") else s + "x" for s in segs)
            body = key.encode() + os.urandom(16)
            c.put_object(Bucket=s3.bucket, Key=key, Body=body)
            eq(fetch(presign(s3, key, "--expires", rnd.randint(1, 604800) if i % 2 else 604800))[::2],
               (200, body), f"key {key!r} (seed {seed})")


# ---- and only for what was signed ----------------------------------------------------------

@suite.test
def test_wrong_secret_or_key_or_region_refused(s3):
    s3.client().put_object(Bucket=s3.bucket, Key="wrong/x.txt", Body=b"x")
    with Refusals(s3, ["SignatureDoesNotMatch", "InvalidAccessKeyId", "AuthorizationHeaderMalformed"]):
        refused(presign(s3, "wrong/x.txt", creds=(s3.access_key, s3.secret_key + "x")), "SignatureDoesNotMatch")
        refused(presign(s3, "wrong/x.txt", creds=("AKIDNOSUCHKEY0000000", s3.secret_key)), "InvalidAccessKeyId")
        refused(presign(s3, "wrong/x.txt", "--region", "eu-west-1"), "AuthorizationHeaderMalformed", 400)


@suite.test
def test_expired_and_early_urls_refused(s3):
    s3.client().put_object(Bucket=s3.bucket, Key="time/x.txt", Body=b"x")
    now = int(time.time())
    with Refusals(s3, ["AccessDenied", "AccessDenied"]):
        refused(presign(s3, "time/x.txt", "--now", now - 120, "--expires", 60), "AccessDenied",
                message="Request has expired")
        refused(presign(s3, "time/x.txt", "--now", now + 3600), "AccessDenied", message="Request is not yet valid")
    with Refusals(s3):
        # Signed two minutes ago for five: still good; a week from a minute ago: good.
        eq(fetch(presign(s3, "time/x.txt", "--now", now - 120, "--expires", 300))[0], 200)
        eq(fetch(presign(s3, "time/x.txt", "--now", now - 60, "--expires", 604800))[0], 200)
    # In real time: good at once, refused once its two seconds have passed.
    signed = int(time.time())
    url = presign(s3, "time/x.txt", "--now", signed, "--expires", 2)
    with Refusals(s3, ["AccessDenied"]):
        eq(fetch(url)[0], 200)
        time.sleep(max(0.0, signed + 3.2 - time.time()))
        refused(url, "AccessDenied", message="Request has expired")


@suite.test
def test_tampered_urls_refused(s3):
    c = s3.client()
    c.put_object(Bucket=s3.bucket, Key="t/a.txt", Body=b"object a")
    c.put_object(Bucket=s3.bucket, Key="t/b.txt", Body=b"object b")
    url = presign(s3, "t/a.txt")
    with Refusals(s3):
        eq(fetch(url)[::2], (200, b"object a"))
    base, _, query = url.partition("?")
    params = dict(p.split("=", 1) for p in query.split("&"))
    sig = params["X-Amz-Signature"]
    signed_at = calendar.timegm(time.strptime(params["X-Amz-Date"], "%Y%m%dT%H%M%SZ"))
    earlier = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(signed_at - 1))
    bad = [
        ("another key", url.replace("/t/a.txt?", "/t/b.txt?"), "GET", 403, "SignatureDoesNotMatch"),
        ("key case", url.replace("/t/a.txt?", "/t/A.txt?"), "GET", 403, "SignatureDoesNotMatch"),
        ("longer life", with_query(url, replace_param("X-Amz-Expires", "3601")), "GET", 403,
         "SignatureDoesNotMatch"),
        ("a second earlier", with_query(url, replace_param("X-Amz-Date", earlier)), "GET", 403,
         "SignatureDoesNotMatch"),
        ("signature", with_query(url, replace_param("X-Amz-Signature", sig[:-1] + ("0" if sig[-1] != "0" else "1"))),
         "GET", 403, "SignatureDoesNotMatch"),
        ("added parameter", url + "&response-content-type=text%2Fhtml", "GET", 403, "SignatureDoesNotMatch"),
        ("added versionId", url + "&versionId=1", "GET", 403, "SignatureDoesNotMatch"),
        ("session token added", url + "&X-Amz-Security-Token=t", "GET", 403, "InvalidToken"),
        ("GET's URL used to PUT", url, "PUT", 403, "SignatureDoesNotMatch"),
        ("GET's URL used to DELETE", url, "DELETE", 403, "SignatureDoesNotMatch"),
        ("over a week", with_query(url, replace_param("X-Amz-Expires", "604801")), "GET", 400,
         "AuthorizationQueryParametersError"),
        ("negative life", with_query(url, replace_param("X-Amz-Expires", "-1")), "GET", 400,
         "AuthorizationQueryParametersError"),
        ("no signature", with_query(url, lambda ps: [p for p in ps if not p.startswith("X-Amz-Signature=")]),
         "GET", 400, "AuthorizationQueryParametersError"),
        ("credential twice", with_query(url, lambda ps: ps + [p for p in ps if p.startswith("X-Amz-Credential=")]),
         "GET", 400, "AuthorizationQueryParametersError"),
    ]
    for what, u, method, status, code in bad:
        with Refusals(s3, [code]):
            st, _, body = fetch(u, method, b"overwritten" if method == "PUT" else None)
            eq((st, code_of(body)), (status, code), what)
    # Another Host: the vhost form of the same bucket and key.
    port = s3.endpoint.rsplit(":", 1)[1]
    with Refusals(s3, ["SignatureDoesNotMatch"]):
        refused(f"http://{s3.bucket}.localhost:{port}/t/a.txt?{query}", "SignatureDoesNotMatch", host=True)
    eq((c.get_object(Bucket=s3.bucket, Key="t/a.txt")["Body"].read(),
        c.get_object(Bucket=s3.bucket, Key="t/b.txt")["Body"].read()), (b"object a", b"object b"),
       "nothing refused reached s3rver")


@suite.test
def test_tool_refuses_what_s3sign_refuses(s3):
    now = "1709251199"
    for args, code, what in [(["--expires", "0"], "invalid", "expires_s"),
                             (["--expires", "604801"], "invalid", "expires_s"),
                             (["--method", "get"], "invalid", "method")]:
        rc, out, err = presign(s3, "k", "--now", now, *args, check=False)
        eq((rc, out), (1, ""), err)
        assert f"s3presign: {code}: " in err and what in err, err
    for key in ("", "a/../b", b"not \xff UTF-8"):
        rc, out, err = presign(s3, key, check=False)
        eq((rc, out), (1, ""), f"key {key!r}")
        assert "invalid" in err and "key" in err, err
    url = presign(s3, "k", "--now", now)
    n = len(url)
    eq(presign(s3, "k", "--now", now, "--cap", n + 1), url, "exactly enough room")
    rc, out, err = presign(s3, "k", "--now", now, "--cap", n, check=False)
    eq((rc, out), (1, ""), err)
    assert "too_large" in err, err


def setup():
    return S3()


def teardown(s3):
    s3.destroy()


if __name__ == "__main__":
    sys.exit(suite.run(setup, teardown))
