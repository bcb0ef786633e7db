#!/usr/bin/env bash
# scripts/fresh-root-smoke.sh - the README's `make run` on this machine, briefly: start it
# on free ports, wait until it says it is up, run `make demo` against it (a clip and a
# CSV through both workers, results downloaded), then stop it with SIGTERM as Ctrl-C
# would and check that it stopped cleanly. scripts/fresh-root.sh runs it after
# `make test` in a fresh Debian root; it works on any machine `make run` works on.
# Exit status 0 when all of that worked; the run's log is printed on a failure.
set -u -o pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
say() { printf '[smoke] %s\n' "$*" >&2; }

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
API_PORT=$(free_port)
REDIS_PORT=$(free_port)
while [ "$REDIS_PORT" = "$API_PORT" ]; do REDIS_PORT=$(free_port); done
VAR_DIR=$(mktemp -d "${TMPDIR:-/tmp}/spool-smoke.XXXXXX")
log="$VAR_DIR/make-run.log"
ports="API_PORT=$API_PORT REDIS_PORT=$REDIS_PORT VAR_DIR=$VAR_DIR"

# Its own session, so the signal reaches make and run.sh as the terminal's Ctrl-C would
# (a background job of a script would ignore SIGINT; run.sh treats SIGTERM the same).
# shellcheck disable=SC2086
setsid make --no-print-directory run $ports >"$log" 2>&1 </dev/null &
pid=$!

fail() {
    say "$*"
    kill -KILL -- "-$pid" 2>/dev/null
    say "---- make run's log ----"
    cat "$log" >&2
    exit 1
}

say "make run $ports"
for _ in $(seq 600); do
    grep -q 'spool is up' "$log" && break
    kill -0 "$pid" 2>/dev/null || fail "make run exited before it was up"
    sleep 1
done
grep -q 'spool is up' "$log" || fail "make run was not up after 600 s"
say "up; make demo"
# shellcheck disable=SC2086
timeout 600 make --no-print-directory demo $ports >&2 || fail "make demo failed"

say "stopping make run (SIGTERM to its process group, as Ctrl-C would send SIGINT)"
kill -TERM -- "-$pid"
# make itself exits on the signal at once; run.sh then stops Redis, the API and the
# workers in order: wait for the whole group to be gone.
for _ in $(seq 120); do
    kill -0 -- "-$pid" 2>/dev/null || break
    sleep 1
done
kill -0 -- "-$pid" 2>/dev/null && fail "make run did not stop within 120 s of SIGTERM"
wait "$pid" 2>/dev/null
grep -q '\[run\] stopped' "$log" || fail "make run did not say it stopped"
say "make run started, ran the demo and stopped cleanly"
rm -rf "$VAR_DIR"
