#!/usr/bin/env python3
"""spool's libFuzzer targets: find them, run them, keep their seed corpora small.

Every target <bin-dir>/fuzz_NAME (make fuzz builds them into build/release/fuzz) has a
seed corpus in tests/fuzz/corpus/NAME. Targets run one at a time (one core each).

  fuzz.py run [--secs N] [--keep-going] [NAME...]   (make fuzz-run SECS=N)
      Each target for N seconds (default 60), starting from its seed corpus and from
      what earlier runs found (kept in <bin-dir>/work/NAME). Prints, per target, the
      executions reached and any crash with the path of its reproducer (kept in
      <bin-dir>/crashes/NAME/), and exits 1 if any target crashed. With --keep-going a
      target that crashes is started again for the rest of its time (a known finding
      then does not hide new ones), until it finds the same crash twice; each crash is
      reported.
  fuzz.py merge [NAME...]   (make fuzz-merge)
      Minimise the seed corpus together with what the runs found (libFuzzer -merge=1:
      the smallest inputs that keep every feature) and write it back to
      tests/fuzz/corpus/NAME. Commit the result when it is worth it. Files named by
      hand (anything but the 40 hex digits of a SHA-1, e.g. regress-render-null-cp for a
      crash that was fixed) are always kept: merging would drop a reproducer once its
      bug is fixed and its path is no longer new.
  fuzz.py check [NAME...]   (make test: tests/integration/test_fuzz.py)
      The bounded run: each target replays its corpus and then mutates it for a fixed
      number of executions from a fixed seed, so pass or fail is the same on every
      run. Nothing is written into the tree; a crash's reproducer is kept in a
      temporary directory whose path is printed.

--bin-dir defaults to $SPOOL_FUZZ_DIR, else build/release/fuzz.
"""
import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS_DIR = os.path.join(HERE, "corpus")
# Executions of the bounded run (after the corpus replay), about a second or two each
# with ASan and UBSan; slower targets get fewer.
CHECK_RUNS = {"pdf_dataset": 10000, "pdf_export": 200, "pdf_render": 20000}
CHECK_RUNS_DEFAULT = 30000
CHECK_SEED = 1
CORPUS_BUDGET = 300 * 1024  # bytes per seed corpus, after merging
# pdf_export runs about 30 inputs a second (two fonts loaded and embedded per export):
# its seed corpus keeps only inputs that reach new edges, not new hit counts, so that
# make test replays it in a few seconds (fuzz_pdf_render and fuzz_pdf_dataset go deep).
MERGE_FLAGS = {"pdf_export": ["-use_counters=0"]}
SHA1_NAME = re.compile(r"[0-9a-f]{40}")


def default_bin_dir():
    return os.environ.get("SPOOL_FUZZ_DIR", os.path.join(ROOT, "build", "release", "fuzz"))


def corpus_names():
    return sorted(n for n in os.listdir(CORPUS_DIR)
                  if os.path.isdir(os.path.join(CORPUS_DIR, n)))


def binary_names(bin_dir):
    if not os.path.isdir(bin_dir):
        return []
    out = []
    for f in os.listdir(bin_dir):
        path = os.path.join(bin_dir, f)
        if (f.startswith("fuzz_") and "." not in f and os.path.isfile(path)
                and os.access(path, os.X_OK)):
            out.append(f[len("fuzz_"):])
    return sorted(out)


def targets(bin_dir, want=()):
    """[(name, binary, corpus)] for every target (or those named in want), and the
    problems: a binary without a seed corpus, a corpus without a binary."""
    corpora, bins = set(corpus_names()), set(binary_names(bin_dir))
    problems = [f"fuzz_{n} has no seed corpus (tests/fuzz/corpus/{n})"
                for n in sorted(bins - corpora)]
    problems += [f"tests/fuzz/corpus/{n} has no target ({bin_dir}/fuzz_{n}; make fuzz)"
                 for n in sorted(corpora - bins)]
    names = sorted(corpora | bins)
    if want:
        unknown = [w for w in want if w not in names]
        problems += [f"no fuzz target named {w}" for w in unknown]
        names = [n for n in names if n in want]
    return [(n, os.path.join(bin_dir, f"fuzz_{n}"), os.path.join(CORPUS_DIR, n))
            for n in names], problems


