#!/usr/bin/env python3
"""Smoke run of spool-api's libFuzzer targets (make fuzz builds them; make test does
too): each replays its committed corpus (tests/fuzz/corpus/<target>) and then fuzzes
for a few seconds. Any crash, leak, sanitizer report or broken invariant fails."""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT, Suite, eq  # noqa: E402

TEST_BIN_DIR = os.environ.get("SPOOL_TEST_BIN_DIR", os.path.join(ROOT, "build/release/tests"))
FUZZ_DIR = os.path.join(os.path.dirname(TEST_BIN_DIR), "fuzz")
SECONDS = int(os.environ.get("SPOOL_FUZZ_SECONDS", "3"))
suite = Suite("api_fuzz")


def fuzz(target):
    binary = os.path.join(FUZZ_DIR, f"fuzz_{target}")
    assert os.access(binary, os.X_OK), f"{binary} is not built (make fuzz)"
    corpus = os.path.join(ROOT, "tests", "fuzz", "corpus", target)
    with tempfile.TemporaryDirectory(prefix=f"spool-fuzz-{target}-") as new:
        p = subprocess.run([binary, f"-max_total_time={SECONDS}", "-timeout=10",
                            f"-artifact_prefix={new}/", new, corpus],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    out = p.stdout.decode(errors="replace")
    if p.returncode != 0:
        print("\n".join("# " + line for line in out.splitlines()[-60:]))
    eq(p.returncode, 0, f"fuzz_{target} exit code")
    assert "DONE" in out or "Done" in out, out[-2000:]


for _t in ["multipart", "request", "dataset", "path", "range"]:
    def _test(t=_t):
        fuzz(t)
    _test.__name__ = f"test_fuzz_{_t}_survives_its_corpus_and_{SECONDS}s_of_fuzzing"
    suite.test(_test)

if __name__ == "__main__":
    sys.exit(suite.run())
