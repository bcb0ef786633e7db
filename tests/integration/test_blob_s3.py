#!/usr/bin/env python3
"""The blob store in an S3-compatible object store (common/blob_s3.c, common/s3.c)
against a real S3 server (harness.S3: s3rver behind the SigV4-verifying proxy), driven
through tests/support/blobtool and cross-checked with boto3: sizes at and around the
part size (one PUT below it, a multipart upload above), content types, replacement,
aborted and killed writers (no object, uploads aborted by remove_staging and by the
sweep only once stale), ranged reads, local copies with a size cap, removal and
garbage collection, and a clear message for each way the store can refuse: a wrong
secret or key, a missing bucket, another region, an unreachable endpoint, a store
failing with 503 SlowDown (retried) or for good. Every request must pass the proxy's
signature check (requests_refused() stays empty)."""
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT, S3, Suite, eq, free_port  # noqa: E402

TEST_BIN = os.environ.get("SPOOL_TEST_BIN_DIR", os.path.join(ROOT, "build/release/tests"))
BLOBTOOL = os.path.join(TEST_BIN, "blobtool")
PDFQ = os.path.join(TEST_BIN, "pdfq")
MiB = 1024 * 1024
PART = 5 * MiB  # SPOOL_S3_PART_SIZE in these tests: S3's least

suite = Suite("blob_s3")


class Ctx:
    pass


def new_id():
    return subprocess.run([PDFQ, "newid"], stdout=subprocess.PIPE, check=True,
                          timeout=10).stdout.decode().strip()


