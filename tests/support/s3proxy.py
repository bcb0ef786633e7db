#!/usr/bin/python3
"""s3proxy: a SigV4-verifying reverse proxy in front of s3rver, for spool's tests.

s3rver checks no signatures, so on its own it would pass a client that signs wrongly.
This proxy recomputes every request's AWS Signature Version 4 with botocore (Debian's
python3-botocore: run it with /usr/bin/python3 -I, as tests/integration/harness.py
does) and refuses a mismatch the way S3 does; what passes is forwarded to s3rver with
the authentication removed (s3rver then takes it as anonymous).

Checked, each refusal an S3-style XML error (status, <Code>):
  - Authorization header (AWS4-HMAC-SHA256) or presigned query (X-Amz-*); anonymous
    requests are refused (403 AccessDenied). The signature is recomputed over exactly
    the SignedHeaders the client named (403 SignatureDoesNotMatch); the access key
    must be one of --creds (403 InvalidAccessKeyId); the scope's region must be
    --region and its service s3 (400 AuthorizationHeaderMalformed); x-amz-date within
    15 minutes (403 RequestTimeTooSkewed); host must be signed; an x-amz-* header that
    is not signed is refused (403 AccessDenied), as S3 does.
  - Session tokens: an access key given a token with --token must send exactly that
    one (x-amz-security-token header, or X-Amz-Security-Token in a presigned query;
    none: 403 InvalidAccessKeyId), any other key must send none (403 InvalidToken).
  - Presigned URLs (query-string auth, verified by botocore's S3SigV4QueryAuth over
    every query parameter but X-Amz-Signature): X-Amz-Expires 0..604800 (400
    AuthorizationQueryParametersError, S3's messages), not expired (403 AccessDenied
    "Request has expired"), X-Amz-Date not more than the skew in the future (403
    AccessDenied "Request is not yet valid"), no auth parameter twice (400).
  - Header auth needs x-amz-content-sha256 (400 InvalidRequest): UNSIGNED-PAYLOAD, or
    the body's SHA-256, which is checked against the body before anything is forwarded
    (400 XAmzContentSHA256Mismatch, as S3). STREAMING-* (aws-chunked) is refused (501).
  - Transfer-Encoding: chunked request bodies are refused as S3 refuses them (501
    NotImplemented, <Header>Transfer-Encoding</Header>) unless --allow-chunked, which
    decodes and streams them on.
Bodies are streamed, never held: UNSIGNED-PAYLOAD and presigned bodies go straight
through in 64 KiB pieces; a body with a real hash is hashed into a temporary file (in
memory up to 1 MiB, then on disk) and forwarded from there once it matches. Responses
are streamed back the same way. Expect: 100-continue is answered only once the
signature is good (a refused request gets its error instead and the connection
closes). HTTP/1.1 keep-alive; one thread per connection.

Added in front of s3rver 3.7.1, which lacks them, from s3rver's own files under
--data-dir (in-progress uploads are DIR/BUCKET/._S3rver_uploads/UPLOADID/ holding
`key`, `metadata` and one file per part, `N` and `N.md5`):
  - AbortMultipartUpload (DELETE /B/K?uploadId=U): removes that directory, 204; 404
    NoSuchUpload when there is no such upload for that key.
  - ListMultipartUploads (GET /B?uploads): the uploads in progress, with prefix,
    max-uploads, key-marker/upload-id-marker paging and encoding-type=url; a
    delimiter is refused (501).
  - ListParts (GET /B/K?uploadId=U): the parts stored, with max-parts and
    part-number-marker paging.
  - UploadPart and CompleteMultipartUpload for an upload s3rver does not have: 404
    NoSuchUpload (s3rver answers 500 to such a Complete and keeps a stray part).
  - CompleteMultipartUpload is checked as S3 does before s3rver sees it: 400
    MalformedXML, InvalidPartOrder (part numbers not ascending), InvalidPart (a part
    missing or its ETag not the one stored), EntityTooSmall (a part but the last
    under 5 MiB).
  - Response header overrides (response-content-type, -content-disposition,
    -content-encoding, -content-language, -cache-control, -expires) on a signed GET or
    HEAD: set on a 2xx answer by the proxy (s3rver refuses them on the anonymous
    requests the proxy forwards); another response-* parameter is 400 InvalidArgument.
  - Virtual-host style through "localhost": a request whose Host is
    BUCKET.localhost[:PORT] (signed as sent) is forwarded to s3rver as path style
    (/BUCKET/KEY). Clients reach it at 127.0.0.1 with that Host header ("*.localhost"
    does not resolve everywhere).
Everything else is s3rver's own behaviour (its gaps: tests/integration/harness.py, S3).

Every refusal is also appended as one JSON line to --refusals FILE (method, path,
status, code, message, auth: true for a protocol fault as above, false for an S3
answer such as NoSuchUpload), which the harness reads (S3.requests_refused()).

Usage: s3proxy.py --upstream HOST:PORT --data-dir DIR --creds AK:SECRET[,AK:SECRET]
                  [--token AK:TOKEN ...] [--listen 127.0.0.1:0] [--region us-east-1]
                  [--refusals FILE] [--allow-chunked] [--max-skew 900] [--faults FILE]
Prints "s3proxy listening on HOST:PORT" on stdout once it accepts connections.
"""
import argparse
import datetime
import hashlib
import hmac
import http.client
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, unquote, urlsplit
from xml.sax.saxutils import escape

