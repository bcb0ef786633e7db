"""README.md stays true to the code: the two commands are there, every setting each
binary's --help lists is documented, every make target it names exists, and CI runs
the test command README gives."""
import os
import re
import subprocess

from harness import BIN, ROOT, Suite, eq

suite = Suite("readme")
README = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
BINARIES = ["spool-api", "spool-video", "spool-pdf", "spoolctl"]


@suite.test
def test_readme_gives_the_two_commands_and_ci_runs_the_test_one():
    assert "make run" in README and "make test" in README
    with open(os.path.join(ROOT, ".ci", "run")) as f:
        assert re.search(r"^make test$", f.read(), re.M), ".ci/run must run `make test`"


@suite.test
def test_every_setting_of_every_binary_is_documented():
    missing = []
    for b in BINARIES:
        path = os.path.join(BIN, b)
        if not os.access(path, os.X_OK):
            raise AssertionError(f"{b} is not built")
        out = subprocess.run([path, "--help"], stdout=subprocess.PIPE, timeout=10).stdout.decode()
        for var in sorted(set(re.findall(r"\b(SPOOL_[A-Z_]+)\b", out))):
            if var not in README:
                missing.append(f"{b}: {var}")
    eq(missing, [], "settings missing from README.md")


@suite.test
def test_make_targets_named_in_the_readme_exist():
    targets = sorted(set(re.findall(r"(?:^|`)make ([a-z][a-z-]*)", README, re.M)))
    assert {"run", "test", "sanitize", "bench"} <= set(targets), targets
    for t in targets:
        p = subprocess.run(["make", "-n", t], cwd=ROOT, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, timeout=60)
        eq(p.returncode, 0, f"make -n {t}: {p.stderr.decode()[-300:]}")


if __name__ == "__main__":
    raise SystemExit(suite.run())