def corpus_size(path):
    files = [os.path.join(path, f) for f in os.listdir(path)]
    return len(files), sum(os.path.getsize(f) for f in files if os.path.isfile(f))


def _stats(out):
    """Executions and peak RSS from -print_final_stats=1 (or the last status line)."""
    m = re.findall(r"stat::number_of_executed_units:\s*(\d+)", out)
    if m:
        execs = sum(int(x) for x in m)
    else:
        lines = re.findall(r"^#(\d+)\s", out, re.M)
        execs = int(lines[-1]) if lines else 0
    rss = re.findall(r"stat::peak_rss_mb:\s*(\d+)", out)
    return execs, max((int(x) for x in rss), default=0)


_RUNTIME_FRAME = re.compile(r"^(__sanitizer|__asan|__ubsan|__lsan|fuzzer::|raise|abort|"
                            r"__pthread|__libc|_start|main$)")


def _finding(out):
    """What went wrong (the sanitizer's line and the first frame in spool's code), and
    the reproducer libFuzzer wrote."""
    what = None
    for pat in (r"^.*runtime error: .*$", r"^SUMMARY: .*$", r"^==\d+== ?ERROR: .*$",
                r"^.*ERROR: libFuzzer: .*$"):
        m = re.search(pat, out, re.M)
        if m:
            what = m.group(0).strip()
            break
    for fn, where in re.findall(r"^\s*#\d+ 0x[0-9a-f]+ in (\S+) (\S+)", out, re.M):
        if not _RUNTIME_FRAME.match(fn):
            what = f"{what or 'crash'} in {fn} {where}"
            break
    m = re.search(r"Test unit written to (\S+)", out)
    return what or "crash", (m.group(1) if m else None)


def _run(argv, timeout, env=None):
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=timeout, cwd=tempfile.gettempdir(), env=env)
    return p.returncode, p.stdout.decode(errors="replace")


_FIXED = None