import botocore
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials

PIECE = 64 * 1024
SPOOL_IN_MEMORY = 1024 * 1024       # a hashed body stays in memory up to this, then disk
DRAIN_MAX = 64 * 1024 * 1024        # a refused body up to this is read and dropped (keep-alive)
HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
       "upgrade", "expect", "proxy-authorization", "content-length"}
PRESIGN_KEYS = {"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires",
                "X-Amz-SignedHeaders", "X-Amz-Signature", "X-Amz-Security-Token"}
S3NS = "http://s3.amazonaws.com/doc/2006-03-01/"
UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")      # s3rver: crypto.randomBytes(16).toString('hex')
UNSIGNED = "UNSIGNED-PAYLOAD"
MAX_EXPIRES = 604800                # a presigned URL's longest life: 7 days
OVERRIDES = {"response-content-type": "Content-Type", "response-content-language": "Content-Language",
             "response-expires": "Expires", "response-cache-control": "Cache-Control",
             "response-content-disposition": "Content-Disposition",
             "response-content-encoding": "Content-Encoding"}
VHOST_BASE = ".localhost"

CONF = argparse.Namespace()         # set by main(): creds, region, data_dir, ...
_refusal_lock = threading.Lock()


class Reject(Exception):
    """A request refused with an S3 error: status, Code, Message and extra elements.
    Logged with "auth": true: the client got the protocol wrong (signature, headers,
    payload hash, framing)."""
    auth = True

    def __init__(self, status, code, msg, **extra):
        super().__init__(msg)
        self.status, self.code, self.msg, self.extra = status, code, msg, extra


class Answer(Reject):
    """An S3 error answer to a well-signed request (NoSuchUpload, EntityTooSmall, ...),
    logged with "auth": false."""
    auth = False


class _SignedOnly:
    """Sign exactly the SignedHeaders the client listed: botocore's own
    headers_to_sign() drops expect/user-agent/x-amzn-trace-id and adds host, which a
    verifier must not do."""

    def headers_to_sign(self, request):
        return request.headers


class VAuth(_SignedOnly, S3SigV4Auth):
    pass


class VQueryAuth(_SignedOnly, S3SigV4QueryAuth):
    pass


def canon_path(raw_path):
    """S3's canonical URI: each segment decoded once and re-encoded RFC 3986 style
    (uppercase hex, only A-Za-z0-9-_.~ left as they are); '/' kept, an encoded %2F in
    a segment stays encoded. No double encoding (that is non-S3 SigV4)."""
    return "/".join(quote(unquote(seg, errors="strict"), safe="~") for seg in raw_path.split("/"))


def parse_query(raw_query):
    """[(name, value)] decoded; '+' taken literally; a valueless 'uploads' is ('uploads', '')."""
    pairs = []
    for part in raw_query.split("&") if raw_query else []:
        if part:
            k, _, v = part.partition("=")
            pairs.append((unquote(k, errors="strict"), unquote(v, errors="strict")))
    return pairs


def parse_authz(value):
    algo, _, rest = value.partition(" ")
    if algo != "AWS4-HMAC-SHA256":
        raise Reject(400, "InvalidArgument", "Unsupported Authorization Type")
    comps = {}
    for c in rest.split(","):
        k, _, v = c.strip().partition("=")
        comps[k] = v
    try:
        return comps["Credential"], comps["SignedHeaders"], comps["Signature"]
    except KeyError as e:
        raise Reject(400, "AuthorizationHeaderMalformed", f"the authorization header lacks {e}")


