#!/usr/bin/env python3
"""make soak: a chaos run of the real binaries. A private redis-server (appendonly yes),
one spool-api, spool-video and spool-pdf workers; a client submits SOAK_JOBS mixed jobs
over HTTP (video uploads of tiny clips made with ffmpeg, to mp4-480p: raw, multipart and
slowly sent bodies; PDF exports from inline JSON rows, from JSON rows large enough to go
to a dataset file, from CSV bodies; a few bad videos that must fail at once), retrying
as a real client does (connection errors, 503 and 429, with the same Idempotency-Key
when it has one; some keyed requests are sent again after their 202 on purpose).
Meanwhile a chaos loop kill -9s workers (most of them while they run a job) and the API
and starts them again, now and then freezes a worker (SIGSTOP) past its lease and lets
it go on (SIGCONT), and kill -9s Redis SOAK_REDIS_KILLS times, starting it again from
its AOF. Then the chaos stops, every job is waited for, a blob GC pass runs, everything
is audited, and the last line counts:

  soak: accepted A, succeeded S, failed F, lost L, run twice T (redone after a kill R), leftover files X

  accepted   202 answers the client received, as distinct job ids (a replay of an
             Idempotency-Key answers the job it made before: not a new job).
  succeeded, failed
             the final state of each accepted job; the run waits for every job to end
             (at most SOAK_SETTLE_TIMEOUT seconds). Every failed job must be one of the
             bad videos, failed at once with a permanent error, or the run fails.
  lost       an accepted job that no longer exists (the API answers 404) or has not
             ended within that bound.
  run twice  a job whose success Redis accepted more than once: two "succeeded in" lines
             in the workers' logs (a worker logs one only after Redis took its finish)
             or two "succeeded" events on the job's pub/sub channel; and in total the
             queues' "succeeded" counters (counted by the same Lua step that ends a job)
             must equal the number of succeeded jobs. This is the design's "effectively
             once", and must be 0.
  redone after a kill
             a job whose work ran to its end more than once ("encoded ..." or
             "exported ..." logged twice): at least once delivery means a worker killed
             (or frozen past its lease) after its work but before Redis recorded it has
             its job done again. Counted, not a failure; its outputs are replaced, not
             duplicated.
  leftover files
             files in the blob store that belong to no live job after the run settled
             and a GC pass ran: in a directory of no job, staging files (*.tmp-*),
             files a job does not list, files outside jobs/<xx>/<id>/. The GC pass runs
             as it would two hours later (the store is aged by two hours first: past the
             GC's default minimum age of an hour). Before it, a live job's staging file
             or unlisted file is already a failure (GC would hide it); files of no job
             are counted and reported.

Redis runs with appendfsync SOAK_APPENDFSYNC (default always). With "always" Redis
writes and fsyncs the AOF before it answers, so every acknowledged write survives a
kill -9 and "lost 0, run twice 0" are fair assertions. With "everysec" Redis still
write(2)s the AOF before it answers (the page cache outlives a killed process), except
while a background fsync is slow: then it postpones its writes for up to 2 s and keeps
answering, and a kill -9 loses those acknowledged writes (a machine crash loses about
the last second as well). The run then counts a lost job whose 202 came, or a double
success whose first success came, within 2.5 s before a Redis kill as "in everysec's
window" and does not fail on it; anything else still fails the run.

A job whose worker was killed while running it must start again within
SOAK_MAX_REDELIVERY (default the worker TTL + 5 s: 15 s). An upload cut by an API kill
leaves a staging file that the API's GC removes once it has been dead for
SPOOL_GC_STAGING_AGE (20 s here); such files are counted as "cut-upload" before the
GC pass and must be gone after it.

Settings (environment, or make variables of the same names):
  SOAK_JOBS=500  SOAK_SECONDS=150 (the submissions are spread over this many seconds)
  SOAK_SEED (random; printed: the same seed gives the same plan and chaos choices)
  SOAK_CLIENTS=4  SOAK_VIDEO_WORKERS=2  SOAK_PDF_WORKERS=2
  SOAK_KILL_EVERY=4 (mean seconds between chaos actions): SOAK_API_KILL_SHARE=0.25 of
    them kill the API, SOAK_STALL_SHARE=0.1 freeze a busy worker past its lease, the
    rest kill a worker (one running a job for SOAK_BUSY_KILL_SHARE=0.7 of them)
  SOAK_REDIS_KILLS=2 (spread evenly over the submissions)  SOAK_APPENDFSYNC=always
  SOAK_LEASE, SOAK_WORKER_TTL (the workers' SPOOL_LEASE, SPOOL_WORKER_TTL; default theirs)
  SOAK_GC_INTERVAL=5s  SOAK_GC_MIN_AGE=60s (the API's blob GC during the run; 60 s is
    the least it takes)
  SOAK_SETTLE_TIMEOUT=300  SOAK_MAX_REDELIVERY (seconds; default the worker TTL + 5)
  SOAK_KEEP=0 (keep the run's directory; kept anyway on failure)
  SOAK_DIR (where the run keeps its data and logs; default a new temp directory)
Any SPOOL_* variable set reaches every process. Exit status 0 when nothing was lost,
nothing completed twice, nothing was left over and every job ended as intended; 1
otherwise, with the reasons printed above the last line."""
import json
import os
import random
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
sys.path.insert(0, HERE)

