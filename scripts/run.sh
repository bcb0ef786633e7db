#!/usr/bin/env bash
# scripts/run.sh - spool on this machine (`make run` calls it after installing what is
# missing and building): a private redis-server (AOF on, noeviction, its own port, data
# under $VAR_DIR/redis), spool-api, VIDEO_WORKERS spool-video and PDF_WORKERS spool-pdf
# processes, with every log line in one stream tagged by its process ("[api] ...").
#
# Ctrl-C (SIGINT) or SIGTERM stops the workers first (each finishes its job within its
# grace period, SPOOL_GRACE, or gives it back to the queue), then the API, then Redis
# (which writes its AOF on the way down). A second Ctrl-C kills what is left at once.
# If one process dies on its own, the others are stopped the same way and this script
# exits with status 1.
#
# Settings, from the environment (make passes its variables of the same names):
#   API_HOST=127.0.0.1 API_PORT=8080   where spool-api listens
#   REDIS_PORT=6390                    the private Redis's port (loopback only)
#   VIDEO_WORKERS=1 PDF_WORKERS=1      how many worker processes of each kind
#   VAR_DIR=var                        Redis data, blobs (SPOOL_DATA_DIR), FIFOs
#   BIN_DIR=bin                        where the binaries are
# and any SPOOL_* variable (SPOOL_LOG_LEVEL, SPOOL_CONCURRENCY, SPOOL_GRACE, ...), which
# every process inherits.
set -u -o pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
API_HOST=${API_HOST:-127.0.0.1}
API_PORT=${API_PORT:-8080}
REDIS_PORT=${REDIS_PORT:-6390}
VIDEO_WORKERS=${VIDEO_WORKERS:-1}
PDF_WORKERS=${PDF_WORKERS:-1}
VAR_DIR=${VAR_DIR:-var}
BIN_DIR=${BIN_DIR:-bin}
case $VAR_DIR in /*) ;; *) VAR_DIR=$here/$VAR_DIR ;; esac
case $BIN_DIR in /*) ;; *) BIN_DIR=$here/$BIN_DIR ;; esac

if [ -t 1 ]; then
    c_run=$'\033[1m' c_off=$'\033[0m'
else
    c_run='' c_off=''
fi

say() { printf '%s[run]%s %s\n' "$c_run" "$c_off" "$*"; }
die() { say "$*" >&2; exit 1; }

is_uint() { case $1 in '' | *[!0-9]*) return 1 ;; *) return 0 ;; esac; }
for v in API_PORT REDIS_PORT; do
    val=${!v}
    if ! is_uint "$val" || [ "$val" -lt 1 ] || [ "$val" -gt 65535 ]; then
        die "$v must be a port number from 1 to 65535, not '$val'"
    fi
done
for v in VIDEO_WORKERS PDF_WORKERS; do
    val=${!v}
    if ! is_uint "$val" || [ "$val" -gt 64 ]; then
        die "$v must be a number from 0 to 64, not '$val'"
    fi
done
[ "$API_PORT" != "$REDIS_PORT" ] || die "API_PORT and REDIS_PORT must differ (both are $API_PORT)"

# ---- what we need ----------------------------------------------------------------------
missing=()
need_bin() { [ -x "$BIN_DIR/$1" ] || missing+=("$1 (from $2)"); }
need_bin spool-api api/
[ "$VIDEO_WORKERS" -eq 0 ] || need_bin spool-video workers/video/
[ "$PDF_WORKERS" -eq 0 ] || need_bin spool-pdf workers/pdf/
if [ ${#missing[@]} -gt 0 ]; then
    for m in "${missing[@]}"; do
        say "missing: $BIN_DIR/${m%% *} ${m#* }" >&2
    done
    die "build them with 'make' (if a source directory named above is absent, this checkout does not have that part yet; VIDEO_WORKERS=0 or PDF_WORKERS=0 runs without a kind of worker)"
fi
command -v redis-server >/dev/null || die "redis-server is not installed: run 'make deps' (Debian package redis-server)"
command -v redis-cli >/dev/null || die "redis-cli is not installed: run 'make deps' (Debian package redis-tools)"

# A port someone else listens on would make a child fail in a confusing way: say so now.
port_busy() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
port_busy 127.0.0.1 "$REDIS_PORT" && die "port $REDIS_PORT is in use: choose another with REDIS_PORT=..."
port_busy "$API_HOST" "$API_PORT" && die "port $API_PORT is in use: choose another with API_PORT=..."

mkdir -p "$VAR_DIR/redis" "$VAR_DIR/data" "$VAR_DIR/run" || die "cannot create $VAR_DIR"
export SPOOL_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
export SPOOL_DATA_DIR=${SPOOL_DATA_DIR:-$VAR_DIR/data}
export SPOOL_LISTEN="$API_HOST:$API_PORT"

# ---- starting processes ------------------------------------------------------------------
names=() pids=() taggers=()
colors=(32 33 34 35 36 91 92 93 94 95 96)

# start NAME COMMAND...: run COMMAND in its own session (so the terminal's Ctrl-C reaches
# only this script, which stops everything in order), its output tagged through a FIFO
# by a sed that ignores the signals and ends when the process's output does.
start() {
    local name=$1
    shift
    local fifo="$VAR_DIR/run/$name.log.fifo"
    local tag
    if [ -n "$c_run" ]; then
        tag=$(printf '\033[%sm%-9s\033[0m' "${colors[$(( ${#names[@]} % ${#colors[@]} ))]}" "[$name]")
    else
        tag=$(printf '%-9s' "[$name]")
    fi
    rm -f "$fifo"
    mkfifo "$fifo" || die "cannot create $fifo"
    ( trap '' INT TERM; exec sed -u "s/^/$tag /" <"$fifo" ) &
    taggers+=($!)
    setsid "$@" >"$fifo" 2>&1 </dev/null &
    names+=("$name")
    pids+=($!)
}

stopping=0
force() {
    say "second interrupt: killing what is left"
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
}

# drain INDEX: wait (up to 5 s) until the process's tagger has printed its last lines,
# so what this script says next comes after them.
drain() {
    local t=${taggers[$1]} n
    for n in $(seq 50); do
        kill -0 "$t" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$t" 2>/dev/null || wait "$t" 2>/dev/null
}

# stop_procs SECONDS INDEX...: SIGTERM, then wait; SIGKILL what is still there after SECONDS.
stop_procs() {
    local secs=$1
    shift
    local i
    for i in "$@"; do kill -TERM "${pids[$i]}" 2>/dev/null; done
    local deadline=$((SECONDS + secs))
    for i in "$@"; do
        while kill -0 "${pids[$i]}" 2>/dev/null; do
            if [ $SECONDS -ge $deadline ]; then
                say "${names[$i]} did not stop within $secs s: killing it"
                kill -KILL "${pids[$i]}" 2>/dev/null
            fi
            sleep 0.1
        done
        wait "${pids[$i]}" 2>/dev/null
        drain "$i"
    done
}

# Seconds of SPOOL_GRACE ("30s", "2m", "500ms", "45"), for how long to wait for workers.
grace_seconds() {
    local g=${SPOOL_GRACE:-30s}
    case $g in
        *ms) echo $(( ${g%ms} / 1000 + 1 )) ;;
        *s) echo "${g%s}" ;;
        *m) echo $(( ${g%m} * 60 )) ;;
        *h) echo $(( ${g%h} * 3600 )) ;;
        *) echo "$g" ;;
    esac
}

shutdown() {
    local code=$1
    [ $stopping -eq 0 ] || return
    stopping=1
    trap force INT TERM
    local workers=() api=() redis=() i
    for i in "${!names[@]}"; do
        case ${names[$i]} in
            api) api+=("$i") ;;
            redis) redis+=("$i") ;;
            *) workers+=("$i") ;;
        esac
    done
    local grace
    grace=$(grace_seconds 2>/dev/null)
    is_uint "$grace" || grace=30
    if [ ${#workers[@]} -gt 0 ]; then
        say "stopping the workers (they finish or give back their jobs within $grace s)"
        stop_procs $((grace + 10)) "${workers[@]}"
    fi
    if [ ${#api[@]} -gt 0 ]; then
        say "stopping the API"
        stop_procs 40 "${api[@]}"
    fi
    if [ ${#redis[@]} -gt 0 ]; then
        say "stopping Redis"
        stop_procs 60 "${redis[@]}"
    fi
    for p in "${taggers[@]}"; do wait "$p" 2>/dev/null; done
    rm -f "$VAR_DIR"/run/*.log.fifo
    say "stopped"
    exit "$code"
}

trap 'shutdown 0' INT TERM
trap 'shutdown 1' HUP

# ---- Redis, the API, the workers -----------------------------------------------------------
start redis redis-server "$here/deploy/redis.conf" --port "$REDIS_PORT" --bind 127.0.0.1 \
    --dir "$VAR_DIR/redis" --logfile "" --daemonize no
for _ in $(seq 100); do
    redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && break
    kill -0 "${pids[0]}" 2>/dev/null || break
    sleep 0.1
done
redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG || { drain 0; say "Redis did not start"; shutdown 1; }

start api "$BIN_DIR/spool-api"
healthy() {
    (
        exec 3<>"/dev/tcp/$API_HOST/$API_PORT" || exit 1
        printf 'GET /healthz HTTP/1.0\r\nHost: %s\r\n\r\n' "$API_HOST" >&3
        read -r -t 2 _ status _ <&3
        [ "$status" = 200 ]
    )
}
for _ in $(seq 200); do
    healthy 2>/dev/null && break
    kill -0 "${pids[1]}" 2>/dev/null || break
    sleep 0.05
done
healthy 2>/dev/null || { kill -0 "${pids[1]}" 2>/dev/null || drain 1; say "spool-api did not start (see its lines above)"; shutdown 1; }

for i in $(seq "$VIDEO_WORKERS"); do start "video-$i" "$BIN_DIR/spool-video"; done
for i in $(seq "$PDF_WORKERS"); do start "pdf-$i" "$BIN_DIR/spool-pdf"; done

say "spool is up: API at http://$API_HOST:$API_PORT, $VIDEO_WORKERS video and $PDF_WORKERS pdf worker(s), Redis on port $REDIS_PORT, data in $VAR_DIR"
say "try: make demo    or: $BIN_DIR/spoolctl --server http://$API_HOST:$API_PORT --help    (Ctrl-C stops everything)"

# ---- watch ---------------------------------------------------------------------------------
while :; do
    for i in "${!pids[@]}"; do
        if ! kill -0 "${pids[$i]}" 2>/dev/null; then
            wait "${pids[$i]}" 2>/dev/null
            status=$?
            drain "$i"
            say "${names[$i]} exited with status $status on its own: stopping the others"
            unset 'pids[i]'
            shutdown 1
        fi
    done
    sleep 1 &
    wait $! 2>/dev/null
done