def check_time(amz_date, scope_date, expires=None):
    try:
        t = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ")
    except ValueError:
        raise Reject(403, "AccessDenied", f"bad x-amz-date {amz_date!r}")
    if amz_date[:8] != scope_date:
        raise Reject(403, "SignatureDoesNotMatch", "the credential scope's date is not x-amz-date's")
    now = datetime.datetime.utcnow()
    if expires is None:
        if abs((now - t).total_seconds()) > CONF.max_skew:
            raise Reject(403, "RequestTimeTooSkewed",
                         "The difference between the request time and the current time is too large.")
    else:
        if not re.fullmatch(r"-?[0-9]{1,10}", expires):
            raise Reject(400, "AuthorizationQueryParametersError",
                         "X-Amz-Expires should be a number")
        secs = int(expires)
        if secs < 0:
            raise Reject(400, "AuthorizationQueryParametersError", "X-Amz-Expires must be non-negative")
        if secs > MAX_EXPIRES:
            raise Reject(400, "AuthorizationQueryParametersError",
                         f"X-Amz-Expires must be less than a week (in seconds) that is {MAX_EXPIRES}")
        if (t - now).total_seconds() > CONF.max_skew:
            raise Reject(403, "AccessDenied", "Request is not yet valid")
        if now > t + datetime.timedelta(seconds=secs):
            raise Reject(403, "AccessDenied", "Request has expired")


def verify(method, raw_path, raw_query, headers):
    """Check a request's signature from its line and headers (headers: [(name, value)]
    as received). The payload hash is the x-amz-content-sha256 header's (checked
    against the body later). Returns (query to forward without presign parameters,
    expected body hash or None when unsigned). Raises Reject."""
    hmap = {}
    for n, v in headers:
        hmap.setdefault(n.lower(), []).append(v)
    q = parse_query(raw_query)
    qd = dict(q)
    presigned = "X-Amz-Algorithm" in qd
    if presigned:
        if qd["X-Amz-Algorithm"] != "AWS4-HMAC-SHA256":
            raise Reject(400, "AuthorizationQueryParametersError", "X-Amz-Algorithm must be AWS4-HMAC-SHA256")
        try:
            cred, signed, sig = qd["X-Amz-Credential"], qd["X-Amz-SignedHeaders"], qd["X-Amz-Signature"]
            amz_date, expires = qd["X-Amz-Date"], qd["X-Amz-Expires"]
        except KeyError as e:
            raise Reject(400, "AuthorizationQueryParametersError", f"the query lacks {e}")
        if "authorization" in hmap:
            raise Reject(400, "InvalidArgument", "Only one auth mechanism allowed")
        twice = sorted({k for k, _ in q if k in PRESIGN_KEYS and [n for n, _ in q].count(k) > 1})
        if twice:
            raise Reject(400, "AuthorizationQueryParametersError", f"the query repeats {twice}")
        token = qd.get("X-Amz-Security-Token")
    elif "authorization" in hmap:
        cred, signed, sig = parse_authz(hmap["authorization"][0])
        amz_date = (hmap.get("x-amz-date") or [""])[0]
        expires = None
        token = (hmap.get("x-amz-security-token") or [None])[0]
        if not amz_date:
            raise Reject(403, "AccessDenied", "AWS authentication requires a valid Date or x-amz-date header")
    else:
        raise Reject(403, "AccessDenied", "Access Denied (anonymous requests are refused)")

    parts = cred.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        raise Reject(400, "AuthorizationHeaderMalformed", f"bad Credential {cred!r}")
    ak, sdate, region, service, _ = parts
    if ak not in CONF.creds:
        raise Reject(403, "InvalidAccessKeyId",
                     "The AWS Access Key Id you provided does not exist in our records.")
    if token is None and ak in CONF.tokens:
        raise Reject(403, "InvalidAccessKeyId",
                     "The AWS Access Key Id you provided does not exist in our records.")
    if token is not None and token != CONF.tokens.get(ak):
        raise Reject(403, "InvalidToken", "The provided token is malformed or otherwise invalid.")
    if service != "s3" or region != CONF.region:
        raise Reject(400, "AuthorizationHeaderMalformed",
                     f"the credential scope is {region}/{service}, expected {CONF.region}/s3",
                     Region=CONF.region)
    check_time(amz_date, sdate, expires)

    signed_names = signed.split(";")
    if signed_names != sorted(set(signed_names)):
        raise Reject(403, "SignatureDoesNotMatch", "SignedHeaders are not sorted and unique")
    if "host" not in signed_names:
        raise Reject(403, "AccessDenied", "host must be a signed header")
    missing = [n for n in signed_names if n not in hmap]
    if missing:
        raise Reject(403, "SignatureDoesNotMatch", f"signed headers absent from the request: {missing}")
    unsigned_amz = sorted(n for n in hmap if n.startswith("x-amz-") and n not in signed_names)
    if unsigned_amz:
        raise Reject(403, "AccessDenied",
                     f"There were headers present in the request which were not signed: {unsigned_amz}")

    csha = (hmap.get("x-amz-content-sha256") or [None])[0]
    if not presigned and csha is None:
        raise Reject(400, "InvalidRequest", "Missing required header for this request: x-amz-content-sha256")
    if csha is not None and csha != UNSIGNED and not re.fullmatch(r"[0-9a-f]{64}", csha):
        if csha.startswith("STREAMING-"):
            raise Reject(501, "NotImplemented", "aws-chunked bodies (STREAMING-*) are not supported by s3proxy")
        raise Reject(400, "InvalidArgument", "x-amz-content-sha256 must be UNSIGNED-PAYLOAD or a SHA-256 in hex")

    sh = HTTPHeaders()
    for n in signed_names:
        for v in hmap[n]:
            sh.add_header(n, v)
    params = [(k, v) for k, v in q if not (presigned and k == "X-Amz-Signature")]
    req = AWSRequest(method=method, url="http://" + hmap["host"][0] + canon_path(raw_path),
                     headers=sh, data=b"", params=params)
    req.context["timestamp"] = amz_date
    auth = (VQueryAuth if presigned else VAuth)(Credentials(ak, CONF.creds[ak]), service, region)
    creq = auth.canonical_request(req)
    sts = auth.string_to_sign(req, creq)
    expected = auth.signature(sts, req)
    if not hmac.compare_digest(expected, sig):
        raise Reject(403, "SignatureDoesNotMatch",
                     "The request signature we calculated does not match the signature you provided. "
                     "Check your key and signing method.",
                     AWSAccessKeyId=ak, StringToSign=sts, CanonicalRequest=creq, SignatureProvided=sig)
    fwd = [(k, v) for k, v in q if not (presigned and k in PRESIGN_KEYS)]
    query = "&".join(quote(k, safe="-_.~") + "=" + quote(v, safe="-_.~") for k, v in fwd)
    return query, (csha if csha not in (None, UNSIGNED) else None)