import audit  # noqa: E402
from client import Client, make_media, plan_jobs  # noqa: E402
from cluster import Chaos, Cluster, Watcher, redis_version, sigkill_all  # noqa: E402

EVERYSEC_WINDOW = 2.5


def seconds_of(text):
    """'30s', '500ms', '2m', '4' -> seconds."""
    text = str(text).strip()
    for unit, mul in (("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)):
        if text.endswith(unit) and text[: -len(unit)].replace(".", "", 1).isdigit():
            return float(text[: -len(unit)]) * mul
    return float(text)


class Config:
    def __init__(self, **over):
        e = lambda k, d: over.get(k.lower(), os.environ.get("SOAK_" + k, d))  # noqa: E731
        self.jobs = int(e("JOBS", 500))
        self.seconds = float(e("SECONDS", 150))
        self.seed = int(e("SEED", random.SystemRandom().randrange(1, 10**6)))
        self.clients = int(e("CLIENTS", 4))
        self.video_workers = int(e("VIDEO_WORKERS", 2))
        self.pdf_workers = int(e("PDF_WORKERS", 2))
        self.kill_every = float(e("KILL_EVERY", 4))
        self.api_kill_share = float(e("API_KILL_SHARE", 0.25))
        self.busy_kill_share = float(e("BUSY_KILL_SHARE", 0.7))
        self.stall_share = float(e("STALL_SHARE", 0.1))
        self.restart_delay = float(e("RESTART_DELAY", 1.0))
        self.redis_kills = int(e("REDIS_KILLS", 2))
        self.fsync = e("APPENDFSYNC", "always")
        if self.fsync not in ("always", "everysec"):
            raise SystemExit("SOAK_APPENDFSYNC must be always or everysec")
        self.lease = e("LEASE", "")
        self.worker_ttl = e("WORKER_TTL", "")
        self.gc_interval = e("GC_INTERVAL", "5s")
        self.gc_min_age = e("GC_MIN_AGE", "60s")
        self.settle_timeout = float(e("SETTLE_TIMEOUT", 300))
        self.lease_s = seconds_of(self.lease) if self.lease else 30.0
        ttl_s = seconds_of(self.worker_ttl) if self.worker_ttl else 10.0
        self.max_redelivery = float(e("MAX_REDELIVERY", min(ttl_s, self.lease_s) + 5))
        self.keep = e("KEEP", "0") not in ("0", "no", "")
        self.dir = e("DIR", "")
        self.key_share = float(e("KEY_SHARE", 0.6))
        self.replay_share = float(e("REPLAY_SHARE", 0.15))
        self.submit_timeout = float(e("SUBMIT_TIMEOUT", 120))
        self.spool_env = {}
        if self.lease:
            self.spool_env["SPOOL_LEASE"] = self.lease
        if self.worker_ttl:
            self.spool_env["SPOOL_WORKER_TTL"] = self.worker_ttl


class Result:
    """The counts of the last line, the details behind them, and the problems (each a
    reason the run failed)."""

    def __init__(self):
        self.counts = {}
        self.problems = []
        self.notes = []
        self.root = None
        self.chaos_events = []
        self.caught_running = 0

    def line(self):
        c = self.counts
        return (f"soak: accepted {c['accepted']}, succeeded {c['succeeded']}, failed {c['failed']}, "
                f"lost {c['lost']}, run twice {c['run_twice']} (redone after a kill {c['redone']}), "
                f"leftover files {c['leftover']}")


def run(cfg, out=print):
    res = Result()
    root = cfg.dir or tempfile.mkdtemp(prefix="spool-soak-")
    os.makedirs(root, exist_ok=True)
    res.root = root
    rng = random.Random(cfg.seed)
    out(f"soak: seed {cfg.seed}, {cfg.jobs} jobs over {cfg.seconds:g} s, {cfg.clients} clients, "
        f"{cfg.video_workers} video + {cfg.pdf_workers} pdf workers, Redis {redis_version()} "
        f"appendfsync {cfg.fsync}, lease {cfg.lease or 'default'}, in {root}")
    os.makedirs(os.path.join(root, "media"), exist_ok=True)
    media = make_media(os.path.join(root, "media"))
    plan = plan_jobs(cfg, rng)
    cluster = Cluster(cfg, root)
    cluster.api_env = {"SPOOL_GC_INTERVAL": cfg.gc_interval, "SPOOL_GC_MIN_AGE": cfg.gc_min_age,
                       "SPOOL_GC_STAGING_AGE": "20s"}
    watcher = Watcher(cluster.redis)
    chaos = None
    try:
        cluster.start()
        watcher.start()
        t0 = time.monotonic()
        kills_at = [t0 + cfg.seconds * (k + 1) / (cfg.redis_kills + 1) for k in range(cfg.redis_kills)]
        chaos = Chaos(cluster, cfg, random.Random(cfg.seed + 1), kills_at, t0 + cfg.seconds * 0.6)
        chaos.start()
        client = Client(cfg, cluster.port, media, plan, cfg.seed + 2)
        client.run()
        # Every planned Redis kill happens, even when the submissions ended early.
        while chaos.redis_kill_at and chaos.is_alive():
            time.sleep(0.1)
        chaos.stopping.set()
        chaos.join(60)
        chaos.wake_all()
        chaos.check_crashes()
        for slot, p in list(cluster.workers.items()):
            if not p.alive():
                cluster.start_worker(slot)
        if not cluster.api.alive():
            cluster.start_api(wait=False)
        cluster.wait_api()
        t_sub = time.monotonic() - t0
        out(f"soak: submitted in {t_sub:.0f} s; waiting for every job to end")
        audit_run(cfg, res, cluster, watcher, chaos, client, plan, media, out)
    finally:
        watcher.stop()
        if chaos:
            chaos.stopping.set()
        try:
            cluster.stop()
        finally:
            sigkill_all(cluster.procs + [cluster.redis.proc])
    if res.problems or cfg.keep:
        out(f"soak: logs and data kept in {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    return res


def audit_run(cfg, res, cluster, watcher, chaos, client, plan, media, out):
    c = res.counts
    P = res.problems.append
    stats = client.stats
    for job in plan:
        r = client.results.get(job["i"], {})
        job["id"], job["result"] = r.get("id"), r
    accepted = {j["id"] for j in plan if j["id"]}
    c["accepted"] = len(accepted)
    if len(accepted) != sum(1 for j in plan if j["id"]):
        P("two plan entries were answered with the same job id")
    refused = [j for j in plan if not j["id"]]
    for j in refused[:10]:
        P(f"{j['tag']} ({j['kind']}) was not accepted: {j['result'].get('status')} {j['result'].get('body', '')}")
    if len(refused) > 10:
        P(f"{len(refused)} submissions in all were not accepted")

    known_ids = set(audit.redis_jobs(cluster.redis)) | accepted
    views, took = audit.settle(cluster.port, sorted(known_ids), cfg.settle_timeout)
    out(f"soak: every job ended in {took:.0f} s" if all(v and v["state"] in audit.TERMINAL for v in views.values())
        else f"soak: not every job ended within {cfg.settle_timeout:g} s")
    records = audit.redis_jobs(cluster.redis)
    api_kills = [e["at"] for e in chaos.events if e["what"] == "kill-api"]
    before_gc = audit.leftovers(cluster.data, set(records), expected_outputs(records), api_kills)
    audit.gc_pass(cluster)
    records = audit.redis_jobs(cluster.redis)
    counters = audit.queue_counters(cluster.redis)
    per_job, open_at_kill, starts = audit.worker_logs(cluster.procs)
    pubsub = watcher.snapshot()
    redis_kills = [e for e in chaos.events if e["what"] == "kill-redis"]
    kill_times = [e["at"] for e in redis_kills]

    def in_window(t):
        return cfg.fsync == "everysec" and t is not None and any(0 <= k - t <= EVERYSEC_WINDOW for k in kill_times)

    # ---- final states: succeeded, failed, lost ---------------------------------------
    c["succeeded"] = c["failed"] = c["lost"] = 0
    lost_window = 0
    for job in plan:
        if not job["id"]:
            continue
        v = views.get(job["id"])
        if v is None or v["state"] not in audit.TERMINAL:
            if in_window(job["result"].get("accepted_at")):
                lost_window += 1
            else:
                P(f"lost: {job['tag']} {job['id']} ({job['kind']}): "
                  f"{'gone (404)' if v is None else 'still ' + v['state']}")
            c["lost"] += 1
            continue
        if v["state"] == "succeeded":
            c["succeeded"] += 1
        elif v["state"] == "failed":
            c["failed"] += 1
        if v["state"] != job["expect"]:
            P(f"{job['tag']} {job['id']} ({job['kind']}) ended {v['state']}, expected {job['expect']}: "
              f"error {v.get('error')}, attempts {v['attempts']}")
        elif v["state"] == "failed":
            err = v.get("error") or {}
            want = media[job["clip"]]["expect_code"]
            if err.get("code") not in want or err.get("retryable") or v["attempts"] != 1:
                P(f"{job['tag']} {job['id']} failed as intended but with {err} after "
                  f"{v['attempts']} attempts (expected a permanent {'/'.join(want)} at once)")
    intended = sum(1 for j in plan if j["id"] and j["expect"] == "failed")
    res.notes.append(f"failed: {c['failed']} ({intended} bad videos were submitted to fail)")
    if lost_window:
        res.notes.append(f"lost within everysec's window before a Redis kill: {lost_window}")

    # ---- jobs nobody was told about: non-idempotent retries, or a broken key ---------
    orphans = sorted(set(records) - accepted)
    by_tag = {j["tag"]: j for j in plan}
    dup_keyless = 0
    for jid in orphans:
        job = by_tag.get(audit.plan_tag(records[jid]))
        v = views.get(jid)
        if job is None:
            P(f"a job no plan entry explains: {jid} {records[jid]}")
        elif job["key"]:
            P(f"{job['tag']} has a key but made a second job {jid} (answered {job['id']})")
        else:
            dup_keyless += 1
        if v is None or v["state"] not in audit.TERMINAL:
            P(f"unacknowledged job {jid} never ended ({v and v['state']})")
    res.notes.append(f"jobs made by a retry without Idempotency-Key (202 never seen): {dup_keyless}")
    if stats.get("replay_mismatch"):
        P(f"a keyed request sent again answered another job: {stats.samples.get('replay_mismatch')}")

    # ---- run twice, redone, redelivery -------------------------------------------------
    twice, twice_window = [], 0
    for jid, rec in records.items():
        lg = per_job.get(jid, {}).get("succeeded", 0)
        ev = pubsub.get(jid, {}).get("succeeded", 0)
        if max(lg, ev) > 1:
            if in_window(min(per_job.get(jid, {}).get("success_t") or [None])):
                twice_window += 1
            else:
                P(f"completed twice: {jid} ({lg} successes in the logs, {ev} succeeded events), "
                  f"started on {per_job.get(jid, {}).get('procs')}")
            twice.append(jid)
    n_succeeded = sum(1 for r in records.values() if r.get("state") == "succeeded")
    n_counted = sum(q.get("succeeded", 0) for q in counters.values())
    counter_extra = n_counted - n_succeeded
    if counter_extra != 0:
        P(f"the queues' succeeded counters say {n_counted}, Redis holds {n_succeeded} succeeded jobs")
    c["run_twice"] = max(len(twice), counter_extra)
    redone = [j for j, pj in per_job.items() if pj["work_done"] > 1]
    c["redone"] = len(redone)
    restarted = sum(1 for pj in per_job.values() if pj["started"] > 1)
    discarded = sum(pj["discarded"] for pj in per_job.values())
    res.notes.append(f"run twice: {len(twice)} by the logs and events ({twice_window} in everysec's window), "
                     f"counters {n_counted} for {n_succeeded} succeeded jobs; started more than once: "
                     f"{restarted}; work redone: {len(redone)}; results discarded (lease gone): {discarded}")

    delays = audit.redelivery(open_at_kill, starts)
    waited = sorted(d for _, _, d in delays if d is not None)
    never = [(j, n) for j, n, d in delays if d is None]
    for jid, name in never:
        v = views.get(jid)
        if not (v and v["state"] == "succeeded" and per_job.get(jid, {}).get("started") == 1):
            P(f"{jid}, running on {name} when it was killed, never started again (now {v and v['state']})")
    if waited:
        med = waited[len(waited) // 2]
        res.notes.append(f"jobs caught running by a worker kill: {len(delays)}; started again after "
                         f"median {med:.1f} s, max {waited[-1]:.1f} s (limit {cfg.max_redelivery:g} s; "
                         f"the worker TTL)")
        if waited[-1] > cfg.max_redelivery:
            P(f"a killed worker's job waited {waited[-1]:.1f} s to run again (limit {cfg.max_redelivery:g} s)")

    # ---- outputs -----------------------------------------------------------------------
    final = {j: views.get(j) for j in accepted}
    bad, vc, samples = audit.verify_outputs(cluster.port, cluster.data, plan, media, final)
    for tag, why in list(bad.items())[:20]:
        P(f"outputs of {tag}: {'; '.join(why)}")
    fit, outliers = audit.fit_pages(samples)
    if samples and fit is None:
        P(f"PDF page counts fit no single layout: {outliers[:10]} (rows, pages)")
    layout = ""
    if fit:
        r, lo, hi = fit[0]
        layout = f"; page counts fit {len(samples)} exports with {lo}-{hi} rows on page 1 and {r} on the next"
    res.notes.append(f"outputs verified: {vc['videos']} videos (ffprobe), {vc['pdfs']} PDFs (pdfinfo, "
                     f"pdftotext){layout}; {vc['served']} files served by the API, byte for byte")

    # ---- leftovers ---------------------------------------------------------------------
    left = audit.leftovers(cluster.data, set(records), expected_outputs(records), api_kills)
    c["leftover"] = len(left)
    for rel, kind in left:
        P(f"leftover file after the GC pass: {rel} ({kind})")
    kinds = {}
    for rel, kind in before_gc:
        kinds[kind] = kinds.get(kind, 0) + 1
        # A live job's staging file or a file it does not list is wrong even before the
        # GC (which would hide it): once a job has ended, its directory is final.
        if kind in ("live-staging", "unlisted", "outside"):
            P(f"settled blob store: {rel} ({kind})")
    res.notes.append(f"files of no live job before the GC pass: {len(before_gc)} "
                     f"{json.dumps(kinds, sort_keys=True)} (cut-upload: staging files of uploads cut by an "
                     f"API kill, removed by SPOOL_GC_STAGING_AGE); after it: {len(left)}")

    # ---- the processes -----------------------------------------------------------------
    for name, code, tail in chaos.crashes:
        P(f"{name} died on its own (exit {code}):\n{tail[-1500:]}")
    for err in chaos.errors:
        P(f"the chaos loop failed:\n{err}")
    for p in cluster.procs:
        with open(p.logpath, "rb") as f:
            text = f.read().decode(errors="replace")
        if "Sanitizer" in text or "runtime error:" in text:
            P(f"a sanitizer report in {p.logpath}")
    ev = res.chaos_events = chaos.events
    wk = [e for e in ev if e["what"] == "kill-worker"]
    hit = {n for _, n, _ in delays}
    res.caught_running = len(hit)
    rk = "; ".join(f"{e['jobs_before']} jobs before, {e['jobs_after']} after, down {e['down_s']:.1f} s, "
                   f"AOF loaded: {e['aof_loaded']}" for e in redis_kills)
    res.notes.insert(0, f"chaos: {len(wk)} worker kills ({len(hit)} caught a job running), "
                        f"{sum(1 for e in ev if e['what'] == 'stall-worker')} worker stalls past the lease, "
                        f"{sum(1 for e in ev if e['what'] == 'kill-api')} API kills, {len(redis_kills)} "
                        f"Redis kills ({rk})")
    for e in redis_kills:
        if e["jobs_before"] is not None and e["jobs_after"] < e["jobs_before"] and cfg.fsync == "always":
            P(f"Redis came back from its AOF with fewer jobs: {e}")
        if not e["aof_loaded"]:
            P(f"Redis did not say it loaded its AOF after a kill: {e}")
    sc = stats.c
    res.notes.insert(1, "client: " + ", ".join(f"{k} {v}" for k, v in sorted(sc.items())))
    with open(os.path.join(res.root, "report.json"), "w") as f:
        json.dump({"counts": c, "notes": res.notes, "problems": res.problems, "chaos": chaos.events,
                   "client": sc, "counters": counters}, f, indent=1, default=str)
    for n in res.notes:
        out("soak: " + n)


def expected_outputs(records):
    """job id -> the output names its record lists."""
    out = {}
    for jid, rec in records.items():
        try:
            out[jid] = {o["name"] for o in json.loads(rec.get("outputs") or "[]")}
        except ValueError:
            out[jid] = set()
    return out


def main():
    cfg = Config()
    res = run(cfg)
    for p in res.problems:
        print("soak: FAIL: " + p)
    print("soak: " + ("FAILED (reasons above)" if res.problems else "passed"))
    print(res.line(), flush=True)
    return 1 if res.problems else 0


if __name__ == "__main__":
    sys.exit(main())
