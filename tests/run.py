#!/usr/bin/env python3
"""Run every spool test suite and end with "N passed, N failed".

Suites: each cmocka binary in $SPOOL_TEST_BIN_DIR (test_*), and each
tests/integration/test_*.py; those in BOTH_BLOB_STORES run twice, with the directory
blob store and as "<name>_s3" with SPOOL_TEST_BLOBS=s3. Every suite prints TAP ("ok N - name" /
"not ok N - name"); a suite that exits non-zero without reporting a failure counts as
one failure. Suites run two at a time (each has its own private Redis).

Usage: tests/run.py [NAME-SUBSTRING...]   (only suites whose name contains one)
"""
import concurrent.futures
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TIMEOUT = int(os.environ.get("SPOOL_SUITE_TIMEOUT", "900"))
JOBS = int(os.environ.get("SPOOL_TEST_JOBS", "2"))
# Integration suites that keep jobs' blobs through harness.blob_store: each runs once
# with the directory store and once with the S3 one (s3rver behind the proxy that
# checks every signature), and ends by cross-checking the store against the jobs.
BOTH_BLOB_STORES = ("test_api", "test_api_uploads", "test_hls", "test_pdf_worker", "test_video")


def suites():
    """[(name, argv, environment)]"""
    found = []
    bindir = os.environ.get("SPOOL_TEST_BIN_DIR", os.path.join(ROOT, "build/release/tests"))
    if os.path.isdir(bindir):
        for name in sorted(os.listdir(bindir)):
            path = os.path.join(bindir, name)
            if name.startswith("test_") and os.access(path, os.X_OK) and os.path.isfile(path):
                found.append((name, [path], {}))
    idir = os.path.join(HERE, "integration")
    for name in sorted(os.listdir(idir)):
        if not (name.startswith("test_") and name.endswith(".py")):
            continue
        argv = [sys.executable, os.path.join(idir, name)]
        if name[:-3] in BOTH_BLOB_STORES:
            found.append((name[:-3], argv, {"SPOOL_TEST_BLOBS": "dir"}))
            found.append((name[:-3] + "_s3", argv, {"SPOOL_TEST_BLOBS": "s3"}))
        else:
            found.append((name[:-3], argv, {}))
    return found


TAP = re.compile(r"^(not ok|ok)\b\s*\d*\s*-?\s*(.*)$")


def run(name, argv, extra_env):
    env = dict(os.environ, CMOCKA_MESSAGE_OUTPUT="TAP", PYTHONUNBUFFERED="1", **extra_env)
    start = time.monotonic()
    try:
        p = subprocess.run(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=TIMEOUT)
        out, rc = p.stdout.decode(errors="replace"), p.returncode
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace") + f"\n# suite timed out after {TIMEOUT}s"
        rc = -1
    passed, failed, names = 0, 0, []
    for line in out.splitlines():
        m = TAP.match(line)
        if not m:
            continue
        if m.group(1) == "ok":
            passed += 1
        else:
            failed += 1
            names.append(m.group(2))
    if rc != 0 and failed == 0:
        failed = 1
        names.append(f"{name} exited with status {rc}")
    return name, passed, failed, names, out, time.monotonic() - start


def main():
    want = sys.argv[1:]
    todo = [s for s in suites() if not want or any(w in s[0] for w in want)]
    total_p = total_f = 0
    failures = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=JOBS) as pool:
        futs = [pool.submit(run, *s) for s in todo]
        for fut in concurrent.futures.as_completed(futs):
            name, p, f, names, out, secs = fut.result()
            total_p += p
            total_f += f
            status = "ok  " if f == 0 else "FAIL"
            print(f"{status} {name}: {p} passed, {f} failed ({secs:.1f}s)", flush=True)
            if f or os.environ.get("SPOOL_TEST_VERBOSE"):
                failures.append(name)
                print("---- output of " + name + " ----")
                print(out.rstrip()[-20000:])
                print("---- end of " + name + " ----", flush=True)
    print(f"{total_p} passed, {total_f} failed")
    return 0 if total_f == 0 and total_p > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
