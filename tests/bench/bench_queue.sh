#!/bin/sh
# make bench-queue: spool's queue against Celery (defaults, and acks_late + prefetch 1)
# and BullMQ, on one private redis-server, RUNS rounds, each peer side by side in every
# round; the same job count and the same per-job work (append a byte to a file) for all.
#   JOBS (default 10000), CONSUMERS (4), SAMPLES (200 latency samples), RUNS (3),
#   BULLMQ_CONCURRENCY (16: per worker process)
set -eu
bench=$1
npmdir=$2
here=$(cd "$(dirname "$0")" && pwd)
JOBS=${JOBS:-10000}
CONSUMERS=${CONSUMERS:-4}
SAMPLES=${SAMPLES:-200}
RUNS=${RUNS:-3}
BULLMQ_CONCURRENCY=${BULLMQ_CONCURRENCY:-16}
dir=$(mktemp -d /tmp/spool-bench-queue-XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save '' --appendonly no \
  --maxmemory-policy noeviction --logfile "$dir/redis.log" --daemonize yes --pidfile "$dir/redis.pid"
trap 'kill $(cat "$dir/redis.pid") 2>/dev/null; rm -rf "$dir"' EXIT INT TERM
i=0; until redis-cli -p "$port" ping >/dev/null 2>&1; do i=$((i+1)); [ $i -lt 100 ] || exit 1; sleep 0.05; done
cost="python3 $here/redis_cost.py $port $dir/cost.state"
cv=$(/usr/bin/python3 -c 'import celery; print(celery.__version__)')
bv=$(node -p "require('$npmdir/node_modules/bullmq/package.json').version")

cat <<HDR
== bench-queue: $(nproc) cores, $(redis-server --version | cut -d' ' -f3), load $(cut -d' ' -f1-3 /proc/loadavg)
   $JOBS no-op jobs per phase for every peer, $CONSUMERS consumer processes, $SAMPLES latency samples, $RUNS rounds
   peers: spool; Celery $cv with its defaults (acked on receipt, prefetch 4) and with
   acks_late + prefetch 1 (at least once, as spool); BullMQ $bv (Worker concurrency
   $BULLMQ_CONCURRENCY per process, default job options). Per-job work everywhere: take the
   job, append one byte to a file (how the driver counts completions), finish it.
   enqueue one      one enqueue call per job, each waiting for its reply (jobs/s)
   enqueue batch    pipelined: spool 1000 per enqueue_many call, BullMQ addBulk of 1000
                    (Celery has no batched enqueue)
   e2e              consumers already waiting; one producer enqueues the jobs in batches
                    (Celery: one apply_async each); first enqueue to last job done (jobs/s)
   latency          one idle consumer in each peer's default configuration (spool: prefetch
                    on); enqueue call to the job starting, p50/p99 (ms)
   redis cmd us/job sum of INFO commandstats usec over the phase (CONFIG RESETSTAT before),
                    per job; commands run by a script or a transaction count twice (their own
                    row and the EVALSHA/EXEC row): an upper bound on command time
   redis cpu us/job the redis-server main thread's CPU time over the phase, per job (commandstats
                    times are wall clock: with consumers on the same cores they overstate)
   Figures: median of the rounds [min-max]; ratios: median of the per-round ratios.
HDR
r=1
while [ "$r" -le "$RUNS" ]; do
  echo "-- round $r of $RUNS (load $(cut -d' ' -f1 /proc/loadavg))"
  "$bench" --jobs "$JOBS" --consumers "$CONSUMERS" --latency-samples "$SAMPLES" \
    --redis-url "redis://127.0.0.1:$port/0" --cost "$cost" > "$dir/$r-spool.txt"
  for mode in default acks_late; do
    s=0; [ "$mode" = default ] && s=$SAMPLES
    /usr/bin/python3 "$here/celery_queue.py" "redis://127.0.0.1:$port/1" "$JOBS" "$CONSUMERS" \
      "$s" "$mode" "$cost" > "$dir/$r-celery_$mode.txt"
  done
  node "$here/bullmq_queue.cjs" "$npmdir" "$port" "$JOBS" "$CONSUMERS" "$BULLMQ_CONCURRENCY" \
    "$SAMPLES" "$cost" > "$dir/$r-bullmq.txt"
  r=$((r+1))
done
python3 "$here/bench_queue_report.py" "$dir" "$RUNS"
