#!/usr/bin/env python3
"""make bench-blob: a large object into and out of the S3 store through spool-api, beside
the AWS CLI (`aws s3 cp`, Debian's awscli) moving the same file to and from the same
server, in one run.

The server is s3rver (the tests' S3 server, harness.S3) reached directly, without the
tests' signature-checking proxy (a Python process that would be the bottleneck of both
sides). Both sides sign with SigV4 and use multipart uploads: spool-api with its
defaults (8 MiB parts, one in flight per upload), the CLI with its own (8 MiB parts, 10
at once).
  1. Upload: POST /v1/videos with the file as the raw body (curl -T FILE -X POST,
     streamed from the file),
     until the 202 (the object is complete when the API answers), beside
     `aws s3 cp FILE s3://...`.
  2. Download: GET /v1/jobs/{id}/outputs/{name} (curl -o /dev/null), beside
     `aws s3 cp s3://... -` into /dev/null. The output is the uploaded file itself,
     made an output of the job by the tests' api-test-worker (one server-side
     re-upload, not timed).
It prints MB/s for each, the ratio spool/CLI, and spool-api's peak RSS during each leg
(VmHWM, reset before each leg through /proc/PID/clear_refs).

Environment: BENCH_BLOB_MIB (default 1024), SPOOL_BIN_DIR, SPOOL_TEST_BIN_DIR,
BENCH_RUNS (default 1: runs of each leg, best and spread printed).
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from harness import BIN, Proc, Redis, S3, wait_until  # noqa: E402

MIB = int(os.environ.get("BENCH_BLOB_MIB", "1024"))
RUNS = int(os.environ.get("BENCH_RUNS", "1"))
TEST_BIN = os.environ.get("SPOOL_TEST_BIN_DIR", os.path.join(ROOT, "build/release/tests"))
WORKER = os.path.join(os.path.dirname(TEST_BIN), "api", "api-test-worker")


def aws_bin():
    for p in ("/usr/bin/aws", shutil.which("aws")):
        if p and os.access(p, os.X_OK):
            return p
    sys.exit("bench-blob: the AWS CLI is missing (Debian package awscli)")


def rss_reset(pid):
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
    except OSError:
        pass


def peak_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return -1


def timed(argv, env=None):
    t = time.monotonic()
    p = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=3600)
    took = time.monotonic() - t
    if p.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({p.returncode}): {p.stderr.decode()[-2000:]}")
    return took, p.stdout


def main():
    tmp = tempfile.mkdtemp(prefix="spool-bench-blob-")
    s3 = S3()
    redis = Redis()
    api = None
    try:
        path = os.path.join(tmp, "big.bin")
        with open(path, "wb") as f:
            block = os.urandom(1 << 20)
            for _ in range(MIB):
                f.write(block)
        size = MIB << 20
        # s3rver itself takes any signature from its own key pair.
        direct = {"AWS_ACCESS_KEY_ID": "S3RVER", "AWS_SECRET_ACCESS_KEY": "S3RVER"}
        env = dict(os.environ, SPOOL_REDIS_URL=redis.url, SPOOL_BLOB_URL=f"s3://{s3.bucket}/bench/",
                   SPOOL_S3_ENDPOINT=s3.upstream, SPOOL_S3_REGION=s3.region, SPOOL_S3_PATH_STYLE="1",
                   SPOOL_SCRATCH_DIR=os.path.join(tmp, "scratch"), SPOOL_LISTEN="127.0.0.1:0",
                   SPOOL_MAX_UPLOAD_BYTES=str(size + (1 << 20)), SPOOL_LOG_LEVEL="info", **direct)
        api = Proc([os.path.join(BIN, "spool-api")], env={k: env[k] for k in env if k.startswith(("SPOOL_", "AWS_"))},
                   name="spool-api", logdir=tmp)
        m = wait_until(lambda: re.search(r"\(port (\d+),", api.output()), 20, what="spool-api")
        base = f"http://127.0.0.1:{m.group(1)}"
        aws = [aws_bin(), "--endpoint-url", s3.upstream, "--region", s3.region, "s3", "cp", "--only-show-errors"]
        aws_env = dict(os.environ, AWS_CONFIG_FILE="/dev/null", **direct)
        rows = []
        for run in range(RUNS):
            rss_reset(api.pid)
            up_s, out = timed(["curl", "-sS", "-f", "-X", "POST", "-H", "Content-Type: video/mp4",
                               "-T", path, f"{base}/v1/videos"])
            up_rss = peak_kib(api.pid)
            job = json.loads(out)
            cli_up_s, _ = timed(aws + [path, f"s3://{s3.bucket}/cli/big-{run}.bin"], env=aws_env)
            # Make the upload an output of the job: the test worker takes it and commits
            # an output of the same size through the blob store (server side, untimed).
            w = subprocess.Popen([WORKER, redis.url, "spool:", env["SPOOL_BLOB_URL"], "video"],
                                 env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            for line in ("take 5000", f"output out.bin application/octet-stream {size}", "succeed", "quit"):
                w.stdin.write(line + "\n")
                w.stdin.flush()
                reply = w.stdout.readline().strip()
                if line != "quit" and not reply.startswith(("ok", "taken")):
                    raise SystemExit(f"test worker: {line}: {reply}")
            w.wait(timeout=600)
            rss_reset(api.pid)
            down_s, _ = timed(["curl", "-sS", "-f", "-o", "/dev/null",
                               f"{base}/v1/jobs/{job['id']}/outputs/out.bin"])
            down_rss = peak_kib(api.pid)
            cli_down_s, _ = timed(aws + [f"s3://{s3.bucket}/cli/big-{run}.bin", "-"], env=aws_env)
            rows.append((up_s, cli_up_s, down_s, cli_down_s, up_rss, down_rss))
        mb = size / 1e6

        def line(what, i, j, rss_i):
            best = min(r[i] for r in rows)
            cbest = min(r[j] for r in rows)
            spread = (max(r[i] for r in rows) - best) / best * 100 if RUNS > 1 else 0
            print(f"{what:9s} spool-api {mb / best:8.1f} MB/s   aws s3 cp {mb / cbest:8.1f} MB/s   "
                  f"ratio {cbest / best:5.2f}x   spool-api peak RSS {max(r[rss_i] for r in rows) / 1024:6.1f} MiB"
                  + (f"   (spread {spread:.0f}% over {RUNS} runs)" if RUNS > 1 else ""))
        print(f"bench-blob: {MIB} MiB through spool-api vs aws s3 cp (awscli), s3rver on loopback")
        line("upload", 0, 1, 4)
        line("download", 2, 3, 5)
    finally:
        if api:
            api.stop()
        s3.destroy()
        redis.destroy()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