def error_xml(code, msg, **extra):
    inner = "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in extra.items())
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>{escape(msg)}</Message>{inner}</Error>").encode()


def iso_ms(ts):
    return datetime.datetime.utcfromtimestamp(ts).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# ---- multipart uploads, from s3rver's directory ----------------------------------------

def uploads_dir(bucket):
    return os.path.join(CONF.data_dir, bucket, "._S3rver_uploads")


def read_upload(bucket, upload_id):
    """(key, initiated time) of an upload in progress, or None."""
    if not UPLOAD_ID.match(upload_id) or "/" in bucket or bucket in ("", ".", ".."):
        return None
    d = os.path.join(uploads_dir(bucket), upload_id)
    try:
        with open(os.path.join(d, "key"), encoding="utf-8") as f:
            return f.read(), os.stat(os.path.join(d, "key")).st_mtime
    except OSError:
        return None


def owner_xml(tag):
    return f"<{tag}><ID>{CONF.owner_id}</ID><DisplayName>S3rver</DisplayName></{tag}>"


def abort_upload(bucket, key, qd):
    up = read_upload(bucket, qd["uploadId"])
    if up is None or up[0] != key:
        raise Answer(404, "NoSuchUpload", "The specified upload does not exist. The upload ID may be invalid, "
                     "or the upload may have been aborted or completed.", UploadId=qd["uploadId"])
    shutil.rmtree(os.path.join(uploads_dir(bucket), qd["uploadId"]), ignore_errors=True)
    return 204, b""


