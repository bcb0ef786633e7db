"""Summary of make bench-queue's rounds (bench_queue.sh): every figure of every peer as
median [min-max] over the rounds, spool's lines against the queue targets, and ratios
as the median of per-round ratios.  bench_queue_report.py DIR RUNS"""
import statistics
import sys

d, runs = sys.argv[1], int(sys.argv[2])
PEERS = [("spool", "spool"), ("celery_default", "Celery defaults"),
         ("celery_acks_late", "Celery acks_late+prefetch 1"), ("bullmq", "BullMQ")]


def load(r, peer):
    out = {}
    for line in open(f"{d}/{r}-{peer}.txt"):
        f = line.split()
        if len(f) >= 3:
            out[f[0]] = float(f[1])
    return out


data = {p: [load(r, p) for r in range(1, runs + 1)] for p, _ in PEERS}


def vals(peer, key):
    return [x[key] for x in data[peer] if key in x]


def fmt(v):
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def cell(peer, key):
    v = vals(peer, key)
    if not v:
        return "-"
    return f"{fmt(statistics.median(v))} [{fmt(min(v))}-{fmt(max(v))}]"


# (label, spool key, peers' key)
ROWS = [
    ("enqueue one, jobs/s", "enqueue_one_jobs_per_s", "enqueue_one_jobs_per_s"),
    ("  redis cmd us/job", "enqueue_one_redis_cmd_us", "enqueue_one_redis_cmd_us"),
    ("  redis cpu us/job", "enqueue_one_redis_cpu_us", "enqueue_one_redis_cpu_us"),
    ("enqueue batch, jobs/s", "enqueue_batch_jobs_per_s", "enqueue_batch_jobs_per_s"),
    ("  redis cmd us/job", "enqueue_batch_redis_cmd_us", "enqueue_batch_redis_cmd_us"),
    ("  redis cpu us/job", "enqueue_batch_redis_cpu_us", "enqueue_batch_redis_cpu_us"),
    ("e2e, jobs/s (spool prefetch on)", "e2e_prefetch_jobs_per_s", "e2e_jobs_per_s"),
    ("  redis cmd us/job", "e2e_prefetch_redis_cmd_us", "e2e_redis_cmd_us"),
    ("  redis cpu us/job", "e2e_prefetch_redis_cpu_us", "e2e_redis_cpu_us"),
    ("e2e, jobs/s (spool prefetch off)", "e2e_noprefetch_jobs_per_s", "e2e_jobs_per_s"),
    ("  redis cmd us/job", "e2e_noprefetch_redis_cmd_us", "e2e_redis_cmd_us"),
    ("  redis cpu us/job", "e2e_noprefetch_redis_cpu_us", "e2e_redis_cpu_us"),
    ("latency p50, ms (default configs)", "latency_p50", "latency_p50"),
    ("latency p99, ms", "latency_p99", "latency_p99"),
]
w = 36
print("\n== results: median [min-max] over %d rounds" % runs)
print(f"{'':{w}}" + "".join(f"{name:>28}" for _, name in PEERS))
for label, sk, pk in ROWS:
    cells = [cell("spool", sk)] + [cell(p, pk) for p, _ in PEERS[1:]]
    print(f"{label:{w}}" + "".join(f"{c:>28}" for c in cells))

print("\n== spool against the queue targets (median of rounds)")
# The issue states the Redis targets as "Redis CPU per job"; both of bench-queue's
# measures of it are judged: the main thread's CPU time, and the commandstats sum (which
# counts a command run by a script twice, see redis_cost.py).
TARGETS = [("e2e_prefetch_redis_cpu_us", "<=", 30, "Redis CPU us/job, prefetch on"),
           ("e2e_prefetch_redis_cmd_us", "<=", 30, "Redis cmd us/job, prefetch on"),
           ("e2e_noprefetch_redis_cpu_us", "<=", 50, "Redis CPU us/job, prefetch off"),
           ("e2e_noprefetch_redis_cmd_us", "<=", 50, "Redis cmd us/job, prefetch off"),
           ("e2e_prefetch_jobs_per_s", ">=", 30000, "e2e jobs/s, prefetch on"),
           ("e2e_noprefetch_jobs_per_s", ">=", 15000, "e2e jobs/s, prefetch off")]
for key, op, t, label in TARGETS:
    v = statistics.median(vals("spool", key))
    ok = v <= t if op == "<=" else v >= t
    print(f"{label:34} {fmt(v):>10}  target {op} {t:,}  {'PASS' if ok else 'MISS'}")

print("\n== ratios, median of per-round ratios (higher is better for spool)")
RATIOS = [("enqueue one jobs/s", "enqueue_one_jobs_per_s", "enqueue_one_jobs_per_s", False),
          ("enqueue batch jobs/s", "enqueue_batch_jobs_per_s", "enqueue_batch_jobs_per_s", False),
          ("e2e jobs/s (spool prefetch on)", "e2e_prefetch_jobs_per_s", "e2e_jobs_per_s", False),
          ("e2e jobs/s (spool prefetch off)", "e2e_noprefetch_jobs_per_s", "e2e_jobs_per_s", False),
          ("e2e redis cpu/job, lower (prefetch on)", "e2e_prefetch_redis_cpu_us", "e2e_redis_cpu_us", True),
          ("latency p50, lower", "latency_p50", "latency_p50", True),
          ("latency p99, lower", "latency_p99", "latency_p99", True)]
print(f"{'spool vs':{w}}" + "".join(f"{name:>28}" for _, name in PEERS[1:]))
for label, sk, pk, inv in RATIOS:
    cells = []
    for p, _ in PEERS[1:]:
        rs = [(b[pk] / a[sk] if inv else a[sk] / b[pk])
              for a, b in zip(data["spool"], data[p]) if sk in a and pk in b and a[sk] and b[pk]]
        cells.append(f"{statistics.median(rs):.1f}x" if rs else "-")
    print(f"{label:{w}}" + "".join(f"{c:>28}" for c in cells))
