#!/bin/sh
# make bench-queue: spool's queue against Celery + Redis (in its at-least-once and its
# default configuration), side by side in one run, on
# one private redis-server. Same job count, same consumer process count.
#   JOBS (default 50000), CONSUMERS (4), SAMPLES (2000 latency samples)
set -eu
bench=$1
here=$(cd "$(dirname "$0")" && pwd)
JOBS=${JOBS:-50000}
CONSUMERS=${CONSUMERS:-4}
SAMPLES=${SAMPLES:-2000}
CELERY_JOBS=${CELERY_JOBS:-$((JOBS / 5))}
dir=$(mktemp -d /tmp/spool-bench-queue-XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save '' --appendonly no \
  --logfile "$dir/redis.log" --daemonize yes --pidfile "$dir/redis.pid"
trap 'kill $(cat "$dir/redis.pid") 2>/dev/null; rm -rf "$dir"' EXIT INT TERM
i=0; until redis-cli -p "$port" ping >/dev/null 2>&1; do i=$((i+1)); [ $i -lt 100 ] || exit 1; sleep 0.05; done

echo "== machine: $(nproc) cores, $(redis-server --version | cut -d' ' -f3), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== spool: $JOBS jobs, $CONSUMERS consumer processes, $SAMPLES latency samples"
"$bench" --jobs "$JOBS" --consumers "$CONSUMERS" --latency-samples "$SAMPLES" \
  --redis-url "redis://127.0.0.1:$port/0" | tee "$dir/spool.txt"
cv=$(/usr/bin/python3 -c 'import celery; print(celery.__version__)')
for mode in safe default; do
  echo "== Celery $cv ($mode): $CELERY_JOBS jobs, $CONSUMERS prefork processes"
  /usr/bin/python3 "$here/celery_queue.py" "redis://127.0.0.1:$port/1" "$CELERY_JOBS" "$CONSUMERS" \
    "$((SAMPLES / 20))" "$mode" | tee "$dir/celery-$mode.txt"
done
for mode in safe default; do
  echo "== ratios against Celery $mode (spool / Celery; for latency, Celery / spool)"
  awk 'FNR==NR { s[$1]=$2; next } { c[$1]=$2 }
    END {
      printf "enqueue throughput:    %.1fx\n", s["enqueue_jobs_per_s"] / c["enqueue_jobs_per_s"];
      printf "end-to-end throughput: %.1fx\n", s["end_to_end_jobs_per_s"] / c["end_to_end_jobs_per_s"];
      printf "start latency p50:     %.1fx lower\n", c["start_latency_p50"] / s["start_latency_p50"];
      printf "start latency p99:     %.1fx lower\n", c["start_latency_p99"] / s["start_latency_p99"];
    }' "$dir/spool.txt" "$dir/celery-$mode.txt"
done