def run(ctx, *args, env=None, store=None, timeout=120):
    """blobtool CMD STORE ARGS...: (exit code, stdout bytes, stderr text)."""
    e = dict(os.environ)
    e.update(ctx.env)
    e.update(env or {})
    p = subprocess.run([BLOBTOOL, args[0], store or ctx.store, *map(str, args[1:])], env=e,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    return p.returncode, p.stdout, p.stderr.decode()


def ok(ctx, *args, **kw):
    rc, out, err = run(ctx, *args, **kw)
    if rc != 0:
        raise AssertionError(f"blobtool {args}: exit {rc}: {out[:300]!r} {err[-500:]}")
    return out


def pattern(n, seed=0):
    block = bytes((i * 7 + seed) % 251 for i in range(65536))
    return (block * (n // len(block) + 1))[:n]


def key(ctx, job, name=""):
    return f"{ctx.prefix}jobs/{job}/{name}"


def head(ctx, job, name):
    return ctx.c.head_object(Bucket=ctx.s3.bucket, Key=key(ctx, job, name))


def body(ctx, job, name):
    return ctx.c.get_object(Bucket=ctx.s3.bucket, Key=key(ctx, job, name))["Body"].read()


def no_refusals(ctx):
    eq(ctx.s3.requests_refused(), [], "requests the proxy refused (signing faults)")


def write_file(ctx, data, name="in.bin"):
    path = os.path.join(suite.tmp, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


@suite.test
def test_puts_across_the_part_size_are_whole_objects(ctx):
    """0, 1, part-1, part, part+1, 2 parts and 2 parts + 1 bytes, written in pieces
    of 64 KiB, 1 MiB + 1 and a whole part: each object is byte for byte what was
    written; at most one part is one PUT (a plain ETag), more is a multipart upload
    (an ETag with -N), and no upload is left open."""
    job = new_id()
    sizes = [0, 1, PART - 1, PART, PART + 1, 2 * PART, 2 * PART + 1]
    for i, n in enumerate(sizes):
        for chunk in (65536, MiB + 1, PART):
            if n < 2 * PART and chunk == PART and n not in (PART, PART + 1):
                continue
            name = f"b{i}-{chunk}.bin"
            data = pattern(n, i)
            mark = len(ctx.s3.proxy.output())
            out = ok(ctx, "put", job, name, write_file(ctx, data), chunk)
            eq(int(out), n, f"{name}: size reported")
            eq(body(ctx, job, name), data, f"{name}: the object's bytes")
            # s3rver's ETags do not tell multipart objects apart: count the requests.
            log = ctx.s3.proxy.output()[mark:]
            parts = len(re.findall(r'"PUT [^ ]*partNumber=', log))
            want = (n + PART - 1) // PART if n > PART else 0
            eq((parts, log.count("?uploads=")), (want, 1 if want else 0),
               f"{name} ({n} bytes): parts and multipart uploads")
    eq(ctx.s3.uploads_in_progress(), [], "uploads left open")
    no_refusals(ctx)


@suite.test
def test_files_written_by_path_upload_whole_with_their_type(ctx):
    """A blob a library writes by path (sp_blob_create_file: a scratch file) goes up at
    commit, as one PUT or in parts read from the file, with the content type of its
    name; the scratch file is gone afterwards."""
    job = new_id()
    cases = [("video.mp4", 0, "video/mp4"), ("poster.jpg", 1000, "image/jpeg"),
             ("export.pdf", PART, "application/pdf"), ("big.webm", 2 * PART + 3, "video/webm"),
             ("source", 12345, "application/octet-stream")]
    for name, n, ctype in cases:
        data = pattern(n, n % 7)
        eq(int(ok(ctx, "putfile", job, name, write_file(ctx, data))), n, f"{name} size")
        h = head(ctx, job, name)
        eq((h["ContentLength"], h["ContentType"]), (n, ctype), name)
        eq(body(ctx, job, name), data, f"{name} bytes")
    eq(ctx.s3.uploads_in_progress(), [], "uploads left open")
    eq(os.listdir(ctx.scratch), [], "scratch directories left")
    no_refusals(ctx)


@suite.test
def test_a_second_write_replaces_the_first_whole(ctx):
    job = new_id()
    ok(ctx, "put", job, "out.bin", write_file(ctx, pattern(2 * PART + 5, 1)))
    ok(ctx, "put", job, "out.bin", write_file(ctx, b"short"))
    eq(body(ctx, job, "out.bin"), b"short", "the replacement")
    ok(ctx, "put", job, "out.bin", write_file(ctx, pattern(PART + 9, 2)))
    eq(body(ctx, job, "out.bin"), pattern(PART + 9, 2), "the second replacement")
    eq(sorted(ctx.s3.objects(key(ctx, job))), [key(ctx, job, "out.bin")], "objects of the job")


@suite.test
def test_an_aborted_write_leaves_nothing(ctx):
    job = new_id()
    for n in (10, PART + 1, 3 * PART):
        ok(ctx, "abort", job, f"a{n}.bin", n)
    eq(ctx.s3.objects(key(ctx, job)), {}, "objects after aborts")
    eq(ctx.s3.uploads_in_progress(key(ctx, job)), [], "uploads after aborts")


@suite.test
def test_a_killed_writer_s_upload_is_aborted_by_the_next_attempt_or_the_sweep(ctx):
    """A writer that dies mid-upload leaves a multipart upload (invisible, but stored
    and billed). remove_staging (a new attempt, holding the job's lease) aborts those of
    its job only; the sweep aborts those not written to for its stale time, and not a
    fresh one."""
    a, b = new_id(), new_id()
    for job in (a, b):
        eq(ok(ctx, "die", job, "out.bin", 2 * PART), b"dying\n", "the writer died")
    eq(len(ctx.s3.uploads_in_progress(key(ctx, a))), 1, "upload of the killed writer")
    ok(ctx, "staging", a)
    eq(ctx.s3.uploads_in_progress(key(ctx, a)), [], "job a's uploads after remove_staging")
    eq(len(ctx.s3.uploads_in_progress(key(ctx, b))), 1, "job b's upload is not a's business")
    eq(ctx.s3.objects(key(ctx, a)), {}, "no object from the dead writer")
    # The sweep: b's upload is older than 10 s (the least stale time) only after a wait;
    # a fresh upload from c stays.
    time.sleep(10.5)
    c = new_id()
    ok(ctx, "die", c, "out.bin", PART + 1)
    eq(ok(ctx, "sweep", 10000), b"1\n", "uploads the sweep aborted")
    eq(ctx.s3.uploads_in_progress(key(ctx, b)), [], "b's stale upload")
    eq(len(ctx.s3.uploads_in_progress(key(ctx, c))), 1, "c's fresh upload stays")
    ok(ctx, "staging", c)
    no_refusals(ctx)


@suite.test
def test_ranged_reads_and_local_copies(ctx):
    job = new_id()
    n = 2 * PART + 77
    data = pattern(n, 3)
    ok(ctx, "put", job, "v.mp4", write_file(ctx, data))
    for off, ln in [(0, 1), (0, 100), (PART - 3, 10), (PART, PART), (n - 1, 1), (n - 10, 100),
                    (n, 5), (n + 100, 5), (123, n)]:
        got = ok(ctx, "read", job, "v.mp4", off, ln)
        eq(got, data[off:off + ln], f"bytes [{off}, {off + ln})")
    rc, out, err = run(ctx, "read", job, "nope.mp4", 0, 10)
    eq((rc, out.startswith(b"error not_found")), (1, True), f"a missing blob: {out!r}")
    eq(ok(ctx, "local", job, "v.mp4"), data, "local copy")
    eq(ok(ctx, "local", job, "v.mp4", n), data, "local copy at its limit")
    rc, out, _ = run(ctx, "local", job, "v.mp4", n - 1)
    eq((rc, out.split(b":")[0]), (1, b"error too_large"), f"one byte over the limit: {out!r}")
    rc, out, _ = run(ctx, "local", job, "missing")
    eq((rc, out.split(b":")[0]), (1, b"error not_found"), "a missing blob's local copy")
    eq(os.listdir(ctx.scratch), [], "scratch left behind")
    no_refusals(ctx)


@suite.test
def test_removal_and_garbage_collection(ctx):
    keep, drop, other = new_id(), new_id(), new_id()
    for job in (keep, drop, other):
        for name in ("a.bin", "b.bin"):
            ok(ctx, "put", job, name, write_file(ctx, pattern(100)))
    ok(ctx, "rm", drop, "a.bin")
    eq(sorted(ctx.s3.objects(key(ctx, drop))), [key(ctx, drop, "b.bin")], "after rm")
    ok(ctx, "rm", drop, "a.bin")  # again: not an error
    ok(ctx, "die", drop, "c.bin", PART + 1)
    ok(ctx, "rmjob", drop)
    eq((ctx.s3.objects(key(ctx, drop)), ctx.s3.uploads_in_progress(key(ctx, drop))), ({}, []),
       "a removed job's objects and uploads")
    # gc: nothing is old enough at an hour; at 0 every job not kept goes.
    eq(ok(ctx, "gc", 3600 * 1000), b"0\n", "jobs removed when none is old enough")
    out = ok(ctx, "gc", 0, keep)
    eq(sorted(k.split("/")[-2] for k in ctx.s3.objects(ctx.prefix)), [keep, keep], "jobs kept")
    assert int(out) >= 1, out
    no_refusals(ctx)


@suite.test
def test_many_objects_are_listed_and_removed_past_one_page(ctx):
    """ListObjectsV2 pages hold 1000 keys and a batch delete takes 1000: a job with
    1003 blobs is removed whole."""
    job = new_id()
    c = ctx.c
    for i in range(1003):
        c.put_object(Bucket=ctx.s3.bucket, Key=key(ctx, job, f"f{i:04d}"), Body=b"x")
    ok(ctx, "rmjob", job, timeout=300)
    eq(ctx.s3.objects(key(ctx, job)), {}, "objects left")
    no_refusals(ctx)


@suite.test
def test_a_store_failing_for_a_while_is_retried(ctx):
    """503 SlowDown and 500 InternalError are retried with backoff: a put, a multipart
    part, a read and a list that meet two failures each still succeed."""
    job = new_id()
    data = pattern(2 * PART + 1, 5)
    path = write_file(ctx, data)
    for method, status, code in [("PUT", 503, "SlowDown"), ("POST", 500, "InternalError"),
                                 ("GET", 503, "SlowDown"), ("HEAD", 503, "SlowDown")]:
        ctx.s3.inject(method, status, code, 2)
        ok(ctx, "put", job, "r.bin", path)
        eq(ok(ctx, "read", job, "r.bin", 0, len(data)), data, f"after {method} {code}")
        eq(ctx.s3.faults_left(), 0, f"injected {method} failures used")
    eq(ctx.s3.uploads_in_progress(key(ctx, job)), [], "uploads left")
    no_refusals(ctx)


@suite.test
def test_a_store_failing_for_good_gives_up_with_the_reason(ctx):
    job = new_id()
    ctx.s3.inject("PUT", 503, "SlowDown", 100)
    t = time.monotonic()
    rc, out, _ = run(ctx, "put", job, "x.bin", write_file(ctx, b"abc"))
    took = time.monotonic() - t
    open(ctx.s3.faults_path, "w").close()
    eq(rc, 1, "exit")
    assert out.startswith(b"error io_error") and b"after 5 tries" in out and b"SlowDown" in out, out
    assert took < 15, f"gave up after {took:.1f}s"
    eq(ctx.s3.objects(key(ctx, job)), {}, "no object")
    # A multipart upload that fails at its second part is aborted, not left behind.
    ctx.s3.inject("PUT", 500, "InternalError", 100)
    rc, out, _ = run(ctx, "put", job, "y.bin", write_file(ctx, pattern(2 * PART)))
    open(ctx.s3.faults_path, "w").close()
    eq(rc, 1, "exit")
    eq((ctx.s3.objects(key(ctx, job)), ctx.s3.uploads_in_progress(key(ctx, job))), ({}, []),
       "after a failed multipart upload")


@suite.test
def test_wrong_settings_are_named(ctx):
    """Each way the store refuses gets a message that names the fix."""
    job = new_id()
    cases = [
        ({"AWS_SECRET_ACCESS_KEY": "wrong"}, None, "refused the request's signature"),
        ({"AWS_ACCESS_KEY_ID": "AKIDUNKNOWN"}, None, "does not know access key AKIDUNKNOWN"),
        ({}, f"s3://nosuchbucket/{ctx.prefix}", "bucket nosuchbucket does not exist"),
        ({"SPOOL_S3_REGION": "eu-west-3"}, None, "is in region us-east-1: set SPOOL_S3_REGION=us-east-1"),
        ({"SPOOL_S3_ENDPOINT": f"http://127.0.0.1:{free_port()}"}, None, "unreachable"),
        ({"AWS_ACCESS_KEY_ID": ""}, None, "AWS_ACCESS_KEY_ID"),
        ({"SPOOL_S3_ENDPOINT": "ftp://x"}, None, "bad object store endpoint"),
    ]
    for env, store, want in cases:
        rc, out, _ = run(ctx, "check", env=env, store=store, timeout=60)
        eq(rc, 1, f"check with {env or store}")
        assert want in out.decode(), f"{env or store}: {out!r} lacks {want!r}"
        rc, out, _ = run(ctx, "put", job, "x", write_file(ctx, b"x"), env=env, store=store)
        eq(rc, 1, f"put with {env or store}")
    for bad in ("s3://", "s3:///x", "file://relative", "gs://b/x"):
        rc, out, _ = run(ctx, "check", store=bad)
        eq((rc, out.startswith(b"error invalid")), (1, True), f"{bad}: {out!r}")
    eq(ctx.s3.objects(key(ctx, job)), {}, "nothing written")


@suite.test
def test_the_directory_store_behaves_the_same(ctx):
    """The same tool calls against a directory (file:// URL): the front is shared."""
    d = os.path.join(suite.tmp, "dirstore")
    store = "file://" + d
    job = new_id()
    data = pattern(PART + 3, 9)
    eq(int(ok(ctx, "put", job, "v.bin", write_file(ctx, data), store=store)), len(data), "put")
    eq(ok(ctx, "read", job, "v.bin", PART - 1, 10, store=store), data[PART - 1:PART + 9], "read")
    eq(ok(ctx, "local", job, "v.bin", store=store), data, "local")
    ok(ctx, "abort", job, "gone.bin", 10, store=store)
    eq(sorted(os.listdir(os.path.join(d, "jobs", job[-2:], job))), ["v.bin"], "files")
    ok(ctx, "rmjob", job, store=store)
    eq(os.path.exists(os.path.join(d, "jobs", job[-2:], job)), False, "job directory removed")


def setup():
    ctx = Ctx()
    ctx.s3 = S3()
    ctx.c = ctx.s3.client()
    ctx.prefix = "t/"
    ctx.scratch = os.path.join(suite.tmp, "scratch")
    os.makedirs(ctx.scratch)
    ctx.env = ctx.s3.spool_env(prefix=ctx.prefix)
    ctx.env["SPOOL_SCRATCH_DIR"] = ctx.scratch
    ctx.store = ctx.env["SPOOL_BLOB_URL"]
    return ctx


def teardown(ctx):
    ctx.s3.destroy()


if __name__ == "__main__":
    sys.exit(suite.run(setup, teardown))
