#!/usr/bin/env python3
"""The bounded fuzz run of make test: every libFuzzer target (make fuzz; make test builds
them too) replays its seed corpus (tests/fuzz/corpus/<name>) and then mutates it for a
fixed number of executions from a fixed seed, a second or two each, so a pass or a
failure is the same on every run. Any crash, leak, sanitizer report (UBSan included:
the targets build with -fno-sanitize-recover=all) or broken invariant fails, printing
the reproducer's path. Nothing is written into the tree. Long runs: make fuzz-run."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fuzz"))
from harness import ROOT, Suite  # noqa: E402
import fuzz  # noqa: E402

TEST_BIN_DIR = os.environ.get("SPOOL_TEST_BIN_DIR", os.path.join(ROOT, "build/release/tests"))
FUZZ_DIR = os.path.join(os.path.dirname(TEST_BIN_DIR), "fuzz")
suite = Suite("fuzz")
TARGETS, PROBLEMS = fuzz.targets(FUZZ_DIR)


@suite.test
def test_every_target_has_a_seed_corpus_and_every_corpus_a_target():
    assert TARGETS, f"no fuzz targets in {FUZZ_DIR} and no corpora"
    assert not PROBLEMS, "; ".join(PROBLEMS)


for _name, _binary, _corpus in TARGETS:
    def _test(name=_name, binary=_binary, corpus=_corpus):
        assert os.access(binary, os.X_OK), f"{binary} is not built (make fuzz)"
        lines = []
        ok = fuzz.check(name, binary, corpus, log=lines.append)
        print("\n".join(lines), flush=True)
        assert ok, f"fuzz_{name} crashed: see its output above"
    _test.__name__ = f"test_fuzz_{_name}_survives_its_corpus_and_bounded_mutation"
    suite.test(_test)

if __name__ == "__main__":
    sys.exit(suite.run())
