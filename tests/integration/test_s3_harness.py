#!/usr/bin/env python3
"""The S3 test endpoint itself (harness.S3: s3rver behind tests/support/s3proxy.py):
boto3 and curl's --aws-sigv4 (libcurl 7.88.1, what spool links) get through it, every
kind of bad signature is refused, bodies stream through without filling the proxy's
memory, and multipart uploads can be aborted and listed. spool's own S3 tests rely on
all of this."""
import concurrent.futures
import datetime
import hashlib
import hmac
import http.client
import os
import subprocess
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import S3, Refusals, Suite, eq  # noqa: E402

suite = Suite("s3_harness")
EMPTY = hashlib.sha256(b"").hexdigest()
MiB = 1024 * 1024


# ---- a SigV4 signer of our own (not botocore's), for requests boto3 would not send ----

def q(s):
    return urllib.parse.quote(s, safe="-_.~")


def sign(s3, method, path, query=(), headers=None, payload_hash=EMPTY, secret=None, amz_date=None):
    """Headers (lower-case names) signing the request the way S3 wants it; path is
    already URI-encoded, query a list of (name, value) not yet encoded."""
    t = amz_date or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    h = {k.lower(): str(v).strip() for k, v in (headers or {}).items()}
    h.update({"host": s3.endpoint.split("//", 1)[1], "x-amz-date": t, "x-amz-content-sha256": payload_hash})
    names = sorted(h)
    creq = "\n".join([method, path, "&".join(f"{q(k)}={q(v)}" for k, v in sorted(query)),
                      "".join(f"{n}:{h[n]}\n" for n in names), ";".join(names), payload_hash])
    scope = f"{t[:8]}/{s3.region}/s3/aws4_request"
    sts = "\n".join(["AWS4-HMAC-SHA256", t, scope, hashlib.sha256(creq.encode()).hexdigest()])
    key = ("AWS4" + (secret or s3.secret_key)).encode()
    for part in (t[:8], s3.region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
    h["authorization"] = (f"AWS4-HMAC-SHA256 Credential={s3.access_key}/{scope}, "
                          f"SignedHeaders={';'.join(names)}, Signature={sig}")
    return h


def target(s3, path, query=()):
    return path + ("?" + "&".join(f"{q(k)}={q(v)}" for k, v in query) if query else "")


def connect(s3):
    host, port = s3.endpoint.split("//", 1)[1].rsplit(":", 1)
    return http.client.HTTPConnection(host, int(port), timeout=60)


def send(s3, method, path, query=(), headers=None, body=b"", conn=None, chunked=False):
    """(status, headers, body) of one request; conn: reuse this connection (kept open);
    chunked: send body (an iterable) with Transfer-Encoding: chunked."""
    c = conn or connect(s3)
    try:
        c.request(method, target(s3, path, query), body=body, headers=headers or {}, encode_chunked=chunked)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        if conn is None:
            c.close()


def code_of(xml):
    s = xml.decode(errors="replace")
    return s.split("<Code>", 1)[1].split("</Code>", 1)[0] if "<Code>" in s else s[:200]


def status_of_head(s3, key):
    try:
        s3.client().head_object(Bucket=s3.bucket, Key=key)
        return 200
    except Exception as e:  # botocore ClientError
        return e.response["ResponseMetadata"]["HTTPStatusCode"]


def curl(s3, *args, user=None):
    """curl --aws-sigv4 against the proxy: (http code, bytes uploaded, body)."""
    out = os.path.join(suite.tmp, "curl.out")
    p = subprocess.run(["curl", "-sS", "--aws-sigv4", f"aws:amz:{s3.region}:s3",
                        "--user", user or f"{s3.access_key}:{s3.secret_key}", "-o", out,
                        "-w", "%{http_code} %{size_upload}", "--max-time", "60", *args],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=90)
    if p.returncode != 0:
        raise AssertionError(f"curl {args}: {p.returncode} {p.stderr.decode()}")
    code, up = p.stdout.decode().split()
    with open(out, "rb") as f:
        return int(code), int(float(up)), f.read()


def file_of(name, data):
    path = os.path.join(suite.tmp, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


# ---- boto3 through the proxy ---------------------------------------------------------

@suite.test
def test_boto3_put_get_head_delete(s3):
    c = s3.client()
    with Refusals(s3):
        c.put_object(Bucket=s3.bucket, Key="b/one.txt", Body=b"hello spool", ContentType="text/x-spool",
                     Metadata={"job": "42"})
        h = c.head_object(Bucket=s3.bucket, Key="b/one.txt")
        eq((h["ContentLength"], h["ContentType"], h["Metadata"]), (11, "text/x-spool", {"job": "42"}))
        eq(c.get_object(Bucket=s3.bucket, Key="b/one.txt")["Body"].read(), b"hello spool")
        odd = "b/a b+c(1)~é%.txt"
        c.put_object(Bucket=s3.bucket, Key=odd, Body=b"odd")
        eq(c.get_object(Bucket=s3.bucket, Key=odd)["Body"].read(), b"odd", "key needing encoding")
        eq(c.delete_object(Bucket=s3.bucket, Key="b/one.txt")["ResponseMetadata"]["HTTPStatusCode"], 204)
        eq(status_of_head(s3, "b/one.txt"), 404)
        eq(s3.objects("b/"), {odd: 3})


@suite.test
def test_boto3_list_paginated(s3):
    c = s3.client()
    with Refusals(s3):
        for i in range(7):
            c.put_object(Bucket=s3.bucket, Key=f"list/k{i}", Body=b"x" * i)
        keys, pages, token = [], 0, None
        while True:
            kw = {"ContinuationToken": token} if token else {}
            r = c.list_objects_v2(Bucket=s3.bucket, Prefix="list/", MaxKeys=3, **kw)
            pages += 1
            keys += [o["Key"] for o in r.get("Contents", [])]
            if not r["IsTruncated"]:
                break
            token = r["NextContinuationToken"]
        eq((pages, keys), (3, [f"list/k{i}" for i in range(7)]))
        eq(s3.objects("list/"), {f"list/k{i}": i for i in range(7)})


@suite.test
def test_boto3_ranged_get(s3):
    c = s3.client()
    with Refusals(s3):
        c.put_object(Bucket=s3.bucket, Key="range.bin", Body=b"0123456789")
        r = c.get_object(Bucket=s3.bucket, Key="range.bin", Range="bytes=2-5")
        eq((r["ResponseMetadata"]["HTTPStatusCode"], r["ContentRange"], r["Body"].read()),
           (206, "bytes 2-5/10", b"2345"))
        r = c.get_object(Bucket=s3.bucket, Key="range.bin", Range="bytes=7-")
        eq((r["ContentRange"], r["Body"].read()), ("bytes 7-9/10", b"789"))


@suite.test
def test_boto3_multipart_complete(s3):
    c = s3.client()
    key = "mp/two-parts.bin"
    p1, p2 = b"A" * (5 * MiB), b"B" * (5 * MiB + 7)
    with Refusals(s3):
        uid = c.create_multipart_upload(Bucket=s3.bucket, Key=key, ContentType="video/mp4")["UploadId"]
        eq(s3.uploads_in_progress("mp/"), [(key, uid)])
        e1 = c.upload_part(Bucket=s3.bucket, Key=key, UploadId=uid, PartNumber=1, Body=p1)["ETag"]
        e2 = c.upload_part(Bucket=s3.bucket, Key=key, UploadId=uid, PartNumber=2, Body=p2)["ETag"]
        parts = c.list_parts(Bucket=s3.bucket, Key=key, UploadId=uid)["Parts"]
        eq([(p["PartNumber"], p["ETag"], p["Size"]) for p in parts], [(1, e1, len(p1)), (2, e2, len(p2))])
        c.complete_multipart_upload(Bucket=s3.bucket, Key=key, UploadId=uid, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
        h = c.head_object(Bucket=s3.bucket, Key=key)
        eq((h["ContentLength"], h["ContentType"]), (len(p1) + len(p2), "video/mp4"))
        got = hashlib.sha256(c.get_object(Bucket=s3.bucket, Key=key)["Body"].read()).hexdigest()
        eq(got, hashlib.sha256(p1 + p2).hexdigest(), "object content")
        eq(s3.uploads_in_progress(), [])


@suite.test
def test_boto3_multipart_abort_leaves_nothing(s3):
    c = s3.client()
    key = "mp/aborted.bin"
    with Refusals(s3):
        uid = c.create_multipart_upload(Bucket=s3.bucket, Key=key)["UploadId"]
        c.upload_part(Bucket=s3.bucket, Key=key, UploadId=uid, PartNumber=1, Body=b"x" * 1000)
        eq(s3.uploads_in_progress(), [(key, uid)])
        r = c.abort_multipart_upload(Bucket=s3.bucket, Key=key, UploadId=uid)
        eq(r["ResponseMetadata"]["HTTPStatusCode"], 204)
        eq(s3.uploads_in_progress(), [])
        eq(os.listdir(os.path.join(s3.data_dir, s3.bucket, "._S3rver_uploads")), [], "s3rver's stored parts")
        eq(status_of_head(s3, key), 404)
    # An aborted upload is gone for good, as on S3 (answers, not protocol faults).
    with Refusals(s3):
        for call in (lambda: c.abort_multipart_upload(Bucket=s3.bucket, Key=key, UploadId=uid),
                     lambda: c.upload_part(Bucket=s3.bucket, Key=key, UploadId=uid, PartNumber=2, Body=b"y"),
                     lambda: c.complete_multipart_upload(Bucket=s3.bucket, Key=key, UploadId=uid, MultipartUpload={
                         "Parts": [{"PartNumber": 1, "ETag": "x"}]})):
            try:
                call()
                raise AssertionError("a request on an aborted upload passed")
            except Exception as e:
                if not hasattr(e, "response"):
                    raise
                eq((e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"]),
                   (404, "NoSuchUpload"))
    eq(s3.uploads_in_progress(), [])
    eq([r["code"] for r in s3.requests_refused(auth_only=False)[-3:]], ["NoSuchUpload"] * 3)


@suite.test
def test_complete_checks_parts_like_s3(s3):
    c = s3.client()
    key = "mp/small-parts.bin"
    uid = c.create_multipart_upload(Bucket=s3.bucket, Key=key)["UploadId"]
    e1 = c.upload_part(Bucket=s3.bucket, Key=key, UploadId=uid, PartNumber=1, Body=b"tiny")["ETag"]
    e2 = c.upload_part(Bucket=s3.bucket, Key=key, UploadId=uid, PartNumber=2, Body=b"tiny2")["ETag"]
    cases = [([(1, e1), (2, e2)], "EntityTooSmall"),
             ([(2, e2), (1, e1)], "InvalidPartOrder"),
             ([(1, '"0123456789abcdef0123456789abcdef"')], "InvalidPart"),
             ([(3, e2)], "InvalidPart")]
    for parts, code in cases:
        try:
            c.complete_multipart_upload(Bucket=s3.bucket, Key=key, UploadId=uid, MultipartUpload={
                "Parts": [{"PartNumber": n, "ETag": e} for n, e in parts]})
            raise AssertionError(f"{parts} completed")
        except Exception as e:
            if not hasattr(e, "response"):
                raise
            eq((e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"]), (400, code))
    # The last part alone may be small.
    c.complete_multipart_upload(Bucket=s3.bucket, Key=key, UploadId=uid,
                                MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}]})
    eq(c.get_object(Bucket=s3.bucket, Key=key)["Body"].read(), b"tiny")
    eq(s3.uploads_in_progress(), [])


@suite.test
def test_presigned_urls_pass(s3):
    c = s3.client()
    with Refusals(s3):
        url = c.generate_presigned_url("put_object", Params={"Bucket": s3.bucket, "Key": "pre/put.txt"},
                                       ExpiresIn=300)
        u = urllib.parse.urlsplit(url)
        st, _, _ = send(s3, "PUT", u.path + "?" + u.query, body=b"presigned body")
        eq(st, 200, "presigned PUT")
        url = c.generate_presigned_url("get_object", Params={"Bucket": s3.bucket, "Key": "pre/put.txt"},
                                       ExpiresIn=300)
        u = urllib.parse.urlsplit(url)
        eq(send(s3, "GET", u.path + "?" + u.query)[::2], (200, b"presigned body"))


@suite.test
def test_session_tokens_overrides_and_presign_limits(s3):
    c = s3.client()
    c.put_object(Bucket=s3.bucket, Key="pre/tok.txt", Body=b"tok", ContentType="text/plain")
    tc = s3.client(access_key=s3.session_access_key, secret_key=s3.session_secret_key,
                   session_token=s3.session_token)
    with Refusals(s3):
        eq(tc.get_object(Bucket=s3.bucket, Key="pre/tok.txt")["Body"].read(), b"tok", "header auth + token")
        url = tc.generate_presigned_url("get_object", Params={"Bucket": s3.bucket, "Key": "pre/tok.txt"})
        u = urllib.parse.urlsplit(url)
        eq(send(s3, "GET", u.path + "?" + u.query)[::2], (200, b"tok"), "presigned + token")
        # Response overrides, signed in the header or in the query, answered by the proxy.
        r = c.get_object(Bucket=s3.bucket, Key="pre/tok.txt", ResponseContentType="text/x-over",
                         ResponseContentDisposition='attachment; filename="t.txt"')
        eq((r["ContentType"], r["ContentDisposition"]), ("text/x-over", 'attachment; filename="t.txt"'))
        url = c.generate_presigned_url("get_object", Params={"Bucket": s3.bucket, "Key": "pre/tok.txt",
                                                             "ResponseCacheControl": "no-store"})
        u = urllib.parse.urlsplit(url)
        st, h, _ = send(s3, "GET", u.path + "?" + u.query)
        eq((st, h.get("cache-control"), h.get("content-type")), (200, "no-store", "text/plain"))
    bad = [(s3.client(access_key=s3.session_access_key, secret_key=s3.session_secret_key), 403,
            "InvalidAccessKeyId"),
           (s3.client(access_key=s3.session_access_key, secret_key=s3.session_secret_key,
                      session_token="other"), 403, "InvalidToken"),
           (s3.client(session_token=s3.session_token), 403, "InvalidToken")]
    for client, status, code in bad:
        with Refusals(s3, [code]):
            try:
                client.get_object(Bucket=s3.bucket, Key="pre/tok.txt")
                raise AssertionError(f"{code} passed")
            except Exception as e:
                if not hasattr(e, "response"):
                    raise
                eq((e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"]), (status, code))
    with Refusals(s3, ["AuthorizationQueryParametersError"]):
        url = c.generate_presigned_url("get_object", Params={"Bucket": s3.bucket, "Key": "pre/tok.txt"},
                                       ExpiresIn=604801)
        u = urllib.parse.urlsplit(url)
        st, _, body = send(s3, "GET", u.path + "?" + u.query)
        eq((st, code_of(body)), (400, "AuthorizationQueryParametersError"), "a presigned URL for over a week")
    with Refusals(s3, ["InvalidArgument"]):
        path, query = f"/{s3.bucket}/pre/tok.txt", [("response-x-custom", "1")]
        st, _, body = send(s3, "GET", path, query, headers=sign(s3, "GET", path, query))
        eq((st, code_of(body)), (400, "InvalidArgument"), "an unknown response-* parameter")


# ---- curl --aws-sigv4 (libcurl 7.88.1) with the workarounds spool's client needs ---------

@suite.test
def test_curl_aws_sigv4_passes(s3):
    ep = f"{s3.endpoint}/{s3.bucket}"
    small = file_of("small.txt", b"hello from curl\n")
    sha = hashlib.sha256(b"hello from curl\n").hexdigest()
    with Refusals(s3):
        # 7.88 signs an empty payload hash and sends no x-amz-content-sha256: always send it.
        eq(curl(s3, "-T", small, "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD",
                "-H", "Content-Type: text/x-spool", f"{ep}/curl/a.txt")[0], 200)
        eq(curl(s3, "-T", small, "-H", f"x-amz-content-sha256: {sha}", f"{ep}/curl/b%20%28x%29.txt")[0], 200)
        code, _, body = curl(s3, "-H", f"x-amz-content-sha256: {EMPTY}", f"{ep}/curl/a.txt")
        eq((code, body), (200, b"hello from curl\n"))
        eq(curl(s3, "-I", "-H", f"x-amz-content-sha256: {EMPTY}", f"{ep}/curl/b%20%28x%29.txt")[0], 200)
        eq(s3.client().head_object(Bucket=s3.bucket, Key="curl/a.txt")["ContentType"], "text/x-spool")
        # Query strings are signed verbatim: every k=v, sorted, %XX upper case.
        code, _, body = curl(s3, "-X", "POST", "-H", f"x-amz-content-sha256: {EMPTY}", f"{ep}/curl/mp.bin?uploads=")
        eq(code, 200, body)
        uid = body.decode().split("<UploadId>")[1].split("<")[0]
        part = file_of("part.bin", b"P" * (5 * MiB))
        psha = hashlib.sha256(b"P" * (5 * MiB)).hexdigest()
        hdr = os.path.join(suite.tmp, "hdr.txt")
        eq(curl(s3, "-T", part, "-H", f"x-amz-content-sha256: {psha}", "--expect100-timeout", "10", "-D", hdr,
                f"{ep}/curl/mp.bin?partNumber=1&uploadId={uid}")[0], 200)
        etag = [ln.split(":", 1)[1].strip() for ln in open(hdr) if ln.lower().startswith("etag:")][0]
        xml = (f"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{etag}</ETag></Part>"
               "</CompleteMultipartUpload>").encode()
        code, _, body = curl(s3, "--data-binary", "@" + file_of("complete.xml", xml),
                             "-H", f"x-amz-content-sha256: {hashlib.sha256(xml).hexdigest()}",
                             "-H", "Content-Type: application/xml", f"{ep}/curl/mp.bin?uploadId={uid}")
        eq(code, 200, body)
        code, _, body = curl(s3, "-H", f"x-amz-content-sha256: {EMPTY}",
                             f"{ep}?list-type=2&max-keys=10&prefix=curl%2F")
        eq((code, body.count(b"<Key>")), (200, 3), body)
        eq(curl(s3, "-X", "DELETE", "-H", f"x-amz-content-sha256: {EMPTY}", f"{ep}/curl/a.txt")[0], 204)
    eq(s3.uploads_in_progress("curl/"), [])
    eq(sorted(s3.objects("curl/")), ["curl/b (x).txt", "curl/mp.bin"])


@suite.test
def test_expect_100_continue_waits_for_the_signature(s3):
    ep = f"{s3.endpoint}/{s3.bucket}"
    big = file_of("expect.bin", b"E" * (3 * MiB))        # > 1 MiB: curl sends Expect: 100-continue
    args = ["-T", big, "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", "--expect100-timeout", "10",
            f"{ep}/expect/e.bin"]
    with Refusals(s3, ["SignatureDoesNotMatch"]):
        code, sent, body = curl(s3, *args, user=f"{s3.access_key}:wrong-secret")
        eq((code, code_of(body)), (403, "SignatureDoesNotMatch"))
        assert sent < MiB, f"curl sent {sent} bytes of a refused body (it should wait for 100-continue)"
        code, sent, _ = curl(s3, *args)
        eq((code, sent), (200, 3 * MiB))
    eq(s3.objects("expect/"), {"expect/e.bin": 3 * MiB})


@suite.test
def test_chunked_body_refused_like_s3(s3):
    with Refusals(s3, ["NotImplemented"]):
        p = subprocess.run(["curl", "-sS", "--aws-sigv4", f"aws:amz:{s3.region}:s3", "--user",
                            f"{s3.access_key}:{s3.secret_key}", "-T", "-", "-H",
                            "x-amz-content-sha256: UNSIGNED-PAYLOAD", "-w", "\n%{http_code}",
                            f"{s3.endpoint}/{s3.bucket}/chunked/c.txt"],
                           input=b"streamed", stdout=subprocess.PIPE, timeout=60)
        body, code = p.stdout.rsplit(b"\n", 1)
        eq((int(code), code_of(body)), (501, "NotImplemented"))
        assert b"<Header>Transfer-Encoding</Header>" in body, body
    eq(status_of_head(s3, "chunked/c.txt"), 404)


@suite.test
def test_chunked_body_streams_when_allowed(s3):
    s3c = S3(bucket="chunky", allow_chunked=True)
    try:
        data = b"0123456789" * 100000
        c = connect(s3c)
        for name, h in (("u", "UNSIGNED-PAYLOAD"), ("h", hashlib.sha256(data).hexdigest())):
            hdrs = dict(sign(s3c, "PUT", f"/chunky/{name}", payload_hash=h), **{"transfer-encoding": "chunked"})
            st, _, body = send(s3c, "PUT", f"/chunky/{name}", headers=hdrs, chunked=True, conn=c,
                               body=(data[i:i + 65536] for i in range(0, len(data), 65536)))
            eq(st, 200, body)
        hdrs = dict(sign(s3c, "PUT", "/chunky/bad", payload_hash=EMPTY), **{"transfer-encoding": "chunked"})
        st, _, body = send(s3c, "PUT", "/chunky/bad", headers=hdrs, body=iter([b"not empty"]), conn=c,
                           chunked=True)
        eq((st, code_of(body)), (400, "XAmzContentSHA256Mismatch"))
        eq(s3c.objects(), {"u": len(data), "h": len(data)})
        eq([r["code"] for r in s3c.requests_refused()], ["XAmzContentSHA256Mismatch"])
    finally:
        s3c.destroy()


# ---- refusals ---------------------------------------------------------------------------

@suite.test
def test_bad_signatures_refused(s3):
    path = f"/{s3.bucket}/bad/x.txt"
    body = b"payload"
    good = hashlib.sha256(body).hexdigest()

    def put(headers, what, status, code, data=body):
        with Refusals(s3, [code]):
            st, _, resp = send(s3, "PUT", path, headers=headers, body=data)
            eq((st, code_of(resp)), (status, code), what)

    # A wrong secret, through boto3.
    with Refusals(s3, ["SignatureDoesNotMatch"]):
        try:
            s3.client(secret_key="not-the-secret").put_object(Bucket=s3.bucket, Key="bad/x.txt", Body=body)
            raise AssertionError("a wrong secret passed")
        except Exception as e:
            if not hasattr(e, "response"):
                raise
            eq((e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"]),
               (403, "SignatureDoesNotMatch"))
    # Our own signer is right: the same request passes (then is deleted again).
    with Refusals(s3):
        eq(send(s3, "PUT", path, headers=sign(s3, "PUT", path, payload_hash=good), body=body)[0], 200)
        eq(send(s3, "DELETE", path, headers=sign(s3, "DELETE", path))[0], 204)

    h = sign(s3, "PUT", path, payload_hash=good)
    sig = h["authorization"][-64:]
    h["authorization"] = h["authorization"][:-64] + sig[:-1] + ("0" if sig[-1] != "0" else "1")
    put(h, "tampered signature", 403, "SignatureDoesNotMatch")

    h = sign(s3, "PUT", path, payload_hash=good)
    t = datetime.datetime.strptime(h["x-amz-date"], "%Y%m%dT%H%M%SZ") + datetime.timedelta(seconds=1)
    h["x-amz-date"] = t.strftime("%Y%m%dT%H%M%SZ")
    put(h, "altered x-amz-date", 403, "SignatureDoesNotMatch")

    h = sign(s3, "PUT", path, payload_hash=good, headers={"x-amz-meta-job": "1"})
    h["x-amz-meta-owner"] = "someone"
    put(h, "unsigned x-amz-meta header", 403, "AccessDenied")

    h = sign(s3, "PUT", path, payload_hash=good, headers={"x-amz-meta-job": "1"})
    h["x-amz-meta-job"] = "2"
    put(h, "altered signed header", 403, "SignatureDoesNotMatch")

    # S3 answers a body that does not match its signed hash with 400, not 403.
    put(sign(s3, "PUT", path, payload_hash=good), "body not matching x-amz-content-sha256",
        400, "XAmzContentSHA256Mismatch", data=b"PAYLOAD")

    h = sign(s3, "PUT", path, payload_hash=good)
    del h["x-amz-content-sha256"]
    h["authorization"] = h["authorization"].replace("x-amz-content-sha256;", "")
    put(h, "no x-amz-content-sha256", 400, "InvalidRequest")

    put({"x-amz-content-sha256": good}, "anonymous", 403, "AccessDenied")

    old = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() - 3600))
    put(sign(s3, "PUT", path, payload_hash=good, amz_date=old), "an hour old", 403, "RequestTimeTooSkewed")

    # A presigned URL with its signature altered; an expired one.
    c = s3.client()
    url = c.generate_presigned_url("get_object", Params={"Bucket": s3.bucket, "Key": "range.bin"}, ExpiresIn=60)
    u = urllib.parse.urlsplit(url)
    with Refusals(s3):
        eq(send(s3, "GET", u.path + "?" + u.query)[0], 200, "presigned GET")
    qs = urllib.parse.parse_qsl(u.query)
    tampered = [(k, (v[:-1] + ("0" if v[-1] != "0" else "1")) if k == "X-Amz-Signature" else v) for k, v in qs]
    with Refusals(s3, ["SignatureDoesNotMatch", "AccessDenied"]):
        st, _, resp = send(s3, "GET", u.path, tampered)
        eq((st, code_of(resp)), (403, "SignatureDoesNotMatch"), "presigned URL with an altered signature")
        url = c.generate_presigned_url("get_object", Params={"Bucket": s3.bucket, "Key": "range.bin"}, ExpiresIn=1)
        time.sleep(1.1)
        u = urllib.parse.urlsplit(url)
        st, _, resp = send(s3, "GET", u.path + "?" + u.query)
        eq((st, code_of(resp)), (403, "AccessDenied"), "expired presigned URL")
    eq(status_of_head(s3, "bad/x.txt"), 404, "nothing refused reached s3rver")


# ---- connections and memory -------------------------------------------------------------

@suite.test
def test_keep_alive_survives_a_refusal(s3):
    c = connect(s3)
    path = f"/{s3.bucket}/range.bin"
    with Refusals(s3, ["SignatureDoesNotMatch"]):
        eq(send(s3, "GET", path, headers=sign(s3, "GET", path), conn=c)[0], 200)
        sock = c.sock
        st, _, _ = send(s3, "PUT", f"/{s3.bucket}/ka.txt", conn=c, body=b"k" * 100000,
                        headers=sign(s3, "PUT", f"/{s3.bucket}/ka.txt", payload_hash="UNSIGNED-PAYLOAD",
                                     secret="wrong"))
        eq(st, 403)
        for _ in range(20):
            eq(send(s3, "GET", path, headers=sign(s3, "GET", path), conn=c)[0], 200)
        assert c.sock is sock, "the proxy closed a keep-alive connection"
    c.close()


@suite.test
def test_many_concurrent_connections(s3):
    n = 48
    barrier = threading.Barrier(n, timeout=30)

    def one(i):
        c = connect(s3)
        try:
            path = f"/{s3.bucket}/conc/{i}"
            data = os.urandom(1000 + i)
            barrier.wait()
            st1 = send(s3, "PUT", path, headers=sign(s3, "PUT", path, payload_hash=hashlib.sha256(data).hexdigest()),
                       body=data, conn=c)[0]
            st2, _, got = send(s3, "GET", path, headers=sign(s3, "GET", path), conn=c)
            return st1, st2, got == data
        finally:
            c.close()

    with Refusals(s3), concurrent.futures.ThreadPoolExecutor(n) as pool:
        results = list(pool.map(one, range(n), timeout=60))
    eq(results, [(200, 200, True)] * n)
    eq(len(s3.objects("conc/")), n)


def rss_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


@suite.test
def test_100mib_unsigned_upload_streams_through(s3):
    size, block = 100 * MiB, os.urandom(MiB)
    path = f"/{s3.bucket}/big/100m.bin"
    before = rss_kib(s3.proxy_pid, "VmRSS")
    md5 = hashlib.md5()
    for _ in range(size // MiB):
        md5.update(block)
    with Refusals(s3):
        hdrs = dict(sign(s3, "PUT", path, payload_hash="UNSIGNED-PAYLOAD"), **{"content-length": str(size)})
        t = time.monotonic()
        st, rh, body = send(s3, "PUT", path, headers=hdrs, body=(block for _ in range(size // MiB)))
        up_secs = time.monotonic() - t
        eq(st, 200, body)
        eq(rh["etag"].strip('"'), md5.hexdigest(), "ETag of the 100 MiB object")
        # And back down, streamed as well.
        c = connect(s3)
        t = time.monotonic()
        c.request("GET", path, headers=sign(s3, "GET", path))
        r = c.getresponse()
        got, n = hashlib.md5(), 0
        while True:
            piece = r.read(MiB)
            if not piece:
                break
            got.update(piece)
            n += len(piece)
        down_secs = time.monotonic() - t
        c.close()
        eq((r.status, n, got.hexdigest()), (200, size, md5.hexdigest()))
    peak = rss_kib(s3.proxy_pid, "VmHWM")
    print(f"# s3proxy RSS {before // 1024} MiB before, peak {peak // 1024} MiB; 100 MiB up in {up_secs:.2f}s, "
          f"down in {down_secs:.2f}s", flush=True)
    assert peak < 64 * 1024, f"s3proxy's peak RSS {peak} KiB is over 64 MiB"


def setup():
    return S3()


def teardown(s3):
    s3.destroy()


if __name__ == "__main__":
    sys.exit(suite.run(setup, teardown))