def list_uploads(bucket, qd):
    if not os.path.isdir(os.path.join(CONF.data_dir, bucket)):
        raise Answer(404, "NoSuchBucket", "The specified bucket does not exist", BucketName=bucket)
    if qd.get("delimiter"):
        raise Reject(501, "NotImplemented", "s3proxy's ListMultipartUploads has no delimiter")
    prefix = qd.get("prefix", "")
    kmark, umark = qd.get("key-marker", ""), qd.get("upload-id-marker", "")
    try:
        limit = max(0, min(1000, int(qd.get("max-uploads", "1000"))))
    except ValueError:
        raise Reject(400, "InvalidArgument", "max-uploads must be an integer")
    ups = []
    try:
        names = os.listdir(uploads_dir(bucket))
    except OSError:
        names = []
    for uid in names:
        up = read_upload(bucket, uid)
        if up and up[0].startswith(prefix):
            ups.append((up[0], up[1], uid))
    ups.sort()                                  # by key, then by initiation time (S3's order)
    if kmark:
        # After (key-marker, upload-id-marker) when that upload is listed, else after the key.
        at = [i for i, u in enumerate(ups) if u[0] == kmark and u[2] == umark] if umark else []
        ups = ups[at[0] + 1:] if at else [u for u in ups if u[0] > kmark]
    page, truncated = ups[:limit], len(ups) > limit
    enc = qd.get("encoding-type") == "url"
    k = (lambda s: quote(s, safe="/")) if enc else (lambda s: s)
    out = [f'<?xml version="1.0" encoding="UTF-8"?>\n<ListMultipartUploadsResult xmlns="{S3NS}">',
           f"<Bucket>{escape(bucket)}</Bucket><KeyMarker>{escape(k(kmark))}</KeyMarker>",
           f"<UploadIdMarker>{escape(umark)}</UploadIdMarker>"]
    if page:
        out.append(f"<NextKeyMarker>{escape(k(page[-1][0]))}</NextKeyMarker>"
                   f"<NextUploadIdMarker>{page[-1][2]}</NextUploadIdMarker>")
    if enc:
        out.append("<EncodingType>url</EncodingType>")
    out.append(f"<Prefix>{escape(k(prefix))}</Prefix><MaxUploads>{limit}</MaxUploads>"
               f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>")
    for key, t, uid in page:
        out.append(f"<Upload><Key>{escape(k(key))}</Key><UploadId>{uid}</UploadId>{owner_xml('Initiator')}"
                   f"{owner_xml('Owner')}<StorageClass>STANDARD</StorageClass>"
                   f"<Initiated>{iso_ms(t)}</Initiated></Upload>")
    out.append("</ListMultipartUploadsResult>")
    return 200, "".join(out).encode()


def list_parts(bucket, key, qd):
    uid = qd["uploadId"]
    up = read_upload(bucket, uid)
    if up is None or up[0] != key:
        raise Answer(404, "NoSuchUpload", "The specified upload does not exist.", UploadId=uid)
    try:
        marker = int(qd.get("part-number-marker", "0") or 0)
        limit = max(0, min(1000, int(qd.get("max-parts", "1000"))))
    except ValueError:
        raise Reject(400, "InvalidArgument", "max-parts and part-number-marker must be integers")
    d = os.path.join(uploads_dir(bucket), uid)
    parts = []
    for name in os.listdir(d):
        if name.isdigit() and os.path.exists(os.path.join(d, name + ".md5")):
            st = os.stat(os.path.join(d, name))
            with open(os.path.join(d, name + ".md5")) as f:
                parts.append((int(name), f.read().strip(), st.st_size, st.st_mtime))
    parts = sorted(p for p in parts if p[0] > marker)
    page, truncated = parts[:limit], len(parts) > limit
    out = [f'<?xml version="1.0" encoding="UTF-8"?>\n<ListPartsResult xmlns="{S3NS}">',
           f"<Bucket>{escape(bucket)}</Bucket><Key>{escape(key)}</Key><UploadId>{uid}</UploadId>",
           owner_xml("Initiator"), owner_xml("Owner"), "<StorageClass>STANDARD</StorageClass>",
           f"<PartNumberMarker>{marker}</PartNumberMarker>",
           f"<NextPartNumberMarker>{page[-1][0] if page else marker}</NextPartNumberMarker>",
           f"<MaxParts>{limit}</MaxParts><IsTruncated>{'true' if truncated else 'false'}</IsTruncated>"]
    for n, md5, size, t in page:
        out.append(f"<Part><PartNumber>{n}</PartNumber><LastModified>{iso_ms(t)}</LastModified>"
                   f"<ETag>&quot;{md5}&quot;</ETag><Size>{size}</Size></Part>")
    out.append("</ListPartsResult>")
    return 200, "".join(out).encode()


MIN_PART = 5 * 1024 * 1024


def check_upload(bucket, key, upload_id):
    """Refuse a request naming an upload s3rver does not have for this key (s3rver
    would answer 500 to a Complete, and make a stray directory for a part)."""
    up = read_upload(bucket, upload_id)
    if up is None or up[0] != key:
        raise Answer(404, "NoSuchUpload", "The specified upload does not exist. The upload ID may be invalid, "
                     "or the upload may have been aborted or completed.", UploadId=upload_id)


def check_complete(bucket, upload_id, xml):
    """What S3 checks of a CompleteMultipartUpload body and s3rver does not: parts in
    ascending order, each one uploaded with that ETag, each but the last >= 5 MiB."""
    import xml.etree.ElementTree as ET
    try:
        root = ET.fromstring(xml)
        parts = []
        for el in root.iter():
            if el.tag.rsplit("}", 1)[-1] == "Part":
                f = {c.tag.rsplit("}", 1)[-1]: (c.text or "").strip() for c in el}
                parts.append((int(f["PartNumber"]), f["ETag"].replace('"', "")))
    except (ET.ParseError, KeyError, ValueError):
        parts = []
    if not parts:
        raise Answer(400, "MalformedXML", "The XML you provided was not well-formed or did not validate "
                     "against our published schema")
    if [n for n, _ in parts] != sorted(set(n for n, _ in parts)):
        raise Answer(400, "InvalidPartOrder", "The list of parts was not in ascending order. "
                     "Parts must be ordered by part number.", UploadId=upload_id)
    d = os.path.join(uploads_dir(bucket), upload_id)
    for i, (n, etag) in enumerate(parts):
        try:
            with open(os.path.join(d, f"{n}.md5")) as f:
                md5 = f.read().strip()
            size = os.stat(os.path.join(d, str(n))).st_size
        except OSError:
            md5, size = None, 0
        if md5 != etag:
            raise Answer(400, "InvalidPart", "One or more of the specified parts could not be found. The part "
                         "may not have been uploaded, or the specified entity tag may not match the part's "
                         "entity tag.", UploadId=upload_id, PartNumber=n, ETag=etag)
        if size < MIN_PART and i != len(parts) - 1:
            raise Answer(400, "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed "
                         "object size.", ProposedSize=size, MinSizeAllowed=MIN_PART, PartNumber=n,
                         ETag=etag)


def own_operation(method, path, qd):
    """The operation this proxy answers itself, as a function of no arguments, or None."""
    bucket, key = split_path(path)
    if method == "DELETE" and key and "uploadId" in qd:
        return lambda: abort_upload(bucket, key, qd)
    if method == "GET" and bucket and not key and "uploads" in qd:
        return lambda: list_uploads(bucket, qd)
    if method == "GET" and key and "uploadId" in qd:
        return lambda: list_parts(bucket, key, qd)
    return None


def vhost_bucket(host):
    """The bucket of a virtual-host style Host header (BUCKET.localhost[:PORT]), or None."""
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    if name.lower().endswith(VHOST_BASE) and len(name) > len(VHOST_BASE):
        return name[:-len(VHOST_BASE)]
    return None


def take_overrides(method, query):
    """(query without response-* parameters, [(header, value)] they ask for) of a GET or
    HEAD; other methods' queries are left as they are. Raises Reject for a response-*
    parameter S3 does not know."""
    if method not in ("GET", "HEAD"):
        return query, []
    keep, headers = [], []
    for k, v in parse_query(query):
        if not k.startswith("response-"):
            keep.append((k, v))
        elif k in OVERRIDES:
            headers.append((OVERRIDES[k], v))
        else:
            raise Reject(400, "InvalidArgument", f"{k} is not in the set of overridable response headers.",
                         ArgumentName=k, ArgumentValue=v)
    return "&".join(quote(k, safe="-_.~") + "=" + quote(v, safe="-_.~") for k, v in keep), headers


def split_path(path):
    """(bucket, key) of a path-style request path."""
    segs = path.lstrip("/").split("/", 1)
    return unquote(segs[0]), (unquote(segs[1]) if len(segs) > 1 else "")


# ---- the HTTP side ----------------------------------------------------------------------

class BodyReader:
    """The request body as pieces: Content-Length or chunked framing, never all at once."""

    def __init__(self, rfile, headers):
        self.rfile = rfile
        self.chunked = "chunked" in headers.get("Transfer-Encoding", "").lower()
        self.left = 0 if self.chunked else int(headers.get("Content-Length") or 0)
        self.chunk_left = 0
        self.done = not self.chunked and self.left == 0

    def read(self, n=PIECE):
        """Up to n bytes; b"" at the end. Raises ValueError on a truncated body."""
        if self.done:
            return b""
        if not self.chunked:
            data = self.rfile.read(min(n, self.left))
            if not data:
                raise ValueError("request body ended early")
            self.left -= len(data)
            self.done = self.left == 0
            return data
        if self.chunk_left == 0:
            line = self.rfile.readline(1024)
            if not line:
                raise ValueError("chunked body ended early")
            size = int(line.split(b";")[0].strip(), 16)
            if size == 0:
                while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                    pass                                    # trailers
                self.done = True
                return b""
            self.chunk_left = size
        data = self.rfile.read(min(n, self.chunk_left))
        if not data:
            raise ValueError("chunked body ended early")
        self.chunk_left -= len(data)
        if self.chunk_left == 0:
            self.rfile.readline(16)
        return data

    def drain(self, limit):
        """Read and drop the rest, up to limit bytes; True when the body was all read."""
        total = 0
        while not self.done and total <= limit:
            total += len(self.read())
        return self.done


_fault_lock = threading.Lock()


def take_fault(method):
    """The next injected failure for a request with this method, if --faults names one:
    the file holds lines "METHOD STATUS CODE COUNT" (METHOD may be *); the first line
    that matches answers its next COUNT such requests, after their signature passed,
    with STATUS and an S3 error CODE (as a failing store would: 503 SlowDown, 500
    InternalError...)."""
    if not CONF.faults:
        return None
    with _fault_lock:
        try:
            with open(CONF.faults) as f:
                rules = [line.split() for line in f if line.strip()]
        except FileNotFoundError:
            return None
        for r in rules:
            if len(r) == 4 and r[0] in (method, "*") and int(r[3]) > 0:
                r[3] = str(int(r[3]) - 1)
                with open(CONF.faults + ".tmp", "w") as f:
                    f.write("".join(" ".join(x) + "\n" for x in rules))
                os.replace(CONF.faults + ".tmp", CONF.faults)
                return Answer(int(r[1]), r[2], "injected by the test (s3proxy --faults)")
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 300                                   # an idle keep-alive connection closes
    server_version = "s3proxy"

    def log_message(self, fmt, *args):
        # The client's address, as the standard library logs it: tests with clients on
        # several hosts tell by it who sent each request.
        sys.stderr.write(f"s3proxy: {self.client_address[0]} " + (fmt % args) + "\n")

    def handle_expect_100(self):
        return True                                 # answered in _handle, after the signature

    def _send(self, status, headers, body=b"", length=None):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _refuse(self, r, body):
        """Answer a Reject; read what is left of the body if that is cheap, else close."""
        if CONF.refusals:
            line = json.dumps({"method": self.command, "path": self.path, "status": r.status,
                               "code": r.code, "message": r.msg, "auth": r.auth})
            with _refusal_lock, open(CONF.refusals, "a") as f:
                f.write(line + "\n")
        self.log_message("REFUSED %s %s: %d %s %s", self.command, self.path, r.status, r.code, r.msg)
        expecting = self.headers.get("Expect", "").lower() == "100-continue"
        if body is None or expecting or not body.drain(DRAIN_MAX):
            self.close_connection = True
        self._send(r.status, [("Content-Type", "application/xml")],
                   b"" if self.command == "HEAD" else error_xml(r.code, r.msg, **r.extra))
        if self.close_connection:
            self._lingering_close()

    def _lingering_close(self):
        """Let the client read the answer before the connection goes: close our side,
        then drop what it still sends for a moment (closing with unread data would
        reset the connection and could take the answer with it)."""
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(2)
            left = DRAIN_MAX
            while left > 0:
                data = self.connection.recv(PIECE)
                if not data:
                    break
                left -= len(data)
        except OSError:
            pass

    def _handle(self):
        u = urlsplit(self.path)
        body = None
        self.overrides, self.vhost = [], False
        try:
            if self.headers.get("Content-Length") and self.headers.get("Transfer-Encoding"):
                raise Reject(400, "InvalidRequest", "Content-Length and Transfer-Encoding together")
            body = BodyReader(self.rfile, self.headers)
            fwd_query, want_hash = verify(self.command, u.path, u.query, self.headers.items())
            fwd_query, self.overrides = take_overrides(self.command, fwd_query)
            if body.chunked and not CONF.allow_chunked:
                raise Reject(501, "NotImplemented",
                             "A header you provided implies functionality that is not implemented",
                             Header="Transfer-Encoding")
        except Reject as r:
            self._refuse(r, body)
            return
        except ValueError as e:
            self._refuse(Reject(400, "InvalidRequest", f"malformed request: {e}"), None)
            return
        qd = dict(parse_query(u.query))
        vbucket = vhost_bucket(self.headers.get("Host", ""))
        path = u.path if vbucket is None else "/" + quote(vbucket, safe="") + u.path
        self.vhost = vbucket is not None
        bucket, key = split_path(path)
        completing = self.command == "POST" and "uploadId" in qd
        fault = take_fault(self.command)
        if fault:
            self._refuse(fault, body)
            return
        try:
            if self.command in ("PUT", "POST") and "uploadId" in qd:
                check_upload(bucket, key, qd["uploadId"])
        except Reject as r:
            self._refuse(r, body)
            return
        if self.headers.get("Expect", "").lower() == "100-continue":
            self.send_response_only(100)
            self.end_headers()
        try:
            own = own_operation(self.command, path, qd)
            if own:
                body.drain(DRAIN_MAX)
                status, xml = own()
                self._send(status, [("Content-Type", "application/xml")] if xml else [], xml)
                return
            if want_hash is not None or completing:
                spooled = self._spool(body, want_hash)
                with spooled:
                    if completing:
                        spooled.seek(0)
                        check_complete(bucket, qd["uploadId"], spooled.read(16 * 1024 * 1024))
                        spooled.seek(0, os.SEEK_END)
                    self._forward(path, fwd_query, spooled, spooled.tell())
            elif body.chunked:
                self._forward(path, fwd_query, body, None)
            else:
                self._forward(path, fwd_query, body, body.left)
        except Reject as r:
            self._refuse(r, body)
        except (ValueError, ConnectionError, socket.timeout) as e:
            self.log_message("dropped %s %s: %s", self.command, self.path, e)
            self.close_connection = True

    def _spool(self, body, want_hash):
        """The body in a temporary file, checked against its SHA-256 (unless want_hash
        is None); positioned at its end (tell() is its length). Raises Reject on a
        mismatch."""
        f = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)
        h = hashlib.sha256()
        try:
            while True:
                data = body.read()
                if not data:
                    break
                h.update(data)
                f.write(data)
        except BaseException:
            f.close()
            raise
        if want_hash is not None and h.hexdigest() != want_hash:
            f.close()
            raise Reject(400, "XAmzContentSHA256Mismatch",
                         "The provided 'x-amz-content-sha256' header does not match what was computed.",
                         ClientComputedContentSHA256=want_hash, S3ComputedContentSHA256=h.hexdigest())
        return f

    def _forward(self, path, query, src, length):
        """Send the request to s3rver with src as its body (length bytes, or chunked
        when None) and stream the answer back. A virtual-host request (path already
        rewritten to path style) goes with s3rver's own address as its Host."""
        hdrs = [(k, v) for k, v in self.headers.items() if k.lower() not in HOP and k.lower() != "authorization"]
        if self.vhost:
            hdrs = [(k, v) for k, v in hdrs if k.lower() != "host"]
            hdrs.append(("Host", f"{CONF.upstream_host}:{CONF.upstream_port}"))
        conn = http.client.HTTPConnection(CONF.upstream_host, CONF.upstream_port, timeout=120)
        try:
            self._forward_on(conn, path, query, src, length, hdrs)
        finally:
            conn.close()

    def _forward_on(self, conn, path, query, src, length, hdrs):
        try:
            conn.putrequest(self.command, path + ("?" + query if query else ""),
                            skip_host=True, skip_accept_encoding=True)
            for k, v in hdrs:
                conn.putheader(k, v)
            if length is not None:
                if length or self.command in ("PUT", "POST"):
                    conn.putheader("Content-Length", str(length))
            else:
                conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders()
            if hasattr(src, "seek"):
                src.seek(0)
            while True:
                data = src.read(PIECE)
                if not data:
                    break
                conn.send(data if length is not None else b"%x\r\n%s\r\n" % (len(data), data))
            if length is None:
                conn.send(b"0\r\n\r\n")
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException) as e:
            if isinstance(src, BodyReader) and not src.done:
                raise ConnectionError(f"client body: {e}")
            raise Answer(502, "BadGateway", f"s3rver did not answer: {e}")
        self._relay(resp)

    def _relay(self, resp):
        rh = [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP]
        if self.overrides and 200 <= resp.status < 300:
            names = {k.lower() for k, _ in self.overrides}
            rh = [(k, v) for k, v in rh if k.lower() not in names] + self.overrides
        clen = resp.getheader("Content-Length")
        self.send_response(resp.status)
        for k, v in rh:
            self.send_header(k, v)
        no_body = self.command == "HEAD" or resp.status in (204, 304) or resp.status < 200
        chunked = clen is None and not no_body
        if clen is not None:
            self.send_header("Content-Length", clen)
        elif chunked:
            self.send_header("Transfer-Encoding", "chunked")
        elif self.command != "HEAD":
            self.send_header("Content-Length", "0")
        self.end_headers()
        if no_body:
            return
        while True:
            data = resp.read(PIECE)
            if not data:
                break
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512


