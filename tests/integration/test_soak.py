#!/usr/bin/env python3
"""The soak (tests/soak/soak.py, `make soak`) in short: 80 mixed jobs over about 25 s
through the real binaries while workers and the API are killed with SIGKILL every ~2 s
(most worker kills catching a job mid-run) and Redis once, started again from its AOF
(appendfsync always). Every accepted job must end as intended (the bad videos failed at
once, everything else succeeded), none lost, none completed twice, every output whole
and served by the API, no file left in the blob store after a GC pass. Short leases
(4 s) keep a killed worker's job from waiting the default 30 s."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "soak"))

from harness import BIN, Suite, eq  # noqa: E402
import soak  # noqa: E402

suite = Suite("soak")


@suite.test
def test_short_soak_loses_nothing_completes_nothing_twice_and_leaves_no_file():
    if not all(os.access(os.path.join(BIN, b), os.X_OK) for b in ("spool-api", "spool-video", "spool-pdf")):
        print("# SKIP spool-api, spool-video or spool-pdf not built")
        return
    # On failure the run's directory (every process's log, the data) is kept; its
    # path is printed.
    cfg = soak.Config(jobs=80, seconds=25, kill_every=2.0, redis_kills=1, appendfsync="always",
                      lease="4s", worker_ttl="3s", settle_timeout=120, clients=3)
    res = soak.run(cfg, out=lambda s: print("# " + s, flush=True))
    print("# " + res.line())
    c = res.counts
    for p in res.problems:
        print("# problem: " + p.replace("\n", "\n#   "))
    assert not res.problems, f"{len(res.problems)} problems (above)"
    eq((c["lost"], c["run_twice"], c["leftover"]), (0, 0, 0), "lost, run twice, leftover files")
    eq(c["accepted"], 80, "accepted")
    eq(c["succeeded"] + c["failed"], c["accepted"], "every accepted job ended")
    # The chaos happened: kills of each kind, jobs caught mid-run, one Redis restart
    # that loaded its AOF (the soak fails the run if it came back with fewer jobs).
    ev = res.chaos_events
    kinds = [e["what"] for e in ev]
    assert kinds.count("kill-worker") >= 3, f"worker kills: {kinds}"
    assert kinds.count("kill-api") >= 1, f"API kills: {kinds}"
    eq(kinds.count("kill-redis"), 1, "Redis kills")
    assert res.caught_running >= 1, "no worker kill caught a job running"


if __name__ == "__main__":
    raise SystemExit(suite.run())