def _fixed_addresses():
    """The prefix that runs a program without address randomisation (setarch -R), or
    [] where that is not allowed. libFuzzer learns from the values the code compares,
    pointers among them: with addresses that move, the same seed mutates differently."""
    global _FIXED
    if _FIXED is None:
        try:
            ok = subprocess.run(["setarch", "-R", "true"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL).returncode == 0
        except OSError:
            ok = False
        _FIXED = ["setarch", "-R"] if ok else []
    return _FIXED


def check(name, binary, corpus, runs=None, log=print):
    """The bounded run of make test. Returns True when the target survived."""
    runs = runs or CHECK_RUNS.get(name, CHECK_RUNS_DEFAULT)
    binary, corpus = os.path.abspath(binary), os.path.abspath(corpus)
    work = tempfile.mkdtemp(prefix=f"spool-fuzz-{name}-")
    new, crashes = os.path.join(work, "new"), os.path.join(work, "crashes")
    os.mkdir(new)
    os.mkdir(crashes)
    start = time.monotonic()
    # Same seed, same addresses, same environment (the stack starts below it): the
    # same executions on every run.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}
    rc, out = _run(_fixed_addresses() +
                   [binary, f"-runs={runs}", f"-seed={CHECK_SEED}", "-reload=0",
                    "-timeout=60", "-rss_limit_mb=2048", "-print_final_stats=1",
                    f"-artifact_prefix={crashes}/", new, corpus], timeout=600, env=env)
    secs = time.monotonic() - start
    execs, rss = _stats(out)
    if rc == 0 and "Done" in out:
        shutil.rmtree(work)
        log(f"# fuzz_{name}: {execs} executions from seed {CHECK_SEED} in {secs:.1f}s, "
            f"peak RSS {rss} MB, no crash")
        return True
    what, repro = _finding(out)
    shutil.rmtree(new, ignore_errors=True)
    for line in out.splitlines()[-80:]:
        log("# " + line)
    log(f"# fuzz_{name} CRASHED ({what}); exit status {rc}")
    log(f"# reproducer: {repro or '(none written)'}")
    if repro:
        log(f"# replay it: {binary} {repro}")
    return False


def run(name, binary, corpus, secs, bin_dir, keep_going=False, log=print):
    """A long run of secs seconds. Returns (executions, [(what, reproducer)])."""
    binary, corpus = os.path.abspath(binary), os.path.abspath(corpus)
    work = os.path.abspath(os.path.join(bin_dir, "work", name))
    crashes = os.path.abspath(os.path.join(bin_dir, "crashes", name))
    os.makedirs(work, exist_ok=True)
    os.makedirs(crashes, exist_ok=True)
    end = time.monotonic() + secs
    execs, found = 0, []
    while True:
        left = int(end - time.monotonic())
        if left < 1:
            break
        rc, out = _run([binary, f"-max_total_time={left}", "-timeout=30",
                        "-rss_limit_mb=2048", "-print_final_stats=1",
                        f"-artifact_prefix={crashes}/", work, corpus], timeout=left + 300)
        n, rss = _stats(out)
        execs += n
        if rc == 0:
            break
        what, repro = _finding(out)
        again = any(w == what for w, _ in found)
        found.append((what, repro))
        log(f"fuzz_{name}: CRASH after {execs} executions: {what}")
        log(f"fuzz_{name}:   reproducer {repro or '(none written)'}"
            + (f" (replay: {binary} {repro})" if repro else ""))
        if not keep_going or again or len(found) >= 20:
            if again:
                log(f"fuzz_{name}: the same crash again: the rest of its time would find "
                    "only that")
            break
    status = "no crash" if not found else f"{len(found)} crash(es)"
    log(f"fuzz_{name}: {execs:,} executions in {secs} s, {status}")
    return execs, found


def merge(name, binary, corpus, bin_dir, log=print):
    """Minimise corpus + what the runs found; write the result back to corpus (keeping
    the files named by hand)."""
    binary, corpus = os.path.abspath(binary), os.path.abspath(corpus)
    work = os.path.abspath(os.path.join(bin_dir, "work", name))
    sources = [corpus] + ([work] if os.path.isdir(work) else [])
    before = corpus_size(corpus)
    hashed = [f for f in os.listdir(corpus) if SHA1_NAME.fullmatch(f)]
    kept = set()
    for f in os.listdir(corpus):
        if not SHA1_NAME.fullmatch(f):
            with open(os.path.join(corpus, f), "rb") as fh:
                kept.add(hashlib.sha1(fh.read()).hexdigest())
    with tempfile.TemporaryDirectory(prefix=f"spool-fuzz-merge-{name}-") as tmp:
        out_dir = os.path.join(tmp, "merged")
        os.mkdir(out_dir)
        rc, out = _run([binary, "-merge=1", "-timeout=30", "-rss_limit_mb=2048",
                        f"-artifact_prefix={tmp}/"] + MERGE_FLAGS.get(name, []) +
                       [out_dir] + sources, timeout=3600)
        if rc != 0:
            log(out[-3000:])
            raise SystemExit(f"fuzz_{name}: merge failed (exit status {rc})")
        for f in hashed:
            os.unlink(os.path.join(corpus, f))
        for f in os.listdir(out_dir):
            if f not in kept:
                shutil.copy(os.path.join(out_dir, f), os.path.join(corpus, f))
    after = corpus_size(corpus)
    note = "" if after[1] <= CORPUS_BUDGET else f" (over the {CORPUS_BUDGET // 1024} KB budget)"
    log(f"fuzz_{name}: corpus {before[0]} files / {before[1]:,} B -> "
        f"{after[0]} files / {after[1]:,} B{note}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=["run", "merge", "check"])
    ap.add_argument("names", nargs="*")
    ap.add_argument("--secs", type=int, default=60)
    ap.add_argument("--keep-going", action="store_true")
    ap.add_argument("--bin-dir", default=default_bin_dir())
    a = ap.parse_intermixed_args()
    todo, problems = targets(a.bin_dir, a.names)
    for p in problems:
        print(f"fuzz: {p}", file=sys.stderr)
    if problems:
        return 2
    bad = 0
    if a.mode == "check":
        bad = sum(not check(n, b, c) for n, b, c in todo)
    elif a.mode == "merge":
        for n, b, c in todo:
            merge(n, b, c, a.bin_dir)
    else:
        total = []
        for n, b, c in todo:
            execs, found = run(n, b, c, a.secs, a.bin_dir, a.keep_going)
            total.append((n, execs, found))
            bad += bool(found)
        print(f"\n{'target':<22} {'executions':>14}  crashes")
        for n, execs, found in total:
            print(f"{'fuzz_' + n:<22} {execs:>14,}  {len(found)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