def main():
    ap = argparse.ArgumentParser(description="SigV4-verifying proxy in front of s3rver (tests only)")
    ap.add_argument("--listen", default="127.0.0.1:0")
    ap.add_argument("--upstream", required=True, help="s3rver's HOST:PORT")
    ap.add_argument("--data-dir", required=True, help="s3rver's -d directory")
    ap.add_argument("--creds", required=True, help="AK:SECRET[,AK:SECRET...]")
    ap.add_argument("--token", action="append", default=[],
                    help="AK:TOKEN: AK's session token, which its requests must carry (repeatable)")
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--refusals", default="", help="append one JSON line per refused request here")
    ap.add_argument("--allow-chunked", action="store_true",
                    help="accept Transfer-Encoding: chunked request bodies (S3 refuses them)")
    ap.add_argument("--max-skew", type=int, default=900)
    ap.add_argument("--faults", default="", help="injected failures: lines METHOD STATUS CODE COUNT")
    a = ap.parse_args()
    CONF.creds = dict(p.split(":", 1) for p in a.creds.split(","))
    CONF.tokens = dict(t.split(":", 1) for t in a.token)
    CONF.region, CONF.data_dir, CONF.refusals = a.region, a.data_dir, a.refusals
    CONF.allow_chunked, CONF.max_skew, CONF.faults = a.allow_chunked, a.max_skew, a.faults
    CONF.upstream_host, _, port = a.upstream.rpartition(":")
    CONF.upstream_port = int(port)
    CONF.owner_id = "123456789000"
    host, _, port = a.listen.rpartition(":")
    srv = Server((host, int(port)), Handler)
    h, p = srv.server_address[:2]
    print(f"s3proxy listening on {h}:{p} (botocore {botocore.__version__}, python {sys.version.split()[0]})",
          flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
